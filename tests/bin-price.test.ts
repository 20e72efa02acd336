import { describe, expect, it } from 'vitest';
import { binEdges, binPrice, binQuantile } from '../src-main/engine/predict/bin-price.ts';

const bins = (pairs: Record<number, number>): number[] => Array.from({ length: 10 }, (_, i) => pairs[i] ?? 0);

describe('binPrice: the price bins read as a piecewise-linear CDF', () => {
  it('edges run from $0 through the bounds to $100k for the open top bin', () => {
    expect(binEdges()).toEqual([0, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000, 100_000]);
  });

  it('all mass in one bin: the quantiles are spread evenly across it', () => {
    // $20k-25k is bin 3.
    expect(binPrice(bins({ 3: 1 }))).toEqual({ median: 22_500, low: 20_500, high: 24_500 });
    // $0-10k starts at $0.
    expect(binPrice(bins({ 0: 1 }))).toEqual({ median: 5_000, low: 1_000, high: 9_000 });
    // The open $60k+ bin is taken as $60k-100k.
    expect(binPrice(bins({ 9: 1 }))).toEqual({ median: 80_000, low: 64_000, high: 96_000 });
  });

  it('mass split over two bins: the median falls where the CDF crosses 0.5', () => {
    // 81% in $0-10k, the rest in $60k+: the median is inside $0-10k, as the bins say.
    const r = binPrice(bins({ 0: 0.81, 9: 0.19 }));
    expect(r.median).toBe(Math.round((0.5 / 0.81) * 10_000));
    expect(r.low).toBe(Math.round((0.1 / 0.81) * 10_000));
    // The 90th percentile: 0.09 of the 0.19 in $60k-100k.
    expect(r.high).toBe(Math.round(60_000 + (0.09 / 0.19) * 40_000));
    expect(r.low).toBeLessThanOrEqual(r.median);
    expect(r.median).toBeLessThanOrEqual(r.high);
  });

  it('normalises, skips empty bins, is monotone in q and never negative', () => {
    const p = bins({ 1: 2, 4: 1, 7: 1 });
    let prev = -1;
    for (let q = 0.01; q < 1; q += 0.01) {
      const v = binQuantile(p, q);
      expect(v).toBeGreaterThanOrEqual(prev);
      expect(v).toBeGreaterThanOrEqual(0);
      prev = v;
    }
    // Half the mass is in $10k-15k: the median is its top edge.
    expect(binQuantile(p, 0.5)).toBeCloseTo(15_000, 6);
    // Nothing lands in a bin with probability 0 ($15k-25k here).
    const q = binQuantile(p, 0.5000001);
    expect(q).toBeGreaterThanOrEqual(25_000);
  });

  it('refuses a wrong number of bins, a bad quantile and all-zero probabilities', () => {
    expect(() => binPrice([1, 0, 0])).toThrow(/3 bin probabilities for 10 bins/);
    expect(() => binQuantile(bins({ 0: 1 }), 1)).toThrow(/not in \(0, 1\)/);
    expect(() => binPrice(bins({}))).toThrow(/sum to 0/);
  });
});
