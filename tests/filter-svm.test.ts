// The junk filter's SVM and threshold tuning.
//
// tests/fixtures/svm-sklearn.json was made by fitting scikit-learn's SVC() (Debian's
// python3-sklearn 1.2.1) on two small deterministic problems drawn with numpy's
// default_rng(20240611): 120 x 32 overlapping Gaussian classes whose first label is 0, and
// 48 x 64 non-negative sparse "pooled CNN"-like rows whose first label is 1 (the case where
// libsvm's label order and scikit-learn's differ). It stores X, y, held-out rows, sklearn's
// gamma, n_support_ and decision_function outputs, so this test needs no Python.
// SvmClassifier standardises by default (StandardScaler + SVC); the comparisons with a plain
// SVC() turn that off (standardize: false). tests/svm-tuning.test.ts covers the standardised path.
import { describe, expect, it } from 'vitest';
import { SvmClassifier, crossValDecision, scaleGamma, stratifiedFolds, type FeatureMatrix } from '../src-main/engine/filter/svm.ts';
import { chooseThreshold, thresholdTable } from '../src-main/engine/filter/threshold.ts';
import { svmFixture } from './helpers/svm-fixture.ts';


const fixture = svmFixture();

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const RAW = { standardize: false } as const;

describe('SvmClassifier matches scikit-learn SVC()', () => {
  for (const c of fixture.cases) {
    it(`${c.name}: gamma, support vectors and decision values`, async () => {
      const X: FeatureMatrix = { data: Float64Array.from(c.X), rows: c.rows, cols: c.cols };
      const Xt: FeatureMatrix = { data: Float64Array.from(c.Xtest), rows: c.testRows, cols: c.cols };
      expect(scaleGamma(X)).toBeCloseTo(c.gamma, 12);

      const model = await SvmClassifier.fit(X, c.y, RAW);
      expect(model.nSupport).toEqual(c.nSupport);
      const dTrain = model.decisionValues(X);
      const dTest = model.decisionValues(Xt);
      expect(maxAbsDiff(dTrain, c.decisionTrain)).toBeLessThan(1e-3);
      expect(maxAbsDiff(dTest, c.decisionTest)).toBeLessThan(1e-3);
      // Sign convention: positive means class 1 ("good"), exactly as sklearn's predict.
      expect(Array.from(model.predict(X))).toEqual(c.predictTrain);

      // Round trip through the serialised form gives identical values.
      const again = SvmClassifier.deserialize(model.serialize());
      expect(Array.from(again.decisionValues(Xt))).toEqual(Array.from(dTest));
      expect(again.gamma).toBe(model.gamma);
    });
  }

  it('accepts number[][] and Float32Array matrices alike', async () => {
    const c = fixture.cases[0];
    const rows = Array.from({ length: c.rows }, (_, i) => c.X.slice(i * c.cols, (i + 1) * c.cols));
    const a = await SvmClassifier.fit(rows, c.y, RAW);
    const b = await SvmClassifier.fit({ data: Float64Array.from(c.X), rows: c.rows, cols: c.cols }, c.y, RAW);
    expect(Array.from(a.decisionValues(rows))).toEqual(Array.from(b.decisionValues(rows)));
    const f32 = { data: Float32Array.from(c.X), rows: c.rows, cols: c.cols };
    expect(maxAbsDiff((await SvmClassifier.fit(f32, c.y, RAW)).decisionValues(f32), c.decisionTrain)).toBeLessThan(1e-3);
  });

  it('rejects single-class training data and non-binary labels', async () => {
    const X = [
      [0, 1],
      [1, 0],
      [1, 1],
    ];
    await expect(SvmClassifier.fit(X, [1, 1, 1])).rejects.toThrow(/both/);
    await expect(SvmClassifier.fit(X, [0, 1, 2])).rejects.toThrow(/0 or 1/);
    expect(() => SvmClassifier.deserialize('{"format":"x"}')).toThrow();
  });
});

describe('cross-validated decision values', () => {
  it('stratified folds are balanced, deterministic and seed-dependent', () => {
    const y = Array.from({ length: 103 }, (_, i) => (i % 3 === 0 ? 0 : 1));
    const a = stratifiedFolds(y, 10, 7);
    expect(Array.from(stratifiedFolds(y, 10, 7))).toEqual(Array.from(a));
    expect(Array.from(stratifiedFolds(y, 10, 8))).not.toEqual(Array.from(a));
    for (const cls of [0, 1]) {
      const perFold = new Array<number>(10).fill(0);
      y.forEach((v, i) => v === cls && perFold[a[i]]++);
      expect(Math.max(...perFold) - Math.min(...perFold)).toBeLessThanOrEqual(1);
    }
    const sizes = new Array<number>(10).fill(0);
    a.forEach((f) => sizes[f]++);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('gives every sample an out-of-fold value, identically for the same seed', async () => {
    const c = fixture.cases[0];
    const X: FeatureMatrix = { data: Float64Array.from(c.X), rows: c.rows, cols: c.cols };
    let foldsSeen = 0;
    const d1 = await crossValDecision(X, c.y, 10, 42, { onFold: () => foldsSeen++ });
    const d2 = await crossValDecision(X, c.y, 10, 42);
    expect(foldsSeen).toBe(10);
    expect(d1).toHaveLength(c.rows);
    expect(Array.from(d1)).toEqual(Array.from(d2));
    expect(d1.every((v) => Number.isFinite(v) && v !== 0)).toBe(true);
    // Held-out values are less confident than in-sample ones, yet still better than chance.
    const correct = Array.from(d1).filter((v, i) => (v > 0 ? 1 : 0) === c.y[i]).length;
    expect(correct / c.rows).toBeGreaterThan(0.6);
    const d3 = await crossValDecision(X, c.y, 10, 43);
    expect(Array.from(d3)).not.toEqual(Array.from(d1));
  });
});

describe('threshold table', () => {
  // Hand-computable: 5 good (1) and 5 bad (0) with one tie across classes at 0.5.
  const scores = [-2, -1, -0.5, 0.5, 0.5, 1, 2, 0.2, -3, 3];
  const labels = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1];

  it('has one row per distinct value with accuracy, FNR and bad removed', () => {
    const t = thresholdTable(scores, labels);
    expect(t.map((r) => r.threshold)).toEqual([-3, -2, -1, -0.5, 0.2, 0.5, 1, 2, 3]);
    const at = (thr: number) => t.find((r) => r.threshold === thr)!;
    // Lowest threshold keeps everything.
    expect(at(-3)).toMatchObject({ falseNegativeRate: 0, badRemoved: 0, accuracy: 0.5, keptFraction: 1 });
    // Threshold -0.5: removed = {-3, -2, -1} = 3 bad; accuracy (5 good + 3 bad) / 10.
    expect(at(-0.5)).toMatchObject({ falseNegativeRate: 0, badRemoved: 0.6, accuracy: 0.8, badRemovedCount: 3 });
    // Threshold 0.2: also removes the good -0.5 → FNR 1/5; bad removed still 3/5.
    expect(at(0.2)).toMatchObject({ falseNegativeRate: 0.2, badRemoved: 0.6, accuracy: 0.7 });
    // Threshold 0.5: removes 0.2 (bad); the tie at 0.5 is kept on both sides.
    expect(at(0.5)).toMatchObject({ falseNegativeRate: 0.2, badRemoved: 0.8, accuracy: 0.8 });
    // Threshold 1: the tied pair (one good, one bad) goes.
    expect(at(1)).toMatchObject({ falseNegativeRate: 0.4, badRemoved: 1, accuracy: 0.8, keptFraction: 0.3 });
  });

  it('chooses the largest threshold within the false-negative budget', () => {
    const t = thresholdTable(scores, labels);
    expect(chooseThreshold(t, 0.01).threshold).toBe(-0.5);
    expect(chooseThreshold(t).threshold).toBe(-0.5);
    expect(chooseThreshold(t, 0.2).threshold).toBe(0.5);
    expect(chooseThreshold(t, 0.4).threshold).toBe(1);
    expect(chooseThreshold(t, 1).threshold).toBe(3);
    expect(() => chooseThreshold([], 0.01)).toThrow();
  });

  it('keeps FNR <= 1% on 200 good scores, and removes what it can', () => {
    const s: number[] = [];
    const l: number[] = [];
    for (let i = 0; i < 200; i++) {
      s.push(i / 100); // good: 0.00 .. 1.99
      l.push(1);
    }
    for (let i = 0; i < 100; i++) {
      s.push(-1 + i / 50); // bad: -1.00 .. 0.98
      l.push(0);
    }
    const best = chooseThreshold(thresholdTable(s, l), 0.01);
    // Two good images (0.00, 0.01) may go: the threshold is the third good score, 0.02.
    expect(best.threshold).toBeCloseTo(0.02, 12);
    expect(best.goodRemovedCount).toBe(2);
    expect(best.falseNegativeRate).toBe(0.01);
    // Bad below 0.02: -1.00 .. 0.00 = 51 of 100 (the bad 0.00 ties the good 0.00 and is below 0.02).
    expect(best.badRemovedCount).toBe(51);
    expect(best.badRemoved).toBeCloseTo(0.51, 12);
  });
});
