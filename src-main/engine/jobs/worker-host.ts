import { parentPort, workerData } from 'node:worker_threads';
import { Workspace } from '../workspace/workspace.ts';
import { UserError, corruptDatabaseError, isCorruptDb } from '../workspace/errors.ts';
import { diskFullError, isDiskFull } from '../util/disk-full.ts';
import type { JobContext, JobFn, ManagerMessage, ProgressUpdate, WorkerInput, WorkerMessage } from './types.ts';

const PROGRESS_INTERVAL_MS = 200;

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker-host must run in a worker thread');
  const input = workerData as WorkerInput;
  const send = (m: WorkerMessage): void => port.postMessage(m);
  const controller = new AbortController();
  port.on('message', (m: ManagerMessage) => {
    if (m.type === 'cancel') controller.abort();
  });

  let lastSent = 0;
  let pending: ProgressUpdate | null = null;
  let timer: NodeJS.Timeout | null = null;
  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending) send({ type: 'progress', update: pending });
    pending = null;
    lastSent = Date.now();
  };

  let workspace: Workspace | null = null;
  try {
    workspace = Workspace.open(input.workspaceDir, { check: false }); // the engine checked it on open
    const mod = (await import(input.module)) as { default: JobFn<unknown> };
    const ctx: JobContext<unknown> = {
      jobId: input.jobId,
      params: input.params,
      workspace,
      signal: controller.signal,
      resumed: input.resumed,
      checkpoint: input.checkpoint,
      progress(update) {
        pending = { ...pending, ...update };
        const wait = PROGRESS_INTERVAL_MS - (Date.now() - lastSent);
        if (wait <= 0) flush();
        else if (!timer) timer = setTimeout(flush, wait);
      },
      log: (level, message) => send({ type: 'log', level, message }),
      saveCheckpoint: (value) => send({ type: 'checkpoint', value }),
      emit: (name, data) => send({ type: 'event', name, data }),
    };
    const result = await mod.default(ctx);
    flush();
    if (controller.signal.aborted) send({ type: 'cancelled', result: result ?? null });
    else send({ type: 'done', result: result ?? null });
  } catch (e) {
    flush();
    if (controller.signal.aborted) send({ type: 'cancelled' });
    else if (isDiskFull(e)) {
      // ENOSPC or SQLITE_FULL, however wrapped: one clear line, and the job resumes when run again
      const d = diskFullError(input.workspaceDir);
      send({ type: 'error', name: d.name, message: d.message, user: true });
    } else if (isCorruptDb(e)) {
      const c = corruptDatabaseError(Workspace.dbFile(input.workspaceDir), (e as Error).message);
      send({ type: 'error', name: c.name, message: c.message, user: true });
    } else if (e instanceof UserError) send({ type: 'error', name: e.name, message: e.message, user: true });
    else if (e instanceof Error) send({ type: 'error', name: e.name, message: e.message, user: false, stack: e.stack });
    else send({ type: 'error', name: 'Error', message: String(e), user: false });
  } finally {
    workspace?.close();
    port.close();
  }
}

await main();
