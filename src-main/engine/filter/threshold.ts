// Threshold tuning for the junk filter. An image is kept when its decision value is >= the
// threshold. For every distinct decision value used as the threshold we report accuracy, the
// false-negative rate (good images thrown away) and the fraction of bad images removed; the
// chosen threshold is the largest one whose false-negative rate stays within the budget.

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
    });
    while (k < n && scores[order[k]] === t) {
      if (labels[order[k]] === 1) goodBelow++;
      else badBelow++;
      k++;
    }
  }
  return rows;
}

/** The row with the largest threshold whose false-negative rate is <= maxFnr. */
export function chooseThreshold(table: readonly ThresholdRow[], maxFnr = 0.01): ThresholdRow {
  let best: ThresholdRow | null = null;
  for (const row of table) {
    if (row.falseNegativeRate <= maxFnr && (best === null || row.threshold > best.threshold)) best = row;
  }
  if (!best) throw new Error(table.length ? `no threshold keeps the false-negative rate <= ${maxFnr}` : 'empty threshold table');
  return best;
}
