import path from 'node:path';
import type { PredictResults } from '../contract/predict.ts';
import type { Handlers } from './types.ts';
import { listRuns, resolveRun } from '../../predict/runs.ts';
import { exportSet, listSetMetas, readRecords, readSetMeta, resultsPage, setInfo } from '../../predict/store.ts';
import { isImageName } from '../../predict/decode-file.ts';
import type { ModelRef } from '../../predict/service.ts';
import { currentFilterSpec, ensureOodReferenceMeta } from '../../predict/trust.ts';
import { UserError } from '../../workspace/errors.ts';
import type { PredictParams } from '../../predict/predict-kind.ts';
import type { Engine } from '../../engine.ts';

/**
 * The run and checkpoint a prediction uses, resolved here (the worker has no engine), with the
 * workspace's junk filter and the run's distance reference (built on first use in the reference
 * worker, trust.ts: this thread only waits for it; the prediction worker reads its files).
 */
async function model(e: Engine, runId?: string, checkpoint?: string): Promise<ModelRef> {
  const r = resolveRun(e.ws, runId, checkpoint);
  await ensureOodReferenceMeta(e.ws, r.run.dir).catch((err: unknown) => {
    console.warn(`run ${r.run.id}: no distance reference (${err instanceof Error ? err.message : String(err)})`);
  });
  return { runId: r.run.id, runDir: r.run.dir, checkpoint: r.checkpoint, filter: currentFilterSpec(e.ws) };
}

// Every path goes through the engine's path policy (api/path-policy.ts) before any file is touched;
// the work itself runs in the prediction worker (predict/pool.ts).
export const predictHandlers: Handlers<keyof PredictResults> = {
  'predict.runs': (_p, e) => listRuns(e.ws),
  'predict.start': (p, e) => {
    const r = resolveRun(e.ws, p.runId, p.checkpoint);
    const params: Partial<PredictParams> = { runId: r.run.id, checkpoint: r.checkpoint, input: p.input, reuse: p.reuse };
    return e.jobs.start('predict', e.paths.jobParams('predict', params));
  },
  'predict.sets': (_p, e) => listSetMetas(e.ws.dir).map((m) => setInfo(e.ws.dir, m)),
  'predict.results': (p, e) => resultsPage(e.ws.dir, p.jobId, p),
  'predict.result': (p, e) => {
    readSetMeta(e.ws.dir, p.jobId);
    const r = readRecords(e.ws.dir, p.jobId)[p.index];
    if (!r) throw new UserError(`job ${p.jobId} has no result ${p.index}`);
    return { ...r, index: p.index };
  },
  'predict.thumbnail': (p, e) => {
    if (!isImageName(p.path)) throw new UserError(`${path.resolve(p.path)} does not have an image extension`);
    return e.predictions.run('thumbnail', { file: e.paths.readable(p.path), size: p.size });
  },
  'predict.image': async (p, e) => {
    if (p.path && p.data) throw new UserError('give either path or data');
    const file = p.path ? e.paths.readable(p.path) : undefined;
    return e.predictions.run('image', { file, data: p.data, name: p.name }, await model(e, p.runId, p.checkpoint));
  },
  'predict.cropPan': async (p, e) => {
    const file = e.paths.readable(p.path);
    return e.predictions.run('cropPan', { file, steps: p.steps }, await model(e, p.runId, p.checkpoint));
  },
  'predict.compare': async (p, e) => {
    const files = p.paths.map((f) => e.paths.readable(f));
    return e.predictions.run('compare', { files }, await model(e, p.runId, p.checkpoint));
  },
  'predict.export': (p, e) => exportSet(e.ws.dir, p.jobId, p.format),
};
