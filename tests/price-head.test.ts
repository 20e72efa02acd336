// The median-price head's parameterisations: log-price for new runs (never negative), linear for
// runs trained before (metrics and predictions as they were, a negative median clipped at $0).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/ml/backend.ts';
import { buildLabelSpace, encodeColumns, splitByHash, type LabelRow } from '../src-main/engine/train/labels.ts';
import { createHeads, headsConfig, headSlices, medianDollars, medianHeadOf } from '../src-main/engine/train/model.ts';
import { Rng } from '../src-main/engine/train/rng.ts';
import { buildRunHeads, train, trainConfig, type FeatureSplit, type TrainConfig } from '../src-main/engine/train/trainer.ts';
import { tmpDir } from './helpers/workspace.ts';

describe('the median-price head', () => {
  it('medianDollars: log is $30k * exp(z) and never negative; linear is $30k * z, clipped at $0', () => {
    expect(medianDollars(0, 'log')).toEqual({ dollars: 30_000, clipped: false });
    expect(medianDollars(Math.log(0.5), 'log').dollars).toBeCloseTo(15_000, 2);
    expect(medianDollars(-1e6, 'log').dollars).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(medianDollars(1e6, 'log').dollars)).toBe(true);
    expect(medianDollars(0.5, 'linear')).toEqual({ dollars: 15_000, clipped: false });
    expect(medianDollars(-0.9, 'linear')).toEqual({ dollars: 0, clipped: true });
    // a run's config without the field is a run trained before the log head: linear
    expect(medianHeadOf({})).toBe('linear');
    expect(medianHeadOf(trainConfig('heads'))).toBe('log');
  });

  it('both parameterisations start at $30k', async () => {
    const { tf } = await initBackend('cpu');
    for (const head of ['log', 'linear'] as const) {
      const h = createHeads(tf, headsConfig({ inputDim: 4, numMakeModels: 3, medianHead: head }));
      const bias = h.vars.get('out/bias')!.dataSync();
      const z = bias[headSlices(h.config).median[0]];
      expect(medianDollars(z, head).dollars).toBe(30_000);
      h.dispose();
    }
  });

  /** Features that say the price: a car's price is $30k * exp(x0), so a log head can fit it exactly. */
  function dataset(n: number): { train: FeatureSplit; test: FeatureSplit; space: ReturnType<typeof buildLabelSpace> } {
    const rng = new Rng(11);
    const rows: Array<LabelRow & { x: Float32Array }> = [];
    for (let i = 0; i < n; i++) {
      const u = rng.uniform(-1.2, 1.2);
      const x = Float32Array.from({ length: 8 }, (_, k) => (k === 0 ? u : rng.normal() * 0.1));
      rows.push({ imageId: i + 1, hash: rng.nextUint32().toString(16).padStart(8, '0'), price: Math.round(30_000 * Math.exp(u)), make: 'Ford', model: 'Focus', year: 2015, x });
    }
    const space = buildLabelSpace(rows);
    const { train: tr, test: te } = splitByHash(rows, 0.2);
    const split = (rs: typeof rows): FeatureSplit => {
      const features = new Float32Array(rs.length * 8);
      rs.forEach((r, i) => features.set(r.x, i * 8));
      return { dim: 8, features, labels: encodeColumns(space, rs) };
    };
    return { train: split(tr), test: split(te), space };
  }

  it('a log run fits log-price and reports its MAE in dollars; a linear run keeps MAE = L1 * $30k', async () => {
    const backend = await initBackend('cpu');
    const ds = dataset(400);
    const cfg = (over: Partial<TrainConfig>): TrainConfig =>
      trainConfig('heads', { steps: 300, batchSize: 64, evalEvery: 300, checkpointEvery: 300, lr: 3e-2, seed: 2, lossWeights: { price: 0, median: 1, year: 0, makeModel: 0 }, ...over });
    const dir = tmpDir();
    const log = await train(path.join(dir, 'log'), cfg({}), { backend, space: ds.space, data: { mode: 'heads', ...ds } });
    const lin = await train(path.join(dir, 'linear'), cfg({ medianHead: 'linear' }), { backend, space: ds.space, data: { mode: 'heads', ...ds } });
    const ml = log.lastEval!.test.median;
    const mn = lin.lastEval!.test.median;
    // linear: the loss is dollars / $30k, as runs trained before reported it
    expect(mn.maeDollars).toBeCloseTo(mn.loss * 30_000, 3);
    // log: the loss is on log-price, the MAE in dollars; prices are exp of a feature, so log fits them better
    expect(ml.maeDollars).not.toBeCloseTo(ml.loss * 30_000, 0);
    expect(ml.maeDollars).toBeLessThan(mn.maeDollars);
    expect(ml.maeDollars).toBeLessThan(3_000);
    // the heads of each run rebuild with its own parameterisation
    const heads = buildRunHeads(backend.tf, cfg({ medianHead: undefined }), ds.space, 8);
    expect(heads.config.medianHead).toBe('linear');
    heads.dispose();
  }, 60_000);
});
