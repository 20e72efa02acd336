// The distance-reference worker: builds (or checks) a heads run's reference of its training
// features (ood-reference.ts) off the thread that asked, so the engine's API, its events and the
// other jobs' progress keep going while thousands of cached rows are read and compared. trust.ts
// ensureOodReference starts it and sends one task per run at a time; the workspace is opened
// read-only for each task (the engine keeps its own connection).
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import { UserError } from '../workspace/errors.ts';
import { Workspace } from '../workspace/workspace.ts';
import type { RunConfigFile } from '../train/trainer.ts';
import { checkOrBuildReference, type OodReferenceMeta } from './ood-reference.ts';

/** A task: the workspace, the run folder and its config (as the asking thread read it). */
export interface OodTask {
  id: number;
  wsDir: string;
  runDir: string;
  cfg: RunConfigFile;
}

/** The worker's messages: log lines while a task runs, then its answer (the rows transferred, not copied). */
export type OodReply =
  | { id: number; type: 'log'; level: 'info' | 'warn'; message: string }
  | { id: number; type: 'done'; ref: { meta: OodReferenceMeta; data: Float32Array } | null; built: boolean }
  | { id: number; type: 'error'; error: { name: string; message: string; user: boolean } };

// Below the main thread's priority (Linux nice values are per thread), as the prediction worker.
try {
  os.setPriority(os.constants.priority.PRIORITY_BELOW_NORMAL);
} catch {
  /* not permitted here: the worker runs at the engine's priority */
}

const port = parentPort;
if (!port) throw new Error('ood-worker must run in a worker thread');

async function run(t: OodTask): Promise<void> {
  const ws = Workspace.open(t.wsDir, { readonly: true, check: false });
  try {
    const log = (level: 'info' | 'warn', message: string): void => port!.postMessage({ id: t.id, type: 'log', level, message } satisfies OodReply);
    const { ref, built } = await checkOrBuildReference(ws, t.runDir, t.cfg, log);
    if (!ref) {
      port!.postMessage({ id: t.id, type: 'done', ref: null, built } satisfies OodReply);
      return;
    }
    // a view of a larger (or pooled) buffer is copied, so that the transfer detaches nothing else
    const whole = ref.data.byteOffset === 0 && ref.data.byteLength === ref.data.buffer.byteLength && ref.data.buffer instanceof ArrayBuffer;
    const data = whole ? ref.data : ref.data.slice();
    port!.postMessage({ id: t.id, type: 'done', ref: { meta: ref.meta, data }, built } satisfies OodReply, [data.buffer as ArrayBuffer]);
  } finally {
    ws.close();
  }
}

// One task at a time, in order (the asking side sends one per run; runs queue here).
let chain: Promise<void> = Promise.resolve();
port.on('message', (t: OodTask) => {
  chain = chain.then(() =>
    run(t).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      port.postMessage({ id: t.id, type: 'error', error: { name: err.name, message: err.message, user: e instanceof UserError } } satisfies OodReply);
    }),
  );
});
