import path from 'node:path';
import fs from 'node:fs';
import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { initBackend } from '../ml/backend.ts';
import { loadMobilenetBackbone } from '../ml/mobilenet.ts';
import { ensureFeatures } from '../filter/features.ts';
import { buildLabelSpace, encodeColumns, majorityClass, splitByHash, NUM_PRICE_BINS, type LabelRow } from './labels.ts';
import { parseLossWeights } from './model.ts';
import { loadRunConfig, resume, train, trainConfig, type TrainData, type TrainInputs, type TrainResult } from './trainer.ts';
import { trainingRows } from './dataset.ts';
import type { TrainParams } from './train-kind.ts';

const EMIT_MS = 150;

export function runDirOf(workspaceDir: string, runId: number): string {
  return path.join(workspaceDir, 'runs', String(runId));
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
  const saved = (ctx.checkpoint as { runId?: number } | undefined)?.runId;
  let runId = p.resumeRun ?? saved;
  let fresh = false;
  if (runId === undefined) {
    runId = (
      db
        .prepare(`INSERT INTO runs (name, mode, params, state, job_id, steps, created_at, updated_at) VALUES (?, ?, ?, 'preparing', ?, ?, ?, ?) RETURNING id`)
        .get(p.name ?? `${p.mode} ${p.lossWeights}`, p.mode, JSON.stringify(p), ctx.jobId, p.steps, now(), now()) as { id: number }
    ).id;
    ctx.saveCheckpoint({ runId });
    fresh = true;
  } else {
    const exists = db.prepare(`SELECT id FROM runs WHERE id = ?`).get(runId);
    if (!exists) throw new UserError(`no run ${runId}`);
    ctx.saveCheckpoint({ runId });
  }
  const runDir = runDirOf(ws.dir, runId);
  const hasRun = fs.existsSync(path.join(runDir, 'config.json'));
  const setRun = (fields: Record<string, unknown>): void => {
    const keys = Object.keys(fields);
    db.prepare(`UPDATE runs SET ${keys.map((k) => `${k} = ?`).join(', ')}, updated_at = ? WHERE id = ?`).run(...keys.map((k) => fields[k]), now(), runId);
  };
  setRun({ state: 'preparing', job_id: ctx.jobId, error: null });
  try {
    const backend = await initBackend('auto');
    ctx.log('info', `backend: ${backend.name} (${backend.note})`);
    const rows = trainingRows(db);
    if (rows.length < 20) throw new UserError(`only ${rows.length} training images with a price; scrape more listings (and check dedup and the filter)`);
    const space = hasRun ? (await loadRunConfig(runDir)).space : buildLabelSpace(rows);
    const mode = hasRun ? (await loadRunConfig(runDir)).config.mode : p.mode;
    const split = splitByHash(rows, 0.1);
    let data: TrainData;
    if (mode === 'heads') {
      const { cache } = await ensureFeatures(
        { ws, signal: ctx.signal, progress: (d, t, m) => ctx.progress({ step: 'features', done: d, total: t, message: m }), log: (l, m) => ctx.log(l, m) },
        rows.map((r) => r.imageId),
        'mobilenet_v2',
      );
      if (ctx.signal.aborted) return { runId, state: 'stopped' };
      const part = async (rs: LabelRow[]) => {
        const { ids, data: feats } = await cache.read(rs.map((r) => r.imageId));
        const byId = new Map(rs.map((r) => [r.imageId, r]));
        return { dim: cache.dim, features: feats, labels: encodeColumns(space, ids.map((id) => byId.get(id)!)) };
      };
      data = { mode: 'heads', train: await part(split.train), test: await part(split.test) };
      await cache.close();
    } else {
      const mb = await loadMobilenetBackbone(backend.tf);
      const keyOf = db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
      const files = (rs: LabelRow[]) => rs.map((r) => ws.store.pathFor(keyOf.get(r.imageId) as string));
      data = {
        mode: 'finetune',
        train: { inputs: files(split.train), labels: encodeColumns(space, split.train) },
        test: { inputs: files(split.test), labels: encodeColumns(space, split.test) },
        backbone: { model: mb.model, inputSize: mb.inputSize, featureDim: mb.featureDim, name: mb.name },
      };
    }
    const testBins = data.mode === 'heads' ? data.test.labels.priceBin : data.test.labels.priceBin;
    const baseline = majorityClass(testBins, NUM_PRICE_BINS);
    setRun({ state: 'running', baseline: JSON.stringify({ priceAccuracy: baseline.fraction, priceClass: space.priceBins[baseline.cls], trainImages: split.train.length, testImages: split.test.length }) });
    ctx.log('info', `${split.train.length} training and ${split.test.length} test images; majority-class price accuracy ${(100 * baseline.fraction).toFixed(1)}%`);

    let lastEmit = 0;
    const inputs: TrainInputs = {
      backend,
      space,
      data,
      force: p.force,
      signal: ctx.signal,
      onStep: (e) => {
        ctx.progress({ step: 'train', done: e.step, total: e.steps, message: `${e.samplesPerSec.toFixed(0)} samples/s, loss ${e.train.loss.toFixed(3)}` });
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
        steps: p.steps,
        batchSize: p.batchSize,
        ...(p.lr ? { lr: p.lr } : {}),
        evalEvery: p.evalEvery,
        checkpointEvery: p.checkpointEvery,
        lossWeights: parseLossWeights(p.lossWeights),
        hidden: p.hidden,
        dropout: p.dropout,
        augment: p.augment,
        seed: p.seed,
      });
      result = await train(runDir, cfg, inputs);
    }
    setRun({ state: result.state === 'done' ? 'done' : 'stopped', step: result.step });
    return { runId, state: result.state, step: result.step, best: result.best, lastEval: result.lastEval, baselinePriceAccuracy: baseline.fraction, fresh };
  } catch (e) {
    setRun({ state: ctx.signal.aborted ? 'stopped' : 'failed', error: (e as Error).message });
    throw e;
  }
}
