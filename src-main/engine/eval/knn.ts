// The k-nearest-neighbours baseline of an evaluation: each test row's k most cosine-similar
// training rows (on the same backbone features the model saw) vote for its class, per head among
// the training rows that have that head's label, and their mean value predicts a regression target.
// Similarities are computed block-wise (256 test rows against all training rows at a time) with
// TensorFlow.js's matMul when a fast backend is up (wasm: XNNPACK SIMD, or native), else with a
// register-tiled loop; top-k is kept by insertion into a small sorted list per row.
import { initBackend, type BackendInfo } from '../ml/backend.ts';

export interface KnnInput<H extends string> {
  /** Training features, nTrain x dim, row-major. */
  train: Float32Array;
  /** Per head, the class of each training row (-1 = none: the row does not vote for that head). */
  trainLabels: Record<H, Int32Array>;
  numClasses: Record<H, number>;
  /** A value per training row (e.g. price; NaN = none) whose neighbour mean is predicted. */
  trainValues?: Float32Array | Float64Array;
  /** Test features, nTest x dim, row-major. */
  test: Float32Array;
  dim: number;
  k: number;
  /** 'similarity' (default): votes weighted by exp(cosine / temperature); 'uniform': one vote each. */
  weighting?: 'similarity' | 'uniform';
  /** Temperature of similarity weighting (default 0.07). */
  temperature?: number;
  /** Added to every class's vote share before renormalising, so no class has probability 0 (default 1e-3). */
  smoothing?: number;
  /** Test rows per block (default 256). */
  blockRows?: number;
  /** The TensorFlow.js backend for the similarity matMul; undefined: initBackend(); null: the plain loop. */
  backend?: BackendInfo | null;
  /** Called after each block with test rows done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Checked between blocks: once aborted, knnPredict returns null. */
  signal?: AbortSignal;
}

export interface KnnResult<H extends string> {
  /** Per head, nTest x C class probabilities. */
  probs: Record<H, Float32Array>;
  /** Per test row, the mean value of its k nearest training rows that have one (NaN when none do); null without trainValues. */
  values: Float32Array | null;
  /** How the similarities were computed ('wasm', 'tensorflow', ... or 'js'). */
  computedWith: string;
}

/** L2-normalised copy of `rows` (n x dim); a zero row stays zero. */
export function l2Normalize(rows: Float32Array, dim: number): Float32Array {
  const n = rows.length / dim;
  const out = new Float32Array(rows.length);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let s = 0;
    for (let d = 0; d < dim; d++) s += rows[o + d] * rows[o + d];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[o + d] = rows[o + d] * inv;
  }
  return out;
}

/** out[i * nB + j] = <a_i, b_j> for the rows of a (nA x dim) and b (nB x dim), 4 x 4 tiles in registers. */
export function dotBlock(a: Float32Array, nA: number, b: Float32Array, nB: number, dim: number, out: Float32Array): void {
  const nB4 = nB - (nB % 4);
  let i = 0;
  for (; i + 4 <= nA; i += 4) {
    const a0 = i * dim;
    const a1 = a0 + dim;
    const a2 = a1 + dim;
    const a3 = a2 + dim;
    const r0 = i * nB;
    const r1 = r0 + nB;
    const r2 = r1 + nB;
    const r3 = r2 + nB;
    for (let j = 0; j < nB4; j += 4) {
      const b0 = j * dim;
      const b1 = b0 + dim;
      const b2 = b1 + dim;
      const b3 = b2 + dim;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0,
        s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      let s20 = 0,
        s21 = 0,
        s22 = 0,
        s23 = 0,
        s30 = 0,
        s31 = 0,
        s32 = 0,
        s33 = 0;
      for (let d = 0; d < dim; d++) {
        const x0 = b[b0 + d];
        const x1 = b[b1 + d];
        const x2 = b[b2 + d];
        const x3 = b[b3 + d];
        let y = a[a0 + d];
        s00 += y * x0;
        s01 += y * x1;
        s02 += y * x2;
        s03 += y * x3;
        y = a[a1 + d];
        s10 += y * x0;
        s11 += y * x1;
        s12 += y * x2;
        s13 += y * x3;
        y = a[a2 + d];
        s20 += y * x0;
        s21 += y * x1;
        s22 += y * x2;
        s23 += y * x3;
        y = a[a3 + d];
        s30 += y * x0;
        s31 += y * x1;
        s32 += y * x2;
        s33 += y * x3;
      }
      out[r0 + j] = s00;
      out[r0 + j + 1] = s01;
      out[r0 + j + 2] = s02;
      out[r0 + j + 3] = s03;
      out[r1 + j] = s10;
      out[r1 + j + 1] = s11;
      out[r1 + j + 2] = s12;
      out[r1 + j + 3] = s13;
      out[r2 + j] = s20;
      out[r2 + j + 1] = s21;
      out[r2 + j + 2] = s22;
      out[r2 + j + 3] = s23;
      out[r3 + j] = s30;
      out[r3 + j + 1] = s31;
      out[r3 + j + 2] = s32;
      out[r3 + j + 3] = s33;
    }
    for (let j = nB4; j < nB; j++) for (let r = 0; r < 4; r++) out[(i + r) * nB + j] = dot(a, (i + r) * dim, b, j * dim, dim);
  }
  for (; i < nA; i++) for (let j = 0; j < nB; j++) out[i * nB + j] = dot(a, i * dim, b, j * dim, dim);
}

/** <a[ao..ao+dim), b[bo..bo+dim)>. */
function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += a[ao + d] * b[bo + d];
  return s;
}

/** One top-k query: the training rows eligible for it and where its answer goes. */
interface Selector {
  eligible: Int32Array;
  /** Writes row t's answer from its m nearest eligible rows (indices and similarities, nearest first). */
  emit(t: number, idx: Int32Array, sim: Float64Array, m: number): void;
}

/** Indices of training rows whose label is >= 0. */
function labelled(labels: Int32Array): Int32Array {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) n++;
  const out = new Int32Array(n);
  n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) out[n++] = i;
  return out;
}

/** Per head the neighbours' vote shares (smoothed) and the neighbours' mean value, for every test row. */
export async function knnPredict<H extends string>(input: KnnInput<H>): Promise<KnnResult<H> | null> {
  const { train, test, dim, trainValues } = input;
  const k = input.k;
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`dim must be a positive integer, got ${dim}`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
  if (train.length % dim || test.length % dim) throw new Error(`feature arrays are not multiples of dim ${dim}`);
  const nTrain = train.length / dim;
  const nTest = test.length / dim;
  const weighting = input.weighting ?? 'similarity';
  const temperature = input.temperature ?? 0.07;
  const smoothing = input.smoothing ?? 1e-3;
  const blockRows = Math.max(1, input.blockRows ?? 256);
  if (trainValues && trainValues.length !== nTrain) throw new Error(`trainValues has ${trainValues.length} entries, expected ${nTrain}`);

  const heads = Object.keys(input.trainLabels) as H[];
  const probs = {} as Record<H, Float32Array>;
  const selectors: Selector[] = [];
  for (const h of heads) {
    const labels = input.trainLabels[h];
    const C = input.numClasses[h];
    if (!Number.isInteger(C) || C < 1) throw new Error(`head ${h}: number of classes must be a positive integer, got ${C}`);
    if (labels.length !== nTrain) throw new Error(`head ${h}: ${labels.length} training labels for ${nTrain} rows`);
    for (let i = 0; i < nTrain; i++) if (labels[i] >= C) throw new Error(`head ${h}: training label ${labels[i]} is outside 0..${C - 1}`);
    const out = new Float32Array(nTest * C).fill(1 / C);
    probs[h] = out;
    const votes = new Float64Array(C);
    selectors.push({
      eligible: labelled(labels),
      emit(t, idx, sim, m) {
        if (m === 0) return; // no labelled training row: stays uniform
        votes.fill(0);
        let total = 0;
        for (let r = 0; r < m; r++) {
          const w = weighting === 'uniform' ? 1 : Math.exp((sim[r] - sim[0]) / temperature);
          votes[labels[idx[r]]] += w;
          total += w;
        }
        const denom = 1 + C * smoothing;
        for (let c = 0; c < C; c++) out[t * C + c] = (votes[c] / total + smoothing) / denom;
      },
    });
  }
  let values: Float32Array | null = null;
  if (trainValues) {
    const vals = new Float32Array(nTest).fill(Number.NaN);
    values = vals;
    let n = 0;
    for (let i = 0; i < nTrain; i++) if (Number.isFinite(trainValues[i])) n++;
    const eligible = new Int32Array(n);
    n = 0;
    for (let i = 0; i < nTrain; i++) if (Number.isFinite(trainValues[i])) eligible[n++] = i;
    selectors.push({
      eligible,
      emit(t, idx, _sim, m) {
        if (m === 0) return;
        let s = 0;
        for (let r = 0; r < m; r++) s += trainValues[idx[r]];
        vals[t] = s / m;
      },
    });
  }

  let backend = input.backend;
  if (backend === undefined) backend = await initBackend().catch(() => null);
  const useTf = backend != null && backend.name !== 'cpu' && nTrain > 0 && nTest > 0;
  const trainN = l2Normalize(train, dim);
  const tf = useTf ? backend!.tf : null;
  let trainT: import('@tensorflow/tfjs').Tensor2D | null = null;
  if (tf) {
    // [dim, nTrain]: XNNPACK's matMul is several times faster without transposeB.
    const t = new Float32Array(train.length);
    for (let i = 0; i < nTrain; i++) for (let d = 0; d < dim; d++) t[d * nTrain + i] = trainN[i * dim + d];
    trainT = tf.tensor2d(t, [dim, nTrain]);
  }

  const topIdx = new Int32Array(k);
  const topSim = new Float64Array(k);
  const sims = tf ? null : new Float32Array(Math.min(blockRows, nTest) * nTrain);
  try {
    for (let start = 0; start < nTest; start += blockRows) {
      await new Promise<void>((resolve) => setImmediate(resolve)); // lets a cancel message reach the signal
      if (input.signal?.aborted) return null;
      const rows = Math.min(blockRows, nTest - start);
      const block = l2Normalize(test.subarray(start * dim, (start + rows) * dim), dim);
      let s: Float32Array;
      if (tf && trainT) {
        const a = tf.tensor2d(block, [rows, dim]);
        const prod = tf.matMul(a, trainT);
        s = (await prod.data()) as Float32Array;
        a.dispose();
        prod.dispose();
      } else {
        s = sims!;
        dotBlock(block, rows, trainN, nTrain, dim, s);
      }
      for (let r = 0; r < rows; r++) {
        const o = r * nTrain;
        for (const sel of selectors) {
          const el = sel.eligible;
          let m = 0;
          let worst = -Infinity; // the k-th similarity once k rows are kept
          for (let e = 0; e < el.length; e++) {
            const j = el[e];
            const v = s[o + j];
            if (v <= worst) continue;
            let p = m < k ? m++ : k - 1;
            while (p > 0 && topSim[p - 1] < v) {
              topSim[p] = topSim[p - 1];
              topIdx[p] = topIdx[p - 1];
              p--;
            }
            topSim[p] = v;
            topIdx[p] = j;
            if (m === k) worst = topSim[k - 1];
          }
          sel.emit(start + r, topIdx, topSim, m);
        }
      }
      input.onProgress?.(start + rows, nTest);
    }
  } finally {
    trainT?.dispose();
  }
  return { probs, values, computedWith: tf ? backend!.name : 'js' };
}
