// A small heads run on car-v1 features (the default extractor: MobileNetV2 blocks plus the car
// detector's summary) of labelled photos, recorded in the workspace's runs table as the train job
// records it; for tests of what predicts with a car-v1 model input (the photo and the detector's view).
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../../src-main/engine/ml/backend.ts';
import { extractFeatures } from '../../src-main/engine/filter/extract.ts';
import { dimOf, loadExtractor } from '../../src-main/engine/filter/features.ts';
import { buildLabelSpace, encodeColumns, splitByHash, type LabelRow } from '../../src-main/engine/train/labels.ts';
import { train, trainConfig, type FeatureSplit } from '../../src-main/engine/train/trainer.ts';
import { Workspace } from '../../src-main/engine/workspace/workspace.ts';
import { fakePrice, LABELLED } from './predict-run.ts';

/** Trains a car-v1 heads run on `n` photos of labelled-cars for `steps` steps; returns its folder (runs/<id>). */
export async function buildCarV1Run(wsDir: string, name: string, n: number, steps: number): Promise<string> {
  const backend = await initBackend('wasm');
  const lines = fs.readFileSync(path.join(LABELLED, 'labels.csv'), 'utf8').trim().split('\n').slice(1);
  const step = Math.max(1, Math.floor(lines.length / n));
  const picked = lines.filter((_, i) => i % step === 0).slice(0, n).map((l) => l.split(','));
  const ex = await loadExtractor('car-v1', wsDir);
  const res = await extractFeatures(picked.map((c, i) => ({ id: i + 1, data: path.join(LABELLED, c[0]!) })), { batchSize: 8 }, ex);
  const D = dimOf('car-v1');
  const rows: Array<LabelRow & { x: Float32Array }> = res.ids.map((id, k) => {
    const c = picked[id - 1]!;
    const year = Number(c[3]) || null;
    return { imageId: id, hash: c[0]!.replace(/\.jpg$/, '').split('_').pop()!, price: fakePrice(c[1]!, year), make: c[1]!, model: c[2]!, year, x: res.features.slice(k * D, (k + 1) * D) };
  });
  const space = buildLabelSpace(rows);
  const { train: tr, test: te } = splitByHash(rows, 0.2);
  const split = (rs: typeof rows): FeatureSplit => {
    const features = new Float32Array(rs.length * D);
    rs.forEach((r, i) => features.set(r.x, i * D));
    return { dim: D, features, labels: encodeColumns(space, rs) };
  };
  const ws = Workspace.open(wsDir);
  const now = Date.now();
  const runId = (ws.db
    .prepare(`INSERT INTO runs (name, mode, params, state, steps, created_at, updated_at) VALUES (?, 'heads', ?, 'running', ?, ?, ?) RETURNING id`)
    .get(name, JSON.stringify({ mode: 'heads', steps, lossWeights: 'default', extractor: 'car-v1' }), steps, now, now) as { id: number }).id;
  const runDir = path.join(wsDir, 'runs', String(runId));
  try {
    await train(runDir, trainConfig('heads', { steps, batchSize: 16, evalEvery: steps / 2, checkpointEvery: steps / 2, seed: 5 }), {
      backend,
      space,
      data: { mode: 'heads', train: split(tr), test: split(te) },
    });
    const cfgFile = path.join(runDir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), extractor: 'car-v1' }, null, 2));
    ws.db.prepare(`UPDATE runs SET state = 'done', step = ?, updated_at = ? WHERE id = ?`).run(steps, Date.now(), runId);
  } finally {
    ws.close();
  }
  return runDir;
}
