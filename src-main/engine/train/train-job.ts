import path from 'node:path';
import fs from 'node:fs';
import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { initBackend, type BackendInfo } from '../ml/backend.ts';
import { loadMobilenetBackbone } from '../ml/mobilenet.ts';
import { DEFAULT_EXTRACTOR, dimOf, ensureFeatures, EXTRACTORS, type ExtractorName } from '../filter/features.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import type { FeatureRows } from '../filter/feature-cache.ts';
import { buildLabelSpace, encodeColumns, majorityClass, splitRows, NUM_PRICE_BINS, type LabelRow, type LabelSpace, type SplitKind } from './labels.ts';
import { backboneKindOf, parseLossWeights, parseTinyCnnName, TINY_CNN, TINY_CNN_LR, tinyCnnBackbone, type Backbone, type BackboneKind } from './model.ts';
import { mixSeed } from './rng.ts';
import {
  HEAD_NAMES,
  loadRunConfig,
  planHeads,
  resume,
  runExtractor,
  runSplit,
  runDataOf,
  runTestFraction,
  RUN_FILES,
  train,
  trainConfig,
  type RunConfigFile,
  type TrainData,
  type TrainInputs,
  type TrainResult,
} from './trainer.ts';
import { trainingSet } from './dataset.ts';
import { calibrateRun, type CalibrationReport } from './calibrate.ts';
import type { TrainParams } from './train-kind.ts';

const EMIT_MS = 150;

/**
 * The default learning rate of heads on an extractor's features where 1e-3 (DEFAULT_LR.heads,
 * tuned on mobilenet_v2) is too slow: the pooled-block rows are L2-normalised (row norm 1, a
 * column's spread ~0.004 against ~0.08 for mobilenet_v2's flatten_1), so linear heads at 1e-3
 * stay at the class prior for hundreds of steps. Measured on ../shared/data/labelled-cars (600
 * steps, linear heads, 30% held out): make/model top-5 17.0-19.0% at 1e-3, 25.3-26.5% at 2e-2.
 */
const HEADS_LR: Partial<Record<ExtractorName, number>> = { 'mobilenet_v2-blocks': 2e-2, 'car-v1': 2e-2 };

export function runDirOf(workspaceDir: string, runId: number): string {
  return path.join(workspaceDir, 'runs', String(runId));
}

/**
 * The backend a run trains on, and the account of it for the job's log: the best of the ladder,
 * except that fine-tuning without a native backend needs force and then runs on the pure-JS cpu
 * backend (wasm, which the ladder picks before it, has no convolution gradients).
 */
async function trainingBackend(
  mode: TrainParams['mode'],
  backbone: BackboneKind,
  force: boolean,
  log: (level: 'info' | 'warn', m: string) => void,
): Promise<{ backend: BackendInfo; note: string }> {
  const best = await initBackend('auto');
  if (mode !== 'finetune' || best.fastConv) return { backend: best, note: best.note };
  const slow =
    backbone === 'tiny-cnn' ? 'the tiny-cnn smoke test trains about 10 images a second there' : 'a MobileNetV2 training step takes minutes there';
  if (!best.canTrainConv && !force) {
    throw new UserError(
      `Fine-tuning needs gradients of convolutions, which the ${best.name} backend does not have. ` +
        'Install @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA) to fine-tune, train the heads on cached features (mode heads), ' +
        `or pass force (CLI --force) to fine-tune on the pure-JS cpu backend (${slow}).`,
    );
  }
  // Without force on the cpu backend the trainer refuses, with its own message.
  if (!force) return { backend: best, note: best.note };
  if (best.canTrainConv) {
    log('warn', `fine-tuning ${backbone} on the pure-JS ${best.name} backend (forced; ${slow})`);
    return { backend: best, note: best.note };
  }
  const cpu = await initBackend('cpu');
  log(
    'warn',
    `fine-tuning ${backbone} on the pure-JS ${cpu.name} backend (forced; ${slow}): no native TensorFlow here, and the ${best.name} backend has no convolution gradients`,
  );
  return { backend: cpu, note: `the pure-JS cpu backend of @tensorflow/tfjs, forced for fine-tuning; the ladder found: ${best.note}` };
}

/**
 * A training run as a job: builds the dataset from the workspace, extracts missing features
 * (heads mode), trains with live metrics, and records the run. Cancel = checkpoint and stop;
 * the job (or `--resume RUN`) continues from the last checkpoint.
 */
export default async function trainJob(ctx: JobContext<TrainParams>): Promise<unknown> {
  const ws = ctx.workspace;
  const db = ws.db;
  const p = ctx.params;
  const now = (): number => Date.now();
  // The run this job trains: the one it created before (when the job itself is resumed), the
  // one named by resumeRun, or a new one.
  const ownRun = (ctx.checkpoint as { runId?: number } | undefined)?.runId;
  let runId = p.resumeRun ?? ownRun;
  let fresh = false;
  if (runId === undefined) {
    runId = (
      db
        .prepare(`INSERT INTO runs (name, mode, params, state, job_id, steps, created_at, updated_at) VALUES (?, ?, ?, 'preparing', ?, ?, ?, ?) RETURNING id`)
        .get(
          p.name ?? `${p.mode}${p.mode === 'finetune' ? ` ${p.backbone ?? 'mobilenet_v2'}` : ''} ${p.lossWeights}`,
          p.mode,
          JSON.stringify(storedParams(p)),
          ctx.jobId,
          p.steps,
          now(),
          now(),
        ) as { id: number }
    ).id;
    ctx.saveCheckpoint({ runId });
    fresh = true;
  } else {
    const exists = db.prepare(`SELECT id FROM runs WHERE id = ?`).get(runId);
    if (!exists) throw new UserError(`no run ${runId}`);
    ctx.saveCheckpoint({ runId });
  }
  // The run's own parameters (what it was started with): a resumed run keeps its mode, backbone
  // and the rest, takes the new total of steps, and keeps the force it was started with.
  const stored = JSON.parse((db.prepare(`SELECT params FROM runs WHERE id = ?`).pluck().get(runId) as string | undefined) ?? '{}') as Partial<TrainParams>;
  const rp: TrainParams = p.resumeRun ? { ...p, ...stored, steps: p.steps, resumeRun: p.resumeRun, force: p.force || Boolean(stored.force) } : p;
  // A resume that names another extractor than the run's is refused before the run (or a job of
  // it) is touched: the run keeps its state.
  if (!fresh && p.extractor) {
    const dir = runDirOf(ws.dir, runId);
    const cfg = fs.existsSync(path.join(dir, RUN_FILES.config)) ? await loadRunConfig(dir) : null;
    const had = (cfg ? cfg.config.mode : rp.mode) === 'heads' ? recordedExtractor(cfg, stored) : null;
    if (had && had !== p.extractor) {
      throw new UserError(
        `run ${runId} was trained on ${had} features; resume it without --extractor (or with --extractor ${had}), or start a new run to train on ${p.extractor} (got --extractor ${p.extractor})`,
      );
    }
  }
  // Another job that trained this run and was interrupted (its process died) would train it
  // again when an engine next starts; this job continues the run instead.
  if (p.resumeRun) {
    db.prepare(
      `UPDATE jobs SET state = 'cancelled', message = ? WHERE kind = 'train' AND state = 'interrupted' AND id != ? AND json_extract(checkpoint, '$.runId') = ?`,
    ).run(`superseded: job ${ctx.jobId} continues run ${runId}`, ctx.jobId, runId);
  }
  const runDir = runDirOf(ws.dir, runId);
  const hasRun = fs.existsSync(path.join(runDir, 'config.json'));
  const setRun = (fields: Record<string, unknown>): void => {
    const keys = Object.keys(fields);
    db.prepare(`UPDATE runs SET ${keys.map((k) => `${k} = ?`).join(', ')}, updated_at = ? WHERE id = ?`).run(...keys.map((k) => fields[k]), now(), runId);
  };
  setRun({ state: 'preparing', job_id: ctx.jobId, error: null });
  const openRows: FeatureRows[] = [];
  try {
    const runCfg: RunConfigFile | null = hasRun ? await loadRunConfig(runDir) : null;
    const mode = runCfg ? runCfg.config.mode : rp.mode;
    const backboneKind: BackboneKind = runCfg ? backboneKindOf(runCfg.backbone) : (rp.backbone ?? 'mobilenet_v2');
    if (p.resumeRun && p.backbone && p.backbone !== backboneKind) {
      throw new UserError(`run ${runId} was trained on the ${backboneKind} backbone; resume it without naming another (got ${p.backbone})`);
    }
    if (mode === 'heads' && backboneKind !== 'mobilenet_v2') {
      throw new UserError(`the ${backboneKind} backbone needs mode finetune; heads mode trains on cached features of an extractor`);
    }
    // The features a heads run trains on: the extractor its config.json records (a run that got no
    // further than its first config has it in its parameters; runs from before it was recorded:
    // mobilenet_v2), else the one asked for (a resume naming another was refused above).
    let extractor: ExtractorName | null = null;
    if (mode === 'heads') {
      extractor = recordedExtractor(runCfg, stored) ?? p.extractor ?? DEFAULT_EXTRACTOR;
      if (runCfg && runCfg.extractor === undefined && extractor !== runExtractor(runCfg)) await recordExtractor(runDir, extractor);
    } else if (fresh && p.extractor) {
      ctx.log('warn', `--extractor ${p.extractor} is ignored: a finetune run trains the backbone on the photos' pixels, not on cached features`);
    }
    const { backend, note } = await trainingBackend(mode, backboneKind, rp.force, (l, m) => ctx.log(l, m));
    ctx.log('info', `backend: ${backend.name} (${note})`);
    const { rows, outliers } = trainingSet(db);
    if (outliers.message) ctx.log('warn', `${outliers.message}: they are not believable (a scrape before value checks, or a wider range since); see carstudio stats`);
    if (rows.length < 20)
      throw new UserError(`only ${rows.length} training images with a label (price, make/model or year); scrape or import more listings (and check dedup and the filter)`);
    // A resumed run keeps the split and the class lists it was started with.
    const splitKind: SplitKind = runCfg ? runSplit(runCfg) : rp.split;
    const space: LabelSpace = runCfg ? runCfg.space : buildLabelSpace(rows, { top: rp.topMakeModels });
    const testFraction = runCfg ? runTestFraction(runCfg) : rp.testFraction;
    const split = splitRows(rows, splitKind, testFraction);
    ctx.log('info', describeSpace(space, splitKind));
    let data: TrainData;
    if (mode === 'heads') {
      const ex = extractor!;
      ctx.log('info', `features: ${ex} (${dimOf(ex)}-d, cached under features/${ex})`);
      const { cache, failed } = await ensureFeatures(
        {
          ws,
          signal: ctx.signal,
          progress: (d, t, m) => ctx.progress({ step: 'features', done: d, total: t, message: `${ex} features: ${m}` }),
          log: (l, m) => ctx.log(l, m),
        },
        rows.map((r) => r.imageId),
        ex,
      );
      if (ctx.signal.aborted) {
        await cache.close();
        return { runId, state: 'stopped' };
      }
      if (failed) ctx.log('warn', `${failed} images have no ${ex} features (they could not be decoded) and are left out of training`);
      // Rows are read from the cache's shards batch by batch, so the features of millions of
      // images need not fit in memory.
      const part = async (rs: LabelRow[]) => {
        const rows = await cache.rows(rs.map((r) => r.imageId));
        openRows.push(rows);
        const byId = new Map(rs.map((r) => [r.imageId, r]));
        return { dim: cache.dim, features: rows, labels: encodeColumns(space, rows.ids.map((id) => byId.get(id)!)) };
      };
      data = { mode: 'heads', train: await part(split.train), test: await part(split.test) };
      await cache.close();
    } else {
      let bb: Backbone;
      if (backboneKind === 'tiny-cnn') {
        // Initialised from the run's seed, so a run resumed before its first checkpoint starts
        // from the same weights; later, the checkpoint's weights replace them.
        const size = parseTinyCnnName(runCfg?.backbone) ?? TINY_CNN;
        bb = tinyCnnBackbone(backend.tf, { ...size, seed: mixSeed(runCfg?.config.seed ?? rp.seed, 0xcc) });
      } else {
        const mb = await loadMobilenetBackbone(backend.tf);
        bb = { model: mb.model, inputSize: mb.inputSize, featureDim: mb.featureDim, name: mb.name };
      }
      ctx.log('info', `backbone: ${bb.name} (${bb.inputSize} px input, ${bb.featureDim}-d features)`);
      const keyOf = db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
      const files = (rs: LabelRow[]) => rs.map((r) => ws.store.pathFor(keyOf.get(r.imageId) as string));
      data = {
        mode: 'finetune',
        train: { inputs: files(split.train), labels: encodeColumns(space, split.train) },
        test: { inputs: files(split.test), labels: encodeColumns(space, split.test) },
        backbone: bb,
      };
    }
    const baseline = majorityClass(data.test.labels.priceBin, NUM_PRICE_BINS, data.test.labels.priceMask);
    setRun({ state: 'running', steps: p.resumeRun ? p.steps : rp.steps, baseline: JSON.stringify({ priceAccuracy: baseline.fraction, priceClass: space.priceBins[baseline.cls], trainImages: split.train.length, testImages: split.test.length }) });
    ctx.log('info', `${split.train.length} training and ${split.test.length} test images (split by ${splitKind}); majority-class price accuracy ${(100 * baseline.fraction).toFixed(1)}%`);
    const plan = planHeads(runCfg?.config.lossWeights ?? parseLossWeights(rp.lossWeights), data.train.labels, data.test.labels);
    for (const h of HEAD_NAMES) {
      const hp = plan[h];
      ctx.log(hp.trains ? 'info' : 'warn', `head ${h}: ${hp.train} training and ${hp.test} test labels${hp.trains ? '' : ` — not trained (${hp.reason})`}`);
    }

    let lastEmit = 0;
    const inputs: TrainInputs = {
      backend,
      space,
      data,
      split: splitKind,
      testFraction,
      trainedOn: runDataOf(split.train, split.test),
      force: rp.force,
      signal: ctx.signal,
      onStart: async (e) => {
        // train() has written config.json by now (without the extractor, which trainer.ts leaves to the caller).
        if (extractor && !hasRun) await recordExtractor(runDir, extractor);
        ctx.log('info', e.resumedFrom === null ? `training from step 0 of ${e.steps}` : `resumed from the checkpoint at step ${e.resumedFrom} of ${e.steps}`);
        ctx.progress({ step: 'train', done: e.step, total: e.steps, message: e.resumedFrom === null ? `${backend.name}` : `${backend.name}, resumed from step ${e.resumedFrom}` });
      },
      onStep: (e) => {
        ctx.progress({ step: 'train', done: e.step, total: e.steps, message: `${backend.name}: ${e.samplesPerSec.toFixed(1)} samples/s, loss ${e.train.loss.toFixed(3)}` });
        const t = now();
        if (t - lastEmit >= EMIT_MS || e.step === e.steps) {
          lastEmit = t;
          ctx.emit('train.metrics', { runId, step: e.step, split: 'train', metrics: e.train, samplesPerSec: e.samplesPerSec });
          setRun({ step: e.step, last_train: JSON.stringify(e.train) });
        }
      },
      onEval: (e) => {
        ctx.emit('train.metrics', { runId, step: e.step, split: 'test', metrics: e.test, best: e.best });
        setRun({ step: e.step, last_test: JSON.stringify({ step: e.step, ...e.test }), ...(e.best ? { best: JSON.stringify({ step: e.step, ...e.test }) } : {}) });
      },
    };
    let result: TrainResult;
    if (hasRun) result = await resume(runDir, inputs, { steps: p.resumeRun ? p.steps : undefined });
    else {
      fs.mkdirSync(runDir, { recursive: true });
      const cfg = trainConfig(mode, {
        steps: rp.steps,
        batchSize: rp.batchSize,
        ...(rp.lr
          ? { lr: rp.lr }
          : mode === 'finetune' && backboneKind === 'tiny-cnn'
            ? { lr: TINY_CNN_LR }
            : mode === 'heads' && extractor && HEADS_LR[extractor]
              ? { lr: HEADS_LR[extractor] }
              : {}),
        evalEvery: rp.evalEvery,
        checkpointEvery: rp.checkpointEvery,
        lossWeights: parseLossWeights(rp.lossWeights),
        hidden: rp.hidden,
        dropout: rp.dropout,
        ...(rp.weightDecay !== undefined ? { weightDecay: rp.weightDecay } : {}),
        ...(mode === 'heads' && rp.inputNorm === 'standard' ? { inputNorm: 'standard' as const } : {}),
        augment: rp.augment,
        seed: rp.seed,
      });
      result = await train(runDir, cfg, inputs);
    }
    setRun({ state: result.state === 'done' ? 'done' : 'stopped', step: result.step });
    const calibration = result.state === 'done' ? await calibrateAtEnd(ctx, runId, runDir) : null;
    return {
      runId,
      state: result.state,
      step: result.step,
      resumedFrom: result.resumedFrom,
      backend: backend.name,
      backbone: data.mode === 'finetune' ? data.backbone.name : `${extractor} features`,
      /** heads: the extractor whose features the run trained on; null for a finetune run. */
      extractor,
      best: result.best,
      lastEval: result.lastEval,
      baselinePriceAccuracy: baseline.fraction,
      split: splitKind,
      heads: plan,
      /** Listings whose price is outside the workspace's price range: their price is not used (their photos still train the other heads). */
      ignoredPrices: { listings: outliers.listings, images: outliers.images, priceRange: outliers.range, message: outliers.message },
      fresh,
      /** The temperatures fitted on the test split at the end (calibration.json), or null. */
      calibration: calibration ? { temperatures: calibration.temperatures } : null,
    };
  } catch (e) {
    setRun({ state: ctx.signal.aborted ? 'stopped' : 'failed', error: (e as Error).message });
    throw e;
  } finally {
    for (const r of openRows) r.close();
  }
}

/**
 * The end of a run that finished: its best checkpoint (last when it has none) calibrated on its
 * test split (calibrate.ts; seconds for a heads run, from the cached features). A calibration that
 * fails is logged and leaves the run as it is: `carstudio calibrate --run ID` can redo it.
 */
async function calibrateAtEnd(ctx: JobContext<TrainParams>, runId: number, runDir: string): Promise<CalibrationReport | null> {
  const checkpoint = fs.existsSync(path.join(runDir, RUN_FILES.best)) ? 'best' : 'last';
  try {
    ctx.log('info', `calibrating the ${checkpoint} checkpoint on the test split (temperature scaling)`);
    return await calibrateRun(ctx.workspace, runId, checkpoint, {
      signal: ctx.signal,
      progress: (step, done, total, message) => ctx.progress({ step, done, total, message }),
      log: (l, m) => ctx.log(l, m),
    });
  } catch (e) {
    ctx.log('warn', `the run is trained, but its calibration failed: ${(e as Error).message}; run carstudio calibrate --run ${runId} to retry`);
    return null;
  }
}

/** "label space: 37 make/model classes (top 512) + Unknown, years 2000..2025 + unknown". */
function describeSpace(space: LabelSpace, split: SplitKind): string {
  const years = space.years.filter((y) => /^\d{4}$/.test(y));
  const yr = years.length ? `years ${years[0]}..${years[years.length - 1]}` : 'no years';
  return `label space: ${space.makeModels.length} make/model classes${space.top ? ` (top ${space.top})` : ''} + Unknown, ${yr} + unknown; split by ${split}`;
}

/** A run's parameters as the runs table keeps them: the backbone named, and a heads run's extractor (finetune has none). */
function storedParams(p: TrainParams): TrainParams {
  const { extractor, ...rest } = p;
  return { ...rest, backbone: p.backbone ?? 'mobilenet_v2', ...(p.mode === 'heads' ? { extractor: extractor ?? DEFAULT_EXTRACTOR } : {}) };
}

/**
 * The extractor a heads run records: its config.json's, else its stored parameters' (a run stopped
 * between writing config.json and recording the extractor there), else mobilenet_v2 when it has a
 * config (every run from before extractors were recorded); null for a run that has neither.
 */
function recordedExtractor(runCfg: RunConfigFile | null, stored: Partial<TrainParams>): ExtractorName | null {
  const named = runCfg?.extractor ?? stored.extractor ?? (runCfg ? runExtractor(runCfg) : null);
  if (named === null) return null;
  if (!(EXTRACTORS as readonly string[]).includes(named)) throw new UserError(`the run's config names an unknown feature extractor '${named}' (known: ${EXTRACTORS.join(', ')})`);
  return named as ExtractorName;
}

/** Writes the extractor into the run's config.json (read, amended, atomically rewritten). */
async function recordExtractor(runDir: string, extractor: ExtractorName): Promise<void> {
  const file = path.join(runDir, RUN_FILES.config);
  const cfg = JSON.parse(await fs.promises.readFile(file, 'utf8')) as RunConfigFile;
  if (cfg.extractor === extractor) return;
  await writeFileAtomic(file, JSON.stringify({ ...cfg, extractor }, null, 2));
}
