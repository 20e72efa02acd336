// The augmentation pipeline's throughput, as the finetune trainer drives it: batches of image
// files through the worker pool (decode, random resized crop, flip, colour jitter, float32 RGB),
// with `prefetch` batches in flight. The reference it is compared with (torchvision/PIL, the same
// transforms on the same files) lives in the benchmark that calls this.
import { AugmentPool, PrefetchLoader, sharedFloats, type AugmentTask } from './augment-pool.ts';
import { ORIGINAL_AUGMENT, type AugmentOptions } from './augment.ts';
import { mixSeed } from './rng.ts';

export interface AugmentBenchOptions {
  files: string[];
  /** Output side (the original: 224). */
  size?: number;
  batchSize?: number;
  /** Worker threads (default: the pool's default, one per core up to 8). */
  workers?: number;
  prefetch?: number;
  /** Images to process in the timed part (default: every file twice). */
  images?: number;
  /** Images processed before timing starts (workers started, tsx and sharp loaded). */
  warmup?: number;
  augment?: boolean;
  opts?: AugmentOptions;
}

export interface AugmentBenchResult {
  images: number;
  seconds: number;
  imagesPerSec: number;
  /** CPU time of the whole process (main thread, workers, sharp's threads) per image: robust to a busy machine. */
  cpuMsPerImage: number;
  workers: number;
  size: number;
  batchSize: number;
}

export async function benchAugment(o: AugmentBenchOptions): Promise<AugmentBenchResult> {
  if (o.files.length === 0) throw new Error('benchAugment: no files');
  const size = o.size ?? 224;
  const B = o.batchSize ?? 64;
  const total = o.images ?? o.files.length * 2;
  const warmup = o.warmup ?? Math.min(2 * B, o.files.length);
  const pool = new AugmentPool(o.workers);
  try {
    const task = (i: number): AugmentTask => ({
      input: o.files[i % o.files.length],
      size,
      seed: mixSeed(1234, i),
      augment: o.augment ?? true,
      opts: o.opts ?? ORIGINAL_AUGMENT,
    });
    // Warm-up: every worker has loaded its modules and decoded a few images.
    const warm = sharedFloats(size * size * 3 * warmup);
    await pool.runInto(
      Array.from({ length: warmup }, (_, i) => task(i)),
      warm,
    );
    const nBatches = Math.ceil(total / B);
    const loader = new PrefetchLoader(
      pool,
      (k) => (k >= nBatches ? null : Array.from({ length: Math.min(B, total - k * B) }, (_, j) => task(warmup + k * B + j))),
      o.prefetch ?? 2,
    );
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let images = 0;
    for (let k = 0; k < nBatches; k++) images += (await loader.get(k)).n;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    return {
      images,
      seconds,
      imagesPerSec: images / seconds,
      cpuMsPerImage: (cpu.user + cpu.system) / 1000 / images,
      workers: pool.size,
      size,
      batchSize: B,
    };
  } finally {
    await pool.close();
  }
}
