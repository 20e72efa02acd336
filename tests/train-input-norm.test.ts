// Heads trained on standardised features (--input-norm standard) and with AdamW weight decay:
// the column statistics come from the training rows, live in the checkpoint and survive a resume,
// features on wildly different scales train where the raw ones do not, and decay shrinks the kernel.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendInfo } from '../src-main/engine/ml/backend.ts';
import { readCheckpoint } from '../src-main/engine/train/checkpoint.ts';
import { buildLabelSpace, encodeColumns, splitByHash, type LabelRow, type LabelSpace } from '../src-main/engine/train/labels.ts';
import { Rng } from '../src-main/engine/train/rng.ts';
import { buildRunHeads, featureColumnStats, resume, train, trainConfig, type FeatureSplit, type TrainConfig, type TrainData } from '../src-main/engine/train/trainer.ts';

let backend: BackendInfo;
let tmp: string;
beforeAll(async () => {
  backend = await initBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-norm-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MODELS = [
  ['Skoda', 'Octavia'],
  ['Opel', 'Astra'],
  ['Fiat', 'Doblo'],
  ['Seat', 'Leon'],
] as const;
const DIM = 24;

/**
 * Rows of make/model only (no price, no year): each column sits on its own scale and offset
 * (1e-3 to 1e3 around offsets up to 500), as raw features from different sources would; the class
 * shows only in the small-scale half, the large-scale half is noise.
 */
type HeadsData = Extract<TrainData, { mode: 'heads' }>;

function scaledDataset(n: number, seed: number): { space: LabelSpace; data: HeadsData; colScale: number[] } {
  const rng = new Rng(seed);
  const colScale = Array.from({ length: DIM }, (_, d) => 10 ** (-3 + (6 * d) / (DIM - 1)));
  const colOffset = Array.from({ length: DIM }, () => rng.uniform(-500, 500));
  const protos = MODELS.map(() => Array.from({ length: DIM }, () => rng.normal()));
  const rows: (LabelRow & { x: Float32Array })[] = [];
  for (let i = 0; i < n; i++) {
    const c = rng.int(MODELS.length);
    const x = Float32Array.from({ length: DIM }, (_, d) => colOffset[d]! + colScale[d]! * ((d < DIM / 2 ? protos[c]![d]! : 0) + 0.8 * rng.normal()));
    rows.push({ imageId: i + 1, hash: rng.nextUint32().toString(16).padStart(8, '0'), price: null, make: MODELS[c]![0], model: MODELS[c]![1], year: null, x });
  }
  const space = buildLabelSpace(rows);
  const { train: tr, test: te } = splitByHash(rows);
  const split = (rs: typeof rows): FeatureSplit => {
    const features = new Float32Array(rs.length * DIM);
    rs.forEach((r, i) => features.set(r.x, i * DIM));
    return { dim: DIM, features, labels: encodeColumns(space, rs) };
  };
  return { space, data: { mode: 'heads', train: split(tr), test: split(te) }, colScale };
}

describe('heads input standardisation and weight decay', () => {
  const ds = scaledDataset(1200, 7);
  const cfg = (over: Partial<TrainConfig> = {}): TrainConfig =>
    trainConfig('heads', { steps: 200, batchSize: 64, lr: 3e-3, evalEvery: 100, checkpointEvery: 100, seed: 5, ...over });

  it('takes the column mean and 1/std from the training rows and keeps them in the checkpoint', async () => {
    const res = await train(path.join(tmp, 'norm'), cfg({ inputNorm: 'standard' }), { backend, space: ds.space, data: ds.data });
    expect(res.state).toBe('done');
    const x = ds.data.train.features as Float32Array;
    const n = x.length / DIM;
    const ck = await readCheckpoint<object>(path.join(res.runDir, 'last.ckpt'));
    const mean = ck.tensors.get('heads/input/mean')!.data;
    const scale = ck.tensors.get('heads/input/scale')!.data;
    for (const d of [0, DIM >> 1, DIM - 1]) {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i * DIM + d]!;
      const mu = s / n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[i * DIM + d]! - mu) ** 2;
      expect(mean[d]).toBeCloseTo(mu, 2);
      expect(scale[d]! * Math.sqrt(v / n)).toBeCloseTo(1, 3);
    }
    // the run records it, so eval and predict build the same heads from config.json
    const saved = JSON.parse(fs.readFileSync(path.join(res.runDir, 'config.json'), 'utf8')) as { config: TrainConfig };
    expect(saved.config.inputNorm).toBe('standard');
    const heads = buildRunHeads(backend.tf, saved.config, ds.space, DIM);
    expect([...heads.vars.keys()]).toContain('input/mean');
    expect(heads.vars.get('input/mean')!.trainable).toBe(false);
    heads.dispose();
  });

  it('trains on features of mixed scales where the raw features do not', async () => {
    const raw = await train(path.join(tmp, 'raw'), cfg(), { backend, space: ds.space, data: ds.data });
    const std = await train(path.join(tmp, 'std'), cfg({ inputNorm: 'standard' }), { backend, space: ds.space, data: ds.data });
    const accRaw = raw.lastEval!.test.makeModel.accuracy;
    const accStd = std.lastEval!.test.makeModel.accuracy;
    console.log(`make/model test accuracy on mixed-scale features: raw ${accRaw.toFixed(3)}, standardised ${accStd.toFixed(3)} (4 classes)`);
    expect(accStd).toBeGreaterThan(0.85);
    expect(accStd).toBeGreaterThan(accRaw + 0.15);
    // the fixed vectors did not move: they are not trained
    const a = await readCheckpoint<object>(path.join(std.runDir, 'last.ckpt'));
    const first = await readCheckpoint<object>(path.join(tmp, 'norm', 'last.ckpt'));
    expect(Array.from(a.tensors.get('heads/input/mean')!.data)).toEqual(Array.from(first.tensors.get('heads/input/mean')!.data));
  });

  it('a resumed run keeps the statistics it started with', async () => {
    const dir = path.join(tmp, 'resumed');
    const half = await train(dir, cfg({ inputNorm: 'standard', steps: 100 }), { backend, space: ds.space, data: ds.data });
    const before = (await readCheckpoint<object>(path.join(half.runDir, 'last.ckpt'))).tensors.get('heads/input/mean')!.data;
    // resumed on other rows: were the statistics recomputed, they would change
    const other = scaledDataset(1200, 8);
    const res = await resume(dir, { backend, space: ds.space, data: { ...ds.data, train: other.data.train } }, { steps: 200 });
    expect(res.step).toBe(200);
    const after = (await readCheckpoint<object>(path.join(dir, 'last.ckpt'))).tensors.get('heads/input/mean')!.data;
    expect(Array.from(after)).toEqual(Array.from(before));
  });

  it('weight decay shrinks the kernel and the run records it', async () => {
    const plain = await train(path.join(tmp, 'wd0'), cfg({ inputNorm: 'standard' }), { backend, space: ds.space, data: ds.data });
    const decayed = await train(path.join(tmp, 'wd'), cfg({ inputNorm: 'standard', weightDecay: 50 }), { backend, space: ds.space, data: ds.data });
    const norm = async (dir: string, name: string) => {
      const t = (await readCheckpoint<object>(path.join(dir, 'last.ckpt'))).tensors.get(name)!.data;
      return Math.sqrt(t.reduce((s, v) => s + v * v, 0));
    };
    const k0 = await norm(plain.runDir, 'heads/out/kernel');
    const k1 = await norm(decayed.runDir, 'heads/out/kernel');
    console.log(`out/kernel norm after 200 steps: ${k0.toFixed(2)} without decay, ${k1.toFixed(2)} with 50`);
    expect(k1).toBeLessThan(0.8 * k0);
    expect(decayed.lastEval!.test.makeModel.accuracy).toBeGreaterThan(0.85);
    const saved = JSON.parse(fs.readFileSync(path.join(decayed.runDir, 'config.json'), 'utf8')) as { config: TrainConfig };
    expect(saved.config.weightDecay).toBe(50);
    expect(() => trainConfig('heads', { lr: 0.1, weightDecay: 20 })).toThrow(/weight decay/);
  });

  it('a constant column gets scale 1, not a division by zero', () => {
    const features = new Float32Array([3, 1, 3, 2, 3, 3]);
    const labels = encodeColumns(ds.space, [1, 2, 3].map((i) => ({ imageId: i, hash: 'h', price: null, make: 'Opel', model: 'Astra', year: null })));
    const { mean, scale } = featureColumnStats({ dim: 2, features, labels });
    expect(Array.from(mean)).toEqual([3, 2]);
    expect(scale[0]).toBe(1);
    expect(scale[1]).toBeCloseTo(1 / Math.sqrt(2 / 3), 5);
  });
});
