// The price the ten price bins say, read off their cumulative distribution: the probability of
// each bin spread evenly over it ($0-10k starts at $0; the open $60k+ bin is taken as $60k-100k),
// so any quantile is a point on a piecewise-linear CDF. The median is the 50th percentile, the
// 80% interval the 10th to the 90th. This is the classification head's own price, beside the
// regression head's medianPrice (Prediction.medianPrice): the two are different estimates.
import type { BinPrice } from '../api/contract/predict.ts';
import { PRICE_BOUNDS } from '../train/labels.ts';

/** Where the open top bin ($60k+) is taken to end. */
export const TOP_BIN_END = 100_000;

/** Bin edges: 0, the bounds, TOP_BIN_END (n bins have n + 1 edges). */
export function binEdges(bounds: readonly number[] = PRICE_BOUNDS, top = TOP_BIN_END): number[] {
  return [0, ...bounds, top];
}

/**
 * The q-quantile (0 < q < 1) of the bins' distribution in dollars. `probs` are the bins'
 * probabilities in order (normalised here); bins with probability 0 hold no mass.
 */
export function binQuantile(probs: readonly number[], q: number, edges: readonly number[] = binEdges()): number {
  if (probs.length !== edges.length - 1) throw new Error(`${probs.length} bin probabilities for ${edges.length - 1} bins`);
  if (!(q > 0 && q < 1)) throw new Error(`quantile ${q} is not in (0, 1)`);
  const total = probs.reduce((a, b) => a + Math.max(0, b), 0);
  if (!(total > 0)) throw new Error('the bin probabilities sum to 0');
  let cum = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = Math.max(0, probs[i]) / total;
    if (p <= 0) continue;
    last = i;
    if (cum + p >= q) return edges[i] + ((q - cum) / p) * (edges[i + 1] - edges[i]);
    cum += p;
  }
  // Rounding left q just above the CDF's last step: the end of the last bin with mass.
  return edges[last + 1];
}

/** The bins' median and 80% interval (10th and 90th percentiles), in whole dollars. */
export function binPrice(probs: readonly number[], edges: readonly number[] = binEdges()): BinPrice {
  const at = (q: number): number => Math.round(binQuantile(probs, q, edges));
  return { median: at(0.5), low: at(0.1), high: at(0.9) };
}
