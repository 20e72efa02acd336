// Threshold tuning for the junk filter. An image is kept when its decision value is >= the
// threshold. For every distinct decision value used as the threshold we report accuracy, the
// false-negative rate (good images thrown away) and the fraction of bad images removed; the
// chosen threshold is the largest one whose false-negative rate stays within the budget, or,
// with a margin z > 0, whose one-sided Wilson upper bound on the false-negative rate does (a 1%
// FNR measured on 358 good images is 3-4 of them: the estimate itself is uncertain).

export interface ThresholdRow {
  /** Keep an image when its score >= threshold. */
  threshold: number;
  /** (good kept + bad removed) / all. */
  accuracy: number;
  /** Good images with score < threshold, over all good images (0 when there are none). */
  falseNegativeRate: number;
  /** Bad images with score < threshold, over all bad images (0 when there are none). */
  badRemoved: number;
  /** Fraction of all images kept. */
  keptFraction: number;
  goodRemovedCount: number;
  badRemovedCount: number;
  /** Good and bad images in the table (the same on every row). */
  goodCount: number;
  badCount: number;
}

/**
 * One row per distinct score, ascending by threshold. labels: 1 good, 0 bad. The lowest row
 * keeps everything (FNR 0), so a non-empty table always has a row within any FNR budget.
 */
export function thresholdTable(scores: ArrayLike<number>, labels: ArrayLike<number>): ThresholdRow[] {
  if (scores.length !== labels.length) throw new Error(`${scores.length} scores but ${labels.length} labels`);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i])) throw new Error(`score ${i} is NaN`);
    if (labels[i] !== 0 && labels[i] !== 1) throw new Error(`label ${i} is ${labels[i]}, expected 0 or 1`);
  }
  order.sort((a, b) => scores[a] - scores[b]);
  let nGood = 0;
  for (let i = 0; i < n; i++) nGood += labels[i] === 1 ? 1 : 0;
  const nBad = n - nGood;
  const rows: ThresholdRow[] = [];
  let goodBelow = 0;
  let badBelow = 0;
  let k = 0;
  while (k < n) {
    const t = scores[order[k]];
    // Everything before index k scores strictly below t.
    rows.push({
      threshold: t,
      accuracy: (nGood - goodBelow + badBelow) / n,
      falseNegativeRate: nGood ? goodBelow / nGood : 0,
      badRemoved: nBad ? badBelow / nBad : 0,
      keptFraction: (n - k) / n,
      goodRemovedCount: goodBelow,
      badRemovedCount: badBelow,
      goodCount: nGood,
      badCount: nBad,
    });
    while (k < n && scores[order[k]] === t) {
      if (labels[order[k]] === 1) goodBelow++;
      else badBelow++;
      k++;
    }
  }
  return rows;
}

/** z of the 90% two-sided interval (5% in each tail), the one reported beside the CV FNR. */
export const CI90_Z = 1.6448536269514722;

/**
 * The Wilson score interval of a proportion k/n at z standard deviations:
 *   (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n),  p = k/n;
 * each bound alone is a one-sided bound at that z. z = 0 gives [p, p]; n = 0 gives [0, 1].
 */
export function wilsonInterval(k: number, n: number, z: number): { lower: number; upper: number } {
  if (!(n >= 0) || !(k >= 0) || k > n) throw new Error(`bad proportion ${k}/${n}`);
  if (!(z >= 0) || !Number.isFinite(z)) throw new Error(`z must be a number >= 0, got ${z}`);
  if (n === 0) return { lower: 0, upper: 1 };
  const p = k / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const half = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  const den = 1 + z2 / n;
  // clamp the rounding at the ends (k = 0 gives lower 0 exactly in exact arithmetic)
  return { lower: k === 0 ? 0 : Math.max(0, (centre - half) / den), upper: k === n ? 1 : Math.min(1, (centre + half) / den) };
}

/** The one-sided Wilson upper bound on a row's false-negative rate at margin z (the rate itself at z = 0). */
export function fnrUpperBound(row: ThresholdRow, z: number): number {
  if (z === 0 || row.goodCount === 0) return row.falseNegativeRate;
  return wilsonInterval(row.goodRemovedCount, row.goodCount, z).upper;
}

export interface ChooseOptions {
  /**
   * z of the one-sided Wilson upper bound on the FNR that must stay <= maxFnr (default 0: the
   * measured FNR itself). When even keeping everything has a bound above maxFnr (too few good
   * labels for that margin), the lowest threshold, which keeps every image, is chosen.
   */
  margin?: number;
}

/** The row with the largest threshold whose false-negative rate (or, with a margin, its upper bound) is <= maxFnr. */
export function chooseThreshold(table: readonly ThresholdRow[], maxFnr = 0.01, opts: ChooseOptions = {}): ThresholdRow {
  const z = opts.margin ?? 0;
  if (!(z >= 0) || !Number.isFinite(z)) throw new Error(`the FNR margin must be a number >= 0, got ${z}`);
  let best: ThresholdRow | null = null;
  let lowest: ThresholdRow | null = null;
  for (const row of table) {
    if (lowest === null || row.threshold < lowest.threshold) lowest = row;
    if (fnrUpperBound(row, z) <= maxFnr && (best === null || row.threshold > best.threshold)) best = row;
  }
  if (!best && z > 0 && lowest) return lowest;
  if (!best) throw new Error(table.length ? `no threshold keeps the false-negative rate <= ${maxFnr}` : 'empty threshold table');
  return best;
}

/** The 90% Wilson interval of a row's false-negative rate, with its counts (what the UI shows beside the CV FNR). */
export function fnrInterval(row: ThresholdRow, z = CI90_Z): { lower: number; upper: number; z: number; goodRemoved: number; good: number } {
  return { ...wilsonInterval(row.goodRemovedCount, row.goodCount, z), z, goodRemoved: row.goodRemovedCount, good: row.goodCount };
}
