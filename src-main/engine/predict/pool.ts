// The engine's side of the prediction worker: predict.image, predict.cropPan, predict.compare and
// predict.thumbnail run in one worker thread (predict-worker.ts), never on the main thread, so the
// API keeps answering while they run. Bounded: one prediction and two thumbnails run in the worker
// at a time (each holds at most one photo's bytes and a shrunk decode; a pan never waits behind a
// grid's thumbnails, nor they behind it), at most `maxHeavy` predictions run or wait, and at most
// `maxQueued` tasks wait in all (a grid asks for dozens of thumbnails). A task beyond the bounds
// is refused at once with a BusyError. A worker that dies (out of memory,
// a crash) fails the tasks it was running; the next task starts a fresh one. Closing the pool also
// stops the distance-reference worker (trust.ts), which builds what the predictions wait for.
import { Worker } from 'node:worker_threads';
import { UserError } from '../workspace/errors.ts';
import type { CompareItem, CropPan, PredictRecord } from '../api/contract/predict.ts';
import type { ReadablePath } from '../api/path-policy.ts';
import type { ModelRef } from './service.ts';
import type { EditParams, OcclusionParams, SwapParams } from './studies.ts';
import type { EditStudy, OcclusionStudy, SwapStudy } from '../api/contract/studies.ts';
import { stopReferenceWorker } from './trust.ts';

/** Refused because the prediction worker has as much work as it may hold; try again shortly. */
export class BusyError extends UserError {
  override name = 'Busy';
}

type Run = { runId: string; checkpoint: string };
export type PoolOps = {
  image: { params: { file?: ReadablePath; data?: string; name?: string }; result: PredictRecord & Run };
  cropPan: { params: { file: ReadablePath; steps: number }; result: CropPan & Run };
  compare: { params: { files: ReadablePath[] }; result: Run & { items: CompareItem[] } };
  thumbnail: { params: { file: ReadablePath; size: number }; result: { dataUrl: string; width: number; height: number } };
  occlusion: { params: OcclusionParams; result: OcclusionStudy & Run };
  edit: { params: EditParams; result: EditStudy & Run };
  swap: { params: SwapParams; result: SwapStudy & Run };
};
export type PoolOp = keyof PoolOps;

/** A message to the worker. */
export type PoolTask = {
  [K in PoolOp]: { id: number; op: K; model: ModelRef; params: PoolOps[K]['params'] };
}[PoolOp];
/** The worker's answer to one task. */
export type PoolReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; user: boolean } };

export interface PoolOptions {
  /** Tasks waiting beyond those (default 64). */
  maxQueued?: number;
  /** Predictions (not thumbnails) running or waiting (default 6). */
  maxHeavy?: number;
  /** V8 heap limit of the worker, in MB (default 1024). */
  heapMb?: number;
}

interface Pending {
  task: PoolTask;
  heavy: boolean;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

const NO_MODEL: ModelRef = { runId: '', runDir: '', checkpoint: '' };

export class PredictPool {
  private worker: Worker | null = null;
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, Pending>();
  private nextId = 1;
  private heavy = 0;
  private closed = false;
  private readonly maxQueued: number;
  private readonly maxHeavy: number;
  private readonly heapMb: number;

  constructor(opts: PoolOptions = {}) {
    this.maxQueued = opts.maxQueued ?? 64;
    this.maxHeavy = opts.maxHeavy ?? 6;
    this.heapMb = opts.heapMb ?? 1024;
  }

  /** Runs one task in the worker; `model` is needed by every op but thumbnail. */
  run<K extends PoolOp>(op: K, params: PoolOps[K]['params'], model: ModelRef = NO_MODEL): Promise<PoolOps[K]['result']> {
    if (this.closed) return Promise.reject(new UserError('the engine is stopping'));
    const heavy = op !== 'thumbnail';
    if (heavy && this.heavy >= this.maxHeavy)
      return Promise.reject(new BusyError(`busy: ${this.heavy} predictions are already running or waiting (at most ${this.maxHeavy}); try again when they finish`));
    if (this.queue.length >= this.maxQueued)
      return Promise.reject(new BusyError(`busy: ${this.queue.length} image tasks are already waiting (at most ${this.maxQueued}); try again shortly`));
    if (heavy) this.heavy++;
    return new Promise<PoolOps[K]['result']>((resolve, reject) => {
      const task = { id: this.nextId++, op, model, params } as PoolTask;
      this.queue.push({ task, heavy, resolve: resolve as (v: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Tasks running and waiting (for tests and status). */
  get load(): { running: number; queued: number; heavy: number } {
    return { running: this.running.size, queued: this.queue.length, heavy: this.heavy };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) this.settle(p, new UserError('the engine is stopping'));
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
    for (const p of [...this.running.values()]) this.settle(p, new UserError('the engine is stopping'));
    this.running.clear();
    // the distance reference the predictions wait for is built in a worker of its own (trust.ts)
    await stopReferenceWorker();
  }

  /** Starts waiting tasks while their lane (one prediction, two thumbnails) has room. */
  private dispatch(): void {
    for (const [heavy, lane] of [[true, 1], [false, 2]] as const) {
      for (;;) {
        if ([...this.running.values()].filter((p) => p.heavy === heavy).length >= lane) break;
        const i = this.queue.findIndex((p) => p.heavy === heavy);
        if (i < 0) break;
        const [p] = this.queue.splice(i, 1);
        this.running.set(p.task.id, p);
        this.ensureWorker().postMessage(p.task);
      }
    }
    if (this.running.size) this.worker?.ref();
    else this.worker?.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./worker-boot.mjs', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: this.heapMb } });
    w.on('message', (r: PoolReply) => {
      const p = this.running.get(r.id);
      if (!p) return;
      this.running.delete(r.id);
      if (r.ok) this.settle(p, null, r.value);
      else this.settle(p, toError(r.error));
      this.dispatch();
    });
    const lost = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = null;
      for (const p of [...this.running.values()]) this.settle(p, new Error(`the prediction worker stopped (${why}); try again`));
      this.running.clear();
      if (!this.closed) this.dispatch();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`exit code ${code}`));
    this.worker = w;
    return w;
  }

  private settle(p: Pending, err: Error | null, value?: unknown): void {
    if (p.heavy) this.heavy--;
    if (err) p.reject(err);
    else p.resolve(value);
  }
}

function toError(e: { name: string; message: string; user: boolean }): Error {
  const err = e.user ? new UserError(e.message) : new Error(e.message);
  err.name = e.name;
  return err;
}
