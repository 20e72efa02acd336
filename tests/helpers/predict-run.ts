// A small trained `heads` run for the Predict tests: MobileNetV2 features of real labelled photos
// (make, model, year from labels.csv; deterministic made-up prices, since the set has none), or,
// with `synthetic`, random 1280-d features (a run for UI tests that need any trained model).
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../../src-main/engine/ml/backend.ts';
import { decodeForModel } from '../../src-main/engine/ml/decode.ts';
import { loadMobilenetBackbone } from '../../src-main/engine/ml/mobilenet.ts';
import { buildLabelSpace, encodeColumns, splitByHash, type LabelRow } from '../../src-main/engine/train/labels.ts';
import { Rng } from '../../src-main/engine/train/rng.ts';
import { train, trainConfig, type FeatureSplit } from '../../src-main/engine/train/trainer.ts';
import { Workspace } from '../../src-main/engine/workspace/workspace.ts';
import { SHARED_DATA } from './workspace.ts';

export const LABELLED = path.join(SHARED_DATA, 'labelled-cars');

/** A made-up but deterministic price for a labelled photo: by make, then newer is dearer. */
export function fakePrice(make: string, year: number | null): number {
  let h = 0;
  for (const ch of make) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const base = 8_000 + (h % 50) * 1_000;
  return base + Math.max(0, (year ?? 2005) - 2000) * 900;
}

/**
 * Trains a small heads run and returns its folder. In a workspace the run is recorded in the runs
 * table as training records it (prediction finds runs there), named `name`, and its folder is
 * runs/<id> (id = the folder's name); in any other folder (the benchmark's) it is just runs/<name>.
 */
export async function buildHeadsRun(workspaceDir: string, name: string, opts: { photos?: number; synthetic?: boolean; steps?: number } = {}): Promise<string> {
  const backend = await initBackend('wasm');
  const n = opts.photos ?? 60;
  const rows: Array<LabelRow & { x: Float32Array }> = [];
  if (opts.synthetic || !fs.existsSync(path.join(LABELLED, 'labels.csv'))) {
    const rng = new Rng(3);
    const pairs = [['Toyota', 'Camry'], ['BMW', '3-Series'], ['Audi', 'A4'], ['Ford', 'Focus']];
    for (let i = 0; i < n; i++) {
      const [make, model] = pairs[i % pairs.length];
      rows.push({ imageId: i + 1, hash: rng.nextUint32().toString(16).padStart(8, '0'), price: fakePrice(make, 2010 + (i % 8)), make, model, year: 2010 + (i % 8), x: Float32Array.from({ length: 1280 }, () => Math.abs(rng.normal())) });
    }
  } else {
    const lines = fs.readFileSync(path.join(LABELLED, 'labels.csv'), 'utf8').trim().split('\n').slice(1);
    const step = Math.max(1, Math.floor(lines.length / n));
    const picked = lines.filter((_, i) => i % step === 0).slice(0, n).map((l) => l.split(','));
    const mb = await loadMobilenetBackbone(backend.tf);
    try {
      for (let i = 0; i < picked.length; i += 8) {
        const chunk = picked.slice(i, i + 8);
        const inputs = await Promise.all(chunk.map((c) => decodeForModel(path.join(LABELLED, c[0]))));
        const batch = new Float32Array(chunk.length * 224 * 224 * 3);
        inputs.forEach((x, j) => batch.set(x, j * x.length));
        const feats = await mb.embed(batch, chunk.length);
        chunk.forEach((c, j) => {
          const year = Number(c[3]) || null;
          rows.push({ imageId: i + j + 1, hash: c[0].replace(/\.jpg$/, '').split('_').pop()!, price: fakePrice(c[1], year), make: c[1], model: c[2], year, x: feats.slice(j * 1280, (j + 1) * 1280) });
        });
      }
    } finally {
      mb.dispose();
    }
  }
  const space = buildLabelSpace(rows);
  const { train: tr, test: te } = splitByHash(rows, 0.2);
  const split = (rs: typeof rows): FeatureSplit => {
    const features = new Float32Array(rs.length * 1280);
    rs.forEach((r, i) => features.set(r.x, i * 1280));
    return { dim: 1280, features, labels: encodeColumns(space, rs) };
  };
  const steps = opts.steps ?? 40;
  const ws = Workspace.exists(workspaceDir) ? Workspace.open(workspaceDir) : null;
  const now = Date.now();
  const runId = ws
    ? (ws.db
        .prepare(`INSERT INTO runs (name, mode, params, state, steps, created_at, updated_at) VALUES (?, 'heads', ?, 'running', ?, ?, ?) RETURNING id`)
        .get(name, JSON.stringify({ mode: 'heads', steps, lossWeights: 'default' }), steps, now, now) as { id: number }).id
    : null;
  const runDir = path.join(workspaceDir, 'runs', runId === null ? name : String(runId));
  try {
    await train(runDir, trainConfig('heads', { steps, batchSize: 16, evalEvery: steps / 2, checkpointEvery: steps / 2, seed: 5 }), {
      backend,
      space,
      data: { mode: 'heads', train: split(tr), test: split(te) },
    });
    ws?.db.prepare(`UPDATE runs SET state = 'done', step = ?, updated_at = ? WHERE id = ?`).run(steps, Date.now(), runId);
  } finally {
    ws?.close();
  }
  return runDir;
}
