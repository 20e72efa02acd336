// A pool of worker threads that turn image files into model inputs (augmented for training, or
// resized + centre-cropped for evaluation), and a batch loader on top of it that prefetches the
// next batches while the current one trains.
//
// Workers write finished samples straight into the batch, a Float32Array on a SharedArrayBuffer,
// and the loader recycles batch buffers: allocating a fresh 600 KB array per sample (and a fresh
// batch per step) made the garbage collector cost about as much as decoding (a measured 2.5 of
// ~9 CPU-ms per image).
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { AugmentOptions } from './augment.ts';

export interface AugmentRequest {
  id: number;
  input: string | Uint8Array;
  size: number;
  seed: number;
  augment: boolean;
  opts?: AugmentOptions;
  /** Where the sample goes: size*size*3 float32 RGB in [0, 1] at element `offset` of `out`. */
  out: SharedArrayBuffer;
  offset: number;
}

export type AugmentReply = { id: number; ok: true } | { id: number; ok: false; error: string };

/** A Float32Array of `length` elements on a SharedArrayBuffer, which the pool's workers can fill. */
export function sharedFloats(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

export interface AugmentTask {
  input: string | Uint8Array;
  size: number;
  /** Fixes the random augmentation of this sample (unused for eval). */
  seed: number;
  /** true: training augmentation; false: evaluation transform. */
  augment: boolean;
  opts?: AugmentOptions;
}

interface Slot {
  worker: Worker;
  inflight: number;
}

export function defaultPoolSize(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, cores));
}

export class AugmentPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 1;
  private closed = false;
  private failure: Error | null = null;

  constructor(size = defaultPoolSize()) {
    this.size = Math.max(1, Math.floor(size));
    const boot = new URL('./augment-worker-boot.mjs', import.meta.url);
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(boot);
      const slot: Slot = { worker, inflight: 0 };
      worker.on('message', (msg: AugmentReply) => this.onReply(msg));
      worker.on('error', (err) => this.failAll(err instanceof Error ? err : new Error(String(err))));
      worker.on('exit', (code) => {
        if (!this.closed) this.failAll(new Error(`augmentation worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  /** Runs one task on the least busy worker: size*size*3 float32 RGB in [0, 1]. */
  async run(task: AugmentTask): Promise<Float32Array> {
    const out = sharedFloats(task.size * task.size * 3);
    await this.runInto([task], out);
    return out;
  }

  /**
   * Runs the tasks and writes each result into `out` at i * size*size*3 (a batch, NHWC), as
   * float32 RGB in [0, 1] (the backbones' input scaling). `out` should live on a
   * SharedArrayBuffer (`sharedFloats`), which the workers write directly; any other array costs
   * one copy.
   */
  async runInto(tasks: readonly AugmentTask[], out: Float32Array): Promise<void> {
    if (tasks.length === 0) return;
    const per = tasks[0].size * tasks[0].size * 3;
    if (out.length < tasks.length * per) throw new Error(`batch of ${out.length} floats is too small for ${tasks.length} samples of ${per}`);
    if (!(out.buffer instanceof SharedArrayBuffer)) {
      const shared = sharedFloats(tasks.length * per);
      await this.runInto(tasks, shared);
      out.set(shared);
      return;
    }
    const buf = out.buffer;
    await Promise.all(tasks.map((t, i) => this.dispatch(t, buf, out.byteOffset / Float32Array.BYTES_PER_ELEMENT + i * per)));
  }

  private dispatch(task: AugmentTask, out: SharedArrayBuffer, offset: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('augmentation pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    const slot = this.slots.reduce((a, b) => (b.inflight < a.inflight ? b : a));
    const id = this.nextId++;
    slot.inflight++;
    const msg: AugmentRequest = { id, ...task, out, offset };
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage(msg);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.failAll(new Error('augmentation pool closed'));
  }

  private onReply(msg: AugmentReply): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    p.slot.inflight--;
    if (msg.ok) p.resolve();
    else p.reject(new Error(msg.error));
  }

  private failAll(err: Error): void {
    this.failure ??= err;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(err);
    }
  }
}

/**
 * Loads batch k (any k, in any order) through the pool and keeps up to `depth` batches ahead in
 * flight: `get(k)` returns batch k and starts loading k+1..k+depth. The data `get` returns is
 * valid until the next `get`, which recycles its buffer for a batch ahead.
 */
export class PrefetchLoader {
  private readonly inflight = new Map<number, { promise: Promise<Float32Array>; buffer: Float32Array }>();
  private readonly free: Float32Array[] = [];
  private lent: Float32Array | null = null;

  constructor(
    private readonly pool: AugmentPool,
    /** The tasks of batch k, or null past the end. */
    private readonly tasksFor: (k: number) => AugmentTask[] | null,
    private readonly depth = 2,
  ) {}

  async get(k: number): Promise<{ data: Float32Array; n: number }> {
    if (this.lent) this.free.push(this.lent);
    this.lent = null;
    for (const key of [...this.inflight.keys()]) if (key < k) this.drop(key);
    const tasks = this.tasksFor(k);
    if (!tasks) throw new Error(`no batch ${k}`);
    const p = this.load(k);
    for (let j = k + 1; j <= k + this.depth; j++) if (this.tasksFor(j)) this.load(j);
    const data = await p;
    this.inflight.delete(k);
    this.lent = data;
    return { data, n: tasks.length };
  }

  /** Forgets batches in flight (their results are discarded). */
  clear(): void {
    for (const key of [...this.inflight.keys()]) this.drop(key);
  }

  private load(k: number): Promise<Float32Array> {
    const have = this.inflight.get(k);
    if (have) return have.promise;
    const tasks = this.tasksFor(k)!;
    const length = tasks.length * tasks[0].size * tasks[0].size * 3;
    const i = this.free.findIndex((b) => b.length === length);
    const buffer = i >= 0 ? this.free.splice(i, 1)[0] : sharedFloats(length);
    const promise = this.pool.runInto(tasks, buffer).then(() => buffer);
    // A batch nobody waits for must not become an unhandled rejection.
    promise.catch(() => undefined);
    this.inflight.set(k, { promise, buffer });
    return promise;
  }

  private drop(k: number): void {
    const b = this.inflight.get(k);
    this.inflight.delete(k);
    // Workers may still be writing into it: reuse it only once they are done.
    if (b) b.promise.then(
      () => this.free.push(b.buffer),
      () => undefined,
    );
  }
}
