// A pool of worker threads that turn image files into model inputs (augmented for training, or
// resized + centre-cropped for evaluation), and a batch loader on top of it that prefetches the
// next batches while the current one trains.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { AugmentOptions } from './augment.ts';
import { PIXEL_SCALE } from '../ml/decode.ts';

const UNIT = Float32Array.from({ length: 256 }, (_, v) => v * PIXEL_SCALE);

export interface AugmentRequest {
  id: number;
  input: string | Uint8Array;
  size: number;
  seed: number;
  augment: boolean;
  opts?: AugmentOptions;
}

export type AugmentReply = { id: number; ok: true; data: Uint8Array } | { id: number; ok: false; error: string };

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
  private readonly pending = new Map<number, { resolve: (d: Uint8Array) => void; reject: (e: Error) => void; slot: Slot }>();
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

  /** Runs one task on the least busy worker: size*size*3 RGB bytes. */
  run(task: AugmentTask): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new Error('augmentation pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    const slot = this.slots.reduce((a, b) => (b.inflight < a.inflight ? b : a));
    const id = this.nextId++;
    slot.inflight++;
    const msg: AugmentRequest = { id, ...task };
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage(msg);
    });
  }

  /**
   * Runs the tasks and writes each result into `out` at i * size*size*3 (a batch, NHWC), as
   * float32 RGB in [0, 1] (the backbones' input scaling).
   */
  async runInto(tasks: readonly AugmentTask[], out: Float32Array): Promise<void> {
    await Promise.all(
      tasks.map(async (t, i) => {
        const rgb = await this.run(t);
        const base = i * rgb.length;
        for (let k = 0; k < rgb.length; k++) out[base + k] = UNIT[rgb[k]];
      }),
    );
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
    if (msg.ok) p.resolve(msg.data);
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
 * flight: `get(k)` returns batch k and starts loading k+1..k+depth.
 */
export class PrefetchLoader {
  private readonly inflight = new Map<number, Promise<Float32Array>>();

  constructor(
    private readonly pool: AugmentPool,
    /** The tasks of batch k, or null past the end. */
    private readonly tasksFor: (k: number) => AugmentTask[] | null,
    private readonly depth = 2,
  ) {}

  async get(k: number): Promise<{ data: Float32Array; n: number }> {
    for (const key of this.inflight.keys()) if (key < k) this.drop(key);
    const tasks = this.tasksFor(k);
    if (!tasks) throw new Error(`no batch ${k}`);
    const p = this.load(k);
    for (let j = k + 1; j <= k + this.depth; j++) if (this.tasksFor(j)) this.load(j);
    const data = await p;
    this.inflight.delete(k);
    return { data, n: tasks.length };
  }

  /** Forgets batches in flight (their results are discarded). */
  clear(): void {
    for (const key of [...this.inflight.keys()]) this.drop(key);
  }

  private load(k: number): Promise<Float32Array> {
    let p = this.inflight.get(k);
    if (!p) {
      const tasks = this.tasksFor(k)!;
      const per = tasks[0].size * tasks[0].size * 3;
      const out = new Float32Array(tasks.length * per);
      p = this.pool.runInto(tasks, out).then(() => out);
      // A batch nobody waits for must not become an unhandled rejection.
      p.catch(() => undefined);
      this.inflight.set(k, p);
    }
    return p;
  }

  private drop(k: number): void {
    this.inflight.delete(k);
  }
}
