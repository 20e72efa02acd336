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
// checkpoint's step on resume. The loop itself, as named steps, is in run-loop.ts.
//
// Labels may be partial (labels.ts): each head trains on the samples that carry its label. A
// head with weight 0 or without a single training label does not train; config.json says which
// and why (`heads`).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BackendInfo, TfModule } from '../ml/backend.ts';
import { UserError } from '../workspace/errors.ts';
import type { AugmentPool } from './augment-pool.ts';
import { ORIGINAL_AUGMENT, type AugmentOptions } from './augment.ts';
import { readCheckpoint, sweepTemporaries, writeFileAtomic, type NamedArray } from './checkpoint.ts';
import { DEFAULT_TEST_FRACTION, labelledCounts, numMakeModelClasses, type LabelColumns, type LabelSpace, type SplitKind } from './labels.ts';
import { backboneKindOf, createHeads, headsConfig, medianHeadOf, type Backbone, type Heads, type LossWeights, type MedianHead, type Metrics } from './model.ts';
import { mixSeed, type RngState } from './rng.ts';
import { runLoop } from './run-loop.ts';

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
  /**
   * The median head's parameterisation (model.ts): log for new runs; absent in runs trained
   * before it existed, which are linear (medianHeadOf).
   */
  medianHead?: MedianHead;
  /**
   * heads: standardise each feature column on the training rows (model.ts inputNorm), kept in
   * the checkpoints; absent in runs trained before it existed (raw features).
   */
  inputNorm?: 'standard';
  /** AdamW's decoupled weight decay of the heads' kernels: each step multiplies them by 1 - lr * weightDecay; 0 = none. */
  weightDecay?: number;
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
    medianHead: 'log',
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
  if (c.weightDecay !== undefined && !(c.weightDecay >= 0 && c.lr * c.weightDecay < 1)) {
    throw new UserError(`weight decay must be >= 0 and below 1 / lr (${1 / c.lr}), got ${c.weightDecay}`);
  }
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
  /** How data was split into train and test (recorded in config.json). */
  split?: SplitKind;
  testFraction?: number;
  /** Fine-tune even on the pure-JS cpu backend (tests, on a tiny network). */
  force?: boolean;
  /** What the run is trained on (recorded in config.json `data`). */
  trainedOn?: RunData;
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

export type HeadName = 'price' | 'median' | 'makeModel' | 'year';
export const HEAD_NAMES: readonly HeadName[] = ['price', 'median', 'makeModel', 'year'];

/** What a run knew of each head when it started: its weight, labelled rows, and whether it trains. */
export interface HeadPlan {
  weight: number;
  train: number;
  test: number;
  trains: boolean;
  /** Why it does not train ("loss weight 0", "no labels"), or null. */
  reason: string | null;
}

export interface RunConfigFile {
  version: 1;
  config: TrainConfig;
  space: LabelSpace;
  featureDim: number;
  backbone: string | null;
  backend: string;
  createdAt: string;
  /** The train/test split used (runs from before the listing split have none: they were split by photo). */
  split?: SplitKind;
  /** The test split's share (runs from before it was recorded: 0.1). */
  testFraction?: number;
  /** Per head (runs from before partial labels have none). */
  heads?: Record<HeadName, HeadPlan>;
  /** The feature extractor a heads-mode run trained on (runs from before it was recorded: mobilenet_v2). */
  extractor?: string;
  /** What the run was trained on: photos per listing source, train and test photos (runs from before it was recorded have none). */
  data?: RunData;
}

/** config.json `data`: photos per listing source (both splits), and the split's sizes. */
export interface RunData {
  sources: Array<{ source: string; images: number }>;
  trainImages: number;
  testImages: number;
}

/** The `data` record of a run from its split rows: sources by photo count, most first. */
export function runDataOf(train: readonly { source?: string }[], test: readonly { source?: string }[]): RunData {
  const counts = new Map<string, number>();
  for (const r of [...train, ...test]) counts.set(r.source ?? 'unknown', (counts.get(r.source ?? 'unknown') ?? 0) + 1);
  const sources = [...counts].map(([source, images]) => ({ source, images })).sort((a, b) => b.images - a.images || (a.source < b.source ? -1 : 1));
  return { sources, trainImages: train.length, testImages: test.length };
}

/** The feature extractor a run's heads read ('mobilenet_v2' for runs from before it was recorded). */
export function runExtractor(file: Pick<RunConfigFile, 'extractor'>): string {
  return file.extractor ?? 'mobilenet_v2';
}

/** The split a run was trained with ('photo' for runs from before it was recorded). */
export function runSplit(file: Pick<RunConfigFile, 'split'>): SplitKind {
  return file.split ?? 'photo';
}

/** The test share a run was trained with (0.1 for runs from before it was recorded). */
export function runTestFraction(file: Pick<RunConfigFile, 'testFraction'>): number {
  return file.testFraction ?? DEFAULT_TEST_FRACTION;
}

/** Per head: its weight, labelled train/test rows, whether it trains and why not. */
export function planHeads(w: LossWeights, train: LabelColumns, test: LabelColumns): Record<HeadName, HeadPlan> {
  const tr = labelledCounts(train);
  const te = labelledCounts(test);
  const plan = (weight: number, ntr: number, nte: number): HeadPlan => {
    const reason = weight === 0 ? 'loss weight 0' : ntr === 0 ? 'no labels' : null;
    return { weight, train: ntr, test: nte, trains: reason === null, reason };
  };
  return {
    price: plan(w.price, tr.price, te.price),
    median: plan(w.median, tr.price, te.price),
    makeModel: plan(w.makeModel, tr.makeModel, te.makeModel),
    year: plan(w.year, tr.year, te.year),
  };
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
  const heads = planHeads(config.lossWeights, inputs.data.train.labels, inputs.data.test.labels);
  if (!HEAD_NAMES.some((h) => heads[h].trains)) {
    const why = HEAD_NAMES.filter((h) => heads[h].weight > 0).map((h) => h);
    throw new UserError(`no head can train: the heads with a loss weight above 0 (${why.join(', ')}) have no labels in the training split`);
  }
  await fsp.mkdir(runDir, { recursive: true });
  const file: RunConfigFile = {
    version: 1,
    config,
    space: inputs.space,
    featureDim: featureDimOf(inputs.data),
    backbone: inputs.data.mode === 'finetune' ? inputs.data.backbone.name : null,
    backend: inputs.backend.name,
    createdAt: new Date().toISOString(),
    split: inputs.split,
    testFraction: inputs.testFraction,
    heads,
    ...(inputs.trainedOn ? { data: inputs.trainedOn } : {}),
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

export function featureDimOf(data: TrainData): number {
  return data.mode === 'heads' ? data.train.dim : data.backbone.featureDim;
}

function labelSignature(s: LabelSpace): unknown {
  return [s.priceBounds, s.years, s.makeModels.map((c) => [c.make, c.model])];
}

export function splitSize(data: TrainData, which: 'train' | 'test'): number {
  const s = data[which];
  return s.labels.priceBin.length;
}

/** The heads a run starts from (initialised from the run's seed). */
export function buildRunHeads(tf: TfModule, cfg: TrainConfig, space: LabelSpace, featureDim: number): Heads {
  return createHeads(
    tf,
    headsConfig({
      inputDim: featureDim,
      numMakeModels: numMakeModelClasses(space),
      numYears: space.years.length,
      hidden: cfg.hidden,
      dropout: cfg.dropout,
      seed: mixSeed(cfg.seed, 0x4eadd),
      medianHead: medianHeadOf(cfg),
      inputNorm: cfg.inputNorm === 'standard',
    }),
  );
}

/**
 * Per-column mean and 1/std of a split's feature rows (read in chunks, so a RowSource too);
 * a constant column gets scale 1 rather than 1/0.
 */
export function featureColumnStats(split: FeatureSplit): { mean: Float32Array; scale: Float32Array } {
  const n = split.labels.priceBin.length;
  const d = split.dim;
  const sum = new Float64Array(d);
  const sq = new Float64Array(d);
  const CHUNK = 512;
  const buf = new Float32Array(CHUNK * d);
  for (let i0 = 0; i0 < n; i0 += CHUNK) {
    const m = Math.min(CHUNK, n - i0);
    const idx = Array.from({ length: m }, (_, j) => i0 + j);
    if (split.features instanceof Float32Array) buf.set(split.features.subarray(i0 * d, (i0 + m) * d));
    else split.features.gather(idx, buf);
    for (let j = 0; j < m; j++) {
      const o = j * d;
      for (let k = 0; k < d; k++) {
        const v = buf[o + k]!;
        sum[k] += v;
        sq[k] += v * v;
      }
    }
  }
  const mean = new Float32Array(d);
  const scale = new Float32Array(d);
  for (let k = 0; k < d; k++) {
    const mu = n > 0 ? sum[k]! / n : 0;
    const variance = n > 0 ? Math.max(0, sq[k]! / n - mu * mu) : 0;
    const sd = Math.sqrt(variance);
    mean[k] = mu;
    scale[k] = sd > 1e-8 ? 1 / sd : 1;
  }
  return { mean, scale };
}

/** Reads the heads (and backbone) weights of a checkpoint as plain arrays, for comparisons and export. */
export async function readCheckpointWeights(file: string): Promise<{ meta: CheckpointMeta; weights: Map<string, NamedArray> }> {
  const { meta, tensors } = await readCheckpoint<CheckpointMeta>(file);
  const weights = new Map([...tensors].filter(([k]) => k.startsWith('heads/') || k.startsWith('backbone.w/')));
  return { meta, weights };
}
