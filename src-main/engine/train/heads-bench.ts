// Heads-training throughput on synthetic 1280-d features (the MobileNetV2 pooled features' size)
// with the full label space (10 price bins, 512 make/models + Unknown, 42 years), through the
// real trainer: batch assembly, forward, backward, Adam, metric read-back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackendInfo } from '../ml/backend.ts';
import { buildLabelSpace, encodeColumns, type LabelRow } from './labels.ts';
import { Rng } from './rng.ts';
import { train, trainConfig, type FeatureSplit } from './trainer.ts';

export interface HeadsBenchOptions {
  backend: BackendInfo;
  dim?: number;
  batchSize?: number;
  steps?: number;
  /** Steps before timing starts. */
  warmup?: number;
  rows?: number;
  hidden?: number;
}

export interface HeadsBenchResult {
  backend: string;
  dim: number;
  batchSize: number;
  steps: number;
  seconds: number;
  samplesPerSec: number;
  msPerStep: number;
}

export async function benchHeadsTraining(o: HeadsBenchOptions): Promise<HeadsBenchResult> {
  const dim = o.dim ?? 1280;
  const B = o.batchSize ?? 64;
  const steps = o.steps ?? 200;
  const warmup = o.warmup ?? 10;
  const n = o.rows ?? 8192;
  const rng = new Rng(99);
  const rows: LabelRow[] = Array.from({ length: n }, (_, i) => ({
    imageId: i + 1,
    hash: rng.nextUint32().toString(16).padStart(8, '0'),
    price: rng.uniform(3_000, 90_000),
    make: `Make${i % 600}`,
    model: 'M',
    year: 1980 + rng.int(46),
  }));
  const space = buildLabelSpace(rows);
  const features = new Float32Array(n * dim);
  for (let i = 0; i < features.length; i++) features[i] = rng.next();
  const split: FeatureSplit = { dim, features, labels: encodeColumns(space, rows) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-heads-bench-'));
  let tStart = 0;
  let tEnd = 0;
  try {
    await train(
      dir,
      trainConfig('heads', { steps: warmup + steps, batchSize: B, evalEvery: 1e9, checkpointEvery: 1e9, hidden: o.hidden ?? 0 }),
      {
        backend: o.backend,
        space,
        data: { mode: 'heads', train: split, test: { dim, features: features.subarray(0, 0), labels: encodeColumns(space, []) } },
        onStep: (e) => {
          if (e.step === warmup) tStart = performance.now();
          if (e.step === warmup + steps) tEnd = performance.now();
        },
      },
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (tEnd - tStart) / 1000;
  return {
    backend: o.backend.name,
    dim,
    batchSize: B,
    steps,
    seconds,
    samplesPerSec: (steps * B) / seconds,
    msPerStep: (seconds * 1000) / steps,
  };
}
