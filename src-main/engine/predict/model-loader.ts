// Inference from a trained run: the run's config (label space, heads shape), one of its
// checkpoints (best by default), and a backbone: for a `heads` run the stock MobileNetV2 feature
// extractor (1280-d) on ONNX Runtime or tfjs (`runtime`, as for feature extraction; both give the
// same features) with the trained heads on top on tfjs; for a `finetune` run the backbone named in
// config.json with its fine-tuned weights from the checkpoint, on tfjs whatever the runtime.
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { initBackend, type BackendInfo } from '../ml/backend.ts';
import { loadMobilenetBackbone, MOBILENET_FEATURE_DIM, type MobilenetBackbone } from '../ml/mobilenet.ts';
import { FEATURE_RUNTIMES, ORT_RUNTIME_HELP, type FeatureRuntime } from '../filter/extract.ts';
import { readCheckpoint } from '../train/checkpoint.ts';
import { makeModelLabels } from '../train/labels.ts';
import { tinyCnnBackbone, type Heads } from '../train/model.ts';
import { buildRunHeads, loadRunConfig, type CheckpointMeta, type RunConfigFile } from '../train/trainer.ts';
import { UserError } from '../workspace/errors.ts';
import type { MakeModelProb, Prediction, Prob } from '../api/contract/predict.ts';
import { decodeImage, type DecodeOptions } from './decode-file.ts';

export interface Predictor {
  runDir: string;
  checkpoint: string;
  mode: 'heads' | 'finetune';
  /** The tf backend the heads (and a finetune run's backbone) run on. */
  backend: BackendInfo;
  /** Where the backbone runs: 'onnx' (ONNX Runtime) or 'tfjs'. */
  runtime: 'onnx' | 'tfjs';
  /** What predicts, for logs and results, e.g. 'onnxruntime cpu (2 threads)', 'tfjs wasm'. */
  backendName: string;
  inputSize: number;
  /** Predicts from preprocessed inputs: n * S*S*3 float32 (decodeImage's layout). */
  predictInputs(batch: Float32Array, n: number, full?: FullMakeModels): Promise<Prediction[]>;
  /**
   * A `heads` run only (null for finetune): predicts from n rows of the stock MobileNetV2
   * features (n * 1280 float32), e.g. the workspace's feature cache, without running the backbone.
   */
  predictFeatures: ((features: Float32Array, n: number, full?: FullMakeModels) => Promise<Prediction[]>) | null;
  /** Make/model labels in class order (the order of FullMakeModels rows). */
  makeModelLabels: string[];
  /** Decodes (files or bytes) and predicts; a file that fails throws (use decodeImage to handle them one by one). */
  predictBatch(images: Array<string | Buffer>, opts?: DecodeOptions): Promise<Prediction[]>;
  dispose(): void;
}

/** Receives every image's whole make/model distribution when passed to predictInputs. */
export type FullMakeModels = number[][];

const TOP_MAKE_MODELS = 5;
const TOP_YEARS = 3;

export interface LoadPredictorOptions {
  checkpoint?: string;
  backend?: BackendInfo;
  /**
   * Where a heads run's MobileNetV2 runs: 'auto' (the default; $CARSTUDIO_FEATURE_RUNTIME when
   * set): ONNX Runtime when onnxruntime-node loads, else tfjs; 'onnx' fails with a UserError where
   * it is not installed. A finetune run's backbone always runs on tfjs.
   */
  runtime?: FeatureRuntime;
  /** ONNX Runtime's CPU threads (default: os.availableParallelism()). */
  threads?: number;
  log?(level: 'info' | 'warn', message: string): void;
}

/** The backbone of a heads run: embeds n * S*S*3 inputs into n rows of features. */
interface HeadsBackbone {
  runtime: 'onnx' | 'tfjs';
  backendName: string;
  inputSize: number;
  /** On tfjs, inside the caller's tidy; on ONNX Runtime, features computed beforehand. */
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
  dispose(): void;
}

/**
 * Loads a run for inference. `checkpoint` is a name in the run folder (best, last, ...) or a path
 * to a .ckpt file; default best, else last.
 */
export async function loadPredictor(runDir: string, opts: LoadPredictorOptions = {}): Promise<Predictor> {
  const cfg = await loadRunConfig(runDir);
  const backend = opts.backend ?? (await initBackend());
  const tf = backend.tf;
  const { file, name } = await checkpointFile(runDir, opts.checkpoint);
  const ckpt = await readCheckpoint<CheckpointMeta>(file);
  const heads = buildRunHeads(tf, cfg.config, cfg.space, cfg.featureDim);
  let embed: ((x: TF.Tensor4D) => TF.Tensor2D) | null = null;
  let headsBackbone: HeadsBackbone | null = null;
  let inputSize: number;
  let disposeBackbone: () => void;
  let runtime: 'onnx' | 'tfjs' = 'tfjs';
  let backendName: string;
  try {
    restoreHeads(tf, heads, ckpt.tensors);
    if (cfg.config.mode === 'heads') {
      if (cfg.featureDim !== MOBILENET_FEATURE_DIM)
        throw new UserError(`run ${path.basename(runDir)} was trained on ${cfg.featureDim}-d features; prediction supports the ${MOBILENET_FEATURE_DIM}-d MobileNetV2 features`);
      const hb = await loadHeadsBackbone(backend, opts);
      headsBackbone = hb;
      runtime = hb.runtime;
      backendName = hb.backendName;
      inputSize = hb.inputSize;
      disposeBackbone = () => hb.dispose();
    } else {
      backendName = `tfjs ${backend.name} (fine-tuned backbone from the checkpoint, on tfjs only)`;
      if (opts.runtime === 'onnx') (opts.log ?? warnOnStderr)('info', `run ${path.basename(runDir)} is fine-tuned: its backbone runs on tfjs ${backend.name}, not ONNX Runtime`);
      const bb = await finetunedBackbone(tf, cfg);
      const weights = bb.model.weights.map((w, i) => {
        const t = ckpt.tensors.get(`backbone.w/${i}`);
        if (!t) throw new UserError(`checkpoint ${file} lacks backbone weight ${i}`);
        return tf.tensor(t.data, t.shape);
      });
      bb.model.setWeights(weights);
      weights.forEach((w) => w.dispose());
      embed = (x) => bb.model.predict(x) as TF.Tensor2D;
      inputSize = bb.inputSize;
      disposeBackbone = () => bb.model.dispose();
    }
  } catch (e) {
    heads.dispose();
    throw e;
  }

  const labels = {
    price: cfg.space.priceBins,
    makeModel: makeModelLabels(cfg.space),
    makeModelParts: [...cfg.space.makeModels.map((c) => ({ make: c.make, model: c.model })), { make: 'Unknown', model: '' }],
    years: cfg.space.years,
    scale: cfg.space.medianPriceScale,
  };
  const per = inputSize * inputSize * 3;

  async function predictInputs(batch: Float32Array, n: number, full?: FullMakeModels): Promise<Prediction[]> {
    if (n <= 0) return [];
    if (batch.length < n * per) throw new Error(`batch holds ${batch.length} floats, need ${n * per}`);
    if (headsBackbone) {
      const feats = await headsBackbone.embed(batch, n);
      return predictFeatures(feats, n, full);
    }
    return predictions(n, full, () => embed!(tf.tensor4d(batch.subarray(0, n * per), [n, inputSize, inputSize, 3])));
  }

  async function predictFeatures(features: Float32Array, n: number, full?: FullMakeModels): Promise<Prediction[]> {
    if (n <= 0) return [];
    const dim = cfg.featureDim;
    if (features.length < n * dim) throw new Error(`features hold ${features.length} floats, need ${n * dim}`);
    return predictions(n, full, () => tf.tensor2d(features.subarray(0, n * dim), [n, dim]));
  }

  /** The heads on the features `feats` makes (inside a tidy), as Predictions. */
  async function predictions(n: number, full: FullMakeModels | undefined, feats: () => TF.Tensor2D): Promise<Prediction[]> {
    const outs = tf.tidy(() => {
      const o = heads.forward(feats(), false);
      return [tf.softmax(o.price), o.median, tf.softmax(o.makeModel), tf.softmax(o.year)] as TF.Tensor[];
    });
    try {
      const [price, median, mm, year] = (await Promise.all(outs.map((t) => t.data()))) as Float32Array[];
      const np = labels.price.length;
      const nm = labels.makeModel.length;
      const ny = labels.years.length;
      const result: Prediction[] = [];
      for (let i = 0; i < n; i++) {
        const pb = normalise(price.subarray(i * np, (i + 1) * np));
        const mp = normalise(mm.subarray(i * nm, (i + 1) * nm));
        const yp = normalise(year.subarray(i * ny, (i + 1) * ny));
        full?.push(mp);
        const years: Prob[] = yp.map((p, j) => ({ label: labels.years[j], p }));
        const makeModels: MakeModelProb[] = topK(mp, TOP_MAKE_MODELS).map((j) => ({
          label: labels.makeModel[j],
          make: labels.makeModelParts[j].make,
          model: labels.makeModelParts[j].model,
          p: mp[j],
        }));
        result.push({
          priceBins: pb.map((p, j) => ({ label: labels.price[j], p })),
          medianPrice: Math.round(median[i] * labels.scale * 100) / 100,
          makeModels,
          years,
          topYears: topK(yp, TOP_YEARS).map((j) => years[j]),
        });
      }
      return result;
    } finally {
      outs.forEach((t) => t.dispose());
    }
  }

  return {
    runDir,
    checkpoint: name,
    mode: cfg.config.mode,
    backend,
    runtime,
    backendName,
    inputSize,
    predictInputs,
    predictFeatures: cfg.config.mode === 'heads' ? predictFeatures : null,
    makeModelLabels: labels.makeModel,
    async predictBatch(images, dopts = {}) {
      const decoded = await Promise.all(images.map((im) => decodeImage(im, { ...dopts, size: inputSize })));
      const batch = new Float32Array(decoded.length * per);
      decoded.forEach((d, i) => batch.set(d.input, i * per));
      return predictInputs(batch, decoded.length);
    },
    dispose() {
      heads.dispose();
      disposeBackbone();
    },
  };
}

function warnOnStderr(level: 'info' | 'warn', message: string): void {
  process.stderr.write(`${level === 'warn' ? 'warning: ' : ''}${message}\n`);
}

/**
 * A heads run's MobileNetV2 on the runtime asked for. The predictor owns it (its dispose releases
 * the ONNX Runtime session or the tfjs model), so it is loaded here rather than taken from
 * mobilenetExtractor's per-process cache, which other users of the process share; the choice of
 * runtime, its fallback and its messages are mobilenetExtractor's.
 */
async function loadHeadsBackbone(backend: BackendInfo, opts: LoadPredictorOptions): Promise<HeadsBackbone> {
  const env = process.env.CARSTUDIO_FEATURE_RUNTIME;
  const asked = opts.runtime ?? 'auto';
  const runtime: FeatureRuntime = asked === 'auto' && env && (FEATURE_RUNTIMES as readonly string[]).includes(env) ? (env as FeatureRuntime) : asked;
  const log = opts.log ?? warnOnStderr;
  if (runtime !== 'tfjs') {
    const { loadMobilenetOnnx } = await import('../ml/mobilenet-onnx.ts');
    const { OrtNotInstalled, ORT_INSTALL_STEPS } = await import('../ml/ort.ts');
    try {
      const m = await loadMobilenetOnnx({ threads: opts.threads, log });
      return {
        runtime: 'onnx',
        backendName: m.backend,
        inputSize: m.inputSize,
        embed: (batch, n) => m.embed(batch, n),
        dispose: () => void m.dispose().catch(() => undefined),
      };
    } catch (e) {
      if (runtime === 'onnx') {
        if (e instanceof OrtNotInstalled) throw new UserError(`${ORT_RUNTIME_HELP}${ORT_INSTALL_STEPS}; or use --runtime tfjs.`);
        throw e;
      }
      if (!(e instanceof OrtNotInstalled))
        log('warn', `ONNX Runtime could not run the MobileNetV2 (${(e instanceof Error ? e.message : String(e)).split('\n')[0]}); using tfjs instead`);
    }
  }
  const mb: MobilenetBackbone = await loadMobilenetBackbone(backend.tf);
  return { runtime: 'tfjs', backendName: `tfjs ${backend.name}`, inputSize: mb.inputSize, embed: (batch, n) => mb.embed(batch, n), dispose: () => mb.dispose() };
}

async function checkpointFile(runDir: string, checkpoint?: string): Promise<{ file: string; name: string }> {
  const fs = await import('node:fs');
  if (checkpoint && (checkpoint.includes('/') || checkpoint.includes('\\') || checkpoint.endsWith('.ckpt'))) {
    const file = path.resolve(runDir, checkpoint);
    if (!fs.existsSync(file)) throw new UserError(`checkpoint ${file} does not exist`);
    return { file, name: path.basename(file, '.ckpt') };
  }
  const names = checkpoint ? [checkpoint] : ['best', 'last'];
  for (const n of names) {
    const file = path.join(runDir, `${n}.ckpt`);
    if (fs.existsSync(file)) return { file, name: n };
  }
  throw new UserError(`run ${runDir} has no ${names.join(' or ')} checkpoint`);
}

function restoreHeads(tf: BackendInfo['tf'], heads: Heads, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
  tf.tidy(() => {
    for (const [k, v] of heads.vars) {
      const t = tensors.get(`heads/${k}`);
      if (!t) throw new UserError(`checkpoint lacks heads/${k}`);
      if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i]))
        throw new UserError(`checkpoint heads/${k} has shape [${t.shape}], the run's model [${v.shape}]`);
      v.assign(tf.tensor(t.data, t.shape));
    }
  });
}

async function finetunedBackbone(tf: BackendInfo['tf'], cfg: RunConfigFile): Promise<{ model: TF.LayersModel; inputSize: number }> {
  const name = cfg.backbone ?? '';
  const tiny = /^tiny-cnn-(\d+)px-(\d+)ch$/.exec(name);
  if (tiny) {
    const bb = tinyCnnBackbone(tf, { inputSize: Number(tiny[1]), channels: Number(tiny[2]) });
    return { model: bb.model, inputSize: bb.inputSize };
  }
  if (cfg.featureDim === MOBILENET_FEATURE_DIM) {
    const mb = await loadMobilenetBackbone(tf);
    return { model: mb.model, inputSize: mb.inputSize };
  }
  throw new UserError(`unknown fine-tuned backbone '${name}'`);
}

/** Float64 copy scaled to sum exactly to 1 (softmax in float32 is off by ~1e-7). */
function normalise(p: Float32Array): number[] {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i];
  return Array.from(p, (v) => v / s);
}

function topK(p: number[], k: number): number[] {
  return p
    .map((v, i) => [v, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}
