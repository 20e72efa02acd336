// Heads training on the wasm backend: the default rung on machines without a native TensorFlow
// (it has every kernel the heads need; only conv-net training is out of its reach).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/ml/backend.ts';
import { buildLabelSpace, encodeColumns, majorityClass, splitByHash, type LabelRow } from '../src-main/engine/train/labels.ts';
import { tinyCnnBackbone } from '../src-main/engine/train/model.ts';
import { Rng } from '../src-main/engine/train/rng.ts';
import { train, trainConfig, type FeatureSplit } from '../src-main/engine/train/trainer.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-train-wasm-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('trains the heads on wasm well above the majority baseline, and refuses to fine-tune there', async () => {
  const backend = await initBackend('wasm');
  expect(backend.name).toBe('wasm');
  const dim = 128;
  const rng = new Rng(8);
  const protos = Array.from({ length: 10 }, () => Float32Array.from({ length: dim }, () => rng.normal()));
  const rows: (LabelRow & { x: Float32Array })[] = Array.from({ length: 2000 }, (_, i) => {
    const bin = rng.next() < 0.3 ? 3 : rng.int(10);
    return {
      imageId: i + 1,
      hash: rng.nextUint32().toString(16).padStart(8, '0'),
      price: [8e3, 12e3, 17e3, 22e3, 27e3, 32e3, 37e3, 45e3, 55e3, 8e4][bin],
      make: 'Ford',
      model: bin < 5 ? 'Focus' : 'Mustang',
      year: 2000 + bin,
      x: Float32Array.from(protos[bin], (v) => 0.6 * v + rng.normal()),
    };
  });
  const space = buildLabelSpace(rows);
  const { train: tr, test: te } = splitByHash(rows);
  const split = (rs: typeof rows): FeatureSplit => {
    const features = new Float32Array(rs.length * dim);
    rs.forEach((r, i) => features.set(r.x, i * dim));
    return { dim, features, labels: encodeColumns(space, rs) };
  };
  const test = split(te);
  const res = await train(path.join(tmp, 'run'), trainConfig('heads', { steps: 200, evalEvery: 100 }), {
    backend,
    space,
    data: { mode: 'heads', train: split(tr), test },
  });
  const baseline = majorityClass(test.labels.priceBin, 10).fraction;
  expect(res.lastEval!.test.price.accuracy).toBeGreaterThan(baseline + 0.3);

  const bb = tinyCnnBackbone(backend.tf);
  await expect(
    train(path.join(tmp, 'ft'), trainConfig('finetune', { steps: 1 }), {
      backend,
      space,
      force: true,
      data: { mode: 'finetune', train: { inputs: [], labels: test.labels }, test: { inputs: [], labels: test.labels }, backbone: bb },
    }),
  ).rejects.toThrow(/wasm backend does not have/);
  bb.model.dispose();
});
