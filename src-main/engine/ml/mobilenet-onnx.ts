// The nsfwjs MobileNetV2 backbone (mobilenet.ts) on ONNX Runtime: converted from the package's
// Keras weights by keras-onnx.ts on first use, kept in the per-user model cache under a name made
// of a sha256 of the source weights and the converter's version, and reused after. Beside the
// .onnx file a small .json records its size and sha256; a file that does not match it (a partial
// copy, a disk error, an edit), or that ONNX Runtime cannot load, is rebuilt. Same input as the
// tfjs backbone (NHWC [N,224,224,3] RGB in [0,1]), same [N,1280] output (flatten_1).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.ts';
import { kerasToOnnx, KERAS_ONNX_CONVERTER_VERSION, ONNX_OPSET } from './keras-onnx.ts';
import { MOBILENET_CUT_LAYER, MOBILENET_EXTRACTOR_NAME, MOBILENET_FEATURE_DIM, MOBILENET_INPUT_SIZE, readMobilenetArtifacts } from './mobilenet.ts';
import { createOrtSession, loadOrt, type OrtDevice, type OrtModule, type OrtSession, type OrtTensor } from './ort.ts';

/** Where converted models are cached: $CARSTUDIO_MODEL_CACHE, else the platform's per-user cache folder. */
export function modelCacheDir(): string {
  if (process.env.CARSTUDIO_MODEL_CACHE) return path.resolve(process.env.CARSTUDIO_MODEL_CACHE);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'CarStudio');
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'CarStudio', 'Cache');
  return path.join(process.env.XDG_CACHE_HOME || path.join(home, '.cache'), 'carstudio');
}

export type OnnxLog = (level: 'info' | 'warn', message: string) => void;

interface CachedModelMeta {
  source: string;
  converter: number;
  opset: number;
  size: number;
  sha256: string;
}

const sha256 = (data: Uint8Array): string => crypto.createHash('sha256').update(data).digest('hex');

/** Why the cached `file` does not match its record `meta`, or null when it does. */
function cachedProblem(file: string, metaFile: string, source: string): string | null {
  let meta: CachedModelMeta;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as CachedModelMeta;
  } catch (e) {
    return `its record ${path.basename(metaFile)} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (meta.source !== source || meta.converter !== KERAS_ONNX_CONVERTER_VERSION) return 'its record is for other weights or another converter';
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    return `it cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (!st.isFile()) return 'it is not a regular file';
  if (st.size !== meta.size) return `it is ${st.size} bytes, ${meta.size} were written`;
  if (sha256(fs.readFileSync(file)) !== meta.sha256) return 'its sha256 differs from the one recorded when it was written';
  return null;
}

export interface MobilenetOnnxFile {
  file: string;
  /** Whether this call converted the model (first use, or the cached file was bad). */
  built: boolean;
}

/**
 * The converted backbone in the cache (`dir`, default modelCacheDir()), converted and written
 * atomically when it is missing or does not match its record; `rebuild` forces a new conversion.
 */
export async function ensureMobilenetOnnx(opts: { dir?: string; log?: OnnxLog; rebuild?: string } = {}): Promise<MobilenetOnnxFile> {
  const dir = opts.dir ?? modelCacheDir();
  const log = opts.log ?? defaultLog;
  const artifacts = readMobilenetArtifacts();
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify(artifacts.modelTopology));
  hash.update(JSON.stringify(artifacts.weightSpecs));
  hash.update(new Uint8Array(artifacts.weightData as ArrayBuffer));
  const source = hash.digest('hex');
  const base = `mobilenet_v2-${MOBILENET_CUT_LAYER}-${source.slice(0, 16)}-c${KERAS_ONNX_CONVERTER_VERSION}`;
  const file = path.join(dir, `${base}.onnx`);
  const metaFile = path.join(dir, `${base}.json`);
  let why = opts.rebuild ?? null;
  if (!why) {
    if (!fs.existsSync(file)) why = null;
    else {
      const problem = cachedProblem(file, metaFile, source);
      if (!problem) return { file, built: false };
      why = problem;
    }
  }
  if (why) log('warn', `the cached ONNX MobileNetV2 ${file} is not usable (${why}): rebuilding it`);
  else log('info', `converting the nsfwjs MobileNetV2 to ONNX (first use): ${file}`);
  const conv = kerasToOnnx(artifacts, {
    output: MOBILENET_CUT_LAYER,
    inputName: 'input',
    outputName: 'features',
    docString: `${MOBILENET_EXTRACTOR_NAME}, converted from the nsfwjs Keras weights (sha256 ${source})`,
  });
  if (conv.outputShape.length !== 1 || conv.outputShape[0] !== MOBILENET_FEATURE_DIM) {
    throw new Error(`the converted MobileNetV2 outputs [N, ${conv.outputShape.join(', ')}], expected [N, ${MOBILENET_FEATURE_DIM}]`);
  }
  const meta: CachedModelMeta = { source, converter: KERAS_ONNX_CONVERTER_VERSION, opset: ONNX_OPSET, size: conv.bytes.byteLength, sha256: sha256(conv.bytes) };
  // the model first, then its record: a crash in between leaves a model without a record, which is rebuilt
  await writeFileAtomic(file, [conv.bytes]);
  await writeFileAtomic(metaFile, JSON.stringify(meta, null, 2) + '\n');
  return { file, built: true };
}

function defaultLog(level: 'info' | 'warn', message: string): void {
  process.stderr.write(`${level === 'warn' ? 'warning: ' : ''}${message}\n`);
}

export interface MobilenetOnnx {
  name: string;
  inputSize: number;
  featureDim: number;
  /** e.g. 'onnxruntime cpu (2 threads)'. */
  backend: string;
  file: string;
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface MobilenetOnnxOptions {
  /** CPU threads for one forward pass (default: os.availableParallelism()). */
  threads?: number;
  /** The model cache folder (default modelCacheDir()). */
  cacheDir?: string;
  log?: OnnxLog;
  /** Where it runs (default: $CARSTUDIO_ORT_DEVICE, else auto); see createOrtSession in ort.ts. */
  device?: OrtDevice;
}

/**
 * Loads the backbone on ONNX Runtime, on the device asked for (createOrtSession: CUDA when asked
 * or when its provider is installed and starts, else the CPU). Throws OrtNotInstalled (from
 * ort.ts) when onnxruntime-node is absent.
 */
export async function loadMobilenetOnnx(opts: MobilenetOnnxOptions = {}): Promise<MobilenetOnnx> {
  const ort = await loadOrt();
  const log = opts.log ?? defaultLog;
  let model = await ensureMobilenetOnnx({ dir: opts.cacheDir, log });
  let opened: { session: OrtSession; backend: string };
  try {
    opened = await openSession(ort, model.file, opts, log);
  } catch (e) {
    if (model.built) throw e;
    model = await ensureMobilenetOnnx({ dir: opts.cacheDir, log, rebuild: `ONNX Runtime cannot load or run it: ${firstLine(e)}` });
    opened = await openSession(ort, model.file, opts, log);
  }
  const { session, backend } = opened;
  const S = MOBILENET_INPUT_SIZE;
  const per = S * S * 3;
  async function embed(batch: Float32Array, n: number): Promise<Float32Array> {
    if (n <= 0) return new Float32Array(0);
    if (batch.length < n * per) throw new Error(`batch holds ${batch.length} floats, need ${n * per}`);
    const view = batch.length === n * per ? batch : batch.subarray(0, n * per);
    const out = (await session.run({ input: new ort.Tensor('float32', view, [n, S, S, 3]) })).features!;
    return Float32Array.from(out.data);
  }
  return {
    name: MOBILENET_EXTRACTOR_NAME,
    inputSize: S,
    featureDim: MOBILENET_FEATURE_DIM,
    backend,
    file: model.file,
    embed,
    dispose: async () => {
      await session.release?.();
    },
  };
}

/** Creates the session and runs it once on a batch of two black images (the warm-up, and the check). */
async function openSession(ort: OrtModule, file: string, opts: MobilenetOnnxOptions, log: OnnxLog): Promise<{ session: OrtSession; backend: string }> {
  const S = MOBILENET_INPUT_SIZE;
  return createOrtSession(ort, file, {
    device: opts.device,
    threads: opts.threads,
    log,
    async check(session) {
      const res: Record<string, OrtTensor> = await session.run({ input: new ort.Tensor('float32', new Float32Array(2 * S * S * 3), [2, S, S, 3]) });
      const t = res.features;
      if (!t || t.dims.length !== 2 || t.dims[0] !== 2 || t.dims[1] !== MOBILENET_FEATURE_DIM) {
        throw new Error(`its output is [${t?.dims.join(', ') ?? ''}], expected [2, ${MOBILENET_FEATURE_DIM}]`);
      }
      if (!t.data.every(Number.isFinite)) throw new Error('its output is not finite on a black image');
    },
  });
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}
