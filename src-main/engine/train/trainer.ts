// The training loop of the price model: Adam over the heads (mode `heads`, on cached backbone
// features) or over backbone + heads (mode `finetune`, on augmented images), with evaluation on
// the test split every N steps, a checkpoint every N steps, the best checkpoint by test loss,
// cancellation, and resume that reproduces an uninterrupted run.
//
// A run folder holds:
//   config.json     the training config, the label space (class lists) and what the run was built on
//   metrics.jsonl   one line per training step ({t:"train"}) and per evaluation ({t:"eval"})
//   last.ckpt       weights + optimizer state + step + RNG state + data cursor (checkpoint.ts)
//   best.ckpt       the same, at the evaluation with the lowest test loss so far
//   summary.json    state (running/stopped/done), step, last and best evaluation
// Every file is written atomically (temporary + rename); metrics.jsonl is cut back to the
// checkpoint's step on resume.
//
// Determinism: the data order of epoch e is a permutation fixed by (seed, e); the augmentation of
// the j-th sample of step s by (seed, s, j); dropout masks come from a seeded stream whose state
// is checkpointed. So a resumed run computes the same steps as an uninterrupted one.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import type { BackendInfo, TfModule } from '../ml/backend.ts';
import { UserError } from '../workspace/errors.ts';
import { AugmentPool, PrefetchLoader, type AugmentTask } from './augment-pool.ts';
import { ORIGINAL_AUGMENT, type AugmentOptions } from './augment.ts';
import { readCheckpoint, sweepTemporaries, writeCheckpoint, writeFileAtomic, type NamedArray } from './checkpoint.ts';
import { numMakeModelClasses, type LabelColumns, type LabelSpace } from './labels.ts';
import {
  addBatchMetrics,
  backboneKindOf,
  createHeads,
  headsConfig,
  lossesAndCounts,
  metricsFromSums,
  type Backbone,
  type BatchLabels,
  type Heads,
  type LossWeights,
  type Metrics,
} from './model.ts';
import { epochPermutation, mixSeed, Rng, type RngState } from './rng.ts';

export type TrainMode = 'heads' | 'finetune';

export interface TrainConfig {
  mode: TrainMode;
  /** Total optimizer steps of the run. */
  steps: number;
  batchSize: number;
  lr: number;
  adam: { beta1: number; beta2: number; epsilon: number };
  /** Evaluate on the test split every N steps (and after the last step). */
  evalEvery: number;
  /** Write last.ckpt every N steps (and after the last step, and when stopped). */
  checkpointEvery: number;
  lossWeights: LossWeights;
  seed: number;
  /** Hidden ReLU layer in front of the heads (0 = linear heads). */
  hidden: number;
  dropout: number;
  /** finetune: apply the training augmentations (else the evaluation transform). */
  augment: boolean;
  augmentOptions: AugmentOptions;
  evalBatchSize: number;
  /** finetune: batches prepared ahead of the one training. */
  prefetch: number;
}

export const DEFAULT_LR: Record<TrainMode, number> = { heads: 1e-3, finetune: 1e-4 };

export function trainConfig(mode: TrainMode, over: Partial<Omit<TrainConfig, 'mode'>> = {}): TrainConfig {
  const c: TrainConfig = {
    mode,
    steps: 1000,
    batchSize: 64,
    lr: DEFAULT_LR[mode],
    adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    evalEvery: 100,
    checkpointEvery: 100,
    lossWeights: { price: 1, median: 1, year: 1, makeModel: 1 },
    seed: 1,
    hidden: 0,
    dropout: 0,
    augment: true,
    augmentOptions: ORIGINAL_AUGMENT,
    evalBatchSize: 256,
    prefetch: 2,
    ...over,
  };
  validateConfig(c);
  return c;
}

function validateConfig(c: TrainConfig): void {
  const posInt = {
    steps: c.steps,
    batchSize: c.batchSize,
    evalEvery: c.evalEvery,
    checkpointEvery: c.checkpointEvery,
    evalBatchSize: c.evalBatchSize,
  };
  for (const [k, v] of Object.entries(posInt))
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${k} must be a positive integer, got ${v}`);
  if (!(c.lr > 0)) throw new UserError(`lr must be > 0, got ${c.lr}`);
  const w = c.lossWeights;
  if (![w.price, w.median, w.year, w.makeModel].every((x) => Number.isFinite(x) && x >= 0))
    throw new UserError('loss weights must be numbers >= 0');
  if (w.price + w.median + w.year + w.makeModel === 0) throw new UserError('at least one loss weight must be above 0');
  if (!Number.isInteger(c.prefetch) || c.prefetch < 0) throw new UserError(`prefetch must be an integer >= 0`);
}

/** Cached backbone features of one split: n rows of dim floats, and their labels. */
export interface FeatureSplit {
  dim: number;
  /**
   * The rows in memory (n x dim, row-major), or random access to them where they live (the
   * workspace's feature cache: `FeatureCache.rows`), for more features than fit in memory.
   */
  features: Float32Array | RowSource;
  labels: LabelColumns;
}

/** Rows read on demand: gather(idx, out) writes rows idx[0], idx[1], ... into out. */
export interface RowSource {
  gather(idx: ArrayLike<number>, out: Float32Array): void;
}

/** Rows idx of a split into out (idx.length * dim floats). */
function gatherRows(split: FeatureSplit, idx: ArrayLike<number>, out: Float32Array): void {
  const f = split.features;
  if (!(f instanceof Float32Array)) return f.gather(idx, out);
  const dim = split.dim;
  for (let j = 0; j < idx.length; j++) out.set(f.subarray(idx[j] * dim, (idx[j] + 1) * dim), j * dim);
}

/** Image files (paths or encoded bytes) of one split, and their labels. */
export interface ImageSplit {
  inputs: (string | Uint8Array)[];
  labels: LabelColumns;
}

export type TrainData =
  | { mode: 'heads'; train: FeatureSplit; test: FeatureSplit }
  | {
      mode: 'finetune';
      train: ImageSplit;
      test: ImageSplit;
      backbone: Backbone;
      /** A pool to use (the caller closes it); otherwise the trainer makes and closes one. */
      pool?: AugmentPool;
      poolSize?: number;
    };

export interface StepEvent {
  step: number;
  steps: number;
  epoch: number;
  train: Metrics;
  /** Samples per second over the last few steps (data loading included). */
  samplesPerSec: number;
  etaSec: number;
}

export interface StartEvent {
  step: number;
  steps: number;
  /** The step of last.ckpt this run continues from; null when it starts from its initial weights. */
  resumedFrom: number | null;
}

export interface EvalEvent {
  step: number;
  test: Metrics;
  /** This evaluation has the lowest test loss so far (best.ckpt was written). */
  best: boolean;
}

export interface TrainInputs {
  backend: BackendInfo;
  space: LabelSpace;
  data: TrainData;
  /** Fine-tune even on the pure-JS cpu backend (tests, on a tiny network). */
  force?: boolean;
  signal?: AbortSignal;
  /** Before the first step: where the run starts (0, or the step of the checkpoint it resumes from). */
  onStart?: (e: StartEvent) => void | Promise<void>;
  onStep?: (e: StepEvent) => void | Promise<void>;
  onEval?: (e: EvalEvent) => void | Promise<void>;
}

export interface TrainResult {
  runDir: string;
  state: 'done' | 'stopped';
  step: number;
  /** The checkpoint step this call continued from (null: from the initial weights). */
  resumedFrom: number | null;
  lastTrain: Metrics | null;
  lastEval: EvalEvent | null;
  best: { step: number; loss: number } | null;
}

export interface RunConfigFile {
  version: 1;
  config: TrainConfig;
  space: LabelSpace;
  featureDim: number;
  backbone: string | null;
  backend: string;
  createdAt: string;
}

export interface CheckpointMeta {
  format: 1;
  mode: TrainMode;
  step: number;
  /** Where the data order stands: epoch and position in its permutation (of the next sample). */
  cursor: { epoch: number; pos: number };
  /** State of the dropout stream. */
  rng: RngState;
  adamStep: number;
  best: { step: number; loss: number } | null;
  savedAt: string;
}

export type RunSummary = {
  state: 'running' | 'stopped' | 'done';
  step: number;
  steps: number;
  lastTrain: Metrics | null;
  lastEval: EvalEvent | null;
  best: { step: number; loss: number } | null;
  updatedAt: string;
};

export const RUN_FILES = {
  config: 'config.json',
  metrics: 'metrics.jsonl',
  last: 'last.ckpt',
  best: 'best.ckpt',
  summary: 'summary.json',
} as const;

/** Starts a new run in runDir (which must not hold a run already). */
export async function train(runDir: string, config: TrainConfig, inputs: TrainInputs): Promise<TrainResult> {
  validateConfig(config);
  if (config.mode !== inputs.data.mode) throw new Error(`config mode ${config.mode} but data for ${inputs.data.mode}`);
  checkBackend(config.mode, inputs);
  if (fs.existsSync(path.join(runDir, RUN_FILES.config)))
    throw new UserError(`${runDir} already holds a run; resume it or pick another folder`);
  await fsp.mkdir(runDir, { recursive: true });
  const file: RunConfigFile = {
    version: 1,
    config,
    space: inputs.space,
    featureDim: featureDimOf(inputs.data),
    backbone: inputs.data.mode === 'finetune' ? inputs.data.backbone.name : null,
    backend: inputs.backend.name,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(path.join(runDir, RUN_FILES.config), JSON.stringify(file, null, 2));
  await writeFileAtomic(path.join(runDir, RUN_FILES.metrics), '');
  return runLoop(runDir, config, inputs, null);
}

/**
 * Continues a run from its last checkpoint (from the start if it has none). `steps` raises the
 * run's total. The inputs must describe the same data and backbone the run was started with.
 */
export async function resume(runDir: string, inputs: TrainInputs, opts: { steps?: number } = {}): Promise<TrainResult> {
  const file = await loadRunConfig(runDir);
  const config: TrainConfig = { ...file.config, steps: opts.steps ?? file.config.steps };
  validateConfig(config);
  if (inputs.data.mode !== config.mode) throw new UserError(`run ${runDir} is a ${config.mode} run; got ${inputs.data.mode} data`);
  checkBackend(config.mode, inputs);
  if (featureDimOf(inputs.data) !== file.featureDim)
    throw new UserError(`run ${runDir} has ${file.featureDim}-d features; got ${featureDimOf(inputs.data)}-d`);
  const bb = inputs.data.mode === 'finetune' ? inputs.data.backbone.name : null;
  if (bb !== file.backbone) throw new UserError(`run ${runDir} was trained on backbone ${file.backbone}; got ${bb}`);
  if (JSON.stringify(labelSignature(file.space)) !== JSON.stringify(labelSignature(inputs.space))) {
    throw new UserError(`run ${runDir} has other class lists than the data given to resume it`);
  }
  await sweepTemporaries(runDir);
  const lastFile = path.join(runDir, RUN_FILES.last);
  const ckpt = fs.existsSync(lastFile) ? await readCheckpoint<CheckpointMeta>(lastFile) : null;
  // Drop metric lines past the checkpoint: those steps run again.
  const keepUpTo = ckpt?.meta.step ?? 0;
  const metricsFile = path.join(runDir, RUN_FILES.metrics);
  const lines = fs.existsSync(metricsFile) ? (await fsp.readFile(metricsFile, 'utf8')).split('\n').filter(Boolean) : [];
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step: number }).step <= keepUpTo;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(metricsFile, kept.map((l) => `${l}\n`).join(''));
  return runLoop(runDir, config, inputs, ckpt);
}

export async function loadRunConfig(runDir: string): Promise<RunConfigFile> {
  const file = path.join(runDir, RUN_FILES.config);
  if (!fs.existsSync(file)) throw new UserError(`${runDir} holds no training run (no ${RUN_FILES.config})`);
  return JSON.parse(await fsp.readFile(file, 'utf8')) as RunConfigFile;
}

/** Throws the user-facing refusal when the backend cannot (or should not) fine-tune. */
export function checkBackend(mode: TrainMode, inputs: Pick<TrainInputs, 'backend' | 'force' | 'data'>): void {
  if (mode !== 'finetune') return;
  const b = inputs.backend;
  const tiny = inputs.data.mode === 'finetune' && backboneKindOf(inputs.data.backbone.name) === 'tiny-cnn';
  if (!b.canTrainConv) {
    throw new UserError(
      `Fine-tuning needs gradients of convolutions, which the ${b.name} backend does not have. ` +
        'Install @tensorflow/tfjs-node (or tfjs-node-gpu), or train the heads on cached features (mode heads).',
    );
  }
  if (!b.fastConv && !inputs.force) {
    throw new UserError(
      `Fine-tuning refused on the pure-JS ${b.name} backend: ${
        tiny
          ? 'it is slow there (the tiny-cnn smoke test trains about 10 images a second)'
          : 'a MobileNetV2 training step takes minutes there'
      }. ` +
        'Install @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA) to fine-tune, or train the heads on cached ' +
        'features (mode heads), which is fast on any CPU. Pass force to run it anyway.',
    );
  }
}

function featureDimOf(data: TrainData): number {
  return data.mode === 'heads' ? data.train.dim : data.backbone.featureDim;
}

function labelSignature(s: LabelSpace): unknown {
  return [s.priceBounds, s.years, s.makeModels.map((c) => [c.make, c.model])];
}

function splitSize(data: TrainData, which: 'train' | 'test'): number {
  const s = data[which];
  return s.labels.priceBin.length;
}

interface TrainVar {
  key: string;
  variable: TF.Variable;
}

/** Adam (Kingma & Ba, with PyTorch's epsilon placement), its state kept by our variable keys. */
class Adam {
  step = 0;
  readonly m = new Map<string, TF.Variable>();
  readonly v = new Map<string, TF.Variable>();

  constructor(
    private readonly tf: TfModule,
    private readonly vars: readonly TrainVar[],
    private readonly lr: number,
    private readonly c: TrainConfig['adam'],
  ) {
    for (const { key, variable } of vars) {
      this.m.set(key, tf.variable(tf.zerosLike(variable), false));
      this.v.set(key, tf.variable(tf.zerosLike(variable), false));
    }
  }

  apply(grads: TF.NamedTensorMap): void {
    const tf = this.tf;
    this.step++;
    const { beta1: b1, beta2: b2, epsilon } = this.c;
    const bc1 = 1 - b1 ** this.step;
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.step);
    tf.tidy(() => {
      for (const { key, variable } of this.vars) {
        const g = grads[variable.name];
        if (!g) continue;
        const m = this.m.get(key)!;
        const v = this.v.get(key)!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), epsilon);
        variable.assign(tf.sub(variable, tf.mul(tf.div(m, denom), this.lr / bc1)));
      }
    });
  }

  dispose(): void {
    this.m.forEach((t) => t.dispose());
    this.v.forEach((t) => t.dispose());
  }
}

/** The heads a run starts from (initialised from the run's seed). */
export function buildRunHeads(tf: TfModule, cfg: TrainConfig, space: LabelSpace, featureDim: number): Heads {
  return createHeads(
    tf,
    headsConfig({
      inputDim: featureDim,
      numMakeModels: numMakeModelClasses(space),
      hidden: cfg.hidden,
      dropout: cfg.dropout,
      seed: mixSeed(cfg.seed, 0x4eadd),
    }),
  );
}

async function runLoop(
  runDir: string,
  cfg: TrainConfig,
  inputs: TrainInputs,
  ckpt: Awaited<ReturnType<typeof readCheckpoint<CheckpointMeta>>> | null,
): Promise<TrainResult> {
  const tf = inputs.backend.tf;
  const data = inputs.data;
  const nTrain = splitSize(data, 'train');
  const nTest = splitSize(data, 'test');
  if (nTrain === 0) throw new UserError('the training split is empty');
  const B = cfg.batchSize;
  const heads = buildRunHeads(tf, cfg, inputs.space, featureDimOf(data));
  const backbone = data.mode === 'finetune' ? data.backbone : null;
  const trainVars: TrainVar[] = [...heads.vars].map(([k, variable]) => ({ key: `heads/${k}`, variable }));
  if (backbone)
    backbone.model.trainableWeights.forEach((w, i) => trainVars.push({ key: `backbone/${i}`, variable: w.read() as TF.Variable }));
  const adam = new Adam(tf, trainVars, cfg.lr, cfg.adam);

  let step = 0;
  let rng = new Rng(mixSeed(cfg.seed, 0xd409));
  let best: { step: number; loss: number } | null = null;
  if (ckpt) {
    step = ckpt.meta.step;
    rng = new Rng(ckpt.meta.rng);
    best = ckpt.meta.best;
    adam.step = ckpt.meta.adamStep;
    restoreTensors(tf, ckpt.tensors, heads, backbone, adam);
  }

  // ---- data order ----
  const perms = new Map<number, Int32Array>();
  const perm = (epoch: number): Int32Array => {
    let p = perms.get(epoch);
    if (!p) {
      p = epochPermutation(cfg.seed, epoch, nTrain);
      perms.set(epoch, p);
      for (const k of perms.keys()) if (k < epoch - 1) perms.delete(k);
    }
    return p;
  };
  const cursorAt = (s: number): { epoch: number; pos: number } => ({ epoch: Math.floor((s * B) / nTrain), pos: (s * B) % nTrain });
  const batchIndices = (s: number): Int32Array => {
    const idx = new Int32Array(B);
    for (let j = 0; j < B; j++) {
      const g = s * B + j;
      idx[j] = perm(Math.floor(g / nTrain))[g % nTrain];
    }
    return idx;
  };

  // ---- finetune plumbing ----
  let pool: AugmentPool | null = null;
  let ownPool = false;
  let trainLoader: PrefetchLoader | null = null;
  if (data.mode === 'finetune') {
    pool = data.pool ?? null;
    if (!pool) {
      pool = new AugmentPool(data.poolSize);
      ownPool = true;
    }
    const S = data.backbone.inputSize;
    const inputsList = data.train.inputs;
    trainLoader = new PrefetchLoader(
      pool,
      (k) =>
        k >= cfg.steps
          ? null
          : [...batchIndices(k)].map((i, j): AugmentTask => ({
              input: inputsList[i],
              size: S,
              seed: mixSeed(cfg.seed, 0xa06, k, j),
              augment: cfg.augment,
              opts: cfg.augmentOptions,
            })),
      cfg.prefetch,
    );
  }

  const metricsFile = path.join(runDir, RUN_FILES.metrics);
  const logLine = (obj: object): void => fs.appendFileSync(metricsFile, `${JSON.stringify(obj)}\n`);
  let lastTrain: Metrics | null = null;
  let lastEval: EvalEvent | null = null;
  let lastSaved = ckpt?.meta.step ?? -1;
  const durations: number[] = [];
  const signal = inputs.signal;

  const labelTensors = (labels: LabelColumns, idx: ArrayLike<number>): BatchLabels => {
    const n = idx.length;
    const pb = new Int32Array(n);
    const md = new Float32Array(n);
    const mm = new Int32Array(n);
    const yr = new Int32Array(n);
    for (let j = 0; j < n; j++) {
      const i = idx[j];
      pb[j] = labels.priceBin[i];
      md[j] = labels.median[i];
      mm[j] = labels.makeModel[i];
      yr[j] = labels.year[i];
    }
    return {
      priceBin: tf.tensor1d(pb, 'int32'),
      median: tf.tensor1d(md),
      makeModel: tf.tensor1d(mm, 'int32'),
      year: tf.tensor1d(yr, 'int32'),
    };
  };

  const features = async (s: number, idx: Int32Array): Promise<Float32Array> => {
    if (data.mode === 'heads') {
      const x = new Float32Array(idx.length * data.train.dim);
      gatherRows(data.train, idx, x);
      return x;
    }
    return (await trainLoader!.get(s)).data;
  };

  const forward = (x: TF.Tensor, training: boolean, dropoutSeed: number) => {
    const feats = backbone ? (backbone.model.apply(x, { training }) as TF.Tensor2D) : (x as TF.Tensor2D);
    return heads.forward(feats, training, dropoutSeed, backbone !== null);
  };
  const inputShape = (n: number): number[] => (backbone ? [n, backbone.inputSize, backbone.inputSize, 3] : [n, featureDimOf(data)]);

  async function evaluate(): Promise<Metrics | null> {
    const sums = new Float64Array(8);
    const EB = cfg.evalBatchSize;
    const nb = Math.ceil(nTest / EB);
    const idxOf = (k: number): Int32Array => Int32Array.from({ length: Math.min(EB, nTest - k * EB) }, (_, j) => k * EB + j);
    let evalLoader: PrefetchLoader | null = null;
    if (data.mode === 'finetune') {
      const S = data.backbone.inputSize;
      const list = data.test.inputs;
      evalLoader = new PrefetchLoader(
        pool!,
        (k) => (k >= nb ? null : [...idxOf(k)].map((i) => ({ input: list[i], size: S, seed: 0, augment: false }))),
        cfg.prefetch,
      );
    }
    for (let k = 0; k < nb; k++) {
      if (signal?.aborted) {
        evalLoader?.clear();
        return null;
      }
      const idx = idxOf(k);
      let x: Float32Array;
      if (data.mode === 'heads') {
        x = new Float32Array(idx.length * data.test.dim);
        gatherRows(data.test, idx, x);
      } else {
        x = (await evalLoader!.get(k)).data;
      }
      const vec = tf.tidy(() => {
        const labels = labelTensors(data.test.labels, idx);
        return lossesAndCounts(tf, forward(tf.tensor(x, inputShape(idx.length)), false, 0), labels, cfg.lossWeights).metrics;
      });
      const vals = await vec.data();
      vec.dispose();
      addBatchMetrics(sums, vals, idx.length);
    }
    return metricsFromSums(sums, nTest);
  }

  async function save(file: string): Promise<void> {
    const meta: CheckpointMeta = {
      format: 1,
      mode: cfg.mode,
      step,
      cursor: cursorAt(step),
      rng: rng.state,
      adamStep: adam.step,
      best,
      savedAt: new Date().toISOString(),
    };
    await writeCheckpoint(file, meta, await collectTensors(heads, backbone, adam));
  }

  const writeSummary = async (state: RunSummary['state']): Promise<void> => {
    const s: RunSummary = { state, step, steps: cfg.steps, lastTrain, lastEval, best, updatedAt: new Date().toISOString() };
    await writeFileAtomic(path.join(runDir, RUN_FILES.summary), JSON.stringify(s, null, 2));
  };

  let stopped = false;
  try {
    await writeSummary('running');
    await inputs.onStart?.({ step, steps: cfg.steps, resumedFrom: ckpt ? ckpt.meta.step : null });
    while (step < cfg.steps) {
      if (signal?.aborted) {
        stopped = true;
        break;
      }
      const t0 = performance.now();
      const s = step;
      const idx = batchIndices(s);
      const xBuf = await features(s, idx);
      const dropoutSeed = rng.nextUint32();
      const vec = tf.tidy(() => {
        const x = tf.tensor(xBuf, inputShape(B));
        const labels = labelTensors(data.train.labels, idx);
        let metrics: TF.Tensor1D | null = null;
        const { grads } = tf.variableGrads(
          () => {
            const r = lossesAndCounts(tf, forward(x, true, dropoutSeed), labels, cfg.lossWeights);
            metrics = tf.keep(r.metrics);
            return r.total;
          },
          trainVars.map((v) => v.variable),
        );
        adam.apply(grads);
        return metrics!;
      });
      const vals = await vec.data();
      vec.dispose();
      step = s + 1;
      const sums = new Float64Array(8);
      addBatchMetrics(sums, vals, B);
      lastTrain = metricsFromSums(sums, B);
      durations.push(performance.now() - t0);
      if (durations.length > 20) durations.shift();
      const perStep = durations.reduce((a, b) => a + b, 0) / durations.length / 1000;
      const ev: StepEvent = {
        step,
        steps: cfg.steps,
        epoch: (s * B) / nTrain,
        train: lastTrain,
        samplesPerSec: B / perStep,
        etaSec: (cfg.steps - step) * perStep,
      };
      logLine({ t: 'train', step, ...lastTrain, samplesPerSec: ev.samplesPerSec });
      await inputs.onStep?.(ev);

      if (step % cfg.evalEvery === 0 || step === cfg.steps) {
        const test = nTest > 0 ? await evaluate() : null;
        if (test) {
          const isBest = best === null || test.loss < best.loss;
          if (isBest) best = { step, loss: test.loss };
          lastEval = { step, test, best: isBest };
          logLine({ t: 'eval', step, ...test, best: isBest });
          if (isBest) await save(path.join(runDir, RUN_FILES.best));
          await inputs.onEval?.(lastEval);
        }
      }
      if (step % cfg.checkpointEvery === 0 || step === cfg.steps) {
        await save(path.join(runDir, RUN_FILES.last));
        lastSaved = step;
        await writeSummary('running');
      }
    }
    if (step !== lastSaved) {
      await save(path.join(runDir, RUN_FILES.last));
      lastSaved = step;
    }
    await writeSummary(stopped ? 'stopped' : 'done');
  } finally {
    trainLoader?.clear();
    if (ownPool) await pool!.close();
    heads.dispose();
    adam.dispose();
  }
  return { runDir, state: stopped ? 'stopped' : 'done', step, resumedFrom: ckpt ? ckpt.meta.step : null, lastTrain, lastEval, best };
}

async function collectTensors(heads: Heads, backbone: Backbone | null, adam: Adam): Promise<NamedArray[]> {
  const out: NamedArray[] = [];
  const add = async (name: string, t: TF.Tensor): Promise<void> => {
    out.push({ name, shape: [...t.shape], data: (await t.data()) as Float32Array });
  };
  for (const [k, v] of heads.vars) await add(`heads/${k}`, v);
  if (backbone) {
    const ws = backbone.model.weights;
    for (let i = 0; i < ws.length; i++) await add(`backbone.w/${i}`, ws[i].read());
  }
  for (const [k, v] of adam.m) await add(`adam.m/${k}`, v);
  for (const [k, v] of adam.v) await add(`adam.v/${k}`, v);
  return out;
}

function restoreTensors(tf: TfModule, tensors: Map<string, NamedArray>, heads: Heads, backbone: Backbone | null, adam: Adam): void {
  const get = (name: string, shape: readonly number[]): TF.Tensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint lacks ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`checkpoint ${name} has shape [${t.shape}], the model [${shape}]`);
    }
    return tf.tensor(t.data, t.shape);
  };
  tf.tidy(() => {
    for (const [k, v] of heads.vars) v.assign(get(`heads/${k}`, v.shape));
    if (backbone) backbone.model.setWeights(backbone.model.weights.map((w, i) => get(`backbone.w/${i}`, w.shape as number[])));
    for (const [k, v] of adam.m) v.assign(get(`adam.m/${k}`, v.shape));
    for (const [k, v] of adam.v) v.assign(get(`adam.v/${k}`, v.shape));
  });
}

/** Reads the heads (and backbone) weights of a checkpoint as plain arrays, for comparisons and export. */
export async function readCheckpointWeights(file: string): Promise<{ meta: CheckpointMeta; weights: Map<string, NamedArray> }> {
  const { meta, tensors } = await readCheckpoint<CheckpointMeta>(file);
  const weights = new Map([...tensors].filter(([k]) => k.startsWith('heads/') || k.startsWith('backbone.w/')));
  return { meta, weights };
}
