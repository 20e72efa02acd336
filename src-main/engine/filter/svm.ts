// RBF-kernel C-SVC on image features, matching scikit-learn's `SVC()` defaults (C=1,
// gamma='scale' = 1 / (n_features * X.var()), tol 1e-3, shrinking on). Training runs libsvm
// 3.22 compiled to WebAssembly (libsvm-js); decision values are computed here from the trained
// model (support vectors, dual coefficients, rho) in float64, because libsvm-js exposes only
// labels, and we keep gamma at full precision (libsvm's text format prints it with %g).
//
// Sign convention: positive decision value → class 1 ("good"), as scikit-learn's
// decision_function for classes [0, 1]. libsvm orders classes by first appearance in the
// training labels and its decision value is positive for the *first* label, so the sign is
// flipped when the first label libsvm saw is 0 (always the case here: see fit).
//
// Standardisation (default on): every column is centred and divided by its standard deviation
// on the training rows (a constant column by 1), as scikit-learn's StandardScaler, before the
// kernel, at fit and at scoring; gamma='scale' is then computed on the standardised rows. The
// scaler is part of the serialised model (format /2); models saved before it (format /1) have
// none and score exactly as they always did.
import { mulberry32 } from '../util/random.ts';
import { createRequire } from 'node:module';
import { createSvmScorer, jsSvmScorer, type SvmScorer, type SvmScorerOptions } from './svm-scorer.ts';
import { chooseThreshold, thresholdTable } from './threshold.ts';

/** A row-major matrix of rows x cols. */
export interface FeatureMatrix {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}
export type MatrixInput = FeatureMatrix | readonly ArrayLike<number>[];

export interface SvmOptions {
  /** C (default 1). */
  C?: number;
  /** A number, or 'scale' (default) = 1 / (n_features * X.var()). */
  gamma?: number | 'scale';
  /** Stopping tolerance (default 1e-3, as libsvm and scikit-learn). */
  tolerance?: number;
  /** Standardise every column on the training rows before the kernel (default true). */
  standardize?: boolean;
}

/** Per-column centring and scaling: x' = (x - mean) / scale. */
export interface Standardizer {
  mean: Float64Array;
  /** The population standard deviation (ddof 0, as StandardScaler); 1 for a constant column. */
  scale: Float64Array;
}

/** Mean and standard deviation of every column of X (two passes, float64). */
export function fitStandardizer(X: MatrixInput): Standardizer {
  const m = toMatrix(X);
  if (m.rows === 0) throw new Error('empty matrix');
  const { rows, cols, data } = m;
  const mean = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0, b = i * cols; j < cols; j++) mean[j] += data[b + j];
  for (let j = 0; j < cols; j++) mean[j] /= rows;
  const ss = new Float64Array(cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0, b = i * cols; j < cols; j++) {
      const d = data[b + j] - mean[j];
      ss[j] += d * d;
    }
  const scale = Float64Array.from(ss, (v) => {
    const sd = Math.sqrt(v / rows);
    return sd > 0 && Number.isFinite(sd) ? sd : 1;
  });
  return { mean, scale };
}

/** The first `rows` rows of a row-major matrix, standardised into a new float64 array. */
export function standardizeRows(s: Standardizer, data: ArrayLike<number>, rows: number): Float64Array {
  const cols = s.mean.length;
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0, b = i * cols; j < cols; j++) out[b + j] = (data[b + j] - s.mean[j]) / s.scale[j];
  return out;
}

interface LibsvmInstance {
  train(samples: ArrayLike<number>[], labels: number[]): void;
  serializeModel(): string;
  free(): void;
}
interface LibsvmStatic {
  new (options: Record<string, unknown>): LibsvmInstance;
  KERNEL_TYPES: { RBF: string };
  SVM_TYPES: { C_SVC: string };
}

const require = createRequire(import.meta.url);
let libsvmPromise: Promise<LibsvmStatic> | null = null;

/** Loads the libsvm-js WebAssembly build once per process. */
export function loadLibsvm(): Promise<LibsvmStatic> {
  if (!libsvmPromise) {
    // Emscripten first tries streaming compilation via fetch(), which cannot read a file path
    // under Node, warns, and falls back to reading the file. Hide exactly those two lines.
    const warn = console.warn;
    const filtered = (...args: unknown[]) => {
      const first = typeof args[0] === 'string' ? args[0] : '';
      if (first.startsWith('wasm streaming compile failed') || first.startsWith('falling back to ArrayBuffer')) return;
      warn.apply(console, args);
    };
    console.warn = filtered;
    const restore = () => {
      if (console.warn === filtered) console.warn = warn;
    };
    libsvmPromise = (require('libsvm-js') as Promise<LibsvmStatic>).then(
      (m) => {
        restore();
        return m;
      },
      (err: unknown) => {
        restore();
        libsvmPromise = null;
        throw err;
      },
    );
  }
  return libsvmPromise;
}

export function toMatrix(X: MatrixInput): FeatureMatrix {
  if (!Array.isArray(X)) {
    const m = X as FeatureMatrix;
    if (m.data.length !== m.rows * m.cols) throw new Error(`matrix ${m.rows}x${m.cols} has ${m.data.length} values`);
    return m;
  }
  const rowsArr = X as readonly ArrayLike<number>[];
  const rows = rowsArr.length;
  const cols = rows ? rowsArr[0].length : 0;
  const data = new Float64Array(rows * cols);
  rowsArr.forEach((r, i) => {
    if (r.length !== cols) throw new Error(`row ${i} has ${r.length} values, expected ${cols}`);
    for (let j = 0; j < cols; j++) data[i * cols + j] = r[j];
  });
  return { data, rows, cols };
}

/** scikit-learn's gamma='scale': 1 / (n_features * var(X)) over all entries; 1 when var is 0. */
export function scaleGamma(X: MatrixInput): number {
  const m = toMatrix(X);
  const n = m.data.length;
  if (n === 0) throw new Error('empty matrix');
  let sum = 0;
  for (let i = 0; i < n; i++) sum += m.data[i];
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = m.data[i] - mean;
    ss += d * d;
  }
  const variance = ss / n;
  return variance !== 0 ? 1 / (m.cols * variance) : 1;
}

interface SerializedSvm {
  /** /1: no scaler (saved before standardisation, or fitted with standardize: false); /2: with a scaler. */
  format: 'carstudio-rbf-svc/1' | 'carstudio-rbf-svc/2';
  gamma: number;
  C: number;
  dim: number;
  /** Multiplier that turns libsvm's decision value into "positive = good". */
  sign: 1 | -1;
  /** libsvm's own model text, in the standardised space when there is a scaler (for provenance and for libsvm-js SVM.load). */
  libsvm: string;
  /** Format /2 only: the column means and scales applied before the kernel. */
  scaler?: { mean: number[]; scale: number[] };
}

export class SvmClassifier {
  readonly gamma: number;
  readonly C: number;
  readonly dim: number;
  /** Support vectors, nSV x dim, float64. */
  readonly supportVectors: Float64Array;
  /** libsvm's sv_coef (y_i * alpha_i in libsvm's label order). */
  readonly dualCoef: Float64Array;
  readonly rho: number;
  readonly sign: 1 | -1;
  /** Support vectors per class: [class 0 "bad", class 1 "good"]. */
  readonly nSupport: [number, number];
  /** Applied to every row before the kernel; null for models without one (format /1). */
  readonly scaler: Standardizer | null;
  private readonly libsvmText: string;

  private constructor(s: SerializedSvm) {
    const parsed = parseLibsvmModel(s.libsvm, s.dim);
    this.gamma = s.gamma;
    this.C = s.C;
    this.dim = s.dim;
    this.sign = s.sign;
    this.libsvmText = s.libsvm;
    this.supportVectors = parsed.sv;
    this.dualCoef = parsed.coef;
    this.rho = parsed.rho;
    const byLabel = new Map<number, number>(parsed.labels.map((l, i) => [l, parsed.nSV[i]]));
    this.nSupport = [byLabel.get(0) ?? 0, byLabel.get(1) ?? 0];
    if (s.scaler) {
      const { mean, scale } = s.scaler;
      if (mean.length !== s.dim || scale.length !== s.dim) throw new Error(`the SVM's scaler has ${mean.length}/${scale.length} values for ${s.dim} features`);
      if (!scale.every((v) => v > 0 && Number.isFinite(v))) throw new Error('the SVM scaler has a scale that is not a positive number');
      this.scaler = { mean: Float64Array.from(mean), scale: Float64Array.from(scale) };
    } else this.scaler = null;
  }

  /** Trains on X (rows = samples) with y = 1 good / 0 bad. */
  static async fit(X: MatrixInput, y: ArrayLike<number>, opts: SvmOptions = {}): Promise<SvmClassifier> {
    const m = toMatrix(X);
    if (m.rows !== y.length) throw new Error(`X has ${m.rows} rows, y has ${y.length} labels`);
    const labels = Array.from(y, (v) => {
      if (v !== 0 && v !== 1) throw new Error(`labels must be 0 or 1, got ${v}`);
      return v;
    });
    if (!labels.includes(0) || !labels.includes(1)) throw new Error('training needs both good (1) and bad (0) examples');
    const scaler = opts.standardize === false ? null : fitStandardizer(m);
    const mt: FeatureMatrix = scaler ? { data: standardizeRows(scaler, m.data, m.rows), rows: m.rows, cols: m.cols } : m;
    const gamma = opts.gamma === undefined || opts.gamma === 'scale' ? scaleGamma(mt) : opts.gamma;
    if (!(gamma > 0) || !Number.isFinite(gamma)) throw new Error(`bad gamma ${gamma}`);
    const C = opts.C ?? 1;
    const SVM = await loadLibsvm();
    const svm = new SVM({
      type: SVM.SVM_TYPES.C_SVC,
      kernel: SVM.KERNEL_TYPES.RBF,
      gamma,
      cost: C,
      tolerance: opts.tolerance ?? 1e-3,
      shrinking: true,
      probabilityEstimates: false,
      quiet: true,
    });
    let text: string;
    try {
      // libsvm groups the samples by class (first-seen class first, each class in input order)
      // before solving; scikit-learn's copy sorts the classes, so class 0 always comes first.
      // Handing libsvm the rows already grouped that way makes it walk the same path as
      // scikit-learn (otherwise the two solutions differ within the 1e-3 stopping tolerance).
      const order = [...labels.keys()].filter((i) => labels[i] === 0).concat([...labels.keys()].filter((i) => labels[i] === 1));
      const rows = order.map((i) => mt.data.subarray(i * m.cols, (i + 1) * m.cols));
      svm.train(
        rows,
        order.map((i) => labels[i]),
      );
      text = svm.serializeModel();
    } finally {
      svm.free();
    }
    const firstLabel = parseLibsvmModel(text, m.cols).labels[0];
    return new SvmClassifier({
      format: scaler ? 'carstudio-rbf-svc/2' : 'carstudio-rbf-svc/1',
      gamma,
      C,
      dim: m.cols,
      sign: firstLabel === 1 ? 1 : -1,
      libsvm: text,
      scaler: scaler ? { mean: Array.from(scaler.mean), scale: Array.from(scaler.scale) } : undefined,
    });
  }

  /** One value per row: positive → "good" (class 1), like scikit-learn's decision_function. */
  decisionValues(X: MatrixInput): Float64Array {
    const m = toMatrix(X);
    if (m.rows > 0 && m.cols !== this.dim) throw new Error(`expected ${this.dim} features, got ${m.cols}`);
    return this.kernelDecision(this.scaler ? { data: standardizeRows(this.scaler, m.data, m.rows), rows: m.rows, cols: m.cols } : m);
  }

  /** Decision values of rows already in the kernel's space (standardised when there is a scaler). */
  private kernelDecision(m: FeatureMatrix): Float64Array {
    const out = new Float64Array(m.rows);
    const d = this.dim;
    const sv = this.supportVectors;
    const nsv = this.dualCoef.length;
    const x = new Float64Array(d);
    for (let i = 0; i < m.rows; i++) {
      for (let j = 0; j < d; j++) x[j] = m.data[i * d + j];
      let sum = 0;
      for (let k = 0; k < nsv; k++) {
        // Squared distance summed directly, as libsvm's k_function does at prediction time.
        let d2 = 0;
        const base = k * d;
        for (let j = 0; j < d; j++) {
          const diff = x[j] - sv[base + j];
          d2 += diff * diff;
        }
        sum += this.dualCoef[k] * Math.exp(-this.gamma * d2);
      }
      out[i] = this.sign * (sum - this.rho);
    }
    return out;
  }

  /**
   * A batched scorer for many rows (ONNX Runtime when onnxruntime-node loads, else cache-blocked
   * JS; both float64, within 1e-6 relative of decisionValues). Build it once, reuse it over
   * batches, close it at the end.
   */
  scorer(opts?: SvmScorerOptions): Promise<SvmScorer> {
    // the scorers standardise rows themselves when the model has a scaler
    return createSvmScorer(this, opts);
  }

  /** Decision values through the blocked JS scorer (faster than decisionValues, within 1e-6 relative). */
  async fastDecisionValues(X: MatrixInput): Promise<Float64Array> {
    const m = toMatrix(X);
    if (m.rows > 0 && m.cols !== this.dim) throw new Error(`expected ${this.dim} features, got ${m.cols}`);
    return jsSvmScorer(this).score(m.data, m.rows);
  }

  /** 1 where the decision value is > 0 (libsvm's rule), else 0. */
  predict(X: MatrixInput): Uint8Array {
    return Uint8Array.from(this.decisionValues(X), (v) => (v > 0 ? 1 : 0));
  }

  serialize(): string {
    const s: SerializedSvm = {
      format: this.scaler ? 'carstudio-rbf-svc/2' : 'carstudio-rbf-svc/1',
      gamma: this.gamma,
      C: this.C,
      dim: this.dim,
      sign: this.sign,
      libsvm: this.libsvmText,
    };
    // JSON keeps every float64 exactly (shortest round-trip form)
    if (this.scaler) s.scaler = { mean: Array.from(this.scaler.mean), scale: Array.from(this.scaler.scale) };
    return JSON.stringify(s);
  }

  static deserialize(text: string): SvmClassifier {
    const s = JSON.parse(text) as Partial<SerializedSvm>;
    if ((s.format !== 'carstudio-rbf-svc/1' && s.format !== 'carstudio-rbf-svc/2') || typeof s.libsvm !== 'string' || typeof s.gamma !== 'number' || typeof s.dim !== 'number') {
      throw new Error('not a serialised CarStudio SVM');
    }
    let scaler: SerializedSvm['scaler'];
    if (s.format === 'carstudio-rbf-svc/2') {
      if (!s.scaler || !Array.isArray(s.scaler.mean) || !Array.isArray(s.scaler.scale)) throw new Error('a serialised CarStudio SVM of format /2 needs its scaler');
      scaler = s.scaler;
    }
    return new SvmClassifier({
      format: s.format,
      gamma: s.gamma,
      C: s.C ?? 1,
      dim: s.dim,
      sign: s.sign === -1 ? -1 : 1,
      libsvm: s.libsvm,
      scaler,
    });
  }
}

export function fitSvm(X: MatrixInput, y: ArrayLike<number>, opts?: SvmOptions): Promise<SvmClassifier> {
  return SvmClassifier.fit(X, y, opts);
}

/**
 * Deterministic stratified fold assignment: each class's indices are shuffled with a seeded
 * PRNG and dealt round-robin to the folds, so every fold gets ⌊n_c/k⌋ or ⌈n_c/k⌉ of class c.
 */
export function stratifiedFolds(y: ArrayLike<number>, folds: number, seed = 0): Int32Array {
  if (!Number.isInteger(folds) || folds < 2) throw new Error(`folds must be an integer >= 2, got ${folds}`);
  if (y.length < folds) throw new Error(`${y.length} samples cannot be split into ${folds} folds`);
  const rand = mulberry32(seed);
  const fold = new Int32Array(y.length);
  const classes = [...new Set(Array.from(y))].sort((a, b) => a - b);
  let offset = 0;
  for (const c of classes) {
    const idx: number[] = [];
    for (let i = 0; i < y.length; i++) if (y[i] === c) idx.push(i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    // Continue dealing where the previous class stopped, so fold sizes stay balanced overall.
    idx.forEach((sample, k) => (fold[sample] = (offset + k) % folds));
    offset = (offset + idx.length) % folds;
  }
  return fold;
}

/**
 * Out-of-fold decision values for every sample: for each fold, an SVC (standardised and with
 * gamma='scale' computed on that fold's training rows, as a fresh scikit-learn
 * make_pipeline(StandardScaler(), SVC()) would; opts.standardize: false for a plain SVC()) is
 * fitted on the other folds and scores the held-out rows. One C throughout (tuneSvm chooses it).
 */
export async function crossValDecision(
  X: MatrixInput,
  y: ArrayLike<number>,
  folds = 10,
  seed = 0,
  opts: SvmOptions & { onFold?(fold: number, folds: number): void } = {},
): Promise<Float64Array> {
  const m = toMatrix(X);
  if (m.rows !== y.length) throw new Error(`X has ${m.rows} rows, y has ${y.length} labels`);
  const assign = stratifiedFolds(y, folds, seed);
  const out = new Float64Array(m.rows);
  for (let f = 0; f < folds; f++) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < m.rows; i++) (assign[i] === f ? test : train).push(i);
    if (test.length === 0) continue;
    const model = await SvmClassifier.fit(
      subRows(m, train),
      train.map((i) => y[i]),
      opts,
    );
    const dec = model.decisionValues(subRows(m, test));
    test.forEach((i, k) => (out[i] = dec[k]));
    opts.onFold?.(f + 1, folds);
  }
  return out;
}

/** A stage of tuneSvm's work, reported after every SVM fit. */
export interface TuneProgress {
  /** Fits done and to do, over the whole tuning (outer folds, their inner fits, the final choice of C and the final fit). */
  done: number;
  total: number;
  /** e.g. 'outer fold 3/10: C=4, inner fold 2/3'. */
  message: string;
}

export interface TuneOptions extends Omit<SvmOptions, 'C'> {
  /** Outer cross-validation folds (default 10): their held-out decision values estimate the FNR. */
  folds?: number;
  seed?: number;
  /** The values of C to choose from (default [1, 4]); one value skips the inner cross-validation. */
  cGrid?: readonly number[];
  /** Folds of the inner cross-validation that chooses C (default 3). */
  innerFolds?: number;
  /** The FNR cap the inner criterion uses (default 0.01): the share of bad removed at the largest threshold within it. */
  maxFnr?: number;
  signal?: AbortSignal;
  onProgress?(p: TuneProgress): void;
}

/**
 * The default grid: C=1 alone. On listing-photos with car-v1 the nested search over {1, 4}
 * removed 76.9% of bad photos at 1% FNR against 76.5% for C=1, for about 7x the fit time (77 fits
 * instead of 11), so it is an option (--c-grid 1,4), not the default.
 */
export const DEFAULT_C_GRID: readonly number[] = [1];
export const DEFAULT_INNER_FOLDS = 3;

/** Why a C was chosen: the inner cross-validated share of bad removed at the FNR cap, per value of the grid (empty when the grid has one value). */
export interface CChoice {
  C: number;
  badRemoved: number[];
}

export interface TuneResult {
  /** Out-of-fold decision values of every row, each from a model (with its fold's C) that never saw that row. */
  scores: Float64Array;
  /** The outer fold of every row (stratifiedFolds(y, folds, seed)). */
  foldOf: Int32Array;
  /** The C chosen inside each outer fold, and why. */
  foldChoices: CChoice[];
  /** The C of the final model, chosen by the inner cross-validation on all rows. */
  finalChoice: CChoice;
  /** Fitted on all rows with finalChoice.C. */
  model: SvmClassifier;
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

function checkGrid(grid: readonly number[]): number[] {
  if (grid.length === 0) throw new Error('the C grid is empty');
  for (const c of grid) if (!(c > 0) || !Number.isFinite(c)) throw new Error(`every C must be a positive number, got ${c}`);
  return [...new Set(grid)].sort((a, b) => a - b);
}

/** A seed of its own for each inner cross-validation, derived from the outer seed. */
function innerSeed(seed: number, fold: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) + 7919 * (fold + 1)) >>> 0;
}

/**
 * The C of `grid` whose `folds`-fold cross-validation on (X, y) removes the largest share of bad
 * rows at the largest threshold whose FNR is <= maxFnr (ties: the smaller C). A grid of one value
 * is returned without fitting; so is the smallest C when a class has fewer rows than folds.
 */
export async function chooseC(
  X: FeatureMatrix,
  y: ArrayLike<number>,
  grid: readonly number[],
  opts: Omit<SvmOptions, 'C'> & { folds: number; seed: number; maxFnr: number; signal?: AbortSignal; onFit?(c: number, fold: number): void },
): Promise<CChoice> {
  const cs = checkGrid(grid);
  let n1 = 0;
  for (let i = 0; i < y.length; i++) n1 += y[i] === 1 ? 1 : 0;
  if (cs.length === 1 || Math.min(n1, y.length - n1) < opts.folds) return { C: cs[0], badRemoved: [] };
  const assign = stratifiedFolds(y, opts.folds, opts.seed);
  const parts: Array<{ train: number[]; test: number[] }> = [];
  for (let f = 0; f < opts.folds; f++) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < X.rows; i++) (assign[i] === f ? test : train).push(i);
    parts.push({ train, test });
  }
  const badRemoved: number[] = [];
  for (const C of cs) {
    const dec = new Float64Array(X.rows);
    for (let f = 0; f < opts.folds; f++) {
      checkAborted(opts.signal);
      const { train, test } = parts[f];
      const model = await SvmClassifier.fit(
        subRows(X, train),
        train.map((i) => y[i]),
        { gamma: opts.gamma, tolerance: opts.tolerance, standardize: opts.standardize, C },
      );
      const d = await model.fastDecisionValues(subRows(X, test));
      test.forEach((i, k) => (dec[i] = d[k]));
      opts.onFit?.(C, f);
    }
    badRemoved.push(chooseThreshold(thresholdTable(dec, y), opts.maxFnr).badRemoved);
  }
  let best = 0;
  for (let k = 1; k < cs.length; k++) if (badRemoved[k] > badRemoved[best]) best = k;
  return { C: cs[best], badRemoved };
}

/**
 * Nested cross-validation and the final fit. For each outer fold, C is chosen by an inner
 * cross-validation on that fold's training rows alone (chooseC), a model with that C is fitted on
 * them, and it scores the held-out rows: so the out-of-fold scores, and the FNR read from them,
 * estimate the whole procedure on unseen rows. The final model's C is chosen the same way on all
 * rows. Cancellation (opts.signal) is checked before every fit.
 */
export async function tuneSvm(X: MatrixInput, y: ArrayLike<number>, opts: TuneOptions = {}): Promise<TuneResult> {
  const m = toMatrix(X);
  if (m.rows !== y.length) throw new Error(`X has ${m.rows} rows, y has ${y.length} labels`);
  const folds = opts.folds ?? 10;
  const seed = opts.seed ?? 0;
  const innerFolds = opts.innerFolds ?? DEFAULT_INNER_FOLDS;
  if (!Number.isInteger(innerFolds) || innerFolds < 2) throw new Error(`inner folds must be an integer >= 2, got ${innerFolds}`);
  const grid = checkGrid(opts.cGrid ?? DEFAULT_C_GRID);
  const maxFnr = opts.maxFnr ?? 0.01;
  const { signal, onProgress } = opts;
  const svmOpts: Omit<SvmOptions, 'C'> = { gamma: opts.gamma, tolerance: opts.tolerance, standardize: opts.standardize };
  const innerFits = grid.length > 1 ? grid.length * innerFolds : 0;
  const total = folds * (innerFits + 1) + innerFits + 1;
  let done = 0;
  const tick = (message: string) => onProgress?.({ done: ++done, total, message });
  const assign = stratifiedFolds(y, folds, seed);
  const scores = new Float64Array(m.rows);
  const foldChoices: CChoice[] = [];
  for (let f = 0; f < folds; f++) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < m.rows; i++) (assign[i] === f ? test : train).push(i);
    const Xtrain = subRows(m, train);
    const ytrain = train.map((i) => y[i]);
    const before = done;
    const choice = await chooseC(Xtrain, ytrain, grid, {
      ...svmOpts,
      folds: innerFolds,
      seed: innerSeed(seed, f),
      maxFnr,
      signal,
      onFit: (C, k) => tick(`outer fold ${f + 1}/${folds}: C=${C}, inner fold ${k + 1}/${innerFolds}`),
    });
    // an inner search skipped for lack of rows still moves the bar by its share
    done = before + innerFits;
    foldChoices.push(choice);
    checkAborted(signal);
    if (test.length > 0) {
      const model = await SvmClassifier.fit(Xtrain, ytrain, { ...svmOpts, C: choice.C });
      const dec = model.decisionValues(subRows(m, test));
      test.forEach((i, k) => (scores[i] = dec[k]));
    }
    tick(`outer fold ${f + 1}/${folds}: scored ${test.length} held-out rows with C=${choice.C}`);
  }
  const before = done;
  const finalChoice = await chooseC(m, y, grid, {
    ...svmOpts,
    folds: innerFolds,
    seed: innerSeed(seed, folds),
    maxFnr,
    signal,
    onFit: (C, k) => tick(`final model: C=${C}, fold ${k + 1}/${innerFolds}`),
  });
  done = before + innerFits;
  checkAborted(signal);
  const model = await SvmClassifier.fit(m, y, { ...svmOpts, C: finalChoice.C });
  tick(`final model fitted with C=${finalChoice.C}`);
  return { scores, foldOf: assign, foldChoices, finalChoice, model };
}

function subRows(m: FeatureMatrix, idx: readonly number[]): FeatureMatrix {
  const data = new Float64Array(idx.length * m.cols);
  idx.forEach((r, i) => data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return { data, rows: idx.length, cols: m.cols };
}


interface ParsedModel {
  labels: number[];
  nSV: number[];
  rho: number;
  sv: Float64Array;
  coef: Float64Array;
}

/** Parses libsvm's text model (binary C-SVC). Feature indices are 1-based; absent ones are 0. */
function parseLibsvmModel(text: string, dim: number): ParsedModel {
  const lines = text.split('\n');
  const header = new Map<string, string>();
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === 'SV') break;
    const sp = line.indexOf(' ');
    if (sp > 0) header.set(line.slice(0, sp), line.slice(sp + 1).trim());
  }
  if (header.get('svm_type') !== 'c_svc' || header.get('kernel_type') !== 'rbf') {
    throw new Error('expected a c_svc model with an rbf kernel');
  }
  if (header.get('nr_class') !== '2') throw new Error(`expected a two-class model, got nr_class ${header.get('nr_class')}`);
  const labels = (header.get('label') ?? '').split(/\s+/).map(Number);
  const nSV = (header.get('nr_sv') ?? '').split(/\s+/).map(Number);
  const rho = Number(header.get('rho'));
  const total = Number(header.get('total_sv'));
  if (!Number.isFinite(rho) || !(total >= 0)) throw new Error('malformed libsvm model header');
  const sv = new Float64Array(total * dim);
  const coef = new Float64Array(total);
  let k = 0;
  for (i = i + 1; i < lines.length && k < total; i++) {
    const parts = lines[i].trim().split(/\s+/);
    if (parts.length === 0 || parts[0] === '') continue;
    coef[k] = Number(parts[0]);
    for (let p = 1; p < parts.length; p++) {
      const c = parts[p].indexOf(':');
      const idx = Number(parts[p].slice(0, c));
      if (idx >= 1 && idx <= dim) sv[k * dim + idx - 1] = Number(parts[p].slice(c + 1));
    }
    k++;
  }
  if (k !== total) throw new Error(`libsvm model lists ${k} support vectors, header says ${total}`);
  return { labels, nSV, rho, sv, coef };
}
