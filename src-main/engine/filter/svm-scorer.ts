// Batched RBF-SVM scoring: the decision value of row x is
//   sign * (sum_k coef_k * exp(-gamma * ||x - sv_k||^2) - rho),
// with ||x - sv||^2 expanded as ||x||^2 + ||sv||^2 - 2 x·sv so that the x·svᵀ block is a matrix
// product. Two backends, both float64:
//  - ONNX Runtime (when onnxruntime-node loads): a small DOUBLE graph (MatMul, ReduceSumSquare,
//    Exp, MatMul) with the model as initializers, on all cores;
//  - plain JS: the product tiled (4 rows x 2 support vectors held in registers, support-vector
//    tiles sized for the L2 cache, row norms and support-vector norms computed once).
// The expansion loses digits when x is close to a support vector (catastrophic cancellation), so
// the squared distance is clamped at 0; for an exact match the kernel is then 1 within ~1e-13.
// SvmClassifier.decisionValues, which sums the differences directly, stays the reference.
// A model with a scaler (per-column mean and scale, see SvmClassifier) has its support vectors
// in the standardised space: both backends standardise each row first (the ONNX graph with a
// Sub and a Div), so callers always pass raw feature rows.
import onnxProto from 'onnx-proto';
import type { onnx as P } from 'onnx-proto';
import { GraphBuilder, littleEndian, ONNX_IR_VERSION, ONNX_OPSET } from '../ml/keras-onnx.ts';
import { createOrtSession, loadOrt, OrtNotInstalled, type OrtDevice, type OrtSessionOptions } from '../ml/ort.ts';

const { onnx } = onnxProto;

/** The parts of a trained RBF SVM that scoring needs. */
export interface RbfSvmModel {
  dim: number;
  gamma: number;
  rho: number;
  sign: 1 | -1;
  /** nSV x dim, row-major. */
  supportVectors: Float64Array;
  dualCoef: Float64Array;
  /** Applied to each raw row, x' = (x - mean) / scale, before the kernel; absent or null: none. */
  scaler?: { mean: Float64Array; scale: Float64Array } | null;
  /** The reference implementation (on raw rows), used to check a new ONNX Runtime session. */
  decisionValues(X: { data: Float64Array; rows: number; cols: number }): Float64Array;
}

export interface SvmScorerOptions {
  /** 'auto' (default): ONNX Runtime when onnxruntime-node loads, else JS. */
  backend?: 'auto' | 'onnx' | 'js';
  /** CPU threads for ONNX Runtime (default os.availableParallelism()). */
  threads?: number;
  /** Rows per ONNX Runtime run (default 4096); bounds the rows x support-vectors intermediate. */
  chunkRows?: number;
  /** Told why ONNX Runtime is not used when 'auto' falls back to JS ('warn' when it is installed but fails). */
  onFallback?(reason: string, level: 'info' | 'warn'): void;
  /** Where ONNX Runtime runs (default: $CARSTUDIO_ORT_DEVICE, else auto); see createOrtSession in ort.ts. */
  device?: OrtDevice;
  /** Where the line saying that CUDA failed goes (default stderr). */
  log?(level: 'info' | 'warn', message: string): void;
}

export interface SvmScorer {
  /** e.g. 'onnxruntime cpu (8 threads)' or 'js blocked'. */
  readonly backend: string;
  /** Decision values of the first `rows` rows of X (row-major, model.dim columns). */
  score(X: Float32Array | Float64Array, rows: number): Promise<Float64Array>;
  close(): Promise<void>;
}

function checkInput(model: RbfSvmModel, X: Float32Array | Float64Array, rows: number): void {
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`bad row count ${rows}`);
  if (X.length < rows * model.dim) throw new Error(`${X.length} values cannot hold ${rows} rows of ${model.dim} features`);
}

function svNorms(model: RbfSvmModel): Float64Array {
  const d = model.dim;
  const n = model.dualCoef.length;
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let s = 0;
    for (let j = 0, b = k * d; j < d; j++) s += model.supportVectors[b + j] * model.supportVectors[b + j];
    out[k] = s;
  }
  return out;
}

const ROW_GROUP = 4;
const SV_GROUP = 2;
/** Rows scored together (their dot products with every support vector are held at once). */
const ROW_CHUNK = 64;

/** The JS backend: float64, cache-blocked. */
export function jsSvmScorer(model: RbfSvmModel): SvmScorer {
  const d = model.dim;
  const nsv = model.dualCoef.length;
  // Support vectors padded to an even count with zero rows whose coefficient is 0.
  const nsvPad = Math.ceil(nsv / SV_GROUP) * SV_GROUP;
  const sv = new Float64Array(nsvPad * d);
  sv.set(model.supportVectors.subarray(0, nsv * d));
  const svn = new Float64Array(nsvPad);
  svn.set(svNorms(model));
  const coef = new Float64Array(nsvPad);
  coef.set(model.dualCoef);
  const gamma = model.gamma;
  const { rho, sign } = model;
  const mean = model.scaler?.mean ?? null;
  const scale = model.scaler?.scale ?? null;
  if (mean && (mean.length !== d || scale!.length !== d)) throw new Error(`the scaler has ${mean.length} values for ${d} features`);
  // Support vectors per tile: ~256 KiB of them stay in L2 while every row group of the chunk passes.
  const svTile = Math.max(SV_GROUP, Math.floor(32768 / Math.max(1, d) / SV_GROUP) * SV_GROUP);
  const xt = new Float64Array(ROW_CHUNK * d);
  const xx = new Float64Array(ROW_CHUNK);
  const dots = new Float64Array(ROW_CHUNK * nsvPad);

  function scoreSync(X: Float32Array | Float64Array, rows: number): Float64Array {
    checkInput(model, X, rows);
    const out = new Float64Array(rows);
    for (let r0 = 0; r0 < rows; r0 += ROW_CHUNK) {
      const n = Math.min(ROW_CHUNK, rows - r0);
      const nPad = Math.ceil(n / ROW_GROUP) * ROW_GROUP;
      for (let i = 0; i < nPad; i++) {
        let s = 0;
        const b = i * d;
        if (i < n) {
          const src = (r0 + i) * d;
          if (mean) {
            for (let j = 0; j < d; j++) {
              const v = (X[src + j] - mean[j]) / scale![j];
              xt[b + j] = v;
              s += v * v;
            }
          } else {
            for (let j = 0; j < d; j++) {
              const v = X[src + j];
              xt[b + j] = v;
              s += v * v;
            }
          }
        } else xt.fill(0, b, b + d);
        xx[i] = s;
      }
      for (let k0 = 0; k0 < nsvPad; k0 += svTile) {
        const k1 = Math.min(nsvPad, k0 + svTile);
        for (let i = 0; i < nPad; i += ROW_GROUP) {
          const a0 = i * d;
          const a1 = a0 + d;
          const a2 = a1 + d;
          const a3 = a2 + d;
          for (let k = k0; k < k1; k += SV_GROUP) {
            const b0 = k * d;
            const b1 = b0 + d;
            let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
            for (let j = 0; j < d; j++) {
              const s0 = sv[b0 + j];
              const s1 = sv[b1 + j];
              const x0 = xt[a0 + j];
              const x1 = xt[a1 + j];
              const x2 = xt[a2 + j];
              const x3 = xt[a3 + j];
              c00 += x0 * s0;
              c01 += x0 * s1;
              c10 += x1 * s0;
              c11 += x1 * s1;
              c20 += x2 * s0;
              c21 += x2 * s1;
              c30 += x3 * s0;
              c31 += x3 * s1;
            }
            const o = i * nsvPad + k;
            dots[o] = c00;
            dots[o + 1] = c01;
            dots[o + nsvPad] = c10;
            dots[o + nsvPad + 1] = c11;
            dots[o + 2 * nsvPad] = c20;
            dots[o + 2 * nsvPad + 1] = c21;
            dots[o + 3 * nsvPad] = c30;
            dots[o + 3 * nsvPad + 1] = c31;
          }
        }
      }
      for (let i = 0; i < n; i++) {
        let sum = 0;
        const o = i * nsvPad;
        const xi = xx[i];
        for (let k = 0; k < nsv; k++) {
          const d2 = xi + svn[k] - 2 * dots[o + k];
          sum += coef[k] * Math.exp(-gamma * (d2 > 0 ? d2 : 0));
        }
        out[r0 + i] = sign * (sum - rho);
      }
    }
    return out;
  }

  return {
    backend: 'js blocked',
    score: async (X, rows) => scoreSync(X, rows),
    close: async () => {},
  };
}

/** The ONNX model: X [N, dim] DOUBLE → decision [N] DOUBLE, the SVM as initializers. */
export function svmOnnxModel(model: RbfSvmModel): Uint8Array {
  const d = model.dim;
  const nsv = model.dualCoef.length;
  const g = new GraphBuilder();
  const doubles = (name: string, dims: number[], values: Float64Array): string => {
    const n = g.unique(name);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    g.initializers.push({ name: n, dims, dataType: onnx.TensorProto.DataType.DOUBLE, rawData: littleEndian(bytes, 8) });
    return n;
  };
  // -2 svᵀ (scaling by -2 is exact), so that the product is already the -2 x·sv term.
  const svtM2 = new Float64Array(d * nsv);
  for (let k = 0; k < nsv; k++) for (let j = 0; j < d; j++) svtM2[j * nsv + k] = -2 * model.supportVectors[k * d + j];
  // sign folded into the coefficients and the bias: sum(sign*c*K) - sign*rho = sign*(sum(c*K) - rho) exactly.
  const coef = Float64Array.from(model.dualCoef, (c) => model.sign * c);
  const input = 'X';
  const output = 'decision';
  let x = input;
  if (model.scaler) {
    if (model.scaler.mean.length !== d || model.scaler.scale.length !== d) throw new Error(`the scaler has ${model.scaler.mean.length} values for ${d} features`);
    const centred = g.node('Sub', [input, doubles('scaler_mean', [1, d], Float64Array.from(model.scaler.mean))], 'x_centred');
    x = g.node('Div', [centred, doubles('scaler_scale', [1, d], Float64Array.from(model.scaler.scale))], 'x_standardised');
  }
  const xx = g.node('ReduceSumSquare', [x], 'x_norm2', { axes: [1], keepdims: 1 });
  const prod = g.node('MatMul', [x, doubles('sv_t_m2', [d, nsv], svtM2)], 'minus_2_x_sv');
  const t = g.node('Add', [prod, xx], 'partial_d2');
  const d2 = g.node('Add', [t, doubles('sv_norm2', [1, nsv], svNorms(model))], 'd2');
  const clamped = g.node('Max', [d2, doubles('zero', [], new Float64Array([0]))], 'd2_clamped');
  const e = g.node('Mul', [clamped, doubles('minus_gamma', [], new Float64Array([-model.gamma]))], 'minus_gamma_d2');
  const k = g.node('Exp', [e], 'kernel');
  const s = g.node('MatMul', [k, doubles('coef', [nsv, 1], coef)], 'weighted');
  const biased = g.node('Add', [s, doubles('bias', [], new Float64Array([-model.sign * model.rho]))], 'biased');
  g.nodes.push({ opType: 'Reshape', input: [biased, g.int64s('flat', [-1])], output: [output], name: output });
  const valueInfo = (name: string, dims: P.TensorShapeProto.IDimension[]): P.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.DOUBLE, shape: { dim: dims } } },
  });
  const m: P.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'carstudio svm-scorer',
    producerVersion: '1',
    graph: {
      name: 'rbf_svm_decision',
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(input, [{ dimParam: 'N' }, { dimValue: d }])],
      output: [valueInfo(output, [{ dimParam: 'N' }])],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(m)).finish();
}

// The float64 side of onnxruntime-node's API (ort.ts declares the float32 side CarStudio's backbones use).
interface OrtF64Tensor {
  data: Float64Array;
  dims: readonly number[];
}
interface OrtF64Session {
  run(feeds: Record<string, OrtF64Tensor>): Promise<Record<string, OrtF64Tensor>>;
  release?(): Promise<void>;
}
interface OrtF64Module {
  Tensor: new (type: 'float64', data: Float64Array, dims: number[]) => OrtF64Tensor;
  InferenceSession: { create(model: string | Uint8Array, opts?: OrtSessionOptions): Promise<OrtF64Session> };
}

/** The ONNX Runtime backend (on the device asked for, see createOrtSession). Throws OrtNotInstalled when onnxruntime-node is absent. */
export async function onnxSvmScorer(model: RbfSvmModel, opts: SvmScorerOptions = {}): Promise<SvmScorer> {
  const ort = (await loadOrt()) as unknown as OrtF64Module;
  const chunk = Math.max(1, Math.floor(opts.chunkRows ?? 4096));
  const d = model.dim;
  async function run(session: OrtF64Session, x: Float64Array, n: number): Promise<Float64Array> {
    const res = await session.run({ X: new ort.Tensor('float64', x, [n, d]) });
    const t = res.decision;
    if (!t || !(t.data instanceof Float64Array) || t.data.length !== n) throw new Error(`the SVM graph returned ${t?.data.length ?? 'nothing'} values for ${n} rows`);
    return t.data;
  }
  const { session, backend } = await createOrtSession(ort, svmOnnxModel(model), {
    device: opts.device,
    threads: opts.threads,
    log: opts.log,
    // Checks the session once against the reference on a support vector (the cancellation case)
    // and a zero row.
    async check(s) {
      const probe = new Float64Array(2 * d);
      if (model.dualCoef.length > 0) probe.set(model.supportVectors.subarray(0, d));
      // a raw row that standardises to the first support vector
      if (model.scaler) for (let j = 0; j < d; j++) probe[j] = probe[j] * model.scaler.scale[j] + model.scaler.mean[j];
      const want = model.decisionValues({ data: probe, rows: 2, cols: d });
      const got = await run(s, probe, 2);
      for (let i = 0; i < 2; i++) {
        if (!(Math.abs(got[i] - want[i]) <= Math.max(1e-9, 1e-6 * Math.abs(want[i])))) {
          throw new Error(`ONNX Runtime's decision value ${got[i]} differs from the reference ${want[i]}`);
        }
      }
    },
  });
  return {
    backend,
    async score(X, rows) {
      checkInput(model, X, rows);
      const out = new Float64Array(rows);
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const n = Math.min(chunk, rows - r0);
        const src = X.subarray(r0 * d, (r0 + n) * d);
        out.set(await run(session, src instanceof Float64Array ? src : Float64Array.from(src), n), r0);
      }
      return out;
    },
    close: async () => {
      await session.release?.();
    },
  };
}

/** A scorer for `model`: ONNX Runtime when it loads (unless opts.backend says otherwise), else JS. */
export async function createSvmScorer(model: RbfSvmModel, opts: SvmScorerOptions = {}): Promise<SvmScorer> {
  const backend = opts.backend ?? 'auto';
  if (backend === 'js') return jsSvmScorer(model);
  if (backend === 'onnx') return onnxSvmScorer(model, opts);
  try {
    return await onnxSvmScorer(model, opts);
  } catch (e) {
    if (e instanceof OrtNotInstalled) opts.onFallback?.('onnxruntime-node is not installed', 'info');
    else opts.onFallback?.(`ONNX Runtime failed: ${(e as Error).message.split('\n')[0]}`, 'warn');
    return jsSvmScorer(model);
  }
}
