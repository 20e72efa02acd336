// The nsfwjs MobileNetV2 backbone (mobilenet.ts) on ONNX Runtime: converted from the package's
// Keras weights by keras-onnx.ts on first use, kept in the per-user model cache under a name made
// of a sha256 of the source weights and the converter's version, and reused after. Beside the
// .onnx file a small .json records its size and sha256; a file that does not match it (a partial
// copy, a disk error, an edit), or that ONNX Runtime cannot load, is rebuilt. Same input as the
// tfjs backbone (NHWC [N,224,224,3] RGB in [0,1]), same [N,1280] output (flatten_1).
import crypto from 'node:crypto';
import { kerasToOnnx, KERAS_ONNX_CONVERTER_VERSION, ONNX_OPSET } from './keras-onnx.ts';
import { defaultModelLog, ensureCachedModel, ensureModelFile, type ModelFile, type OnnxLog } from './model-cache.ts';
import {
  l2NormaliseRows,
  MOBILENET_BLOCK_LAYERS,
  MOBILENET_BLOCKS_DIM,
  MOBILENET_BLOCKS_NAME,
  MOBILENET_CUT_LAYER,
  MOBILENET_EXTRACTOR_NAME,
  MOBILENET_FEATURE_DIM,
  MOBILENET_INPUT_SIZE,
  readMobilenetArtifacts,
} from './mobilenet.ts';
import { createOrtSession, loadOrt, type OrtDevice, type OrtModule, type OrtSession, type OrtTensor } from './ort.ts';

export { modelCacheDir, type OnnxLog } from './model-cache.ts';

export type MobilenetOnnxFile = ModelFile;

/** Which output of the backbone: flatten_1 (1280) or the pooled blocks (MOBILENET_BLOCK_LAYERS, 1984). */
export type MobilenetVariant = 'flatten_1' | 'blocks';
const variantDim = (v: MobilenetVariant) => (v === 'blocks' ? MOBILENET_BLOCKS_DIM : MOBILENET_FEATURE_DIM);

/** What the cache needs to find or build the backbone: its file name, source hash and converter. */
function mobilenetRequest(opts: { dir?: string; log?: OnnxLog; variant?: MobilenetVariant }) {
  const variant = opts.variant ?? 'flatten_1';
  const artifacts = readMobilenetArtifacts();
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify(artifacts.modelTopology));
  hash.update(JSON.stringify(artifacts.weightSpecs));
  hash.update(new Uint8Array(artifacts.weightData as ArrayBuffer));
  const source = hash.digest('hex');
  return {
    base: `mobilenet_v2-${variant === 'blocks' ? 'blocks10-13-16' : MOBILENET_CUT_LAYER}-${source.slice(0, 16)}-c${KERAS_ONNX_CONVERTER_VERSION}`,
    source,
    converter: KERAS_ONNX_CONVERTER_VERSION,
    opset: ONNX_OPSET,
    what: 'ONNX MobileNetV2',
    from: 'the nsfwjs MobileNetV2',
    dir: opts.dir,
    log: opts.log,
    build: () => {
      const blocks = variant === 'blocks';
      const conv = kerasToOnnx(artifacts, {
        output: blocks ? MOBILENET_BLOCK_LAYERS[MOBILENET_BLOCK_LAYERS.length - 1]! : MOBILENET_CUT_LAYER,
        ...(blocks ? { pool: [...MOBILENET_BLOCK_LAYERS] } : {}),
        inputName: 'input',
        outputName: 'features',
        docString: `${blocks ? MOBILENET_BLOCKS_NAME : MOBILENET_EXTRACTOR_NAME}, converted from the nsfwjs Keras weights (sha256 ${source})`,
      });
      if (conv.outputShape.length !== 1 || conv.outputShape[0] !== variantDim(variant)) {
        throw new Error(`the converted MobileNetV2 outputs [N, ${conv.outputShape.join(', ')}], expected [N, ${variantDim(variant)}]`);
      }
      return conv.bytes;
    },
  };
}

/**
 * The converted backbone in the cache (`dir`, default modelCacheDir()), converted and written
 * atomically when it is missing or does not match its record; `rebuild` forces a new conversion.
 */
export function ensureMobilenetOnnx(opts: { dir?: string; log?: OnnxLog; rebuild?: string } = {}): Promise<MobilenetOnnxFile> {
  return ensureModelFile({ ...mobilenetRequest(opts), rebuild: opts.rebuild });
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
  /** flatten_1 (default) or the pooled blocks, L2-normalised. */
  variant?: MobilenetVariant;
}

/**
 * Loads the backbone on ONNX Runtime, on the device asked for (createOrtSession: CUDA when asked
 * or when its provider is installed and starts, else the CPU). Throws OrtNotInstalled (from
 * ort.ts) when onnxruntime-node is absent.
 */
export async function loadMobilenetOnnx(opts: MobilenetOnnxOptions = {}): Promise<MobilenetOnnx> {
  const ort = await loadOrt();
  const log = opts.log ?? defaultModelLog;
  const variant = opts.variant ?? 'flatten_1';
  const dim = variantDim(variant);
  const opened = await ensureCachedModel({ ...mobilenetRequest({ dir: opts.cacheDir, log, variant }), open: (file, l) => openSession(ort, file, opts, l, dim) });
  const { session, backend } = opened;
  const S = MOBILENET_INPUT_SIZE;
  const per = S * S * 3;
  async function embed(batch: Float32Array, n: number): Promise<Float32Array> {
    if (n <= 0) return new Float32Array(0);
    if (batch.length < n * per) throw new Error(`batch holds ${batch.length} floats, need ${n * per}`);
    const view = batch.length === n * per ? batch : batch.subarray(0, n * per);
    const out = (await session.run({ input: new ort.Tensor('float32', view, [n, S, S, 3]) })).features!;
    const rows = Float32Array.from(out.data);
    return variant === 'blocks' ? l2NormaliseRows(rows, n, dim) : rows;
  }
  return {
    name: variant === 'blocks' ? MOBILENET_BLOCKS_NAME : MOBILENET_EXTRACTOR_NAME,
    inputSize: S,
    featureDim: dim,
    backend,
    file: opened.file,
    embed,
    dispose: async () => {
      await session.release?.();
    },
  };
}

/** Creates the session and runs it once on a batch of two black images (the warm-up, and the check). */
async function openSession(ort: OrtModule, file: string, opts: MobilenetOnnxOptions, log: OnnxLog, dim: number): Promise<{ session: OrtSession; backend: string }> {
  const S = MOBILENET_INPUT_SIZE;
  return createOrtSession(ort, file, {
    device: opts.device,
    threads: opts.threads,
    log,
    async check(session) {
      const res: Record<string, OrtTensor> = await session.run({ input: new ort.Tensor('float32', new Float32Array(2 * S * S * 3), [2, S, S, 3]) });
      const t = res.features;
      if (!t || t.dims.length !== 2 || t.dims[0] !== 2 || t.dims[1] !== dim) {
        throw new Error(`its output is [${t?.dims.join(', ') ?? ''}], expected [2, ${dim}]`);
      }
      if (!t.data.every(Number.isFinite)) throw new Error('its output is not finite on a black image');
    },
  });
}
