// The evaluation of a training run, as a job: the run's test split (or a manifest's rows) scored
// per head by the run's checkpoint, beside two baselines on the same rows (the training set's
// class frequencies, and k nearest training rows on the run's features), with
// calibration and the classes confused. Both the kNN and a heads run's model read the features of
// the run's own extractor (config.json `extractor`; mobilenet_v2 for runs from before it was
// recorded, and for the kNN of a finetune run). Steps:
//
//   openRun          the run's config, checkpoint and which heads it trained
//   scoredRows       the rows to score with their labels: the test split again (the run's own
//                    split kind), or a manifest read like import reads it
//   trainingFeatures the training split's features and labels (the baselines' data)
//   modelOutputs     the checkpoint's probabilities per head (the heads on the features for a
//                    heads run, without loading a backbone; decoded images for a finetune run)
//   baselines        majority (class frequencies) and kNN matrices
//   scoreHeads       EvalReport.heads from the matrices (metrics.ts)
//   calibrated       the run's temperatures (calibration.json, when it stamps this checkpoint file)
//                    applied to the model's raw matrices, as predict applies them: each head's
//                    `calibrated` CE, ECE and reliability, and EvalReport.calibration, which says
//                    whether the scored rows are those the temperatures were fitted on (calibrated.ts)
//   the report       runs/<id>/eval/<report id>/report.json + report.html
import fs from 'node:fs';
import path from 'node:path';
import type { EvalReport } from '../api/contract/eval.ts';
import type { Prediction } from '../api/contract/predict.ts';
import type { JobContext } from '../jobs/types.ts';
import { dimOf, ensureFeatures, EXTRACTORS, loadExtractor, type ExtractorName } from '../filter/features.ts';
import { initBackend } from '../ml/backend.ts';
import { readCheckpoint } from '../train/checkpoint.ts';
import { extractFeatures } from '../filter/extract.ts';
import { parseManifest } from '../import/manifest.ts';
import { groupRows, imageRef, imagesRootOf, missingFileReason, parseInteger, parseNumber } from '../import/import-job.ts';
import { loadPredictor, type Predictor } from '../predict/model-loader.ts';
import { decodeImage } from '../predict/decode-file.ts';
import { trainingSet } from '../train/dataset.ts';
import { encodeColumns, makeModelLabels, numMakeModelClasses, splitRows, yearValues, type LabelColumns, type LabelRow, type LabelSpace } from '../train/labels.ts';
import { buildRunHeads, HEAD_NAMES, loadRunConfig, runExtractor, runSplit, runTestFraction, type CheckpointMeta, type RunConfigFile } from '../train/trainer.ts';
import { runDirOf } from '../train/train-job.ts';
import { medianDollars, medianHeadOf } from '../train/model.ts';
import { UserError } from '../workspace/errors.ts';
import { checkValues, readValueRanges } from '../workspace/value-ranges.ts';
import type { Workspace } from '../workspace/workspace.ts';
import type { EvalJobResult, EvalParams } from './eval-kind.ts';
import { evalReportsDir, newReportId } from './eval-store.ts';
import { knnPredict } from './knn.ts';
import { makeModelHeadScores, medianOf, priceHeadScores, priorProbs, yearHeadScores, type Matrix } from './metrics.ts';
import { writeReport } from './report-html.ts';
import { calibratedScores, calibrationFor, evalCalibration, sameFileIds, type CalibrationFor } from './calibrated.ts';
import { ImageStore } from '../workspace/image-store.ts';

type Progress = (step: string, done: number, total: number | null, message?: string) => void;

export default async function evalJob(ctx: JobContext<EvalParams>): Promise<EvalJobResult> {
  const t0 = performance.now();
  const ws = ctx.workspace;
  const p = ctx.params;
  const progress: Progress = (step, done, total, message) => ctx.progress({ step, done, total, message });
  const log = (level: 'info' | 'warn', m: string): void => ctx.log(level, m);

  const run = await openRun(ws, p.runId, p.checkpoint);
  log(
    'info',
    `run ${run.id} (${run.name}), ${run.checkpoint} checkpoint at step ${run.step}, ${run.cfg.config.mode} mode; ${run.extractor} features (${dimOf(run.extractor)}-d) for ${run.cfg.config.mode === 'heads' ? 'the model and ' : ''}the kNN`,
  );
  const { rows } = trainingSet(ws.db);
  const split = splitRows(rows, runSplit(run.cfg), runTestFraction(run.cfg));
  const keyOf = ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
  const scored = p.manifest
    ? readManifestRows(ws, p, log)
    : { rows: split.test.map((r): ScoredRow => ({ ...r, file: null, pixels: ws.store.pathFor(keyOf.get(r.imageId) as string) })), skipped: 0 };
  if (scored.rows.length === 0) throw new UserError(p.manifest ? `no row of ${p.manifest} can be scored` : `run ${run.id}'s test split is empty`);
  log('info', `${scored.rows.length} rows to score (${p.manifest ? `manifest ${p.manifest}` : `the test split, by ${runSplit(run.cfg)}`}); ${split.train.length} training rows for the baselines`);

  const feats = await features(ctx, run.extractor, split.train, scored.rows, progress, log);
  if (!feats) return cancelled(ctx);
  const kept = scored.rows.filter((_, i) => feats.scoredOk[i]);
  const labels = encodeColumns(run.cfg.space, kept);
  const prices = Float64Array.from(kept, (r) => (r.price == null ? Number.NaN : r.price));

  if (run.cfg.config.mode === 'heads' && feats.dim !== run.cfg.featureDim) {
    throw new UserError(`run ${run.id} was trained on ${run.cfg.featureDim}-d features, but its extractor ${run.extractor} gives ${feats.dim}-d rows; its config.json does not describe it`);
  }
  // Raw probabilities, as trained; the run's calibration is applied to them below (calibrated.ts).
  const predictor = run.cfg.config.mode === 'heads' ? await loadFeatureHeads(run) : await loadPredictor(run.dir, { checkpoint: run.checkpoint, calibration: false });
  let model: HeadMatrices | null;
  try {
    model = await modelOutputs(predictor, run.cfg.space, kept, feats.scored, ctx.signal, progress);
  } finally {
    predictor.dispose();
  }
  if (!model) return cancelled(ctx);

  const trainLabels = encodeColumns(run.cfg.space, feats.trainRows);
  const base = await baselines(run.cfg.space, trainLabels, feats, kept.length, p.k, ctx.signal, progress);
  if (!base) return cancelled(ctx);

  const calib = calibrationFor(run.dir, run.id, run.checkpoint);
  // rows the temperatures were fitted on: the whole test split, or manifest photos that are files of it
  const testIds = new Set(split.test.map((r) => r.imageId));
  const inSampleRows = p.manifest ? kept.filter((r) => r.sameAs != null && testIds.has(r.sameAs)).length : kept.length;
  const source: EvalReport['source'] = p.manifest
    ? { kind: 'manifest', manifest: p.manifest, rowsSkipped: scored.skipped + feats.scoredFailed }
    : { kind: 'test-split', split: runSplit(run.cfg) };
  const report: EvalReport = {
    version: 1,
    runId: run.id,
    runName: run.name,
    checkpoint: p.checkpoint,
    step: run.step,
    source,
    rows: kept.length,
    trainRows: feats.trainRows.length,
    knnK: p.k,
    features: { extractor: run.extractor, dim: feats.dim },
    seconds: 0,
    createdAt: new Date().toISOString(),
    heads: scoreHeads(run.cfg.space, labels, prices, model, base, calib, !p.manifest),
    calibration: evalCalibration(source, kept.length, inSampleRows, calib, split.test.length),
    untrained: untrainedHeads(run.cfg),
  };
  report.seconds = Math.round((performance.now() - t0) / 100) / 10;
  const id = newReportId();
  const dir = path.join(evalReportsDir(ws.dir, run.id), id);
  await writeReport(dir, report);
  log('info', headline(report));
  return { runId: run.id, reportId: id, dir };
}

/** Cancelled before the report was written: nothing is left behind (the job ends as cancelled). */
function cancelled(ctx: JobContext<EvalParams>): EvalJobResult {
  ctx.log('info', 'evaluation cancelled; no report was written');
  return { runId: ctx.params.runId, reportId: '', dir: '' };
}

// ---------- the run ----------

export interface OpenRun {
  id: number;
  name: string;
  dir: string;
  cfg: RunConfigFile;
  checkpoint: 'best' | 'last';
  step: number;
  /** The features the run's heads (heads mode) and the kNN read. */
  extractor: ExtractorName;
}

export async function openRun(ws: Workspace, runId: number, checkpoint: 'best' | 'last'): Promise<OpenRun> {
  const row = ws.db.prepare(`SELECT id, name FROM runs WHERE id = ?`).get(runId) as { id: number; name: string } | undefined;
  if (!row) throw new UserError(`no run ${runId} (carstudio runs lists them)`);
  const dir = runDirOf(ws.dir, runId);
  const cfg = await loadRunConfig(dir);
  const file = path.join(dir, `${checkpoint}.ckpt`);
  if (!fs.existsSync(file)) {
    throw new UserError(
      checkpoint === 'best'
        ? `run ${runId} has no best checkpoint yet (it has not been evaluated on a test split); use --checkpoint last`
        : `run ${runId} has no last checkpoint yet: it has not trained a step`,
    );
  }
  const summary = readSummaryStep(dir, checkpoint);
  const extractor = runExtractor(cfg);
  if (!(EXTRACTORS as readonly string[]).includes(extractor))
    throw new UserError(`run ${runId}'s config.json names an unknown feature extractor '${extractor}' (known: ${EXTRACTORS.join(', ')})`);
  return { id: row.id, name: row.name, dir, cfg, checkpoint, step: summary, extractor: extractor as ExtractorName };
}

/** The step of a checkpoint, from the run's summary (best) or last step; 0 when unknown. */
function readSummaryStep(dir: string, checkpoint: 'best' | 'last'): number {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { step: number; best: { step: number } | null };
    return checkpoint === 'best' ? (s.best?.step ?? s.step) : s.step;
  } catch {
    return 0;
  }
}

/** Heads the run did not train: a weight of 0, or no labels when it started. */
function untrainedHeads(cfg: RunConfigFile): EvalReport['untrained'] {
  const out: EvalReport['untrained'] = [];
  for (const h of HEAD_NAMES) {
    const plan = cfg.heads?.[h];
    const weight = cfg.config.lossWeights[h];
    if (plan && !plan.trains) out.push({ head: h, reason: plan.reason ?? 'not trained' });
    else if (!plan && weight === 0) out.push({ head: h, reason: 'loss weight 0' });
  }
  return out;
}

// ---------- the rows ----------

/**
 * A row to score: `file` is a manifest's image (null: a workspace image, features from the cache);
 * `pixels` the file to decode; `sameAs` the workspace image that is the same file as a manifest's
 * (by content: images.key is the sha256 of the file's bytes), if any.
 */
type ScoredRow = LabelRow & { file: string | null; pixels: string; sameAs?: number | null };

/** A manifest's rows (the import's reader and column mapping), with a price/year parsed like import does. */
function readManifestRows(ws: Workspace, p: EvalParams, log: (l: 'info' | 'warn', m: string) => void): { rows: ScoredRow[]; skipped: number } {
  const manifest = path.resolve(p.manifest!);
  const read = parseManifest(manifest, p.map);
  const { listings, issues } = groupRows(read, p);
  const root = imagesRootOf({ ...p, manifest });
  const { ranges } = readValueRanges(ws.db);
  const rows: ScoredRow[] = [];
  let skipped = issues.length;
  for (const i of issues.slice(0, 20)) log('warn', `${i.where}: ${i.reason}`);
  let id = 0;
  for (const l of listings) {
    for (const r of l.rows) {
      const ref = imageRef(root, r.fields.image!.trim());
      if (ref.kind !== 'file') {
        skipped++;
        log('warn', `${r.where}: only image files can be evaluated (got ${r.fields.image})`);
        continue;
      }
      if (!fs.existsSync(ref.file)) {
        skipped++;
        log('warn', `${r.where}: ${missingFileReason(ref.file)}`);
        continue;
      }
      const raw = { price: r.fields.price, year: r.fields.year };
      const { values } = checkValues({ price: parseNumber(raw.price), year: parseInteger(raw.year), odometer: null }, raw, ranges);
      rows.push({
        imageId: --id,
        hash: '',
        price: values.price ?? null,
        make: r.fields.make?.trim() || null,
        model: r.fields.model?.trim() || null,
        year: values.year ?? null,
        listingKey: l.key,
        file: ref.file,
        pixels: ref.file,
      });
    }
  }
  const byKey = ws.db.prepare(`SELECT id FROM images WHERE key = ? AND state = 'stored'`).pluck();
  const same = sameFileIds(
    rows.map((r) => r.file!),
    (key) => byKey.get(key) as number | undefined,
    (bytes) => ImageStore.keyFor(bytes),
  );
  rows.forEach((r, i) => (r.sameAs = same[i]));
  return { rows, skipped };
}

// ---------- features ----------

interface Features {
  /** Training rows that have features, and their rows (nTrain x dim). */
  trainRows: LabelRow[];
  train: Float32Array;
  /** Scored rows' features (only those with scoredOk), in order. */
  scored: Float32Array;
  scoredOk: boolean[];
  scoredFailed: number;
  dim: number;
}

/**
 * The `extractor` features of the training rows and the scored rows: from the workspace's cache
 * (extracting the missing ones into it), or extracted from a manifest's files.
 */
async function features(
  ctx: { workspace: Workspace; signal: AbortSignal },
  extractor: ExtractorName,
  trainRows: LabelRow[],
  scoredRows: ScoredRow[],
  progress: Progress,
  log: (l: 'info' | 'warn', m: string) => void,
): Promise<Features | null> {
  const ws = ctx.workspace;
  const ids = [...trainRows.map((r) => r.imageId), ...scoredRows.filter((r) => r.file === null).map((r) => r.imageId)];
  const { cache } = await ensureFeatures(
    { ws, signal: ctx.signal, progress: (d, t, m) => progress('features', d, t, m ? `${extractor} features: ${m}` : m), log },
    ids,
    extractor,
  );
  try {
    if (ctx.signal.aborted) return null;
    const dim = cache.dim;
    const gather = async (rs: LabelRow[]): Promise<{ rows: LabelRow[]; x: Float32Array }> => {
      const fr = await cache.rows(rs.map((r) => r.imageId));
      try {
        const x = new Float32Array(fr.ids.length * dim);
        fr.gather(Int32Array.from(fr.ids.keys()), x);
        const byId = new Map(rs.map((r) => [r.imageId, r]));
        return { rows: fr.ids.map((i) => byId.get(i)!), x };
      } finally {
        fr.close();
      }
    };
    const train = await gather(trainRows);
    const fromCache = scoredRows.filter((r) => r.file === null);
    const files = scoredRows.filter((r) => r.file !== null);
    const scoredOk = scoredRows.map(() => false);
    const parts = new Map<number, Float32Array>();
    if (fromCache.length) {
      const c = await gather(fromCache);
      c.rows.forEach((r, i) => parts.set(r.imageId, c.x.subarray(i * dim, (i + 1) * dim)));
    }
    if (files.length) {
      const ex = await loadExtractor(extractor, ws.dir, { log });
      log('info', `extracting ${extractor} features of ${files.length} manifest images on ${ex.backend}`);
      const res = await extractFeatures(
        files.map((r) => ({ id: r.imageId, data: r.file! })),
        {
          signal: ctx.signal,
          onBatch: (_b, pr) => progress('features', pr.done + pr.failed, files.length, `${extractor} features: ${pr.imagesPerSecond.toFixed(1)} images/s on ${ex.backend}`),
          onError: (f) => log('warn', `${files.find((r) => r.imageId === f.id)?.file}: skipped: ${f.error}`),
        },
        ex,
      );
      if (ctx.signal.aborted) return null;
      res.ids.forEach((id, i) => parts.set(id, res.features.subarray(i * dim, (i + 1) * dim)));
    }
    const ok = scoredRows.map((r) => parts.has(r.imageId));
    const n = ok.filter(Boolean).length;
    const scored = new Float32Array(n * dim);
    let j = 0;
    scoredRows.forEach((r, i) => {
      if (!ok[i]) return;
      scored.set(parts.get(r.imageId)!, j++ * dim);
      scoredOk[i] = true;
    });
    return { trainRows: train.rows, train: train.x, scored, scoredOk, scoredFailed: scoredRows.length - n, dim };
  } finally {
    await cache.close();
  }
}

// ---------- the model ----------

/** What scores the rows: a Predictor (finetune run) or the heads alone (heads run). */
type Scorer = Pick<Predictor, 'mode' | 'backend' | 'inputSize' | 'predictInputs' | 'predictFeatures' | 'dispose'>;

/**
 * A heads run's heads from its checkpoint, on the tf backend, predicting from rows of its features
 * (the cache's, or a manifest's extracted above): no backbone nor detector is loaded, since the
 * features are already there.
 */
async function loadFeatureHeads(run: OpenRun): Promise<Scorer> {
  const backend = await initBackend();
  const tf = backend.tf;
  const ckpt = await readCheckpoint<CheckpointMeta>(path.join(run.dir, `${run.checkpoint}.ckpt`));
  const heads = buildRunHeads(tf, run.cfg.config, run.cfg.space, run.cfg.featureDim);
  try {
    tf.tidy(() => {
      for (const [k, v] of heads.vars) {
        const t = ckpt.tensors.get(`heads/${k}`);
        if (!t) throw new UserError(`checkpoint ${run.checkpoint}.ckpt of run ${run.id} lacks heads/${k}`);
        if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i]))
          throw new UserError(`checkpoint ${run.checkpoint}.ckpt of run ${run.id}: heads/${k} has shape [${t.shape}], the run's model [${v.shape}]`);
        v.assign(tf.tensor(t.data, t.shape));
      }
    });
  } catch (e) {
    heads.dispose();
    throw e;
  }
  const space = run.cfg.space;
  const dim = run.cfg.featureDim;
  const medianHead = medianHeadOf(run.cfg.config);
  const normalise = (p: Float32Array): number[] => {
    let s = 0;
    for (let i = 0; i < p.length; i++) s += p[i];
    return Array.from(p, (v) => v / s);
  };
  return {
    mode: 'heads',
    backend,
    inputSize: 0,
    predictInputs: () => Promise.reject(new Error('a heads run is scored from its features')),
    async predictFeatures(feats: Float32Array, n: number, full?: number[][]): Promise<Prediction[]> {
      if (feats.length < n * dim) throw new Error(`features hold ${feats.length} floats, need ${n * dim}`);
      const outs = tf.tidy(() => {
        const o = heads.forward(tf.tensor2d(feats.subarray(0, n * dim), [n, dim]), false);
        return [tf.softmax(o.price), o.median, tf.softmax(o.makeModel), tf.softmax(o.year)];
      });
      try {
        const [price, median, mm, year] = (await Promise.all(outs.map((t) => t.data()))) as Float32Array[];
        const np = space.priceBins.length;
        const nm = numMakeModelClasses(space);
        const ny = space.years.length;
        const res: Prediction[] = [];
        for (let i = 0; i < n; i++) {
          full?.push(normalise(mm.subarray(i * nm, (i + 1) * nm)));
          const pb = normalise(price.subarray(i * np, (i + 1) * np));
          const yp = normalise(year.subarray(i * ny, (i + 1) * ny));
          res.push({
            priceBins: pb.map((p, j) => ({ label: space.priceBins[j], p })),
            medianPrice: medianDollars(median[i], medianHead, space.medianPriceScale).dollars,
            makeModels: [],
            years: yp.map((p, j) => ({ label: space.years[j], p })),
            topYears: [],
            car: null,
          });
        }
        return res;
      } finally {
        outs.forEach((t) => t.dispose());
      }
    },
    dispose: () => heads.dispose(),
  };
}

export interface HeadMatrices {
  price: Matrix;
  /** Median-price predictions in dollars. */
  dollars: Float64Array;
  makeModel: Matrix;
  year: Matrix;
}

/** The checkpoint's probabilities: from the features (heads run) or from decoded images (finetune run). */
async function modelOutputs(
  predictor: Scorer,
  space: LabelSpace,
  rows: ScoredRow[],
  feats: Float32Array,
  signal: AbortSignal,
  progress: Progress,
): Promise<HeadMatrices | null> {
  const n = rows.length;
  const dim = n ? feats.length / n : 0;
  const B = 64;
  const preds: Prediction[] = [];
  const full: number[][] = [];
  for (let s = 0; s < n; s += B) {
    if (signal.aborted) return null;
    const m = Math.min(B, n - s);
    if (predictor.predictFeatures) {
      preds.push(...(await predictor.predictFeatures(feats.subarray(s * dim, (s + m) * dim), m, full)));
    } else {
      preds.push(...(await predictImages(predictor, rows.slice(s, s + m), full)));
    }
    progress('predict', s + m, n, `${predictor.mode} run on ${predictor.backend.name}`);
  }
  const nb = space.priceBins.length;
  const nm = numMakeModelClasses(space);
  const ny = space.years.length;
  const out: HeadMatrices = { price: new Float32Array(n * nb), dollars: new Float64Array(n), makeModel: new Float32Array(n * nm), year: new Float32Array(n * ny) };
  preds.forEach((pr, i) => {
    pr.priceBins.forEach((b, j) => (out.price[i * nb + j] = b.p));
    out.dollars[i] = pr.medianPrice;
    full[i].forEach((v, j) => (out.makeModel[i * nm + j] = v));
    pr.years.forEach((y, j) => (out.year[i * ny + j] = y.p));
  });
  return out;
}

/** A finetune run sees pixels: the workspace's stored image or the manifest's file, decoded at its input size. */
async function predictImages(predictor: Scorer, rows: ScoredRow[], full: number[][]): Promise<Prediction[]> {
  const per = predictor.inputSize * predictor.inputSize * 3;
  const batch = new Float32Array(rows.length * per);
  for (let i = 0; i < rows.length; i++) {
    const d = await decodeImage(rows[i].pixels, { size: predictor.inputSize });
    batch.set(d.input, i * per);
  }
  return predictor.predictInputs(batch, rows.length, full);
}

/** The model's outputs on a run's own test split, with the rows and their labels (calibrate.ts). */
export interface TestSplitOutputs {
  run: OpenRun;
  rows: LabelRow[];
  labels: LabelColumns;
  model: HeadMatrices;
}

/**
 * The checkpoint's raw (uncalibrated) probabilities on the run's test split (its own split kind
 * and test fraction), as the evaluation computes them, without the baselines: a heads run from
 * the cached features of the test rows, a finetune run from the decoded photos. null when cancelled.
 */
export async function testSplitOutputs(
  ws: Workspace,
  runId: number,
  checkpoint: 'best' | 'last',
  opts: { signal: AbortSignal; progress: Progress; log: (l: 'info' | 'warn', m: string) => void },
): Promise<TestSplitOutputs | null> {
  const run = await openRun(ws, runId, checkpoint);
  const { rows } = trainingSet(ws.db);
  const split = splitRows(rows, runSplit(run.cfg), runTestFraction(run.cfg));
  if (split.test.length === 0) throw new UserError(`run ${run.id}'s test split is empty`);
  const keyOf = ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
  const scoredRows = split.test.map((r): ScoredRow => ({ ...r, file: null, pixels: ws.store.pathFor(keyOf.get(r.imageId) as string) }));
  let kept = scoredRows;
  let feats: Float32Array = new Float32Array(0);
  if (run.cfg.config.mode === 'heads') {
    const f = await features({ workspace: ws, signal: opts.signal }, run.extractor, [], scoredRows, opts.progress, opts.log);
    if (!f) return null;
    if (f.dim !== run.cfg.featureDim) throw new UserError(`run ${run.id} was trained on ${run.cfg.featureDim}-d features, but its extractor ${run.extractor} gives ${f.dim}-d rows`);
    kept = scoredRows.filter((_, i) => f.scoredOk[i]);
    feats = f.scored;
  }
  const predictor = run.cfg.config.mode === 'heads' ? await loadFeatureHeads(run) : await loadPredictor(run.dir, { checkpoint: run.checkpoint, calibration: false });
  try {
    const model = await modelOutputs(predictor, run.cfg.space, kept, feats, opts.signal, opts.progress);
    return model ? { run, rows: kept, labels: encodeColumns(run.cfg.space, kept), model } : null;
  } finally {
    predictor.dispose();
  }
}

// ---------- baselines ----------

interface Baselines {
  majority: { price: Matrix; makeModel: Matrix; year: Matrix; dollars: Float64Array };
  knn: { price: Matrix; makeModel: Matrix; year: Matrix; dollars: Float64Array } | null;
}

/** -1 where the row has no label for the head. */
export function maskedLabels(labels: Int32Array, mask: Float32Array): Int32Array {
  return Int32Array.from(labels, (v, i) => (mask[i] ? v : -1));
}

async function baselines(
  space: LabelSpace,
  train: LabelColumns,
  feats: Features,
  n: number,
  k: number,
  signal: AbortSignal,
  progress: Progress,
): Promise<Baselines | null> {
  const C = { price: space.priceBins.length, makeModel: numMakeModelClasses(space), year: space.years.length };
  const tl = {
    price: maskedLabels(train.priceBin, train.priceMask),
    makeModel: maskedLabels(train.makeModel, train.makeModelMask),
    year: maskedLabels(train.year, train.yearMask),
  };
  const trainPrices = Float64Array.from(feats.trainRows, (r) => (r.price == null ? Number.NaN : r.price));
  const med = medianOf(trainPrices.filter((x) => !Number.isNaN(x)));
  const majority = {
    price: priorProbs(tl.price, C.price, n),
    makeModel: priorProbs(tl.makeModel, C.makeModel, n),
    year: priorProbs(tl.year, C.year, n),
    dollars: new Float64Array(n).fill(med),
  };
  if (feats.trainRows.length === 0) return { majority, knn: null };
  const knn = await knnPredict({
    train: feats.train,
    trainLabels: tl,
    numClasses: C,
    trainValues: trainPrices,
    test: feats.scored,
    dim: feats.dim,
    k,
    signal,
    onProgress: (d, t) => progress('knn', d, t, `k = ${k} nearest training rows`),
  });
  if (!knn) return null;
  return { majority, knn: { ...knn.probs, dollars: Float64Array.from(knn.values!) } };
}

// ---------- scores ----------

/**
 * The heads' scores; with each head's calibrated figures where the run's calibration applies and
 * fitted that head (`heldOut`: with the cross-fit estimate, for rows the temperatures were fitted on).
 */
function scoreHeads(
  space: LabelSpace,
  labels: LabelColumns,
  prices: Float64Array,
  model: HeadMatrices,
  base: Baselines,
  calib: CalibrationFor,
  heldOut: boolean,
): EvalReport['heads'] {
  const count = (m: Float32Array): number => m.reduce((a, b) => a + b, 0);
  const C = { price: space.priceBins.length, makeModel: numMakeModelClasses(space), year: space.years.length };
  const classNames = makeModelLabels(space);
  const makeOfClass = [...space.makeModels.map((c) => c.make), 'Unknown'];
  const y = {
    price: maskedLabels(labels.priceBin, labels.priceMask),
    makeModel: maskedLabels(labels.makeModel, labels.makeModelMask),
    year: maskedLabels(labels.year, labels.yearMask),
  };
  const calibrated = (head: 'price' | 'makeModel' | 'year', probs: Matrix, extra: { makeOfClass?: readonly string[] } = {}) => {
    const T = calib.temperatures?.[head];
    const h = calib.cal?.heads[head];
    return { calibrated: T == null || !h || 'skipped' in h ? null : calibratedScores(probs, y[head], C[head], T, { heldOut, ...extra }) };
  };
  return {
    price:
      count(labels.priceMask) === 0
        ? null
        : {
            ...priceHeadScores({
              probs: { model: model.price, majority: base.majority.price, knn: base.knn?.price ?? null },
              labels: y.price,
              C: C.price,
              dollars: { model: model.dollars, majority: base.majority.dollars, knn: base.knn?.dollars ?? null },
              truth: prices,
            }),
            ...calibrated('price', model.price),
          },
    makeModel:
      count(labels.makeModelMask) === 0
        ? null
        : {
            ...makeModelHeadScores({
              probs: { model: model.makeModel, majority: base.majority.makeModel, knn: base.knn?.makeModel ?? null },
              labels: y.makeModel,
              C: C.makeModel,
              classNames,
              makeOfClass,
            }),
            ...calibrated('makeModel', model.makeModel, { makeOfClass }),
          },
    year:
      count(labels.yearMask) === 0
        ? null
        : {
            ...yearHeadScores({
              probs: { model: model.year, majority: base.majority.year, knn: base.knn?.year ?? null },
              labels: y.year,
              C: C.year,
              yearOfClass: yearValues(space),
            }),
            ...calibrated('year', model.year),
          },
  };
}

/** One line of the headline figures, model vs majority vs kNN. */
export function headline(r: EvalReport): string {
  const pct = (x: number | undefined | null): string => (x == null ? '--' : `${(100 * x).toFixed(1)}%`);
  const parts: string[] = [`${r.rows} rows`, `${r.features?.extractor ?? 'mobilenet_v2'} features`];
  const h = r.heads;
  if (h.price) parts.push(`price bin top-1 ${pct(h.price.model.top1)} (majority ${pct(h.price.majority.top1)}, kNN ${pct(h.price.knn?.top1)})`);
  if (h.makeModel) {
    parts.push(`make top-1 ${pct(h.makeModel.model.makeTop1)} (majority ${pct(h.makeModel.majority.makeTop1)}, kNN ${pct(h.makeModel.knn?.makeTop1)})`);
    parts.push(`make/model top-1 ${pct(h.makeModel.model.top1)}, top-5 ${pct(h.makeModel.model.top5)} (kNN ${pct(h.makeModel.knn?.top1)}, ${pct(h.makeModel.knn?.top5)})`);
  }
  if (h.year) parts.push(`year within ±2 ${pct(h.year.model.within2)} (majority ${pct(h.year.majority.within2)}, kNN ${pct(h.year.knn?.within2)})`);
  return parts.join('; ');
}

const CALIBRATED_TITLES = { price: 'price bins', makeModel: 'make/model', year: 'year' } as const;

/**
 * The calibration in lines: per calibrated head ECE and cross-entropy raw -> calibrated (with the
 * held-out estimate when in-sample), then what the calibrated figures mean for these rows; or
 * that the run is not calibrated, and why.
 */
export function calibrationLines(r: EvalReport): string[] {
  const c = r.calibration;
  if (!c) return ['calibration: not recorded (a report from before the calibrated figures were added)'];
  if (!c.applied) return [`not calibrated: ${c.reason}; the figures are of the raw probabilities`];
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const out: string[] = [];
  for (const h of ['price', 'makeModel', 'year'] as const) {
    const s = r.heads[h];
    if (c.skipped[h]) out.push(`  ${CALIBRATED_TITLES[h]}: not calibrated: ${c.skipped[h]}`);
    if (!s?.calibrated) continue;
    const k = s.calibrated;
    const held = k.heldOut ? ` (held out ${pct(k.heldOut.ece)})` : '';
    out.push(
      `  ${CALIBRATED_TITLES[h]}, calibrated (T = ${k.temperature.toFixed(3)}): ECE ${pct(s.model.ece)} -> ${pct(k.ece)}${held}, cross-entropy ${s.model.ce.toFixed(3)} -> ${k.ce.toFixed(3)}`,
    );
  }
  return [
    `calibrated (${c.inSample ? `in-sample, ${c.inSampleRows} of ${r.rows} rows` : 'held out'}); top-1 and top-5 do not change under calibration:`,
    ...out,
    `  ${c.note}`,
  ];
}
