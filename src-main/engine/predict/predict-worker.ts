// The prediction worker: runs the engine-side predictions (service.ts) off the engine's main
// thread, so a crop pan on a large photo never stalls the API. The pool (pool.ts) sends at most a
// few tasks at a time; the loaded models stay cached here between tasks.
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import { UserError } from '../workspace/errors.ts';
import { compare, cropPan, disposePredictors, predictOne, thumbnail } from './service.ts';
import type { PoolReply, PoolTask } from './pool.ts';
import { backgroundSwap, occlusion, regionEdit } from './studies.ts';

async function runTask(t: PoolTask): Promise<unknown> {
  switch (t.op) {
    case 'image':
      return predictOne(t.model, t.params);
    case 'cropPan':
      return cropPan(t.model, t.params);
    case 'compare':
      return compare(t.model, t.params);
    case 'thumbnail':
      return thumbnail(t.params);
    case 'occlusion':
      return occlusion(t.model, t.params);
    case 'edit':
      return regionEdit(t.model, t.params);
    case 'swap':
      return backgroundSwap(t.model, t.params);
  }
}

// Below the main thread's priority (Linux nice values are per thread): when the CPU is short, the
// API's event loop runs first and the predictions wait.
try {
  os.setPriority(os.constants.priority.PRIORITY_BELOW_NORMAL);
} catch {
  /* not permitted here: the worker runs at the engine's priority */
}

const port = parentPort;
if (!port) throw new Error('predict-worker must run in a worker thread');
port.on('message', (m: PoolTask | { op: 'close' }) => {
  if (m.op === 'close') {
    void disposePredictors().finally(() => port.close());
    return;
  }
  const reply = (r: PoolReply): void => port.postMessage(r);
  runTask(m).then(
    (value) => reply({ id: m.id, ok: true, value }),
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      reply({ id: m.id, ok: false, error: { name: err.name, message: err.message, user: e instanceof UserError } });
    },
  );
});
