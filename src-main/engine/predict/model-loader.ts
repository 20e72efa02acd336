// Inference from a trained run: the run's config (label space, heads shape), one of its
// checkpoints (best by default), and a backbone: for a `heads` run the feature extractor it was
// trained on (config.json `extractor`; mobilenet_v2, the 1280-d MobileNetV2, for runs from before
// it was recorded) on ONNX Runtime or tfjs (`runtime`, as for feature extraction) with the trained
// heads on top on tfjs; for a `finetune` run the backbone named in config.json with its fine-tuned
// weights from the checkpoint, on tfjs whatever the runtime. Every photo predicted also says where
// the car is (Prediction.car): a car-v1 run reads it from the photo's feature row, any other run
// runs the COCO car detector on the photo beside the model, batched.
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { initBackend, type BackendInfo } from '../ml/backend.ts';
import { loadMobilenetBackbone, MOBILENET_FEATURE_DIM, type MobilenetBackbone } from '../ml/mobilenet.ts';
import { FEATURE_RUNTIMES, ORT_RUNTIME_HELP, type FeatureExtractor, type FeatureRuntime } from '../filter/extract.ts';
import { dimOf, EXTRACTORS, loadExtractor, type ExtractorName } from '../filter/features.ts';
import { carInDetections, carInRow, CAR_V1_DIM, type CarInPhoto } from '../filter/car-features.ts';
import { DETECTOR_INPUT_SIZE, loadCarDetector, type CarDetector } from '../ml/car-detector.ts';
import { readCheckpoint } from '../train/checkpoint.ts';
import { makeModelLabels } from '../train/labels.ts';
import { medianDollars, medianHeadOf, tinyCnnBackbone, type Heads } from '../train/model.ts';
import { checkpointStamp, readCalibration, type CalibratedHead } from '../train/calibrate.ts';
import { binPrice } from './bin-price.ts';
import { buildRunHeads, loadRunConfig, runExtractor, type CheckpointMeta, type RunConfigFile } from '../train/trainer.ts';
import { UserError } from '../workspace/errors.ts';
import type { MakeModelProb, PredictCar, Prediction, PredictHead, PredictionTrust, PredictionWarning, Prob } from '../api/contract/predict.ts';
import { decodeImage, type DecodedImage, type DecodeOptions } from './decode-file.ts';
import { createTrust, type TrustAssessor, type TrustOptions } from './trust.ts';

/** One photo decoded for Predictor.predictPhotos (Predictor.decodePhoto). */
export interface DecodedPhoto extends DecodedImage {
  /** The model's input: inputFloats floats. */
  input: Float32Array;
}

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
  /** A heads run's feature extractor (config.json; mobilenet_v2 for older runs), null for finetune. */
  extractor: ExtractorName | null;
  /**
   * Floats per model input: S*S*3 (decodeImage's layout), or for a car-v1 run S*S*3 followed by
   * the detector's view of the photo (DETECTOR_INPUT_SIZE^2*3, RGB 0-255; `detectorView`).
   */
  inputFloats: number;
  /** The model input carries the detector's view after the S*S*3 input (car-v1 runs). */
  detectorView: boolean;
  /**
   * Predicts from preprocessed inputs: n * inputFloats float32. The car (Prediction.car) is known
   * for car-v1 runs only (from the features); use predictPhotos for whole photos.
   */
  predictInputs(batch: Float32Array, n: number, full?: FullMakeModels): Promise<Prediction[]>;
  /** Decodes one photo (file or bytes) for predictPhotos; throws ImageFileError with the reason. */
  decodePhoto(input: string | Buffer, opts?: Omit<DecodeOptions, 'size' | 'detectorSize'>): Promise<DecodedPhoto>;
  /**
   * Predicts decoded photos, each with where the car is (the detector runs once for the batch)
   * and what it knows of its reliability (Prediction.trust: the junk filter's score, the distance
   * to the training photos, warnings; predict/trust.ts).
   */
  predictPhotos(photos: readonly DecodedPhoto[], full?: FullMakeModels): Promise<Prediction[]>;
  /** What finds the car: 'features' (car-v1 rows), the detector's backend, or 'none' (it could not load). */
  carSource: string;
  /** The junk filter model whole-photo predictions are scored by, null without one. */
  filterModelId: number | null;
  /**
   * A `heads` run only (null for finetune): predicts from n rows of the run's features
   * (n * featureDim float32), e.g. the workspace's feature cache, without running the backbone.
   */
  predictFeatures: ((features: Float32Array, n: number, full?: FullMakeModels) => Promise<Prediction[]>) | null;
  /** Make/model labels in class order (the order of FullMakeModels rows). */
  makeModelLabels: string[];
  /** The temperatures applied to the classification heads (calibration.json of this checkpoint), or null: raw probabilities. */
  temperatures: Record<CalibratedHead, number> | null;
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
  /** The workspace the run belongs to (where clip-vit-b16 finds its weights); default: the run folder's grandparent. */
  workspaceDir?: string;
  /** ONNX Runtime's CPU threads (default: os.availableParallelism()). */
  threads?: number;
  /**
   * Apply the run's calibration (temperatures of calibration.json, when its stamp matches the
   * checkpoint loaded); default true. false: the heads' raw probabilities (to calibrate them).
   */
  calibration?: boolean;
  /**
   * The workspace's junk filter and the run's distance reference for whole-photo predictions
   * (predict/trust.ts); absent (a run folder without its workspace): no filter score, no distance.
   */
  trust?: Omit<TrustOptions, 'log'>;
  log?(level: 'info' | 'warn', message: string): void;
}

/** The backbone of a heads run: embeds n * inputFloats inputs into n rows of features. */
interface HeadsBackbone {
  runtime: 'onnx' | 'tfjs';
  backendName: string;
  inputSize: number;
  inputFloats: number;
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
  let extractor: ExtractorName | null = null;
  let inputFloats = 0;
  try {
    restoreHeads(tf, heads, ckpt.tensors);
    if (cfg.config.mode === 'heads') {
      extractor = headsExtractor(runDir, cfg);
      const hb = extractor === 'mobilenet_v2' ? await loadHeadsBackbone(backend, opts) : await loadOtherBackbone(extractor, runDir, opts);
      headsBackbone = hb;
      inputFloats = hb.inputFloats;
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
  const per = inputSize * inputSize * 3;
  if (!inputFloats) inputFloats = per;
  const detectorView = extractor === 'car-v1';
  const log = opts.log ?? warnOnStderr;
  // The detector for runs whose features do not say where the car is; a detector that cannot
  // load leaves the car unknown (null), never the prediction undone.
  let detector: CarDetector | null = null;
  let carSource = 'features';
  if (!detectorView) {
    try {
      detector = await loadCarDetector({ runtime: opts.runtime === 'tfjs' ? 'tfjs' : 'auto', threads: opts.threads, log });
      carSource = detector.backend;
    } catch (e) {
      carSource = 'none';
      log('warn', `the car detector could not be loaded (${(e instanceof Error ? e.message : String(e)).split('\n')[0]}); predictions will not say where the car is`);
    }
  }

  const temperatures = opts.calibration === false ? null : calibrationFor(runDir, name, file, log);
  const medianHead = medianHeadOf(cfg.config);
  const untrained = untrainedHeadsOf(cfg);

  const labels = {
    price: cfg.space.priceBins,
    makeModel: makeModelLabels(cfg.space),
    makeModelParts: [...cfg.space.makeModels.map((c) => ({ make: c.make, model: c.model })), { make: 'Unknown', model: '' }],
    years: cfg.space.years,
    scale: cfg.space.medianPriceScale,
  };

  async function predictInputs(batch: Float32Array, n: number, full?: FullMakeModels): Promise<Prediction[]> {
    if (n <= 0) return [];
    if (batch.length < n * inputFloats) throw new Error(`batch holds ${batch.length} floats, need ${n * inputFloats}`);
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
    const cars = extractor === 'car-v1' ? Array.from({ length: n }, (_, i) => carOf(carInRow(features, i * dim))) : null;
    return predictions(n, full, () => tf.tensor2d(features.subarray(0, n * dim), [n, dim]), cars);
  }

  async function decodePhoto(input: string | Buffer, dopts: Omit<DecodeOptions, 'size' | 'detectorSize'> = {}): Promise<DecodedPhoto> {
    const d = await decodeImage(input, { ...dopts, size: inputSize, detectorSize: detectorView || detector ? DETECTOR_INPUT_SIZE : undefined });
    if (!detectorView) return d;
    const joined = new Float32Array(inputFloats);
    joined.set(d.input, 0);
    joined.set(d.det!, per);
    return { ...d, input: joined, det: undefined };
  }

  const trust: TrustAssessor = createTrust(cfg, { ...opts.trust, log });

  async function predictPhotos(photos: readonly DecodedPhoto[], full?: FullMakeModels): Promise<Prediction[]> {
    const n = photos.length;
    if (n === 0) return [];
    const batch = new Float32Array(n * inputFloats);
    photos.forEach((ph, i) => batch.set(ph.input, i * inputFloats));
    // a heads run's features are kept: the junk filter and the distance reference read them too
    const features = headsBackbone ? await headsBackbone.embed(batch, n) : null;
    const preds = features ? await predictFeatures(features, n, full) : await predictInputs(batch, n, full);
    if (detector) {
      const D = DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3;
      const views = new Float32Array(n * D);
      photos.forEach((ph, i) => {
        if (!ph.det) throw new Error('decodePhoto made this photo without the detector view');
        views.set(ph.det, i * D);
      });
      const dets = await detector.detect(views, n);
      preds.forEach((p, i) => (p.car = carOf(carInDetections(dets[i] ?? []))));
    }
    await trust.assess(preds, { photos, features, extractor, inputSize, detectorView, inputFloats });
    return preds;
  }

  /**
   * The heads on the features `feats` makes (inside a tidy), as Predictions (`cars` per image when
   * known): the classification heads' logits divided by the calibration's temperatures, the median
   * in dollars (never negative), the bins' own price, and the base of what each prediction knows of
   * its reliability (untrained heads, a clipped median; predictPhotos adds the rest).
   */
  async function predictions(n: number, full: FullMakeModels | undefined, feats: () => TF.Tensor2D, cars: PredictCar[] | null = null): Promise<Prediction[]> {
    const T = temperatures ?? { price: 1, makeModel: 1, year: 1 };
    const outs = tf.tidy(() => {
      const o = heads.forward(feats(), false);
      const scaled = (logits: TF.Tensor2D, t: number): TF.Tensor2D => (t === 1 ? logits : tf.div(logits, t));
      return [tf.softmax(scaled(o.price, T.price)), o.median, tf.softmax(scaled(o.makeModel, T.makeModel)), tf.softmax(scaled(o.year, T.year))] as TF.Tensor[];
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
        const med = medianDollars(median[i], medianHead, labels.scale);
        result.push({
          priceBins: pb.map((p, j) => ({ label: labels.price[j], p })),
          medianPrice: med.dollars,
          binPrice: binPrice(pb),
          calibrated: temperatures !== null,
          trust: baseTrust(untrained, med.clipped ? Math.round(median[i] * labels.scale) : null),
          makeModels,
          years,
          topYears: topK(yp, TOP_YEARS).map((j) => years[j]),
          car: cars?.[i] ?? null,
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
    extractor,
    inputFloats,
    detectorView,
    carSource,
    filterModelId: trust.filterModelId,
    predictInputs,
    decodePhoto,
    predictPhotos,
    predictFeatures: cfg.config.mode === 'heads' ? predictFeatures : null,
    makeModelLabels: labels.makeModel,
    temperatures,
    async predictBatch(images, dopts = {}) {
      const decoded = await Promise.all(images.map((im) => decodePhoto(im, { maxPixels: dopts.maxPixels })));
      return predictPhotos(decoded);
    },
    dispose() {
      trust.dispose();
      heads.dispose();
      disposeBackbone();
    },
  };
}

/**
 * The temperatures of the run's calibration.json when it calibrated this very checkpoint file
 * (same name, size and sha256); a stale one (the checkpoint was written again since) is ignored
 * with a log line. null: no calibration applies.
 */
function calibrationFor(runDir: string, checkpoint: string, file: string, log: (level: 'info' | 'warn', m: string) => void): Record<CalibratedHead, number> | null {
  const cal = readCalibration(runDir);
  if (!cal || cal.checkpoint !== checkpoint) return null;
  const stamp = checkpointStamp(file);
  if (stamp.size !== cal.stamp.size || stamp.sha256 !== cal.stamp.sha256) {
    log('warn', `run ${path.basename(runDir)}'s calibration is of an earlier ${checkpoint} checkpoint and is not applied; run carstudio calibrate --run ${path.basename(runDir)} to calibrate this one`);
    return null;
  }
  return { ...cal.temperatures };
}

const HEAD_WORDS: Record<PredictHead, string> = { price: 'price-bin', median: 'median-price', makeModel: 'make/model', year: 'year' };
const HEAD_OUTPUT: Record<PredictHead, string> = { price: 'price bins', median: 'median price', makeModel: 'make/model', year: 'year' };

/** The heads of a run that never trained (config.json heads: loss weight 0 or no labels; runs without that record: none). */
function untrainedHeadsOf(cfg: RunConfigFile): Array<{ head: PredictHead; reason: string }> {
  if (!cfg.heads) return [];
  return (Object.keys(HEAD_WORDS) as PredictHead[]).filter((h) => cfg.heads![h] && !cfg.heads![h].trains).map((h) => ({ head: h, reason: cfg.heads![h].reason ?? 'not trained' }));
}

/** A prediction's trust before the filter and the distance to the training data are known. */
function baseTrust(untrained: Array<{ head: PredictHead; reason: string }>, clippedFrom: number | null): PredictionTrust {
  const warnings: PredictionWarning[] = untrained.map(({ head, reason }) => ({
    code: 'untrained',
    message: `the ${HEAD_WORDS[head]} head of this run never trained (${reason}): its ${HEAD_OUTPUT[head]} ${head === 'price' ? 'are' : 'is'} meaningless`,
  }));
  if (clippedFrom !== null) {
    warnings.push({
      code: 'clipped',
      message: `the median-price head said $${clippedFrom.toLocaleString('en-US')}, a negative price (this run was trained before the head predicted log-price); shown as $0`,
    });
  }
  return { filter: null, ood: null, untrained: untrained.map((u) => u.head), warnings };
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
        inputFloats: m.inputSize * m.inputSize * 3,
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
  return { runtime: 'tfjs', backendName: `tfjs ${backend.name}`, inputSize: mb.inputSize, inputFloats: mb.inputSize * mb.inputSize * 3, embed: (batch, n) => mb.embed(batch, n), dispose: () => mb.dispose() };
}

/** The extractor a heads run's features came from, checked against the run's feature size. */
function headsExtractor(runDir: string, cfg: RunConfigFile): ExtractorName {
  const name = runExtractor(cfg);
  const run = path.basename(runDir);
  if (!(EXTRACTORS as readonly string[]).includes(name))
    throw new UserError(`run ${run} was trained on '${name}' features, which this CarStudio does not know (it knows ${EXTRACTORS.join(', ')})`);
  const ex = name as ExtractorName;
  if (cfg.featureDim !== dimOf(ex))
    throw new UserError(`run ${run} says it was trained on ${ex} features, but its model takes ${cfg.featureDim} values per photo and ${ex} gives ${dimOf(ex)}; the run's config.json does not match its model`);
  return ex;
}

/**
 * A heads run's extractor other than mobilenet_v2 (car-v1, mobilenet_v2-blocks, clip-vit-b16),
 * as feature extraction loads it: the same features the run was trained on. Those models are
 * shared by the process (filter/extract.ts caches them), so the predictor does not dispose them.
 */
async function loadOtherBackbone(name: ExtractorName, runDir: string, opts: LoadPredictorOptions): Promise<HeadsBackbone> {
  const wsDir = opts.workspaceDir ?? path.dirname(path.dirname(path.resolve(runDir)));
  const ex: FeatureExtractor & { backend: string } = await loadExtractor(name, wsDir, { runtime: opts.runtime ?? 'auto', log: opts.log ?? warnOnStderr });
  if (ex.featureDim !== dimOf(name)) throw new Error(`${name} gives ${ex.featureDim} values per photo, expected ${dimOf(name)}`);
  const S = ex.inputSize;
  const inputFloats = ex.decodeInput ? ex.inputFloats! : S * S * 3;
  if (name === 'car-v1' && (ex.featureDim !== CAR_V1_DIM || inputFloats !== S * S * 3 + DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3))
    throw new Error(`car-v1 takes ${inputFloats} floats per photo; prediction lays out ${S}px + ${DETECTOR_INPUT_SIZE}px views`);
  if (name !== 'car-v1' && ex.decodeInput) throw new Error(`${name} reads photos its own way; prediction does not know its input layout`);
  return {
    runtime: /onnx/i.test(ex.backend) ? 'onnx' : 'tfjs',
    backendName: ex.backend,
    inputSize: S,
    inputFloats,
    embed: (batch, n) => ex.embed(batch, n),
    dispose: () => undefined,
  };
}

/** The contract's car from car-features' (rounded: it is stored with every prediction). */
function carOf(c: CarInPhoto): PredictCar {
  const r = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    score: r(c.score),
    box: c.box ? { x1: r(c.box.x1), y1: r(c.box.y1), x2: r(c.box.x2), y2: r(c.box.y2) } : null,
    hasCar: c.hasCar,
    vehicles: c.vehicles,
    areaShare: r(c.areaShare),
  };
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
