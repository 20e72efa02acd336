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
import { mulberry32 } from '../util/random.ts';
import { createRequire } from 'node:module';
import { createSvmScorer, type SvmScorer, type SvmScorerOptions } from './svm-scorer.ts';

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
  format: 'carstudio-rbf-svc/1';
  gamma: number;
  C: number;
  dim: number;
  /** Multiplier that turns libsvm's decision value into "positive = good". */
  sign: 1 | -1;
  /** libsvm's own model text (for provenance and for libsvm-js SVM.load). */
  libsvm: string;
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
    const gamma = opts.gamma === undefined || opts.gamma === 'scale' ? scaleGamma(m) : opts.gamma;
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
      const rows = order.map((i) => m.data.subarray(i * m.cols, (i + 1) * m.cols));
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
      format: 'carstudio-rbf-svc/1',
      gamma,
      C,
      dim: m.cols,
      sign: firstLabel === 1 ? 1 : -1,
      libsvm: text,
    });
  }

  /** One value per row: positive → "good" (class 1), like scikit-learn's decision_function. */
  decisionValues(X: MatrixInput): Float64Array {
    const m = toMatrix(X);
    if (m.rows > 0 && m.cols !== this.dim) throw new Error(`expected ${this.dim} features, got ${m.cols}`);
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
    return createSvmScorer(this, opts);
  }

  /** 1 where the decision value is > 0 (libsvm's rule), else 0. */
  predict(X: MatrixInput): Uint8Array {
    return Uint8Array.from(this.decisionValues(X), (v) => (v > 0 ? 1 : 0));
  }

  serialize(): string {
    const s: SerializedSvm = {
      format: 'carstudio-rbf-svc/1',
      gamma: this.gamma,
      C: this.C,
      dim: this.dim,
      sign: this.sign,
      libsvm: this.libsvmText,
    };
    return JSON.stringify(s);
  }

  static deserialize(text: string): SvmClassifier {
    const s = JSON.parse(text) as Partial<SerializedSvm>;
    if (s.format !== 'carstudio-rbf-svc/1' || typeof s.libsvm !== 'string' || typeof s.gamma !== 'number' || typeof s.dim !== 'number') {
      throw new Error('not a serialised CarStudio SVM');
    }
    return new SvmClassifier({
      format: s.format,
      gamma: s.gamma,
      C: s.C ?? 1,
      dim: s.dim,
      sign: s.sign === -1 ? -1 : 1,
      libsvm: s.libsvm,
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
 * Out-of-fold decision values for every sample: for each fold, an SVC (gamma='scale' computed
 * on that fold's training rows, as a fresh scikit-learn SVC() would) is fitted on the other
 * folds and scores the held-out rows.
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
