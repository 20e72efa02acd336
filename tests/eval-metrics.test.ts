// The evaluation's building blocks: metrics checked against their definitions on small matrices,
// the kNN baseline against a brute-force reference (both similarity paths), and the HTML report
// and its files (escaping, one SVG per reliability diagram, no external URLs, a round trip).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DomUtils, parseDocument } from 'htmlparser2';
import { afterAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../src-main/engine/api/contract/eval.ts';
import { knnPredict, type KnnInput } from '../src-main/engine/eval/knn.ts';
import {
  classificationScores,
  confusedPairs,
  maeDollars,
  makeModelHeadScores,
  makeTop1,
  medianOf,
  perClassAccuracy,
  priceHeadScores,
  priorProbs,
  yearHeadScores,
  yearScores,
  yearsOfLabels,
} from '../src-main/engine/eval/metrics.ts';
import { readReport, renderReportHtml, reportEntry, writeReport } from '../src-main/engine/eval/report-html.ts';
import { calibratedScores, calibrationFor, evalCalibration } from '../src-main/engine/eval/calibrated.ts';
import { checkpointStamp, fitTemperature, type CalibrationReport } from '../src-main/engine/train/calibrate.ts';
import { eceByDefinition, scaledByDefinition } from './helpers/calibration.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import { UserError } from '../src-main/engine/workspace/errors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-eval-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const f32 = (rows: number[][]) => Float32Array.from(rows.flat());
const i32 = (xs: number[]) => Int32Array.from(xs);

describe('classificationScores', () => {
  it('computes top-1, top-5, cross-entropy, ECE and bins from the definition, skipping unlabelled rows', () => {
    const rows = [
      [0.72, 0.18, 0.1], // right, confidence 0.72
      [0.12, 0.58, 0.3], // wrong (truth 2)
      [0.3, 0.25, 0.45], // wrong (truth 1)
      [0.05, 0.9, 0.05], // no label: must not count
    ];
    const probs = f32(rows);
    const labels = i32([0, 2, 1, -1]);
    const s = classificationScores(probs, labels, 3, { bins: 10 });
    expect(s.n).toBe(3);
    expect(s.top1).toBeCloseTo(1 / 3, 12);
    expect(s.top5).toBe(1); // 3 classes: the truth is always in the top 5
    const p = (i: number, c: number) => probs[i * 3 + c];
    expect(s.ce).toBeCloseTo(-(Math.log(p(0, 0)) + Math.log(p(1, 2)) + Math.log(p(2, 1))) / 3, 6);
    // Bins of width 0.1: 0.72 -> bin 7 (accuracy 1), 0.58 -> bin 5 (0), 0.45 -> bin 4 (0).
    expect(s.reliability).toHaveLength(10);
    expect(s.reliability.map((b) => b.count)).toEqual([0, 0, 0, 0, 1, 1, 0, 1, 0, 0]);
    expect(s.reliability[7]).toMatchObject({ lo: 0.7, hi: 0.8, count: 1, accuracy: 1 });
    expect(s.reliability[7].confidence).toBeCloseTo(0.72, 6);
    expect(s.reliability[3]).toMatchObject({ count: 0, confidence: 0, accuracy: 0 });
    expect(s.ece).toBeCloseTo((Math.abs(1 - 0.72) + Math.abs(0 - 0.58) + Math.abs(0 - 0.45)) / 3, 6);
    // The unlabelled row changes nothing when it is dropped.
    expect(classificationScores(f32(rows.slice(0, 3)), i32([0, 2, 1]), 3, { bins: 10 })).toEqual(s);
    // Default: 15 bins.
    expect(classificationScores(probs, labels, 3).reliability).toHaveLength(15);
  });

  it('top-5 is a real rank test with more than 5 classes, and CE clamps zero probabilities at 1e-7', () => {
    const row = [0.3, 0.2, 0.15, 0.12, 0.11, 0.07, 0.05]; // class 5 is 6th, class 4 is 5th
    const probs = f32([row, row]);
    const s = classificationScores(probs, i32([5, 4]), 7);
    expect(s.top1).toBe(0);
    expect(s.top5).toBe(0.5);
    const zero = classificationScores(f32([[1, 0]]), i32([1]), 2);
    expect(zero.ce).toBeCloseTo(-Math.log(1e-7), 9);
    expect(zero.reliability[14]).toMatchObject({ count: 1, confidence: 1, accuracy: 0 }); // confidence 1 is in the last bin
  });

  it('scores nothing when no row has a label, and rejects bad shapes', () => {
    expect(classificationScores(f32([[0.5, 0.5]]), i32([-1]), 2)).toMatchObject({ n: 0, top1: 0, ce: 0, ece: 0 });
    expect(() => classificationScores(f32([[0.5, 0.5]]), i32([2]), 2)).toThrow(/outside/);
    expect(() => classificationScores(new Float32Array(3), i32([0, 0]), 2)).toThrow(/expected 2 x 2/);
  });
});

describe('make, year, dollars, per-class and pairs', () => {
  const makes = ['Ford', 'Ford', 'Toyota', 'Unknown'];
  it("makeTop1 sums a make's models, which can differ from the argmax class; Unknown is a make of its own", () => {
    const probs = f32([
      [0.3, 0.3, 0.4, 0], // truth Ford F-150: class top-1 says Toyota, make top-1 says Ford (0.6)
      [0.1, 0.1, 0.35, 0.45], // truth Unknown: Unknown 0.45 beats Toyota 0.35 and Ford 0.2
      [0.25, 0.2, 0.15, 0.4], // truth Toyota: Ford 0.45 wins
      [0.9, 0.05, 0.05, 0], // unlabelled
    ]);
    const labels = i32([0, 3, 2, -1]);
    expect(classificationScores(probs, labels, 4).top1).toBeCloseTo(1 / 3, 12);
    expect(makeTop1(probs, labels, 4, makes)).toBeCloseTo(2 / 3, 12);
    expect(makeTop1(probs, labels, 4, ['Ford', 'Ford', 'Toyota', ''])).toBeCloseTo(2 / 3, 12);
    // Unknown does not pool with a make: at 0.3 it loses to Ford and Toyota (0.35 each).
    expect(makeTop1(f32([[0.2, 0.15, 0.35, 0.3]]), i32([3]), 4, makes)).toBe(0);
  });

  it('yearScores takes the top year among dated classes and skips rows of unknown year', () => {
    const years = yearsOfLabels(['2010', '2011', '2015', 'unknown']);
    expect(years).toEqual([2010, 2011, 2015, null]);
    const probs = f32([
      [0.1, 0.2, 0.1, 0.6], // truth 2010; 'unknown' is the argmax but never predicted: 2011, 1 year off
      [0.5, 0.1, 0.2, 0.2], // truth 2015, predicted 2010: 5 years off
      [0.1, 0.1, 0.1, 0.7], // truth unknown: not scored
      [0.1, 0.1, 0.1, 0.7], // no label
    ]);
    const y = yearScores(probs, i32([0, 2, 3, -1]), 4, years);
    expect(y).toEqual({ within2: 0.5, maeYears: 3, n: 2 });
  });

  it('maeDollars skips masked and non-finite rows', () => {
    const pred = Float64Array.from([100, 200, NaN, 400]);
    const truth = Float32Array.from([110, 150, 300, NaN]);
    expect(maeDollars(pred, truth)).toBe(30);
    expect(maeDollars(pred, truth, [0, 1, 1, 1])).toBe(50);
    expect(maeDollars(pred, truth, Uint8Array.from([0, 0, 0, 0]))).toBe(0);
    expect(medianOf(Float32Array.from([5, NaN, 1, 3, 10]))).toBe(4);
  });

  it('per-class accuracy is largest classes first; confused pairs are most frequent first, truth != predicted', () => {
    const names = ['A', 'B', 'C'];
    const hot = (c: number) => [0, 1, 2].map((j) => (j === c ? 0.8 : 0.1));
    // (truth, top-1): A->A x2, A->B, B->B, C->A x2, C->B, and one unlabelled row.
    const pairs = [
      [0, 0],
      [0, 0],
      [0, 1],
      [1, 1],
      [2, 0],
      [2, 0],
      [2, 1],
      [-1, 2],
    ];
    const probs = f32(pairs.map(([, p]) => hot(p)));
    const labels = i32(pairs.map(([t]) => t));
    const pc = perClassAccuracy(probs, labels, 3, names);
    expect(pc).toEqual([
      { label: 'A', n: 3, accuracy: 2 / 3 },
      { label: 'C', n: 3, accuracy: 0 },
      { label: 'B', n: 1, accuracy: 1 },
    ]);
    expect(perClassAccuracy(probs, labels, 3, names, 1)).toHaveLength(1);
    expect(confusedPairs(probs, labels, 3, names)).toEqual([
      { truth: 'C', predicted: 'A', count: 2 },
      { truth: 'A', predicted: 'B', count: 1 },
      { truth: 'C', predicted: 'B', count: 1 },
    ]);
    expect(confusedPairs(probs, labels, 3, names, 2)).toHaveLength(2);
  });

  it('priorProbs gives every row the smoothed training frequencies; its top-1 is the majority share', () => {
    const prior = priorProbs(i32([0, 0, 1, -1]), 3, 4);
    expect(prior).toHaveLength(12);
    const d = 3 + 3e-3;
    for (let i = 0; i < 4; i++) {
      expect(prior[i * 3]).toBeCloseTo(2.001 / d, 6);
      expect(prior[i * 3 + 1]).toBeCloseTo(1.001 / d, 6);
      expect(prior[i * 3 + 2]).toBeCloseTo(0.001 / d, 6);
    }
    const s = classificationScores(prior, i32([0, 1, 0, 2]), 3);
    expect(s.top1).toBe(0.5);
    expect(Number.isFinite(s.ce)).toBe(true);
  });

  it('the head assemblers score model, majority and kNN on the same rows with their extras', () => {
    const labels = i32([0, 3, 2, -1]);
    const model = f32([
      [0.3, 0.3, 0.4, 0],
      [0.1, 0.1, 0.35, 0.45],
      [0.25, 0.2, 0.15, 0.4],
      [0.9, 0.05, 0.05, 0],
    ]);
    const majority = priorProbs(i32([0, 0, 1]), 4, 4);
    const mm = makeModelHeadScores({
      probs: { model, majority, knn: null },
      labels,
      C: 4,
      classNames: ['Ford F-150', 'Ford Focus', 'Toyota Camry', 'Unknown'],
      makeOfClass: makes,
    });
    expect(mm.knn).toBeNull();
    expect(mm.model.makeTop1).toBeCloseTo(makeTop1(model, labels, 4, makes), 12);
    expect(mm.majority.top1).toBeCloseTo(1 / 3, 12);
    expect(mm.majority.makeTop1).toBeCloseTo(1 / 3, 12); // always Ford
    expect(mm.perClass.map((p) => p.label).sort()).toEqual(['Ford F-150', 'Toyota Camry', 'Unknown']);
    expect(mm.confused).toHaveLength(2);

    const truth = Float32Array.from([12_000, 30_000, NaN, 20_000]);
    const price = priceHeadScores({
      probs: { model, majority, knn: model },
      labels,
      C: 4,
      dollars: { model: Float32Array.from([11_000, 33_000, 5, 0]), majority: new Float32Array(4).fill(20_000), knn: null },
      truth,
    });
    // Row 2 has no true price; row 3 has one (no class label, but the dollar error counts).
    expect(price.model.maeDollars).toBeCloseTo((1000 + 3000 + 20_000) / 3, 6);
    expect(price.majority.maeDollars).toBeCloseTo((8000 + 10_000 + 0) / 3, 6);
    expect(price.knn?.top1).toBe(price.model.top1);

    const yr = yearHeadScores({ probs: { model, majority, knn: null }, labels, C: 4, yearOfClass: [2010, 2011, 2015, null] });
    // Row 0: 2015 for 2010; row 1: unknown year, not scored; row 2: 2010 for 2015.
    expect(yr.model).toMatchObject({ within2: 0, maeYears: 5 });
    expect(yr.majority).toMatchObject({ within2: 0.5, maeYears: 2.5 }); // always 2010: right on row 0
  });
});

/** Brute-force kNN: float64 cosine against every eligible training row, sorted, first k. */
function referenceKnn<H extends string>(input: KnnInput<H>) {
  const { train, test, dim, k } = input;
  const nTrain = train.length / dim;
  const nTest = test.length / dim;
  const norm = (a: Float32Array, i: number) => Math.sqrt(Array.from(a.subarray(i * dim, (i + 1) * dim)).reduce((s, v) => s + v * v, 0));
  const cos = (t: number, j: number) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += test[t * dim + d] * train[j * dim + d];
    const n = norm(test, t) * norm(train, j);
    return n ? s / n : 0;
  };
  const nearest = (t: number, ok: (j: number) => boolean) =>
    Array.from({ length: nTrain }, (_, j) => j)
      .filter(ok)
      .map((j) => ({ j, s: cos(t, j) }))
      .sort((a, b) => b.s - a.s || a.j - b.j)
      .slice(0, k);
  const T = input.temperature ?? 0.07;
  const lam = input.smoothing ?? 1e-3;
  const probs = {} as Record<H, Float32Array>;
  for (const h of Object.keys(input.trainLabels) as H[]) {
    const C = input.numClasses[h];
    const labels = input.trainLabels[h];
    const out = new Float32Array(nTest * C);
    for (let t = 0; t < nTest; t++) {
      const nb = nearest(t, (j) => labels[j] >= 0);
      const votes = new Array<number>(C).fill(0);
      for (const { j, s } of nb) votes[labels[j]] += input.weighting === 'uniform' ? 1 : Math.exp((s - nb[0].s) / T);
      const total = votes.reduce((a, b) => a + b, 0);
      for (let c = 0; c < C; c++) out[t * C + c] = nb.length ? (votes[c] / total + lam) / (1 + C * lam) : 1 / C;
    }
    probs[h] = out;
  }
  const values = new Float32Array(nTest);
  for (let t = 0; t < nTest; t++) {
    const nb = nearest(t, (j) => Number.isFinite(input.trainValues![j]));
    values[t] = nb.length ? nb.reduce((s, { j }) => s + input.trainValues![j], 0) / nb.length : NaN;
  }
  return { probs, values };
}

/** Gaussian-ish clusters: `perClass` points around each of C random centres in dim dimensions. */
function clusters(rand: () => number, C: number, perClass: number, dim: number, centres: Float32Array | null, spread: number) {
  const cs = centres ?? Float32Array.from({ length: C * dim }, () => rand() * 2 - 1);
  const x = new Float32Array(C * perClass * dim);
  const y = new Int32Array(C * perClass);
  for (let i = 0; i < C * perClass; i++) {
    const c = i % C;
    y[i] = c;
    for (let d = 0; d < dim; d++) x[i * dim + d] = cs[c * dim + d] + (rand() - 0.5) * spread;
  }
  return { x, y, centres: cs };
}

describe('knnPredict', () => {
  for (const backend of ['js', 'default'] as const) {
    const opt = backend === 'js' ? { backend: null } : {};
    it(`classifies separable clusters (~1.0 top-1) [${backend}]`, async () => {
      const rand = mulberry32(7);
      const tr = clusters(rand, 5, 100, 32, null, 0.3);
      const te = clusters(rand, 5, 40, 32, tr.centres, 0.3);
      const res = await knnPredict({ ...opt, train: tr.x, trainLabels: { a: tr.y }, numClasses: { a: 5 }, test: te.x, dim: 32, k: 10 });
      const s = classificationScores(res!.probs.a, te.y, 5);
      expect(s.top1).toBeGreaterThanOrEqual(0.99);
      expect(Math.min(...res!.probs.a)).toBeGreaterThan(0); // smoothed
      expect(res!.values).toBeNull();
    });

    it(`respects -1 labels and k, and averages the values of the nearest rows that have one [${backend}]`, async () => {
      // Similarity to the test row (1, 0) falls from t0 to t5.
      const train = f32([
        [1, 0.01],
        [1, 0.02],
        [1, 0.03],
        [0.9, 0.5],
        [0.8, 0.6],
        [0, 1],
      ]);
      const trainLabels = { h: i32([0, -1, -1, 1, 1, 2]), g: i32([0, 1, 1, 2, 2, 2]) };
      const base = { ...opt, train, trainLabels, numClasses: { h: 3, g: 3 }, test: f32([[1, 0]]), dim: 2, weighting: 'uniform' as const };
      const trainValues = Float32Array.from([10, NaN, 30, 40, 50, 60]);
      const k1 = await knnPredict({ ...base, k: 1, trainValues });
      const k3 = await knnPredict({ ...base, k: 3, trainValues });
      const lam = 1e-3;
      const p = (v: number) => (v + lam) / (1 + 3 * lam);
      expect(Array.from(k1!.probs.h)).toEqual(Array.from(Float32Array.from([p(1), p(0), p(0)])));
      // k = 3 among labelled rows for h: t0 (class 0), t3 and t4 (class 1); t1, t2 have no h label.
      expect(Array.from(k3!.probs.h)).toEqual(Array.from(Float32Array.from([p(1 / 3), p(2 / 3), p(0)])));
      // g has every label: t0, t1, t2.
      expect(Array.from(k3!.probs.g)).toEqual(Array.from(Float32Array.from([p(1 / 3), p(2 / 3), p(0)])));
      expect(k1!.values![0]).toBe(10);
      expect(k3!.values![0]).toBeCloseTo((10 + 30 + 40) / 3, 5); // t1's value is NaN: skipped
    });

    it(`equals a brute-force reference on random data [${backend}]`, async () => {
      const rand = mulberry32(11);
      const dim = 16;
      const nTrain = 301; // not a multiple of 4: the tiled loop's remainder columns
      const nTest = 45;
      const train = Float32Array.from({ length: nTrain * dim }, () => rand() - 0.5);
      const test = Float32Array.from({ length: nTest * dim }, () => rand() - 0.5);
      const lab = (C: number, pNone: number) => Int32Array.from({ length: nTrain }, () => (rand() < pNone ? -1 : Math.floor(rand() * C)));
      const trainValues = Float32Array.from({ length: nTrain }, () => (rand() < 0.3 ? NaN : rand() * 1000));
      for (const weighting of ['similarity', 'uniform'] as const) {
        const input: KnnInput<'x' | 'y'> = {
          ...opt,
          train,
          test,
          dim,
          k: 7,
          weighting,
          trainLabels: { x: lab(4, 0.2), y: lab(9, 0.6) },
          numClasses: { x: 4, y: 9 },
          trainValues,
          blockRows: 16, // several blocks, the last one short
        };
        const progress: Array<[number, number]> = [];
        const got = await knnPredict({ ...input, onProgress: (d, t) => progress.push([d, t]) });
        const want = referenceKnn(input);
        for (const h of ['x', 'y'] as const) {
          expect(got!.probs[h]).toHaveLength(want.probs[h].length);
          const maxDiff = Math.max(...Array.from(got!.probs[h], (v, i) => Math.abs(v - want.probs[h][i])));
          expect(maxDiff).toBeLessThan(1e-4);
        }
        const vDiff = Math.max(...Array.from(got!.values!, (v, i) => Math.abs(v - want.values[i])));
        expect(vDiff).toBeLessThan(1e-3);
        expect(progress).toEqual([
          [16, 45],
          [32, 45],
          [45, 45],
        ]);
      }
    });
  }

  it('returns null once its signal is aborted, and leaves a head with no labelled row uniform', async () => {
    const ac = new AbortController();
    const train = Float32Array.from({ length: 40 * 4 }, (_, i) => Math.sin(i));
    const test = Float32Array.from({ length: 10 * 4 }, (_, i) => Math.cos(i));
    const input = { train, test, dim: 4, k: 3, trainLabels: { a: new Int32Array(40).fill(-1) }, numClasses: { a: 2 }, blockRows: 2 };
    let blocks = 0;
    const res = await knnPredict({ ...input, signal: ac.signal, onProgress: () => ++blocks === 2 && ac.abort() });
    expect(res).toBeNull();
    expect(blocks).toBe(2);
    const full = await knnPredict(input);
    expect(Array.from(full!.probs.a).every((v) => v === 0.5)).toBe(true);
  });

  it('timing smoke: 2000 train x 500 test x 128 dims', async () => {
    const rand = mulberry32(3);
    const dim = 128;
    const train = Float32Array.from({ length: 2000 * dim }, () => rand() - 0.5);
    const test = Float32Array.from({ length: 500 * dim }, () => rand() - 0.5);
    const labels = Int32Array.from({ length: 2000 }, () => Math.floor(rand() * 50));
    for (const backend of [undefined, null]) {
      const t0 = performance.now();
      const res = await knnPredict({ train, test, dim, k: 10, trainLabels: { a: labels }, numClasses: { a: 50 }, backend });
      const secs = (performance.now() - t0) / 1000;
      console.log(`knn 2000x500x128 with ${res!.computedWith}: ${secs.toFixed(2)} s`);
      expect(secs).toBeLessThan(30);
    }
  });
});

/** A report built from real metric computations on small synthetic matrices, with hostile names. */
function sampleReport(opts: { year: boolean }): EvalReport {
  const rand = mulberry32(5);
  const n = 60;
  const mat = (C: number) => {
    const m = new Float32Array(n * C);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += m[i * C + c] = rand() ** 3;
      for (let c = 0; c < C; c++) m[i * C + c] /= s;
    }
    return m;
  };
  const lab = (C: number) => Int32Array.from({ length: n }, () => (rand() < 0.1 ? -1 : Math.floor(rand() * C)));
  const names = ['<script>alert(1)</script> Model', 'Ford "F-150" & co', "O'Brien <b>X</b>", 'Unknown'];
  const makes = ['<script>alert(1)</script>', 'Ford', "O'Brien", 'Unknown'];
  const mmLabels = lab(4);
  const priceLabels = lab(10);
  const yearLabels = lab(42);
  const truth = Float32Array.from({ length: n }, () => 10_000 + rand() * 40_000);
  return {
    version: 1,
    runId: 3,
    runName: 'run <img src=x onerror=alert(1)>',
    checkpoint: 'best',
    step: 1200,
    source: { kind: 'test-split', split: 'listing' },
    rows: n,
    trainRows: 540,
    knnK: 10,
    seconds: 12.5,
    createdAt: '2026-12-01T22:00:00.000Z',
    heads: {
      price: priceHeadScores({
        probs: { model: mat(10), majority: priorProbs(lab(10), 10, n), knn: mat(10) },
        labels: priceLabels,
        C: 10,
        dollars: { model: truth.map((v) => v * 1.1), majority: new Float32Array(n).fill(25_000), knn: truth.map((v) => v * 0.9) },
        truth,
      }),
      makeModel: makeModelHeadScores({
        probs: { model: mat(4), majority: priorProbs(lab(4), 4, n), knn: null },
        labels: mmLabels,
        C: 4,
        classNames: names,
        makeOfClass: makes,
      }),
      year: opts.year
        ? yearHeadScores({
            probs: { model: mat(42), majority: priorProbs(lab(42), 42, n), knn: mat(42) },
            labels: yearLabels,
            C: 42,
            yearOfClass: yearsOfLabels(Array.from({ length: 42 }, (_, i) => (i === 41 ? 'unknown' : String(1983 + i)))),
          })
        : null,
    },
    untrained: opts.year ? [] : [{ head: 'year', reason: 'loss weight 0 <script>' }],
  };
}

describe('report HTML and files', () => {
  it('escapes user strings, draws one SVG per reliability diagram, and is self-contained', () => {
    const report = sampleReport({ year: true });
    const html = renderReportHtml(report);
    const doc = parseDocument(html);
    expect(DomUtils.getElementsByTagName('script', doc)).toHaveLength(0);
    expect(DomUtils.getElementsByTagName('img', doc)).toHaveLength(0);
    expect(html).not.toMatch(/<script|<img|<b>X/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; Model');
    // and, opened from the studio's origin, the page may run nothing and load nothing
    const csp = DomUtils.findOne((e) => e.name === 'meta' && e.attribs['http-equiv'] === 'Content-Security-Policy', doc.children, true);
    expect(csp?.attribs.content).toBe("default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    // The names survive as text.
    const text = DomUtils.textContent(doc);
    expect(text).toContain('run <img src=x onerror=alert(1)>');
    expect(text).toContain('Ford "F-150" & co');
    const svgs = DomUtils.getElementsByTagName('svg', doc);
    expect(svgs.filter((s) => s.attribs.class === 'reliability')).toHaveLength(3);
    expect(svgs.filter((s) => s.attribs.class === 'per-class')).toHaveLength(1);
    expect(html).not.toMatch(/https?:|url\(|@import/i);
    const linked = DomUtils.findAll((e) => ['src', 'href', 'xlink:href', 'action'].some((a) => a in e.attribs), doc.children);
    expect(linked).toHaveLength(0);
    // Table figures as formatted numbers from the report.
    const mm = report.heads.makeModel!;
    expect(text).toContain(`${(mm.model.top1 * 100).toFixed(1)}%`);
    expect(text).toContain(`${(mm.model.makeTop1 * 100).toFixed(1)}%`);
    expect(text).toContain(mm.model.ce.toFixed(3));
    expect(text).toContain(`$${Math.round(report.heads.price!.model.maeDollars).toLocaleString('en-US')}`);
    expect(text).toContain(`${report.heads.year!.model.maeYears.toFixed(2)} years`);
    expect(text).toContain('What these numbers mean');
    expect(text).toMatch(/by listing, so no car/);
    // One reliability diagram fewer without the year head, which is listed as untrained.
    const noYear = renderReportHtml(sampleReport({ year: false }));
    const d2 = parseDocument(noYear);
    expect(DomUtils.getElementsByTagName('svg', d2).filter((s) => s.attribs.class === 'reliability')).toHaveLength(2);
    expect(DomUtils.textContent(d2)).toContain('year: loss weight 0 <script>');
    // The split note follows the source: a photo split does not claim unseen cars; a manifest's path is escaped.
    const photo = DomUtils.textContent(parseDocument(renderReportHtml({ ...report, source: { kind: 'test-split', split: 'photo' } })));
    expect(photo).toMatch(/split by photo/);
    expect(photo).not.toMatch(/no car/);
    const man = renderReportHtml({ ...report, source: { kind: 'manifest', manifest: '/data/<x>.csv', rowsSkipped: 4 } });
    expect(man).toContain('manifest /data/&lt;x&gt;.csv (4 rows skipped)');
  });

  it('writeReport and readReport round-trip; reportEntry has the headline figures', async () => {
    const report = sampleReport({ year: true });
    const dir = path.join(tmp, 'reports', 'r1');
    await writeReport(dir, report);
    expect(fs.readdirSync(dir).sort()).toEqual(['report.html', 'report.json']);
    const back = readReport(dir);
    expect(back.report).toEqual(report);
    expect(back.html).toBe(renderReportHtml(report));
    expect(fs.readFileSync(path.join(dir, 'report.html'), 'utf8')).toBe(back.html);
    fs.rmSync(path.join(dir, 'report.html'));
    expect(readReport(dir).html).toBe(back.html); // rendered again from report.json
    const entry = reportEntry('r1', report);
    expect(entry).toEqual({
      id: 'r1',
      runId: 3,
      createdAt: report.createdAt,
      source: report.source,
      rows: 60,
      headline: {
        priceTop1: report.heads.price!.model.top1,
        makeModelTop1: report.heads.makeModel!.model.top1,
        makeTop1: report.heads.makeModel!.model.makeTop1,
        yearWithin2: report.heads.year!.model.within2,
      },
    });
    expect(reportEntry('r2', sampleReport({ year: false })).headline.yearWithin2).toBeNull();
    expect(() => readReport(path.join(tmp, 'missing'))).toThrow(UserError);
    fs.mkdirSync(path.join(tmp, 'bad'));
    fs.writeFileSync(path.join(tmp, 'bad', 'report.json'), '{"version":2}');
    expect(() => readReport(path.join(tmp, 'bad'))).toThrow(/not a version-1 report/);
    fs.writeFileSync(path.join(tmp, 'bad', 'report.json'), '{"version":');
    expect(() => readReport(path.join(tmp, 'bad'))).toThrow(/not valid JSON/);
  });
});

// ---------- calibrated figures ----------

describe('calibrated figures', () => {
  const rand = mulberry32(77);
  const n = 60;
  const C = 6;
  // an over-confident model: sharp rows, right about 60% of the time
  const labels = Int32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? -1 : Math.floor(rand() * C)));
  const probs = new Float32Array(n * C);
  for (let i = 0; i < n; i++) {
    const top = rand() < 0.6 && labels[i]! >= 0 ? labels[i]! : Math.floor(rand() * C);
    let s = 0;
    for (let c = 0; c < C; c++) s += probs[i * C + c] = c === top ? 20 + rand() * 30 : rand();
    for (let c = 0; c < C; c++) probs[i * C + c] /= s;
  }

  it('scales the raw probabilities by T: CE and ECE as by definition, top-1 unchanged, T = 1 is the raw figures', () => {
    const raw = classificationScores(probs, labels, C);
    const T = 2.3;
    const k = calibratedScores(probs, labels, C, T, { heldOut: false });
    const want = eceByDefinition(scaledByDefinition(probs, C, T), labels, C);
    expect(k.temperature).toBe(T);
    expect(k.n).toBe(raw.n);
    expect(k.ece).toBeCloseTo(want.ece, 6);
    expect(k.ce).toBeCloseTo(want.ce, 6);
    expect(want.top1).toBeCloseTo(raw.top1, 12); // what the report does not repeat
    expect(k.ece).not.toBeCloseTo(raw.ece, 3);
    expect(k.ce).toBeLessThan(raw.ce); // softening an over-confident model lowers its cross-entropy
    expect(k.reliability.reduce((a, b) => a + b.count, 0)).toBe(raw.n);
    expect(k.heldOut).toBeNull();
    expect(k.makeTop1).toBeUndefined();
    const one = calibratedScores(probs, labels, C, 1, { heldOut: false });
    expect(one.ece).toBeCloseTo(raw.ece, 6);
    expect(one.ce).toBeCloseTo(raw.ce, 6);
  });

  it('the held-out estimate scales each half of the labelled rows by the temperature fitted on the other half', () => {
    const k = calibratedScores(probs, labels, C, 2.3, { heldOut: true, makeOfClass: ['A', 'A', 'B', 'B', 'C', 'Unknown'] });
    const rows: number[] = [];
    labels.forEach((y, i) => y >= 0 && rows.push(i));
    const a = rows.filter((_, j) => j % 2 === 0);
    const b = rows.filter((_, j) => j % 2 === 1);
    const [ta, tb] = [fitTemperature(probs, labels, C, a), fitTemperature(probs, labels, C, b)];
    expect(k.heldOut!.temperatures).toEqual([ta, tb]);
    const pooled = new Float64Array(probs.length);
    const byA = scaledByDefinition(probs, C, ta);
    const byB = scaledByDefinition(probs, C, tb);
    for (const i of a) pooled.set(byB.subarray(i * C, (i + 1) * C), i * C);
    for (const i of b) pooled.set(byA.subarray(i * C, (i + 1) * C), i * C);
    const want = eceByDefinition(pooled, labels, C);
    expect(k.heldOut!.ece).toBeCloseTo(want.ece, 6);
    expect(k.heldOut!.ce).toBeCloseTo(want.ce, 6);
    expect(k.makeTop1).toBeCloseTo(
      makeTop1(Float32Array.from(scaledByDefinition(probs, C, 2.3)), labels, C, ['A', 'A', 'B', 'B', 'C', 'Unknown']),
      9,
    );
    // fewer than 10 labelled rows: no held-out figure
    const few = Int32Array.from(labels, (y, i) => (i < 10 ? y : -1)); // 9 labelled rows
    expect(calibratedScores(probs, few, C, 2.3, { heldOut: true }).heldOut).toBeNull();
  });

  const calFile = (dir: string, over: Partial<CalibrationReport> = {}): CalibrationReport => {
    const r: CalibrationReport = {
      version: 1,
      runId: 4,
      checkpoint: 'best',
      stamp: checkpointStamp(path.join(dir, 'best.ckpt')),
      step: 300,
      createdAt: '2026-12-02T10:00:00.000Z',
      split: 'listing',
      testFraction: 0.1,
      rows: 40,
      temperatures: { price: 1.7, makeModel: 0.8, year: 1 },
      heads: {
        price: {
          temperature: 1.7,
          n: 30,
          before: { ece: 0.2, nll: 1, reliability: [] },
          after: { ece: 0.1, nll: 0.9, reliability: [] },
          heldOut: null,
        },
        makeModel: {
          temperature: 0.8,
          n: 40,
          before: { ece: 0.2, nll: 1, reliability: [] },
          after: { ece: 0.1, nll: 0.9, reliability: [] },
          heldOut: null,
        },
        year: { skipped: 'not trained (loss weight 0)' },
      },
      seconds: 1,
      ...over,
    };
    fs.writeFileSync(path.join(dir, 'calibration.json'), JSON.stringify(r));
    return r;
  };

  it('applies a calibration only to the checkpoint file it stamps, as predict does, and says why not otherwise', () => {
    const dir = path.join(tmp, 'runs', '4');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'best.ckpt'), 'checkpoint bytes');
    fs.writeFileSync(path.join(dir, 'last.ckpt'), 'other checkpoint bytes');
    const none = calibrationFor(dir, 4, 'best');
    expect(none.temperatures).toBeNull();
    expect(none.reason).toMatch(/has no calibration.*carstudio calibrate --run 4/);
    const cal = calFile(dir);
    expect(calibrationFor(dir, 4, 'best')).toEqual({ cal, temperatures: cal.temperatures, reason: null });
    const other = calibrationFor(dir, 4, 'last');
    expect(other.temperatures).toBeNull();
    expect(other.reason).toMatch(/of its best checkpoint, not of the last one/);
    fs.writeFileSync(path.join(dir, 'best.ckpt'), 'checkpoint bytes, written again');
    const stale = calibrationFor(dir, 4, 'best');
    expect(stale.temperatures).toBeNull();
    expect(stale.reason).toMatch(/earlier best checkpoint.*carstudio calibrate --run 4/);
  });

  it('says where the calibrated figures are in-sample: the test split, manifest photos of it, or held out', () => {
    const dir = path.join(tmp, 'runs', '5');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'best.ckpt'), 'checkpoint bytes');
    const cal = calFile(dir);
    const c = calibrationFor(dir, 5, 'best');
    const test = evalCalibration({ kind: 'test-split', split: 'listing' }, 40, 40, c, 40);
    expect(test).toMatchObject({
      applied: true,
      inSample: true,
      inSampleRows: 40,
      temperatures: cal.temperatures,
      skipped: { year: 'not trained (loss weight 0)' },
    });
    expect(test.fitted).toEqual({ checkpoint: 'best', step: 300, createdAt: cal.createdAt, rows: 40, split: 'listing' });
    expect(test.note).toMatch(/^The temperatures were fitted on this very test split, .*optimistic/);
    expect(test.note).not.toMatch(/workspace changed/);
    expect(evalCalibration({ kind: 'test-split', split: 'listing' }, 44, 44, c, 44).note).toMatch(
      /fitted on 40 test photos; the test split has 44 now/,
    );
    const manifest = { kind: 'manifest', manifest: '/m.csv', rowsSkipped: 0 } as const;
    const held = evalCalibration(manifest, 12, 0, c, 40);
    expect(held).toMatchObject({ applied: true, inSample: false, inSampleRows: 0 });
    expect(held.note).toMatch(/no photo of this manifest is a file of it/);
    const part = evalCalibration(manifest, 12, 3, c, 40);
    expect(part).toMatchObject({ inSample: true, inSampleRows: 3 });
    expect(part.note).toMatch(/^3 of the 12 photos are files of the run's test split/);
    const not = evalCalibration(manifest, 12, 0, calibrationFor(dir, 5, 'last'), 40);
    expect(not).toMatchObject({ applied: false, temperatures: null, inSample: false, inSampleRows: 0 });
    expect(not.note).toMatch(/^Not calibrated: .*best checkpoint/);
  });

  it('the HTML report shows the calibrated column and diagram with the caveat, "not calibrated", or raw only for old reports', () => {
    const base = sampleReport({ year: true });
    const heads = base.heads;
    const withCal: EvalReport = {
      ...base,
      heads: {
        price: {
          ...heads.price!,
          calibrated: {
            temperature: 1.7,
            n: heads.price!.model.n,
            ce: 0.4321,
            ece: 0.0123,
            reliability: heads.price!.model.reliability,
            heldOut: { ce: 0.5, ece: 0.0456, temperatures: [1.6, 1.8] },
          },
        },
        makeModel: {
          ...heads.makeModel!,
          calibrated: {
            temperature: 0.8,
            n: heads.makeModel!.model.n,
            ce: 0.9876,
            ece: 0.0789,
            makeTop1: 0.5,
            reliability: heads.makeModel!.model.reliability,
            heldOut: null,
          },
        },
        year: { ...heads.year!, calibrated: null },
      },
      calibration: {
        applied: true,
        reason: null,
        fitted: { checkpoint: 'best', step: 1200, createdAt: base.createdAt, rows: 60, split: 'listing' },
        temperatures: { price: 1.7, makeModel: 0.8, year: 1 },
        skipped: { year: 'not trained <b>(loss weight 0)</b>' },
        inSample: true,
        inSampleRows: 60,
        note: 'The temperatures were fitted on this very test split, so the calibrated cross-entropy and ECE are optimistic.',
      },
    };
    const doc = parseDocument(renderReportHtml(withCal));
    const text = DomUtils.textContent(doc);
    const svgs = DomUtils.getElementsByTagName('svg', doc);
    expect(svgs.filter((s) => s.attribs.class === 'reliability')).toHaveLength(3);
    expect(svgs.filter((s) => s.attribs.class === 'reliability calibrated')).toHaveLength(2);
    expect(text).toContain('In-sample calibrated figures.');
    expect(text).toContain('optimistic');
    expect(text).toContain('Model, calibrated (T = 1.700)');
    expect(text).toContain('1.2% (held out 4.6%)'); // the price head's calibrated ECE
    expect(text).toContain('0.988');
    expect(text).toContain('not calibrated (not trained <b>(loss weight 0)</b>)'); // escaped, as text
    const sec = DomUtils.findOne((e) => e.attribs.class === 'calibration', doc.children, true)!;
    expect(sec.attribs['data-in-sample']).toBe('true');
    // top-1 and top-5 of a calibrated head are not repeated
    const unchanged = DomUtils.findAll((e) => e.name === 'td' && (e.attribs.class ?? '').includes('same'), doc.children);
    // price: top-1, top-5 and the median's MAE; make/model: top-1, top-5 (its make-only top-1 is recomputed); year: no column
    expect(unchanged).toHaveLength(5);
    const notCal = DomUtils.textContent(
      parseDocument(
        renderReportHtml({
          ...base,
          calibration: {
            applied: false,
            reason: 'this run has no calibration',
            fitted: null,
            temperatures: null,
            skipped: {},
            inSample: false,
            inSampleRows: 0,
            note: 'Not calibrated: this run has no calibration.',
          },
        }),
      ),
    );
    expect(notCal).toContain('Not calibrated.');
    expect(notCal).not.toContain('Model, calibrated (T =');
    const old = DomUtils.textContent(parseDocument(renderReportHtml(base)));
    expect(old).toContain('from before calibrated figures were recorded');
    expect(old).not.toContain('Model, calibrated (T =');
  });
});
