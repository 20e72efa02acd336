// The price model's four heads over a backbone feature vector, as a small functional graph of
// named tf.Variables (so the trainer controls initialisation, dropout randomness, the optimizer
// state and checkpoints exactly): price-bin logits (10), median price (1 output z), make/model
// logits (top pairs + Unknown) and year logits. An optional hidden layer (ReLU) and dropout sit
// in front of them. The four output layers share one matrix, sliced by head, so a step is one
// matmul.
//
// The median head's parameterisation (config.json config.medianHead):
//   log (new runs):     price = $30,000 * exp(z), never negative; L1 loss on z - ln(price / $30,000).
//                       The median of log-price is the log of the median price, so exp(z) is still
//                       a median. Near $30k the loss reads as the linear one's (a 10% error costs
//                       about 0.1 in both), so the default weight 1 keeps the same balance.
//   linear (older runs, absent in config): price = $30,000 * z, L1 loss on z - price / $30,000;
//                       it can go negative, and prediction clips it at $0.
//
// Loss = w_price * CE(price) + w_median * L1(median) + w_year * CE(year) + w_make * CE(make/model).
import type * as TF from '@tensorflow/tfjs';
import type { TfModule } from '../ml/backend.ts';
import { UserError } from '../workspace/errors.ts';
import { MEDIAN_PRICE_SCALE, NUM_PRICE_BINS, NUM_YEARS } from './labels.ts';
import { Rng } from './rng.ts';

export interface HeadsConfig {
  inputDim: number;
  numPriceBins: number;
  numMakeModels: number;
  numYears: number;
  /** Width of a hidden ReLU layer in front of the heads; 0 = none (linear heads). */
  hidden: number;
  /** Dropout rate on the heads' input (after the hidden layer when there is one); 0 = none. */
  dropout: number;
  /** Initialisation seed. */
  seed: number;
  /** The median head's parameterisation (see the top of this file); default log. */
  medianHead?: MedianHead;
  /**
   * Standardise the input first: (x - input/mean) * input/scale, two fixed (not trained) vectors
   * set from the training rows when a run starts and saved with its checkpoints. Off in runs
   * trained before it existed.
   */
  inputNorm?: boolean;
}

/** log: price = scale * exp(z) (runs from now on); linear: price = scale * z (runs trained before). */
export type MedianHead = 'log' | 'linear';
/** The parameterisation a run's config records (absent: linear, every run trained before log). */
export function medianHeadOf(c: { medianHead?: MedianHead }): MedianHead {
  return c.medianHead ?? 'linear';
}
/** Log-price targets are ln(max(price / scale, this)): a $0 price would be -Infinity. */
const MIN_MEDIAN_RATIO = 1e-3;
/** z is clamped to this range before exp (z = 8 is about $89M): a garbage output stays finite. */
const LOG_Z_RANGE = [-20, 8] as const;

/**
 * The median head's output in dollars (rounded to cents): never negative. `clipped` says a
 * linear (older) run's output was negative and is reported as $0.
 */
export function medianDollars(z: number, head: MedianHead, scale = MEDIAN_PRICE_SCALE): { dollars: number; clipped: boolean } {
  if (head === 'log') {
    const zc = Math.min(LOG_Z_RANGE[1], Math.max(LOG_Z_RANGE[0], z));
    return { dollars: Math.round(scale * Math.exp(zc) * 100) / 100, clipped: false };
  }
  const d = Math.round(z * scale * 100) / 100;
  return d < 0 ? { dollars: 0, clipped: true } : { dollars: d, clipped: false };
}

export function headsConfig(p: Partial<HeadsConfig> & Pick<HeadsConfig, 'inputDim' | 'numMakeModels'>): HeadsConfig {
  return { numPriceBins: NUM_PRICE_BINS, numYears: NUM_YEARS, hidden: 0, dropout: 0, seed: 1, ...p };
}

export interface HeadOutputs {
  /** [N, 10] */
  price: TF.Tensor2D;
  /** [N], z: price = 30000 * exp(z) (log head) or 30000 * z (linear head); see medianDollars */
  median: TF.Tensor1D;
  /** [N, numMakeModels] */
  makeModel: TF.Tensor2D;
  /** [N, 42] */
  year: TF.Tensor2D;
}

export interface Heads {
  config: HeadsConfig;
  /**
   * The variables in a fixed order, by stable name (checkpoint and optimizer keys): the trained
   * ones, and with inputNorm the fixed input/mean and input/scale (trainable false).
   */
  vars: Map<string, TF.Variable>;
  /**
   * Forward pass. With training and dropout > 0, `dropoutSeed` fixes the mask. `inputNeedsGrad`:
   * x comes from a backbone being trained (otherwise its gradient is not computed).
   */
  forward(x: TF.Tensor2D, training: boolean, dropoutSeed?: number, inputNeedsGrad?: boolean): HeadOutputs;
  /** inputNorm only: the per-column mean and 1/std the input is standardised with. */
  setInputNorm(mean: Float32Array, scale: Float32Array): void;
  dispose(): void;
}

/** Column ranges of the fused output matrix. */
export function headSlices(c: HeadsConfig): {
  price: [number, number];
  median: [number, number];
  makeModel: [number, number];
  year: [number, number];
  width: number;
} {
  const p0 = 0;
  const m0 = p0 + c.numPriceBins;
  const k0 = m0 + 1;
  const y0 = k0 + c.numMakeModels;
  const width = y0 + c.numYears;
  return { price: [p0, c.numPriceBins], median: [m0, 1], makeModel: [k0, c.numMakeModels], year: [y0, c.numYears], width };
}

export function createHeads(tf: TfModule, config: HeadsConfig): Heads {
  const c = config;
  for (const [k, v] of Object.entries({
    inputDim: c.inputDim,
    numPriceBins: c.numPriceBins,
    numMakeModels: c.numMakeModels,
    numYears: c.numYears,
  })) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`heads: ${k} must be a positive integer, got ${v}`);
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`heads: dropout ${c.dropout} is not in [0, 1)`);
  const rng = new Rng(c.seed);
  const vars = new Map<string, TF.Variable>();
  const glorot = (rows: number, cols: number, fanOut: number[]): Float32Array => {
    // Column blocks (one per head) each get their own Glorot-uniform limit.
    const out = new Float32Array(rows * cols);
    let col = 0;
    for (const width of fanOut) {
      const lim = Math.sqrt(6 / (rows + width));
      for (let r = 0; r < rows; r++) for (let j = col; j < col + width; j++) out[r * cols + j] = rng.uniform(-lim, lim);
      col += width;
    }
    return out;
  };
  let dim = c.inputDim;
  if (c.inputNorm) {
    vars.set('input/mean', tf.variable(tf.zeros([dim]), false, uniqueName('input_mean')));
    vars.set('input/scale', tf.variable(tf.ones([dim]), false, uniqueName('input_scale')));
  }
  if (c.hidden > 0) {
    vars.set(
      'hidden/kernel',
      tf.variable(tf.tensor2d(glorot(dim, c.hidden, [c.hidden]), [dim, c.hidden]), true, uniqueName('hidden_kernel')),
    );
    vars.set('hidden/bias', tf.variable(tf.zeros([c.hidden]), true, uniqueName('hidden_bias')));
    dim = c.hidden;
  }
  const s = headSlices(c);
  const kernel = glorot(dim, s.width, [c.numPriceBins, 1, c.numMakeModels, c.numYears]);
  const bias = new Float32Array(s.width);
  // The median head starts at $30k: z = 0 for log (exp(0) = 1), z = 1 for linear, rather than $0.
  bias[s.median[0]] = (c.medianHead ?? 'log') === 'log' ? 0 : 1;
  vars.set('out/kernel', tf.variable(tf.tensor2d(kernel, [dim, s.width]), true, uniqueName('out_kernel')));
  vars.set('out/bias', tf.variable(tf.tensor1d(bias), true, uniqueName('out_bias')));

  const dense = denseLayer(tf, true);
  const denseNoDx = denseLayer(tf, false);

  function forward(x: TF.Tensor2D, training: boolean, dropoutSeed = 0, inputNeedsGrad = false): HeadOutputs {
    return tf.tidy(() => {
      let h: TF.Tensor2D = x;
      if (c.inputNorm) h = tf.mul(tf.sub(h, vars.get('input/mean')!), vars.get('input/scale')!);
      if (c.hidden > 0) h = tf.relu(denseNoDx(h, vars.get('hidden/kernel')!, vars.get('hidden/bias')!)) as TF.Tensor2D;
      if (training && c.dropout > 0) {
        const keep = tf.cast(tf.greaterEqual(tf.randomUniform(h.shape, 0, 1, 'float32', dropoutSeed), c.dropout), 'float32');
        h = tf.mul(h, tf.mul(keep, 1 / (1 - c.dropout)));
      }
      // The heads' input needs a gradient only behind a hidden layer or a backbone being tuned.
      const outDense = c.hidden > 0 || inputNeedsGrad ? dense : denseNoDx;
      const y = outDense(h, vars.get('out/kernel')!, vars.get('out/bias')!);
      const n = y.shape[0];
      return {
        price: tf.slice(y, [0, s.price[0]], [n, s.price[1]]),
        median: tf.reshape(tf.slice(y, [0, s.median[0]], [n, 1]), [n]) as TF.Tensor1D,
        makeModel: tf.slice(y, [0, s.makeModel[0]], [n, s.makeModel[1]]),
        year: tf.slice(y, [0, s.year[0]], [n, s.year[1]]),
      };
    });
  }

  return {
    config: c,
    vars,
    setInputNorm(mean: Float32Array, scale: Float32Array) {
      if (!c.inputNorm) throw new Error('heads: setInputNorm on heads built without inputNorm');
      if (mean.length !== c.inputDim || scale.length !== c.inputDim) throw new Error(`heads: input norm of ${mean.length}/${scale.length} values for ${c.inputDim}-d input`);
      vars.get('input/mean')!.assign(tf.tensor1d(mean));
      vars.get('input/scale')!.assign(tf.tensor1d(scale));
    },
    forward,
    dispose: () => vars.forEach((v) => v.dispose()),
  };
}

/**
 * x W + b with its gradient written out: tfjs's own gradient of matMul asks for a transposed-A
 * product, which the wasm backend runs about 10x slower than an explicit transpose followed by a
 * plain product (measured: 42 ms vs 4 ms for [64,1280]^T x [64,566]). Without `withDx` the
 * gradient of x is returned as zeros (x is a constant: cached features).
 */
function denseLayer(tf: TfModule, withDx: boolean): (x: TF.Tensor2D, w: TF.Variable, b: TF.Variable) => TF.Tensor2D {
  const op = tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
    const [x, w, b, save] = args as [TF.Tensor2D, TF.Tensor2D, TF.Tensor1D, TF.GradSaveFunc];
    save([x, w]);
    return {
      value: tf.add(tf.matMul(x, w), b) as TF.Tensor2D,
      gradFunc: (dy: TF.Tensor, saved: TF.Tensor[]) => {
        const [xs, ws] = saved as [TF.Tensor2D, TF.Tensor2D];
        const dy2 = dy as TF.Tensor2D;
        const dw = tf.matMul(tf.transpose(xs), dy2);
        const db = tf.sum(dy2, 0);
        const dx = withDx ? tf.matMul(dy2, tf.transpose(ws)) : tf.zerosLike(xs);
        return [dx, dw, db];
      },
    };
  });
  return (x, w, b) => op(x, w, b) as TF.Tensor2D;
}

let nameCounter = 0;
function uniqueName(base: string): string {
  // tf.Variable names are global to the engine; several models may coexist in one process.
  return `carstudio_heads_${base}_${++nameCounter}`;
}

// ---------- loss weights ----------

export interface LossWeights {
  price: number;
  median: number;
  year: number;
  makeModel: number;
}

export const LOSS_PRESETS = {
  default: { price: 1, median: 1, year: 1, makeModel: 1 },
  price_ce_only: { price: 1, median: 0, year: 0, makeModel: 0 },
} as const satisfies Record<string, LossWeights>;
export type LossPreset = keyof typeof LOSS_PRESETS;

const WEIGHT_KEYS: Record<string, keyof LossWeights> = {
  price: 'price',
  price_ce: 'price',
  median: 'median',
  price_l1: 'median',
  year: 'year',
  make: 'makeModel',
  make_model: 'makeModel',
  makemodel: 'makeModel',
  model: 'makeModel',
};

/**
 * A preset name (`default`, `price_ce_only`) or `k=v,...` with keys price, median, year, make
 * (aliases price_ce, price_l1, make_model); keys left out keep the default weight 1.
 */
export function parseLossWeights(spec: string): LossWeights {
  const s = spec.trim();
  if (s in LOSS_PRESETS) return { ...LOSS_PRESETS[s as LossPreset] };
  if (!s.includes('=')) {
    throw new UserError(
      `unknown loss-weight preset '${s}' (presets: ${Object.keys(LOSS_PRESETS).join(', ')}; or k=v,... with keys price, median, year, make)`,
    );
  }
  const w: LossWeights = { ...LOSS_PRESETS.default };
  for (const part of s.split(',')) {
    if (!part.trim()) continue;
    const [k, v, extra] = part.split('=').map((x) => x.trim());
    const key = WEIGHT_KEYS[k?.toLowerCase() ?? ''];
    const num = Number(v);
    if (!key || extra !== undefined || v === undefined || v === '' || !Number.isFinite(num) || num < 0) {
      throw new UserError(`bad loss weight '${part.trim()}' (expected key=number >= 0, keys price, median, year, make)`);
    }
    w[key] = num;
  }
  return w;
}

export function formatLossWeights(w: LossWeights): string {
  for (const [name, p] of Object.entries(LOSS_PRESETS)) {
    if (p.price === w.price && p.median === w.median && p.year === w.year && p.makeModel === w.makeModel) return name;
  }
  return `price=${w.price},median=${w.median},year=${w.year},make=${w.makeModel}`;
}

// ---------- losses and metrics ----------

export interface BatchLabels {
  priceBin: TF.Tensor1D; // int32
  median: TF.Tensor1D; // float32, price / 30000
  makeModel: TF.Tensor1D; // int32
  year: TF.Tensor1D; // int32
  /** 0/1 per sample: the sample has a price (both price heads), a make/model, a year. */
  priceMask: TF.Tensor1D;
  makeModelMask: TF.Tensor1D;
  yearMask: TF.Tensor1D;
}

/**
 * Order of the values in the metrics vector `lossesAndCounts` returns: the weighted total (a
 * batch mean), then per head the SUM over its labelled samples of its loss (price CE, median
 * L1, make/model CE, year CE), the number of correct top-1 predictions, the number of labelled
 * samples, and the sum of the median's absolute error in dollars / 30000 (`medianAbs`: the
 * linear head's loss itself; for the log head, |30000 exp(z) - price| / 30000). Sums, so batches
 * add up exactly (see addBatchMetrics).
 */
export const METRIC_ORDER = [
  'total',
  'price',
  'median',
  'makeModel',
  'year',
  'priceCorrect',
  'makeModelCorrect',
  'yearCorrect',
  'priceN',
  'makeModelN',
  'yearN',
  'medianAbs',
] as const;
export const METRIC_COUNT = METRIC_ORDER.length;

/** Per-sample cross-entropy [N]. */
function crossEntropyPerSample(tf: TfModule, logits: TF.Tensor2D, labels: TF.Tensor1D): TF.Tensor1D {
  const depth = logits.shape[1];
  // One class (a dataset without years has only "unknown"): log-softmax is 0, and oneHot needs 2.
  if (depth < 2) return tf.zeros([logits.shape[0]]) as TF.Tensor1D;
  return tf.neg(tf.sum(tf.mul(tf.oneHot(labels, depth), tf.logSoftmax(logits)), 1)) as TF.Tensor1D;
}

function correctPerSample(tf: TfModule, logits: TF.Tensor2D, labels: TF.Tensor1D): TF.Tensor1D {
  return tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32') as TF.Tensor1D;
}

/**
 * The weighted total loss (a differentiable scalar) and the metrics vector in METRIC_ORDER. Each
 * head's loss is the mean over the samples that have its label (mask 1); a head with no labelled
 * sample in the batch, or weight 0, contributes nothing to the total (and gets no gradient).
 */
export function lossesAndCounts(
  tf: TfModule,
  out: HeadOutputs,
  labels: BatchLabels,
  w: LossWeights,
  medianHead: MedianHead = 'log',
): { total: TF.Scalar; metrics: TF.Tensor1D } {
  const median = medianLoss(tf, out.median, labels.median, medianHead);
  const perHead = [
    { loss: crossEntropyPerSample(tf, out.price, labels.priceBin), mask: labels.priceMask, w: w.price },
    { loss: median.loss, mask: labels.priceMask, w: w.median },
    { loss: crossEntropyPerSample(tf, out.makeModel, labels.makeModel), mask: labels.makeModelMask, w: w.makeModel },
    { loss: crossEntropyPerSample(tf, out.year, labels.year), mask: labels.yearMask, w: w.year },
  ];
  const sums = perHead.map((h) => tf.sum(tf.mul(h.loss, h.mask)) as TF.Scalar);
  const counts = perHead.map((h) => tf.sum(h.mask) as TF.Scalar);
  const terms: TF.Scalar[] = [];
  perHead.forEach((h, i) => {
    if (h.w !== 0) terms.push(tf.mul(tf.div(sums[i], tf.maximum(counts[i], 1)), h.w) as TF.Scalar);
  });
  const total = terms.length ? (tf.addN(terms) as TF.Scalar) : tf.scalar(0);
  const correct = (logits: TF.Tensor2D, y: TF.Tensor1D, mask: TF.Tensor1D): TF.Scalar =>
    tf.sum(tf.mul(correctPerSample(tf, logits, y), mask)) as TF.Scalar;
  const metrics = tf.stack([
    total,
    ...sums,
    correct(out.price, labels.priceBin, labels.priceMask),
    correct(out.makeModel, labels.makeModel, labels.makeModelMask),
    correct(out.year, labels.year, labels.yearMask),
    counts[0],
    counts[2],
    counts[3],
    tf.sum(tf.mul(median.absDollars, labels.priceMask)),
  ]) as TF.Tensor1D;
  return { total, metrics };
}

/**
 * Per-sample L1 loss of the median head on targets price / 30000 (`target`), and its absolute
 * error in dollars / 30000: log head, |z - ln(target)| and |exp(z) - target|; linear head, both
 * |z - target|.
 */
function medianLoss(tf: TfModule, z: TF.Tensor1D, target: TF.Tensor1D, head: MedianHead): { loss: TF.Tensor1D; absDollars: TF.Tensor1D } {
  if (head === 'linear') {
    const loss = tf.abs(tf.sub(z, target)) as TF.Tensor1D;
    return { loss, absDollars: loss };
  }
  const loss = tf.abs(tf.sub(z, tf.log(tf.maximum(target, MIN_MEDIAN_RATIO)))) as TF.Tensor1D;
  const dollars = tf.exp(tf.clipByValue(z, LOG_Z_RANGE[0], LOG_Z_RANGE[1]));
  return { loss, absDollars: tf.abs(tf.sub(dollars, target)) as TF.Tensor1D };
}

export interface HeadMetrics {
  /** Mean loss over the labelled samples (0 when there were none). */
  loss: number;
  accuracy: number;
  /** Samples that had this head's label; 0 = the head had no labels here. */
  n: number;
}

/** Metrics of a training step or an evaluation: per-head loss and accuracy, price MAE in dollars. */
export interface Metrics {
  /** The weighted total loss: the weighted sum of the heads' mean losses. */
  loss: number;
  price: HeadMetrics;
  /** L1 loss of the median-price head (on log-price, or dollars / 30000 for linear runs) and its mean absolute error in dollars. */
  median: { loss: number; maeDollars: number; n: number };
  makeModel: HeadMetrics;
  year: HeadMetrics;
  samples: number;
}

/**
 * Turns summed metric vectors (addBatchMetrics) into Metrics. With the run's loss weights the
 * total is recomputed from the heads' means over all the batches (exact for an evaluation);
 * without, it is the batch-size-weighted mean of the batches' totals.
 */
export function metricsFromSums(sums: ArrayLike<number>, n: number, weights?: LossWeights): Metrics {
  const mean = (sum: number, count: number): number => (count > 0 ? sum / count : 0);
  const [priceN, mmN, yearN] = [sums[8], sums[9], sums[10]];
  const price = mean(sums[1], priceN);
  const median = mean(sums[2], priceN);
  const mm = mean(sums[3], mmN);
  const year = mean(sums[4], yearN);
  const loss = weights
    ? weights.price * price + weights.median * median + weights.makeModel * mm + weights.year * year
    : sums[0] / Math.max(1, n);
  return {
    loss,
    price: { loss: price, accuracy: mean(sums[5], priceN), n: priceN },
    median: { loss: median, maeDollars: mean(sums[11] ?? sums[2], priceN) * MEDIAN_PRICE_SCALE, n: priceN },
    makeModel: { loss: mm, accuracy: mean(sums[6], mmN), n: mmN },
    year: { loss: year, accuracy: mean(sums[7], yearN), n: yearN },
    samples: n,
  };
}

/** Accumulates the metric vector of a batch of n samples (the total is a mean, weighted by n; the rest are sums). */
export function addBatchMetrics(sums: Float64Array, batch: ArrayLike<number>, n: number): void {
  sums[0] += batch[0] * n;
  for (let i = 1; i < METRIC_COUNT; i++) sums[i] += batch[i];
}

// ---------- backbones for fine-tuning ----------

export interface Backbone {
  /** Input [N, S, S, 3] RGB in [0, 1], output [N, featureDim]. */
  model: TF.LayersModel;
  inputSize: number;
  featureDim: number;
  name: string;
}

/**
 * The backbones a run can choose. `mobilenet_v2`: the ImageNet-pretrained MobileNetV2 inside
 * nsfwjs (heads mode trains on its cached features, finetune mode trains it whole). `tiny-cnn`:
 * the small CNN below trained from scratch at TINY_CNN.inputSize px, finetune only: a smoke test
 * of the fine-tuning pipeline on a machine without native TensorFlow, not a price model.
 */
export const BACKBONE_KINDS = ['mobilenet_v2', 'tiny-cnn'] as const;
export type BackboneKind = (typeof BACKBONE_KINDS)[number];
/** The tiny-cnn backbone of runs (the tests use other sizes through tinyCnnBackbone directly). */
export const TINY_CNN = { inputSize: 64, channels: 16 } as const;
/** Default learning rate of a tiny-cnn run: trained from scratch, it needs more than 1e-4. */
export const TINY_CNN_LR = 3e-3;

/** The size of a tiny CNN from its backbone name (`tiny-cnn-64px-16ch`), or null for another backbone. */
export function parseTinyCnnName(name: string | null | undefined): { inputSize: number; channels: number } | null {
  const m = /^tiny-cnn-(\d+)px-(\d+)ch$/.exec(name ?? '');
  return m ? { inputSize: Number(m[1]), channels: Number(m[2]) } : null;
}

/** Which kind of backbone a run's config.json `backbone` names (null = heads on MobileNetV2 features). */
export function backboneKindOf(name: string | null | undefined): BackboneKind {
  return parseTinyCnnName(name) ? 'tiny-cnn' : 'mobilenet_v2';
}

/**
 * A tiny CNN (two strided 3x3 convolutions with ReLU, global average pooling) at a small
 * resolution: the finetune code path at a size the pure-JS cpu backend trains in seconds.
 */
export function tinyCnnBackbone(tf: TfModule, opts: { inputSize?: number; channels?: number; seed?: number } = {}): Backbone {
  const S = opts.inputSize ?? 32;
  const ch = opts.channels ?? 16;
  const seed = opts.seed ?? 7;
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [S, S, 3],
        filters: ch / 2,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed }),
      }),
      tf.layers.conv2d({
        filters: ch,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }),
      }),
      tf.layers.globalAveragePooling2d({}),
    ],
  });
  return { model, inputSize: S, featureDim: ch, name: `tiny-cnn-${S}px-${ch}ch` };
}
