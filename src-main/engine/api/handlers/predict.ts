import type { PredictResults } from '../contract/predict.ts';
import type { Handlers } from './types.ts';
import { listRuns, resolveRun } from '../../predict/runs.ts';
import { exportSet, listSetMetas, readRecords, readSetMeta, resultsPage, setInfo } from '../../predict/store.ts';
import { compare, cropPan, predictOne, thumbnail } from '../../predict/service.ts';
import { UserError } from '../../workspace/errors.ts';
import type { PredictParams } from '../../predict/predict-kind.ts';

export const predictHandlers: Handlers<keyof PredictResults> = {
  'predict.runs': (_p, e) => listRuns(e.ws),
  'predict.start': (p, e) => {
    const r = resolveRun(e.ws, p.runId, p.checkpoint);
    const params: Partial<PredictParams> = { runId: r.run.id, checkpoint: r.checkpoint, input: p.input, reuse: p.reuse };
    return e.jobs.start('predict', params);
  },
  'predict.sets': (_p, e) => listSetMetas(e.ws.dir).map((m) => setInfo(e.ws.dir, m)),
  'predict.results': (p, e) => resultsPage(e.ws.dir, p.jobId, p),
  'predict.result': (p, e) => {
    readSetMeta(e.ws.dir, p.jobId);
    const r = readRecords(e.ws.dir, p.jobId)[p.index];
    if (!r) throw new UserError(`job ${p.jobId} has no result ${p.index}`);
    return { ...r, index: p.index };
  },
  'predict.thumbnail': (p, e) => thumbnail(e.ws, p),
  'predict.image': (p, e) => predictOne(e.ws, p),
  'predict.cropPan': (p, e) => cropPan(e.ws, p),
  'predict.compare': (p, e) => compare(e.ws, p),
  'predict.export': (p, e) => exportSet(e.ws.dir, p.jobId, p.format),
};
