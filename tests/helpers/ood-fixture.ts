// A workspace with a large feature cache for the distance-reference tests (predict-ood-worker):
// ROWS priced photos in its studio.db (listings, images, links: no image files, the reference
// reads only the database and the cache) with a car-v1 feature row each, heads-run folders on it,
// and a meter of the event-loop lag of the thread that runs it.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { dimOf, featureDir } from '../../src-main/engine/filter/features.ts';
import { FeatureCache } from '../../src-main/engine/filter/feature-cache.ts';
import type { RunConfigFile } from '../../src-main/engine/train/trainer.ts';
import { mulberry32 } from '../../src-main/engine/util/random.ts';
import type { Workspace } from '../../src-main/engine/workspace/workspace.ts';
import { tmpWorkspace } from './workspace.ts';

export const ROWS = 6000;
export const EXTRACTOR = 'car-v1';
export const DIM = dimOf(EXTRACTOR);

/** A workspace of ROWS priced photos (listings, images, links in its studio.db) with a car-v1 feature row each: 8 clusters plus noise. */
export async function largeWorkspace(): Promise<Workspace> {
  const ws = tmpWorkspace();
  const insL = ws.db.prepare(`INSERT INTO listings (source, listing_id, url, title, price, make, model, year, scraped_at) VALUES ('test', ?, ?, ?, ?, 'Audi', 'A3', 2015, ?) RETURNING id`).pluck();
  const insI = ws.db.prepare(`INSERT INTO images (key, url, state, width, height, bytes, updated_at) VALUES (?, ?, 'stored', 640, 480, 1000, ?) RETURNING id`).pluck();
  const link = ws.db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, 0, ?)`);
  const ids: number[] = [];
  ws.db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      const l = insL.get(i, `http://x.test/${i}`, `Car ${i}`, 5000 + (i % 97) * 300, Date.now()) as number;
      const img = insI.get(`k${String(i).padStart(8, '0')}`, `http://x.test/img/${i}.jpg`, Date.now()) as number;
      link.run(l, img);
      ids.push(img);
    }
  })();
  const rnd = mulberry32(42);
  const centres = Array.from({ length: 8 }, () => Float32Array.from({ length: DIM }, () => rnd()));
  const cache = await FeatureCache.open(featureDir(ws, EXTRACTOR), EXTRACTOR, DIM);
  const CHUNK = 1000;
  for (let s = 0; s < ROWS; s += CHUNK) {
    const n = Math.min(CHUNK, ROWS - s);
    const m = new Float32Array(n * DIM);
    for (let r = 0; r < n; r++) {
      const c = centres[(s + r) % 8]!;
      for (let j = 0; j < DIM; j++) m[r * DIM + j] = c[j]! + 0.5 * rnd();
    }
    await cache.append(ids.slice(s, s + n), m);
  }
  await cache.close();
  return ws;
}

export const runConfig = (createdAt: string, extractor = EXTRACTOR): RunConfigFile =>
  ({ version: 1, config: { mode: 'heads' }, extractor, split: 'photo', testFraction: 0.1, createdAt, featureDim: dimOf(extractor as 'car-v1'), space: {}, backbone: null, backend: 'cpu' }) as unknown as RunConfigFile;

export function runFolder(ws: Workspace, id: string, cfg: RunConfigFile): string {
  const dir = path.join(ws.dir, 'runs', id);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

/** What lagMeter saw of this thread's event loop. */
export interface LoopLag {
  /** The 10 ms timer's largest overshoot, wall clock (on a loaded machine it also holds the time the OS ran other processes on the core). */
  maxLagMs: number;
  /** The 90th percentile of the overshoots (robust to such preemptions). */
  p90LagMs: number;
  /** The longest stretch the loop ran code between two ticks (performance.eventLoopUtilization): what a request waits behind this thread's own work. */
  maxBusyMs: number;
  /** The share of the time the loop ran code (0: all idle, 1: never idle). */
  utilisation: number;
  ticks: number;
}

/** This thread's event loop while something runs, sampled by a 10 ms timer. */
export function lagMeter(): { stop(): LoopLag } {
  const every = 10;
  const start = performance.eventLoopUtilization();
  let last = performance.now();
  let prev = start;
  let maxBusyMs = 0;
  const lags: number[] = [];
  const sample = (): void => {
    const now = performance.now();
    const cur = performance.eventLoopUtilization();
    lags.push(Math.max(0, now - last - every));
    maxBusyMs = Math.max(maxBusyMs, performance.eventLoopUtilization(cur, prev).active);
    last = now;
    prev = cur;
  };
  const t = setInterval(sample, every);
  return {
    stop() {
      clearInterval(t);
      sample(); // a stall still going on when the build ends counts too
      const sorted = [...lags].sort((x, y) => x - y);
      return {
        maxLagMs: Math.round(sorted[sorted.length - 1]!),
        p90LagMs: Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)]!),
        maxBusyMs: Math.round(maxBusyMs),
        utilisation: Math.round(performance.eventLoopUtilization(performance.eventLoopUtilization(), start).utilization * 1000) / 1000,
        ticks: lags.length - 1,
      };
    },
  };
}
