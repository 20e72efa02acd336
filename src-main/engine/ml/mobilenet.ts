// The MobileNetV2 (alpha 1.0, 224x224) that ships inside the npm package nsfwjs, loaded offline
// from the package's files and cut at its 1280-d pooled layer (`flatten_1`, after the 7x7
// average pool of `out_relu`). The package stores the Keras layers model as two browserify
// bundles (`model.min.js`: topology + weight manifest, `group1-shard1of1.min.js`: the weights
// as a base64 string). We evaluate each bundle in an empty `node:vm` context (no require, no
// globals, no network) to take its `module.exports`, and hand the result to tf.io.fromMemory.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import type * as TF from '@tensorflow/tfjs';
import type { TfModule } from './backend.ts';

export const MOBILENET_INPUT_SIZE = 224;
export const MOBILENET_FEATURE_DIM = 1280;
export const MOBILENET_CUT_LAYER = 'flatten_1';
/** Name under which features from this backbone are cached. */
export const MOBILENET_EXTRACTOR_NAME = 'nsfwjs-mobilenet_v2/flatten_1';
/**
 * The blocks pooled by the `mobilenet_v2-blocks` features: block 10's output (96 channels, still
 * ImageNet weights), block 13's expansion (576) and block 16's output (320), each by its mean and
 * its max over the image: 1984 values, L2-normalised as one vector.
 */
export const MOBILENET_BLOCK_LAYERS = ['block_10_project_BN', 'block_13_expand_relu', 'block_16_project_BN'] as const;
export const MOBILENET_BLOCKS_DIM = 2 * (96 + 576 + 320);
export const MOBILENET_BLOCKS_NAME = 'nsfwjs-mobilenet_v2/blocks10-13-16-meanmax';

/** Scales each row of n x dim to unit length in place (a zero row stays zero). */
export function l2NormaliseRows(rows: Float32Array, n: number, dim: number): Float32Array {
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += rows[i * dim + d]! * rows[i * dim + d]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let d = 0; d < dim; d++) rows[i * dim + d]! *= inv;
  }
  return rows;
}

/**
 * The pooled-blocks features on the current tf backend (the tfjs fallback of the ONNX graph):
 * the same layers, pooled by mean and max, L2-normalised.
 */
export async function loadMobilenetBlocks(tf: TfModule): Promise<MobilenetBackbone> {
  const full = await tf.loadLayersModel(tf.io.fromMemory(readMobilenetArtifacts()));
  const outs = MOBILENET_BLOCK_LAYERS.map((n) => full.getLayer(n).output as TF.SymbolicTensor);
  const model = tf.model({ inputs: full.inputs, outputs: outs });
  const S = MOBILENET_INPUT_SIZE;
  const per = S * S * 3;
  async function embed(batch: Float32Array, n: number): Promise<Float32Array> {
    if (n <= 0) return new Float32Array(0);
    const view = batch.length === n * per ? batch : batch.subarray(0, n * per);
    const pooled = tf.tidy(() => {
      const ys = model.predict(tf.tensor4d(view, [n, S, S, 3])) as TF.Tensor[];
      return tf.concat(ys.flatMap((y) => [tf.mean(y, [1, 2]), tf.max(y, [1, 2])]), 1);
    });
    try {
      return l2NormaliseRows(Float32Array.from((await pooled.data()) as Float32Array), n, MOBILENET_BLOCKS_DIM);
    } finally {
      pooled.dispose();
    }
  }
  await embed(new Float32Array(per), 1);
  return { model, full, name: MOBILENET_BLOCKS_NAME, inputSize: S, featureDim: MOBILENET_BLOCKS_DIM, embed, dispose: () => full.dispose() };
}

export interface MobilenetBackbone {
  /** The backbone, input [N,224,224,3] RGB in [0,1] (see decodeForModel), output [N, featureDim] (1280 at flatten_1). */
  model: TF.LayersModel;
  /** The whole nsfwjs model (backbone + its 5-class head), for layer inspection or fine-tuning. */
  full: TF.LayersModel;
  name: string;
  inputSize: 224;
  featureDim: number;
  /** batch: N*224*224*3 float32 NHWC, already preprocessed (pixel / 255). Returns N*1280. */
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
  dispose(): void;
}

interface KerasModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: TF.io.WeightsManifestEntry[] }[];
}

const require = createRequire(import.meta.url);

/** Directory of the nsfwjs package (its `exports` map hides the model files from require). */
export function nsfwjsModelDir(): string {
  let dir = path.dirname(require.resolve('nsfwjs'));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      const name = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name;
      if (name === 'nsfwjs') return path.join(dir, 'dist', 'models', 'mobilenet_v2');
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('could not find the nsfwjs package directory');
    dir = up;
  }
}

function evalBundle(file: string): unknown {
  const source = fs.readFileSync(file, 'utf8');
  const module = { exports: {} as unknown };
  vm.runInNewContext(source, { module, exports: module.exports }, { filename: file, timeout: 30_000 });
  // Objects made in another realm fail tfjs's iterable checks: copy them into this realm.
  return typeof module.exports === 'string' ? module.exports : JSON.parse(JSON.stringify(module.exports));
}

/** Reads the model artifacts from the package files (offline). */
export function readMobilenetArtifacts(): TF.io.ModelArtifacts {
  const dir = nsfwjsModelDir();
  const json = evalBundle(path.join(dir, 'model.min.js')) as KerasModelJson;
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`unexpected content in ${path.join(dir, 'model.min.js')}`);
  }
  const chunks: Buffer[] = [];
  const weightSpecs: TF.io.WeightsManifestEntry[] = [];
  for (const group of json.weightsManifest) {
    for (const p of group.paths) {
      const b64 = evalBundle(path.join(dir, `${p}.min.js`));
      if (typeof b64 !== 'string') throw new Error(`weight bundle ${p}.min.js did not hold a base64 string`);
      chunks.push(Buffer.from(b64, 'base64'));
    }
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(chunks);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return { modelTopology: json.modelTopology, weightSpecs, weightData, format: 'layers-model' };
}

/**
 * Loads the backbone on the current tf backend (call initBackend first) and warms it up.
 */
export async function loadMobilenetBackbone(tf: TfModule): Promise<MobilenetBackbone> {
  const full = await tf.loadLayersModel(tf.io.fromMemory(readMobilenetArtifacts()));
  let cut: TF.layers.Layer;
  try {
    cut = full.getLayer(MOBILENET_CUT_LAYER);
  } catch {
    throw new Error(
      `layer ${MOBILENET_CUT_LAYER} not found; layers end with: ${full.layers
        .slice(-10)
        .map((l) => l.name)
        .join(', ')}`,
    );
  }
  const model = tf.model({ inputs: full.inputs, outputs: cut.output as TF.SymbolicTensor });
  const outShape = model.outputs[0].shape;
  if (outShape.length !== 2 || outShape[1] !== MOBILENET_FEATURE_DIM) {
    throw new Error(`cut layer output shape ${JSON.stringify(outShape)}, expected [null, ${MOBILENET_FEATURE_DIM}]`);
  }
  const S = MOBILENET_INPUT_SIZE;
  const per = S * S * 3;

  async function embed(batch: Float32Array, n: number): Promise<Float32Array> {
    if (n <= 0) return new Float32Array(0);
    if (batch.length < n * per) throw new Error(`batch holds ${batch.length} floats, need ${n * per}`);
    const view = batch.length === n * per ? batch : batch.subarray(0, n * per);
    const out = tf.tidy(() => model.predict(tf.tensor4d(view, [n, S, S, 3])) as TF.Tensor);
    try {
      const data = (await out.data()) as Float32Array;
      return data.length === n * MOBILENET_FEATURE_DIM ? data : data.slice(0, n * MOBILENET_FEATURE_DIM);
    } finally {
      out.dispose();
    }
  }

  // Warm-up: the first predict compiles kernels and allocates.
  await embed(new Float32Array(per), 1);

  return {
    model,
    full,
    name: MOBILENET_EXTRACTOR_NAME,
    inputSize: 224,
    featureDim: 1280,
    embed,
    dispose: () => full.dispose(),
  };
}
