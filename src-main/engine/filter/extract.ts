// Batch feature extraction: decode with sharp (libuv thread pool) while the previous batch runs
// through the backbone on the main thread, so decoding and inference overlap. One bad image is
// recorded and skipped, never fatal. Progress and throughput come back per batch. With 3 crops
// each image goes through the model as three square crops whose embeddings are averaged.
import { decodeCrops, decodeRgb, writePreprocessed, type CropCount } from '../ml/decode.ts';

export interface ExtractInput {
  id: number;
  /** Encoded image bytes, or a file path. */
  data: Buffer | string;
}

/** Anything that turns a preprocessed NHWC float batch into N feature rows. */
export interface FeatureExtractor {
  name: string;
  inputSize: number;
  featureDim: number;
  /** What runs it, for logs (e.g. 'onnxruntime cpu (2 threads)', 'tfjs wasm'). */
  backend?: string;
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
  /**
   * For extractors that read a photo their own way (several views or sizes, e.g. car-v1): decodes
   * one input into `inputFloats` floats laid out as embed expects. Without it each input is
   * decodeRgb'd at inputSize and scaled by writePreprocessed.
   */
  decodeInput?(data: Buffer | string): Promise<Float32Array>;
  inputFloats?: number;
}

export interface ExtractFailure {
  id: number;
  error: string;
}

export interface ExtractProgress {
  /** Images embedded so far. */
  done: number;
  /** Images that failed to decode so far. */
  failed: number;
  /** Expected total when known (opts.total or an array input). */
  total: number | null;
  elapsedSeconds: number;
  /** (done + failed) / elapsed, decode included. */
  imagesPerSecond: number;
  /** Main-thread seconds spent in the model. */
  inferSeconds: number;
  /** Seconds the model sat waiting for decoded input. */
  waitSeconds: number;
}

export interface ExtractedBatch {
  ids: number[];
  /** ids.length * dim float32, row-major. */
  features: Float32Array;
  dim: number;
  failures: ExtractFailure[];
}

export interface ExtractOptions {
  /** Images per forward pass (default 16; wasm throughput is flat from 8 to 32). */
  batchSize?: number;
  /** Decoded batches kept ready ahead of the model (default 2). */
  prefetch?: number;
  /** Expected number of inputs, for progress when `inputs` is an async iterable. */
  total?: number;
  signal?: AbortSignal;
  /**
   * 1 (default): one centre crop per image. 3: three square crops along the long side
   * (decodeCrops), embedded together (a batch of B images is 3B model inputs); the row is the
   * L2-normalised mean of their embeddings. A different feature set: never mix it with 1-crop rows.
   */
  crops?: CropCount;
  /** Keep every row in the result (default true). Jobs that write each batch to a cache pass false. */
  collect?: boolean;
  /** Called after each batch, awaited (so a cache write applies back-pressure). */
  onBatch?(batch: ExtractedBatch, progress: ExtractProgress): void | Promise<void>;
  onError?(failure: ExtractFailure): void;
}

export interface ExtractResult {
  /** The extractor's name, with `.crops3` appended for 3-crop features. */
  extractor: string;
  dim: number;
  ids: number[];
  /** ids.length * dim float32 rows (empty when collect is false). */
  features: Float32Array;
  failures: ExtractFailure[];
  stats: ExtractProgress;
}

interface Decoded {
  ids: number[];
  buf: Float32Array;
  n: number;
  failures: ExtractFailure[];
}

/**
 * Extracts one feature row per decodable input. `extractor` defaults to the nsfwjs
 * MobileNetV2 backbone on the best available runtime (defaultExtractor).
 */
export async function extractFeatures(
  inputs: AsyncIterable<ExtractInput> | Iterable<ExtractInput>,
  opts: ExtractOptions = {},
  extractor?: FeatureExtractor,
): Promise<ExtractResult> {
  const ex = extractor ?? (await defaultExtractor());
  const batchSize = Math.max(1, Math.floor(opts.batchSize ?? 16));
  const prefetch = Math.max(1, Math.floor(opts.prefetch ?? 2));
  const collect = opts.collect ?? true;
  const total = opts.total ?? (Array.isArray(inputs) ? inputs.length : null);
  const size = ex.inputSize;
  const own = ex.decodeInput?.bind(ex);
  const per = own ? ex.inputFloats! : size * size * 3;
  const dim = ex.featureDim;
  const crops = opts.crops ?? 1;
  if (crops !== 1 && crops !== 3) throw new Error(`crops must be 1 or 3, got ${String(crops)}`);
  if (own && crops !== 1) throw new Error(`${ex.name} reads each photo whole; it has no 3-crop features`);

  const iterator: AsyncIterator<ExtractInput> | Iterator<ExtractInput> =
    Symbol.asyncIterator in inputs
      ? (inputs as AsyncIterable<ExtractInput>)[Symbol.asyncIterator]()
      : (inputs as Iterable<ExtractInput>)[Symbol.iterator]();
  let exhausted = false;

  async function readChunk(): Promise<ExtractInput[]> {
    const items: ExtractInput[] = [];
    while (!exhausted && items.length < batchSize) {
      const r = await iterator.next();
      if (r.done) exhausted = true;
      else items.push(r.value);
    }
    return items;
  }

  async function decodeChunk(items: ExtractInput[]): Promise<Decoded> {
    const buf = new Float32Array(items.length * crops * per);
    const ids: number[] = [];
    const failures: ExtractFailure[] = [];
    if (own) {
      const decoded = await Promise.allSettled(items.map((it) => own(it.data)));
      decoded.forEach((s, i) => {
        if (s.status === 'fulfilled') {
          buf.set(s.value, ids.length * per);
          ids.push(items[i].id);
        } else failures.push({ id: items[i].id, error: s.reason instanceof Error ? s.reason.message : String(s.reason) });
      });
      return { ids, buf, n: ids.length, failures };
    }
    const settled = await Promise.allSettled(items.map((it) => (crops === 1 ? decodeRgb(it.data, size).then((rgb) => [rgb]) : decodeCrops(it.data, size))));
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        // an image's crops are consecutive model inputs
        s.value.forEach((rgb, k) => writePreprocessed(rgb, buf, (ids.length * crops + k) * per));
        ids.push(items[i].id);
      } else {
        const reason = s.reason instanceof Error ? s.reason.message : String(s.reason);
        failures.push({ id: items[i].id, error: reason });
      }
    });
    return { ids, buf, n: ids.length, failures };
  }

  // Reads are chained so the iterator is never advanced concurrently; decodes overlap freely.
  let readChain: Promise<unknown> = Promise.resolve();
  function schedule(): Promise<Decoded | null> {
    const chunk = readChain.then(() => readChunk());
    readChain = chunk.catch(() => undefined);
    return chunk.then((items) => (items.length ? decodeChunk(items) : null));
  }

  const t0 = performance.now();
  let done = 0;
  let failed = 0;
  let inferMs = 0;
  let waitMs = 0;
  const allIds: number[] = [];
  const rows: Float32Array[] = [];
  const allFailures: ExtractFailure[] = [];
  const progress = (): ExtractProgress => {
    const elapsed = (performance.now() - t0) / 1000;
    return {
      done,
      failed,
      total,
      elapsedSeconds: elapsed,
      imagesPerSecond: elapsed > 0 ? (done + failed) / elapsed : 0,
      inferSeconds: inferMs / 1000,
      waitSeconds: waitMs / 1000,
    };
  };

  const queue: Promise<Decoded | null>[] = [];
  for (let i = 0; i < prefetch; i++) queue.push(schedule());
  // Unhandled-rejection guard for prefetched batches we may abandon on abort or error.
  const settleQuietly = (p: Promise<unknown>) => p.catch(() => undefined);
  try {
    for (;;) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const w0 = performance.now();
      const cur = await queue.shift()!;
      waitMs += performance.now() - w0;
      if (!cur) break;
      queue.push(schedule());
      // Let sharp pick up the newly queued decodes before the (synchronous) forward pass.
      await new Promise<void>((r) => setImmediate(r));

      let features: Float32Array = new Float32Array(0);
      if (cur.n > 0) {
        const i0 = performance.now();
        features = await ex.embed(cur.buf, cur.n * crops);
        inferMs += performance.now() - i0;
        if (features.length !== cur.n * crops * dim) {
          throw new Error(`${ex.name} returned ${features.length} floats for ${cur.n * crops} images of dim ${dim}`);
        }
        if (crops > 1) features = averageCrops(features, cur.n, crops, dim);
      }
      done += cur.n;
      failed += cur.failures.length;
      for (const f of cur.failures) {
        allFailures.push(f);
        opts.onError?.(f);
      }
      if (collect) {
        allIds.push(...cur.ids);
        rows.push(features);
      }
      await opts.onBatch?.({ ids: cur.ids, features, dim, failures: cur.failures }, progress());
    }
  } finally {
    for (const p of queue) void settleQuietly(p);
    if (!exhausted) {
      const ret = (iterator as AsyncIterator<ExtractInput>).return;
      if (typeof ret === 'function') await settleQuietly(Promise.resolve(ret.call(iterator)));
    }
  }

  const features = new Float32Array(allIds.length * dim);
  let off = 0;
  for (const r of rows) {
    features.set(r, off);
    off += r.length;
  }
  return { extractor: crops === 1 ? ex.name : `${ex.name}.crops${crops}`, dim, ids: allIds, features, failures: allFailures, stats: progress() };
}

/** Where the MobileNetV2 backbone runs: ONNX Runtime, TensorFlow.js, or ONNX Runtime when it loads. */
export const FEATURE_RUNTIMES = ['auto', 'onnx', 'tfjs'] as const;
export type FeatureRuntime = (typeof FEATURE_RUNTIMES)[number];

export interface MobilenetExtractorOptions {
  /** 'auto' (the default; $CARSTUDIO_FEATURE_RUNTIME when set): ONNX Runtime when onnxruntime-node loads, else tfjs. */
  runtime?: FeatureRuntime;
  /** ONNX Runtime's CPU threads (default: os.availableParallelism()). */
  threads?: number;
  /** flatten_1 (default, 1280-d) or the pooled blocks 10/13/16 (1984-d, L2-normalised). */
  variant?: 'flatten_1' | 'blocks';
  log?(level: 'info' | 'warn', message: string): void;
}

const loaded = new Map<string, Promise<FeatureExtractor & { backend: string }>>();

/** The help for --runtime onnx where onnxruntime-node is not installed. */
export const ORT_RUNTIME_HELP = 'the onnx feature runtime needs onnxruntime-node (an optional dependency of CarStudio), which is not installed. ';

/**
 * The nsfwjs MobileNetV2 backbone (1280-d, flatten_1) on ONNX Runtime or tfjs, loaded once per
 * process and runtime. Both give the same features (within 1e-3), so they share one feature cache.
 */
export function mobilenetExtractor(opts: MobilenetExtractorOptions = {}): Promise<FeatureExtractor & { backend: string }> {
  const env = process.env.CARSTUDIO_FEATURE_RUNTIME;
  const runtime: FeatureRuntime =
    (opts.runtime ?? 'auto') === 'auto' && env && (FEATURE_RUNTIMES as readonly string[]).includes(env) ? (env as FeatureRuntime) : (opts.runtime ?? 'auto');
  const key = `${opts.variant ?? 'flatten_1'}:${runtime}:${opts.threads ?? ''}:${process.env.CARSTUDIO_ORT_DEVICE ?? ''}`;
  let p = loaded.get(key);
  if (!p) {
    p = loadMobilenet(runtime, opts);
    loaded.set(key, p);
    p.catch(() => {
      if (loaded.get(key) === p) loaded.delete(key);
    });
  }
  return p;
}

async function loadMobilenet(runtime: FeatureRuntime, opts: MobilenetExtractorOptions): Promise<FeatureExtractor & { backend: string }> {
  if (runtime !== 'tfjs') {
    const { loadMobilenetOnnx } = await import('../ml/mobilenet-onnx.ts');
    const { OrtNotInstalled, ORT_INSTALL_STEPS } = await import('../ml/ort.ts');
    try {
      return await loadMobilenetOnnx({ threads: opts.threads, log: opts.log, variant: opts.variant });
    } catch (e) {
      if (runtime === 'onnx') {
        const { UserError } = await import('../workspace/errors.ts');
        if (e instanceof OrtNotInstalled) throw new UserError(`${ORT_RUNTIME_HELP}${ORT_INSTALL_STEPS}; or use --runtime tfjs.`);
        throw e;
      }
      if (!(e instanceof OrtNotInstalled)) {
        (opts.log ?? ((_l, m) => process.stderr.write(`warning: ${m}\n`)))(
          'warn',
          `ONNX Runtime could not run the MobileNetV2 (${(e instanceof Error ? e.message : String(e)).split('\n')[0]}); using tfjs instead`,
        );
      }
    }
  }
  const { initBackend } = await import('../ml/backend.ts');
  const { loadMobilenetBackbone, loadMobilenetBlocks } = await import('../ml/mobilenet.ts');
  const info = await initBackend('auto');
  const backbone = opts.variant === 'blocks' ? await loadMobilenetBlocks(info.tf) : await loadMobilenetBackbone(info.tf);
  return Object.assign(backbone, { backend: `tfjs ${info.name}` });
}

/** The nsfwjs MobileNetV2 backbone on the best runtime available (mobilenetExtractor with runtime 'auto'). */
export function defaultExtractor(): Promise<FeatureExtractor & { backend: string }> {
  return mobilenetExtractor({ runtime: 'auto' });
}

/** n rows of dim from n*crops rows (each image's crops consecutive): the mean of each image's crops, L2-normalised. */
export function averageCrops(rows: Float32Array, n: number, crops: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  const acc = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let k = 0; k < crops; k++) {
      const off = (i * crops + k) * dim;
      for (let d = 0; d < dim; d++) acc[d] += rows[off + d];
    }
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += acc[d] * acc[d];
    // the mean's norm is the sum's norm / crops: normalising the sum normalises the mean
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let d = 0; d < dim; d++) out[i * dim + d] = acc[d] * inv;
  }
  return out;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('feature extraction cancelled');
  err.name = 'AbortError';
  return err;
}
