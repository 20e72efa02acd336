// The scores of a run's evaluation, as pure functions over row-major probability matrices
// (Float32Array n x C) and label arrays (Int32Array n, -1 = the row has no label for this head and
// is not scored). The eval job computes the matrices (model, majority baseline, kNN baseline) and
// passes them to the head assemblers at the bottom, which return the report's HeadScores.
import type { ClassificationScores, ConfusedPair, HeadScores, PerClassScore, ReliabilityBin } from '../api/contract/eval.ts';

/** Probabilities below this are clamped before the log of cross-entropy. */
export const CE_CLAMP = 1e-7;
/** Reliability-diagram bins unless told otherwise. */
export const DEFAULT_BINS = 15;
/** Pseudo-count added to every class of the majority baseline (no class has probability 0). */
export const PRIOR_SMOOTHING = 1e-3;

export type Matrix = Float32Array;
export type Values = Float32Array | Float64Array;

/** Checks that `probs` is labels.length x C and every label is -1 or a class index. */
function checkShape(probs: Matrix, labels: Int32Array, C: number): number {
  if (!Number.isInteger(C) || C < 1) throw new Error(`number of classes must be a positive integer, got ${C}`);
  const n = labels.length;
  if (probs.length !== n * C) throw new Error(`probability matrix has ${probs.length} values, expected ${n} x ${C}`);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < -1 || y >= C) throw new Error(`label ${y} of row ${i} is outside 0..${C - 1} (or -1 for none)`);
  }
  return n;
}

/** Index of the largest of row i's probabilities (the first one on ties). */
export function argmaxRow(probs: Matrix, i: number, C: number): number {
  const o = i * C;
  let best = 0;
  let bv = probs[o];
  for (let c = 1; c < C; c++) {
    const v = probs[o + c];
    if (v > bv) {
      bv = v;
      best = c;
    }
  }
  return best;
}

/** Rank (0 = top) of class y in row i, ties broken by class index as argmaxRow does. */
function rankOf(probs: Matrix, i: number, C: number, y: number): number {
  const o = i * C;
  const py = probs[o + y];
  let rank = 0;
  for (let c = 0; c < C; c++) {
    const v = probs[o + c];
    if (v > py || (v === py && c < y)) rank++;
  }
  return rank;
}

/** Top-1, top-5, mean cross-entropy, ECE and the reliability bins of the labelled rows. */
export function classificationScores(probs: Matrix, labels: Int32Array, C: number, opts: { bins?: number } = {}): ClassificationScores {
  const n = checkShape(probs, labels, C);
  const bins = opts.bins ?? DEFAULT_BINS;
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`bins must be a positive integer, got ${bins}`);
  const count = new Float64Array(bins);
  const confSum = new Float64Array(bins);
  const rightSum = new Float64Array(bins);
  let scored = 0;
  let top1 = 0;
  let top5 = 0;
  let ce = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < 0) continue;
    scored++;
    const pred = argmaxRow(probs, i, C);
    const right = pred === y ? 1 : 0;
    top1 += right;
    if (rankOf(probs, i, C, y) < 5) top5++;
    ce -= Math.log(Math.max(probs[i * C + y], CE_CLAMP));
    const conf = probs[i * C + pred];
    const b = Math.min(bins - 1, Math.max(0, Math.floor(conf * bins)));
    count[b]++;
    confSum[b] += conf;
    rightSum[b] += right;
  }
  const reliability: ReliabilityBin[] = [];
  let ece = 0;
  for (let b = 0; b < bins; b++) {
    const c = count[b];
    const confidence = c ? confSum[b] / c : 0;
    const accuracy = c ? rightSum[b] / c : 0;
    if (c) ece += (c / scored) * Math.abs(accuracy - confidence);
    reliability.push({ lo: b / bins, hi: (b + 1) / bins, count: c, confidence, accuracy });
  }
  return scored
    ? { n: scored, top1: top1 / scored, top5: top5 / scored, ce: ce / scored, ece, reliability }
    : { n: 0, top1: 0, top5: 0, ce: 0, ece: 0, reliability };
}

/** The make a class belongs to; the Unknown class ('Unknown' or '') is a make of its own. */
function makeKey(make: string | null | undefined): string {
  return make == null || make === '' || make === 'Unknown' ? '\u0000Unknown' : make;
}

/** Make-only top-1: probabilities summed over each make's classes, argmax make vs the true class's make. */
export function makeTop1(probs: Matrix, labels: Int32Array, C: number, makeOfClass: readonly string[]): number {
  const n = checkShape(probs, labels, C);
  if (makeOfClass.length !== C) throw new Error(`makeOfClass has ${makeOfClass.length} entries, expected ${C}`);
  const ids = new Map<string, number>();
  const makeIdx = new Int32Array(C);
  for (let c = 0; c < C; c++) {
    const k = makeKey(makeOfClass[c]);
    let id = ids.get(k);
    if (id === undefined) ids.set(k, (id = ids.size));
    makeIdx[c] = id;
  }
  const sums = new Float64Array(ids.size);
  let scored = 0;
  let right = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < 0) continue;
    scored++;
    sums.fill(0);
    for (let c = 0; c < C; c++) sums[makeIdx[c]] += probs[i * C + c];
    let best = 0;
    for (let m = 1; m < sums.length; m++) if (sums[m] > sums[best]) best = m;
    if (best === makeIdx[y]) right++;
  }
  return scored ? right / scored : 0;
}

/** Within-±2-years share and mean absolute error in years of the top-1 year (argmax over classes with a year). */
export function yearScores(
  probs: Matrix,
  labels: Int32Array,
  C: number,
  yearOfClass: readonly (number | null)[],
): { within2: number; maeYears: number; n: number } {
  const n = checkShape(probs, labels, C);
  if (yearOfClass.length !== C) throw new Error(`yearOfClass has ${yearOfClass.length} entries, expected ${C}`);
  const dated: number[] = [];
  for (let c = 0; c < C; c++) if (yearOfClass[c] != null) dated.push(c);
  let scored = 0;
  let within = 0;
  let abs = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < 0) continue;
    const truth = yearOfClass[y];
    if (truth == null || dated.length === 0) continue;
    let best = dated[0];
    for (const c of dated) if (probs[i * C + c] > probs[i * C + best]) best = c;
    const err = Math.abs((yearOfClass[best] as number) - truth);
    scored++;
    abs += err;
    if (err <= 2) within++;
  }
  return scored ? { within2: within / scored, maeYears: abs / scored, n: scored } : { within2: 0, maeYears: 0, n: 0 };
}

/** The year of each class label ('2015' -> 2015; 'unknown' and other non-years -> null). */
export function yearsOfLabels(labels: readonly string[]): (number | null)[] {
  return labels.map((l) => (/^\d{4}$/.test(l) ? Number(l) : null));
}

/** Mean absolute error over rows where mask is truthy (all rows without one) and both values are finite; 0 when none. */
export function maeDollars(pred: Values, truth: Values, mask?: ArrayLike<number | boolean> | null): number {
  if (pred.length !== truth.length) throw new Error(`${pred.length} predictions for ${truth.length} true values`);
  if (mask && mask.length !== truth.length) throw new Error(`mask has ${mask.length} entries, expected ${truth.length}`);
  let n = 0;
  let abs = 0;
  for (let i = 0; i < truth.length; i++) {
    if (mask && !mask[i]) continue;
    const p = pred[i];
    const t = truth[i];
    if (!Number.isFinite(p) || !Number.isFinite(t)) continue;
    n++;
    abs += Math.abs(p - t);
  }
  return n ? abs / n : 0;
}

/** Top-1 accuracy of the `top` classes with the most scored rows, largest first (ties by name). */
export function perClassAccuracy(probs: Matrix, labels: Int32Array, C: number, classNames: readonly string[], top = 30): PerClassScore[] {
  const n = checkShape(probs, labels, C);
  const count = new Float64Array(C);
  const right = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < 0) continue;
    count[y]++;
    if (argmaxRow(probs, i, C) === y) right[y]++;
  }
  const out: PerClassScore[] = [];
  for (let c = 0; c < C; c++) if (count[c]) out.push({ label: classNames[c] ?? String(c), n: count[c], accuracy: right[c] / count[c] });
  out.sort((a, b) => b.n - a.n || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  return out.slice(0, top);
}

/** The most frequent (truth, top-1) pairs with truth != top-1, at most `top`, most frequent first. */
export function confusedPairs(probs: Matrix, labels: Int32Array, C: number, classNames: readonly string[], top = 20): ConfusedPair[] {
  const n = checkShape(probs, labels, C);
  const pairs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (y < 0) continue;
    const p = argmaxRow(probs, i, C);
    if (p === y) continue;
    const key = y * C + p;
    pairs.set(key, (pairs.get(key) ?? 0) + 1);
  }
  const name = (c: number) => classNames[c] ?? String(c);
  const out: ConfusedPair[] = [...pairs].map(([key, count]) => ({
    truth: name(Math.floor(key / C)),
    predicted: name(key % C),
    count,
  }));
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  out.sort((a, b) => b.count - a.count || cmp(a.truth, b.truth) || cmp(a.predicted, b.predicted));
  return out.slice(0, top);
}

/** The majority baseline: every one of nRows rows gets the training labels' class frequencies (+1e-3 per class). */
export function priorProbs(trainLabels: Int32Array, C: number, nRows: number): Matrix {
  const freq = new Float64Array(C);
  let total = 0;
  for (let i = 0; i < trainLabels.length; i++) {
    const y = trainLabels[i];
    if (y < 0) continue;
    if (y >= C) throw new Error(`training label ${y} of row ${i} is outside 0..${C - 1}`);
    freq[y]++;
    total++;
  }
  const denom = total + C * PRIOR_SMOOTHING;
  const row = new Float32Array(C);
  for (let c = 0; c < C; c++) row[c] = (freq[c] + PRIOR_SMOOTHING) / denom;
  const out = new Float32Array(nRows * C);
  for (let i = 0; i < nRows; i++) out.set(row, i * C);
  return out;
}

/** Median of the finite values (NaN when there are none): the majority baseline of a regression head. */
export function medianOf(values: Values): number {
  const xs = Array.from(values)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  if (!xs.length) return Number.NaN;
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

/** The three probability matrices of a head: the model, the majority baseline, the kNN baseline (null: no features). */
export interface HeadProbs {
  model: Matrix;
  majority: Matrix;
  knn: Matrix | null;
}

type Source = 'model' | 'majority' | 'knn';

/** HeadScores of the three matrices on the same labels, each with the extras `extra` computes for it. */
export function headScores<Extra extends object>(
  m: HeadProbs,
  labels: Int32Array,
  C: number,
  extra: (probs: Matrix, source: Source) => Extra,
  opts: { bins?: number } = {},
): HeadScores<Extra> {
  const one = (probs: Matrix, source: Source): ClassificationScores & Extra => ({
    ...classificationScores(probs, labels, C, opts),
    ...extra(probs, source),
  });
  return { model: one(m.model, 'model'), majority: one(m.majority, 'majority'), knn: m.knn ? one(m.knn, 'knn') : null };
}

/** The price head: price-bin scores plus `maeDollars` of each source's dollar predictions against `truth`. */
export function priceHeadScores(args: {
  probs: HeadProbs;
  labels: Int32Array;
  C: number;
  /** Dollar predictions per row: the model's median head, the training median (majority), the kNN mean. */
  dollars: { model: Values; majority: Values; knn: Values | null };
  /** True prices (NaN = none). */
  truth: Values;
  bins?: number;
}): HeadScores<{ maeDollars: number }> {
  const { probs, labels, C, dollars, truth } = args;
  return headScores(
    probs,
    labels,
    C,
    (_p, source) => {
      const pred = dollars[source];
      return { maeDollars: pred ? maeDollars(pred, truth) : 0 };
    },
    { bins: args.bins },
  );
}

/** The make/model head: scores with `makeTop1`, plus the model's per-class accuracy and confused pairs. */
export function makeModelHeadScores(args: {
  probs: HeadProbs;
  labels: Int32Array;
  C: number;
  classNames: readonly string[];
  makeOfClass: readonly string[];
  bins?: number;
}): HeadScores<{ makeTop1: number }> & { perClass: PerClassScore[]; confused: ConfusedPair[] } {
  const { probs, labels, C, classNames, makeOfClass } = args;
  const scores = headScores(probs, labels, C, (p) => ({ makeTop1: makeTop1(p, labels, C, makeOfClass) }), { bins: args.bins });
  return {
    ...scores,
    perClass: perClassAccuracy(probs.model, labels, C, classNames),
    confused: confusedPairs(probs.model, labels, C, classNames),
  };
}

/** The year head: scores with `within2` and `maeYears` of the top-1 year. */
export function yearHeadScores(args: {
  probs: HeadProbs;
  labels: Int32Array;
  C: number;
  yearOfClass: readonly (number | null)[];
  bins?: number;
}): HeadScores<{ within2: number; maeYears: number }> {
  const { probs, labels, C, yearOfClass } = args;
  return headScores(
    probs,
    labels,
    C,
    (p) => {
      const { within2, maeYears } = yearScores(p, labels, C, yearOfClass);
      return { within2, maeYears };
    },
    { bins: args.bins },
  );
}
