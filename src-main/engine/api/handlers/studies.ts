import type { StudyResults } from '../contract/studies.ts';
import type { Handlers } from './types.ts';
import { resolveRun } from '../../predict/runs.ts';
import type { ModelRef } from '../../predict/service.ts';
import { backgroundFiles } from '../../predict/studies/backgrounds.ts';
import type { Engine } from '../../engine.ts';

/** The run and checkpoint a study uses, resolved here (the worker has no database). */
function model(e: Engine, runId?: string, checkpoint?: string): ModelRef {
  const r = resolveRun(e.ws, runId, checkpoint);
  return { runId: r.run.id, runDir: r.run.dir, checkpoint: r.checkpoint };
}

// Every photo and the background folder (and each photo in it) pass the engine's path policy
// before any file is read; the studies run in the prediction worker (predict/studies.ts).
export const studyHandlers: Handlers<keyof StudyResults> = {
  'study.occlusion': (p, e) => {
    const file = e.paths.readable(p.path);
    return e.predictions.run('occlusion', { file, size: p.size, stride: p.stride, png: p.png, target: p.target }, model(e, p.runId, p.checkpoint));
  },
  'study.edit': (p, e) => {
    const file = e.paths.readable(p.path);
    const patch = p.patchPath ? e.paths.readable(p.patchPath) : undefined;
    return e.predictions.run('edit', { file, rect: p.rect, fill: p.fill, patch, png: p.png }, model(e, p.runId, p.checkpoint));
  },
  'study.swap': (p, e) => {
    const file = e.paths.readable(p.path);
    const { files, total } = backgroundFiles(e.paths.readable(p.backgrounds), (f) => e.paths.readable(f));
    return e.predictions.run('swap', { file, backgrounds: files, total, box: p.box, png: p.png }, model(e, p.runId, p.checkpoint));
  },
};
