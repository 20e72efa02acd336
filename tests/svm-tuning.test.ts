// The junk filter SVM's levers (issue 14): feature standardisation, the nested search for C, and
// the threshold with a margin for the uncertainty of the CV FNR. Real fits (libsvm-js) on small
// seeded synthetic matrices; no mocks.
//
// tests/fixtures/svm-v1-model.json holds a model serialised by SvmClassifier before
// standardisation existed (format carstudio-rbf-svc/1, the code of commit c3bcbc9, run on seeded
// rows with columns of very different scales) and the decision values that code gave on its
// testX rows, so (b) checks that such models, stored in existing workspaces, still score the same.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SvmClassifier,
  chooseC,
  crossValDecision,
  scaleGamma,
  standardizeRows,
  fitStandardizer,
  stratifiedFolds,
  tuneSvm,
  type FeatureMatrix,
  type TuneProgress,
} from '../src-main/engine/filter/svm.ts';
import { CI90_Z, chooseThreshold, fnrInterval, thresholdTable, wilsonInterval } from '../src-main/engine/filter/threshold.ts';
import { filterFitParams } from '../src-main/engine/filter/filter-kinds.ts';
import { thresholdForFnr, type FilterModelRow } from '../src-main/engine/filter/filter-model.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import { hasOrt } from './helpers/onnx.ts';

/** Two overlapping classes: class 1 shifted by `shift` on the first `informative` columns, uniform noise elsewhere. */
function synth(
  seed: number,
  rows: number,
  cols: number,
  opts: { shift?: number; informative?: number; goodShare?: number } = {},
): { X: FeatureMatrix; y: number[] } {
  const r = mulberry32(seed);
  const shift = opts.shift ?? 0.8;
  const informative = opts.informative ?? 3;
  const data = new Float64Array(rows * cols);
  const y: number[] = [];
  for (let i = 0; i < rows; i++) {
    const c = r() < (opts.goodShare ?? 0.6) ? 1 : 0;
    y.push(c);
    for (let j = 0; j < cols; j++) data[i * cols + j] = r() + r() - 1 + (c === 1 && j < informative ? shift : 0);
  }
  return { X: { data, rows, cols }, y };
}

/** X with column `col` multiplied by `mul` and shifted by `add`. */
function rescaleColumn(X: FeatureMatrix, col: number, mul: number, add: number): FeatureMatrix {
  const data = Float64Array.from(X.data);
  for (let i = 0; i < X.rows; i++) data[i * X.cols + col] = data[i * X.cols + col] * mul + add;
  return { data, rows: X.rows, cols: X.cols };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function subset(X: FeatureMatrix, idx: number[]): FeatureMatrix {
  const data = new Float64Array(idx.length * X.cols);
  idx.forEach((r, i) => data.set(X.data.subarray(r * X.cols, (r + 1) * X.cols), i * X.cols));
  return { data, rows: idx.length, cols: X.cols };
}

describe('(a) standardisation', () => {
  const train = synth(11, 120, 10);
  const test = synth(12, 40, 10);

  it('fits a per-column mean and population std (a constant column gets scale 1)', () => {
    const X: FeatureMatrix = { data: Float64Array.from([1, 5, 2, 3, 5, 4, 5, 5, 6]), rows: 3, cols: 3 };
    const s = fitStandardizer(X);
    expect(Array.from(s.mean)).toEqual([3, 5, 4]);
    expect(s.scale[0]).toBeCloseTo(Math.sqrt(8 / 3), 14);
    expect(s.scale[1]).toBe(1);
    expect(s.scale[2]).toBeCloseTo(Math.sqrt(8 / 3), 14);
    const z = standardizeRows(s, X.data, 3);
    expect(Array.from(z.filter((_, i) => i % 3 === 1))).toEqual([0, 0, 0]);
  });

  it('makes the SVM invariant to rescaling and shifting one column; the plain SVM is not', async () => {
    const scaledTrain = rescaleColumn(train.X, 1, 1000, -250);
    const scaledTest = rescaleColumn(test.X, 1, 1000, -250);
    const a = await SvmClassifier.fit(train.X, train.y);
    const b = await SvmClassifier.fit(scaledTrain, train.y);
    expect(a.scaler).not.toBeNull();
    // gamma 'scale' is computed on the standardised rows, so it is the same for both
    expect(b.gamma).toBeCloseTo(a.gamma, 12);
    expect(a.gamma).toBeCloseTo(
      scaleGamma({ data: standardizeRows(a.scaler!, train.X.data, train.X.rows), rows: train.X.rows, cols: 10 }),
      14,
    );
    const da = a.decisionValues(test.X);
    const db = b.decisionValues(scaledTest);
    expect(maxAbsDiff(da, db)).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(da, Math.abs))).toBeGreaterThan(0.1);

    const rawA = await SvmClassifier.fit(train.X, train.y, { standardize: false });
    const rawB = await SvmClassifier.fit(scaledTrain, train.y, { standardize: false });
    expect(rawA.scaler).toBeNull();
    expect(maxAbsDiff(rawA.decisionValues(test.X), rawB.decisionValues(scaledTest))).toBeGreaterThan(0.05);
  });

  it('scores through the batched scorers and the serialised model exactly as decisionValues', async () => {
    const X = rescaleColumn(train.X, 3, 1000, 500);
    const Xt = rescaleColumn(test.X, 3, 1000, 500);
    const model = await SvmClassifier.fit(X, train.y, { C: 2 });
    const want = model.decisionValues(Xt);
    const text = model.serialize();
    expect(JSON.parse(text).format).toBe('carstudio-rbf-svc/2');
    const again = SvmClassifier.deserialize(text);
    expect(Array.from(again.decisionValues(Xt))).toEqual(Array.from(want));
    expect(again.C).toBe(2);
    for (const backend of hasOrt ? (['js', 'onnx'] as const) : (['js'] as const)) {
      const s = await again.scorer({ backend });
      try {
        const got = await s.score(Float32Array.from(Xt.data), Xt.rows);
        // float32 input: compare with the reference on the same float32 rows
        const ref = again.decisionValues({ data: Float32Array.from(Xt.data), rows: Xt.rows, cols: Xt.cols });
        for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(ref[i])));
        expect(await s.score(Xt.data, 0)).toHaveLength(0);
      } finally {
        await s.close();
      }
    }
    expect(() => SvmClassifier.deserialize(JSON.stringify({ ...JSON.parse(text), scaler: undefined }))).toThrow(/scaler/);
  });
});

describe('(b) models serialised before standardisation', () => {
  const fx = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'svm-v1-model.json'), 'utf8')) as {
    model: string;
    cols: number;
    testRows: number;
    testX: number[];
    decision: number[];
  };
  const Xt: FeatureMatrix = { data: Float64Array.from(fx.testX), rows: fx.testRows, cols: fx.cols };

  it('deserialise without a scaler and give the decision values the old code gave', async () => {
    expect(JSON.parse(fx.model).format).toBe('carstudio-rbf-svc/1');
    const m = SvmClassifier.deserialize(fx.model);
    expect(m.scaler).toBeNull();
    expect(Array.from(m.decisionValues(Xt))).toEqual(fx.decision);
    // re-serialised, it stays format /1
    expect(m.serialize()).toBe(fx.model);
    const s = await m.scorer({ backend: 'js' });
    try {
      const got = await s.score(Xt.data, Xt.rows);
      for (let i = 0; i < got.length; i++)
        expect(Math.abs(got[i] - fx.decision[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(fx.decision[i])));
    } finally {
      await s.close();
    }
  });

  it('a model fitted with standardize: false is serialised in the old format', async () => {
    const { X, y } = synth(5, 40, 4);
    const m = await SvmClassifier.fit(X, y, { standardize: false });
    const s = JSON.parse(m.serialize());
    expect(s.format).toBe('carstudio-rbf-svc/1');
    expect(s.scaler).toBeUndefined();
  });
});

describe('(c) nested search for C', () => {
  const { X, y } = synth(21, 100, 8, { shift: 0.7 });

  it('picks C from the grid in every outer fold, from models that never saw the held-out rows', async () => {
    const seen: TuneProgress[] = [];
    const grid = [0.25, 4];
    const r = await tuneSvm(X, y, { folds: 5, seed: 3, cGrid: grid, innerFolds: 3, maxFnr: 0.05, onProgress: (p) => seen.push(p) });
    expect(grid).toContain(r.finalChoice.C);
    expect(r.finalChoice.badRemoved).toHaveLength(2);
    expect(r.foldChoices).toHaveLength(5);
    for (const c of r.foldChoices) {
      expect(grid).toContain(c.C);
      expect(c.badRemoved).toHaveLength(2);
      // the chosen C removes the most bad at the cap (ties: the smaller C)
      const best = Math.max(...c.badRemoved);
      expect(c.C).toBe(grid[c.badRemoved.indexOf(best)]);
    }
    expect(r.model.C).toBe(r.finalChoice.C);

    // every row is held out by exactly one outer fold, the folds of stratifiedFolds
    expect(Array.from(r.foldOf)).toEqual(Array.from(stratifiedFolds(y, 5, 3)));
    const counts = [0, 0, 0, 0, 0];
    for (const f of r.foldOf) counts[f]++;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(100);
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(19);

    // each fold's held-out scores are what a model fitted on the other folds alone, with that
    // fold's C, gives; the fold's choice of C uses the other folds alone too (chooseC on them)
    for (const f of [0, 3]) {
      const train = [...y.keys()].filter((i) => r.foldOf[i] !== f);
      const test = [...y.keys()].filter((i) => r.foldOf[i] === f);
      const m = await SvmClassifier.fit(
        subset(X, train),
        train.map((i) => y[i]),
        { C: r.foldChoices[f].C },
      );
      expect(Array.from(m.decisionValues(subset(X, test)))).toEqual(test.map((i) => r.scores[i]));
    }
    // and the held-out rows of fold 0 can be anything: its C and its models do not change
    const test0 = [...y.keys()].filter((i) => r.foldOf[i] === 0);
    const poisoned = Float64Array.from(X.data);
    const rand = mulberry32(99);
    for (const i of test0) for (let j = 0; j < X.cols; j++) poisoned[i * X.cols + j] = 50 * rand();
    const rp = await tuneSvm({ data: poisoned, rows: X.rows, cols: X.cols }, y, {
      folds: 5,
      seed: 3,
      cGrid: grid,
      innerFolds: 3,
      maxFnr: 0.05,
    });
    expect(rp.foldChoices[0]).toEqual(r.foldChoices[0]);

    // progress: one step per fit, with counts, ending at the total
    expect(seen.map((p) => p.done)).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
    expect(seen.at(-1)!.done).toBe(seen.at(-1)!.total);
    expect(seen[0].total).toBe(5 * (2 * 3 + 1) + 2 * 3 + 1);
    expect(seen.some((p) => /outer fold 2\/5: C=4, inner fold 3\/3/.test(p.message))).toBe(true);
  }, 60_000);

  it('is deterministic, and a grid of one value is the plain cross-validation with no inner fits', async () => {
    const small = synth(8, 60, 6);
    const a = await tuneSvm(small.X, small.y, { folds: 4, seed: 1, cGrid: [0.5, 2] });
    const b = await tuneSvm(small.X, small.y, { folds: 4, seed: 1, cGrid: [0.5, 2] });
    expect(Array.from(a.scores)).toEqual(Array.from(b.scores));
    expect(a.foldChoices).toEqual(b.foldChoices);

    const totals: number[] = [];
    const one = await tuneSvm(small.X, small.y, { folds: 4, seed: 1, cGrid: [2], onProgress: (p) => totals.push(p.total) });
    expect(totals).toEqual([5, 5, 5, 5, 5]);
    expect(one.foldChoices.every((c) => c.C === 2 && c.badRemoved.length === 0)).toBe(true);
    const plain = await crossValDecision(small.X, small.y, 4, 1, { C: 2 });
    expect(Array.from(one.scores)).toEqual(Array.from(plain));
  }, 60_000);

  it('breaks ties towards the smaller C (separable classes: every C removes all the bad)', async () => {
    const sep = synth(4, 60, 5, { shift: 6, informative: 5 });
    const c = await chooseC(sep.X, sep.y, [8, 0.5, 2], { folds: 3, seed: 0, maxFnr: 0.01 });
    expect(c.badRemoved).toEqual([1, 1, 1]);
    expect(c.C).toBe(0.5);
  });

  it('stops between fits when cancelled, and rejects a bad grid', async () => {
    const ac = new AbortController();
    let fits = 0;
    const p = tuneSvm(X, y, {
      folds: 5,
      cGrid: [1, 4],
      signal: ac.signal,
      onProgress: () => {
        if (++fits === 2) ac.abort(new Error('cancelled by the test'));
      },
    });
    await expect(p).rejects.toThrow(/cancelled by the test/);
    expect(fits).toBe(2);
    await expect(tuneSvm(X, y, { cGrid: [] })).rejects.toThrow(/empty/);
    await expect(tuneSvm(X, y, { cGrid: [1, -2] })).rejects.toThrow(/positive/);
    await expect(tuneSvm(X, y, { innerFolds: 1 })).rejects.toThrow(/inner folds/);
  });
});

describe('(d) the threshold with a margin', () => {
  it('Wilson bounds match hand-computed values', () => {
    // 3 of 358: p = 0.0083799, z²/2n = 0.0037794, half-width 1.645·sqrt(p(1-p)/n + z²/4n²) = 0.0087803, / (1 + z²/n = 1.0075587)
    const w = wilsonInterval(3, 358, 1.645);
    expect(w.lower).toBeCloseTo(0.0033536, 6);
    expect(w.upper).toBeCloseTo(0.0207825, 6);
    // none of 358: the upper bound is z²/(n+z²)
    expect(wilsonInterval(0, 358, 1.645)).toEqual({ lower: 0, upper: 1.645 ** 2 / (358 + 1.645 ** 2) });
    expect(wilsonInterval(7, 794, 1.645).upper).toBeCloseTo(0.0161821, 6);
    expect(wilsonInterval(3, 358, 0)).toEqual({ lower: 3 / 358, upper: 3 / 358 });
    expect(wilsonInterval(5, 5, 1.645).upper).toBe(1);
    expect(wilsonInterval(0, 0, 1.645)).toEqual({ lower: 0, upper: 1 });
    expect(() => wilsonInterval(4, 3, 1)).toThrow();
    expect(CI90_Z).toBeCloseTo(1.645, 3);
  });

  it('margin 0 is the old choice; a margin picks a threshold no higher, whose upper bound is within the cap', () => {
    const r = mulberry32(7);
    const scores: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 800; i++) {
      const good = i < 500;
      scores.push((good ? 1 : -1) + 1.2 * (r() + r() + r() - 1.5));
      labels.push(good ? 1 : 0);
    }
    const t = thresholdTable(scores, labels);
    expect(t[0].goodCount).toBe(500);
    expect(t[0].badCount).toBe(300);
    const plain = chooseThreshold(t, 0.02);
    expect(chooseThreshold(t, 0.02, { margin: 0 })).toEqual(plain);
    // the old rule, written out: the largest threshold with FNR <= 2%
    expect(plain.threshold).toBe(Math.max(...t.filter((row) => row.falseNegativeRate <= 0.02).map((row) => row.threshold)));
    const safe = chooseThreshold(t, 0.02, { margin: 1.645 });
    expect(safe.threshold).toBeLessThan(plain.threshold);
    expect(wilsonInterval(safe.goodRemovedCount, 500, 1.645).upper).toBeLessThanOrEqual(0.02);
    const next = t.find((row) => row.threshold > safe.threshold)!;
    expect(wilsonInterval(next.goodRemovedCount, 500, 1.645).upper).toBeGreaterThan(0.02);
    const ci = fnrInterval(plain);
    expect(ci.good).toBe(500);
    expect(ci.lower).toBeLessThan(plain.falseNegativeRate);
    expect(ci.upper).toBeGreaterThan(plain.falseNegativeRate);
    expect(ci).toMatchObject(wilsonInterval(plain.goodRemovedCount, 500, CI90_Z));
  });

  it('with too few good labels for the margin, keeps every image', () => {
    const t = thresholdTable([0, 1, 2, 3, 4, 5, -1, -2], [1, 1, 1, 1, 1, 1, 0, 0]);
    const row = chooseThreshold(t, 0.01, { margin: 1.645 });
    expect(row.threshold).toBe(-2);
    expect(row.keptFraction).toBe(1);
    expect(() => chooseThreshold(t, 0.01, { margin: -1 })).toThrow(/margin/);
  });
});

describe('filter-fit job params', () => {
  it('default to car-v1, the grid [1] (no nested search), 3 inner folds and no margin; params of jobs queued before still parse', () => {
    expect(filterFitParams.parse({})).toEqual({
      extractor: 'car-v1',
      crops: 1,
      maxFnr: 0.01,
      folds: 10,
      cGrid: [1],
      innerFolds: 3,
      fnrMargin: 0,
    });
    const old = filterFitParams.parse({ extractor: 'mobilenet_v2', crops: 3, maxFnr: 0.02, folds: 10 });
    expect(old).toMatchObject({ extractor: 'mobilenet_v2', crops: 3, maxFnr: 0.02, cGrid: [1], innerFolds: 3, fnrMargin: 0 });
    expect(() => filterFitParams.parse({ cGrid: [] })).toThrow();
    expect(() => filterFitParams.parse({ cGrid: [0] })).toThrow();
    expect(() => filterFitParams.parse({ innerFolds: 1 })).toThrow();
    expect(() => filterFitParams.parse({ fnrMargin: -0.5 })).toThrow();
  });
});

describe('the FNR slider of a fitted filter', () => {
  it("chooses with the fit's margin, and without one for fits from before it was recorded", () => {
    const rnd = mulberry32(11);
    const labels = Array.from({ length: 400 }, (_, i) => (i < 300 ? 1 : 0));
    const scores = labels.map((l) => (l === 1 ? 1 : -1) + 1.2 * (rnd() - 0.5) * 2);
    const row = (fnrMargin?: number): FilterModelRow => ({
      id: 1,
      extractor: 'car-v1',
      threshold: 0,
      maxFnr: 0.01,
      labelledGood: 300,
      labelledBad: 100,
      createdAt: 0,
      cv: { imageIds: labels.map((_, i) => i + 1), labels, scores, ...(fnrMargin === undefined ? {} : { fnrMargin }) },
    });
    const table = thresholdTable(scores, labels);
    expect(thresholdForFnr(row(), 0.02).threshold).toBe(chooseThreshold(table, 0.02).threshold);
    const withMargin = thresholdForFnr(row(CI90_Z), 0.02);
    expect(withMargin.threshold).toBe(chooseThreshold(table, 0.02, { margin: CI90_Z }).threshold);
    expect(withMargin.threshold).toBeLessThan(thresholdForFnr(row(0), 0.02).threshold);
  });
});
