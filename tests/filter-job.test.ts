import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { DEFAULT_EXTRACTOR, EXTRACTOR_INFO, openCache } from '../src-main/engine/filter/features.ts';
import { hasOrt } from './helpers/onnx.ts';
import { runCli, waitFor } from './helpers/processes.ts';
import { SHARED_DATA, hasSharedData, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const present = hasSharedData('listing-photos/good') && hasSharedData('listing-photos/bad');
if (!present) console.log(`skipping the filter job tests: ${PHOTOS} is absent (real listing photos are needed)`);

/** Every nth file of a folder, copied into a new folder (the shared folder is read-only). */
function sample(src: string, n: number, every: number, into: string): string {
  fs.mkdirSync(into, { recursive: true });
  fs.readdirSync(src)
    .sort()
    .filter((_, i) => i % every === 0)
    .slice(0, n)
    .forEach((f) => fs.copyFileSync(path.join(src, f), path.join(into, f)));
  return into;
}

describe.runIf(present)('label & filter on real listing photos', () => {
  let dir: string;
  let good: string;
  let bad: string;
  beforeAll(() => {
    const root = tmpDir();
    dir = path.join(root, 'ws');
    good = sample(path.join(PHOTOS, 'good'), 160, 4, path.join(root, 'good'));
    bad = sample(path.join(PHOTOS, 'bad'), 160, 3, path.join(root, 'bad'));
    // a broken file among the bad ones is reported and skipped
    fs.writeFileSync(path.join(bad, 'zz-broken.jpg'), Buffer.from('not a jpeg'));
  });

  it('imports labels, fits with 10-fold CV at FNR <= 1%, applies, scores and exports', async () => {
    const imp = await runCli(['label', '--workspace', dir, '--create', '--good', good, '--bad', bad]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/good: 160 imported/);
    expect(imp.stdout).toMatch(/bad: 160 imported, 0 already in the workspace, 1 skipped/);
    expect(imp.stderr).toMatch(/zz-broken\.jpg/);
    // importing again changes nothing
    const again = await runCli(['label', '--workspace', dir, '--good', good]);
    expect(again.stdout).toMatch(/good: 0 imported, 160 already/);

    // extracts the default (car-v1) features first: the detector makes that slower than mobilenet_v2 alone
    const fit = await runCli(['filter', 'fit', '--workspace', dir, '--max-fnr', '0.01', '--json'], { timeoutMs: 360_000 });
    expect(fit.code, fit.stderr).toBe(0);
    const r = JSON.parse(fit.stdout);
    expect(r.labelledGood).toBe(160);
    expect(r.labelledBad).toBe(160);
    expect(r.cvFalseNegativeRate).toBeLessThanOrEqual(0.01);
    // the default extractor, the C of the default grid (C=1: no inner search) and the CI of the CV FNR
    expect(r.featureSet).toBe(DEFAULT_EXTRACTOR);
    expect([1, 4]).toContain(r.C);
    expect(r.foldC).toHaveLength(10);
    expect(r.cvFnrInterval).toMatchObject({ good: 160, goodRemoved: Math.round(r.cvFalseNegativeRate * 160) });
    expect(r.cvFnrInterval.lower).toBeLessThanOrEqual(r.cvFalseNegativeRate);
    expect(r.cvFnrInterval.upper).toBeGreaterThan(r.cvFalseNegativeRate);
    console.log(`filter: threshold ${r.threshold.toFixed(3)}, CV FNR ${(100 * r.cvFalseNegativeRate).toFixed(2)}%, bad removed ${(100 * r.cvBadRemoved).toFixed(1)}%, accuracy ${(100 * r.cvAccuracy).toFixed(1)}%`);
    expect(r.cvBadRemoved).toBeGreaterThan(0.2);
    expect(r.table.some((row: { threshold: number }) => row.threshold === r.threshold)).toBe(true);

    const apply = await runCli(['filter', 'apply', '--workspace', dir, '--json']);
    expect(apply.code, apply.stderr).toBe(0);
    const a = JSON.parse(apply.stdout);
    expect(a.scored).toBe(320);
    expect(a.kept + a.removed).toBe(320);

    const stats = JSON.parse((await runCli(['stats', '--workspace', dir, '--json'])).stdout);
    expect(stats.filter).toMatchObject({ labelled_good: 160, labelled_bad: 160, scored: 320, kept: a.kept, removed: a.removed });
    expect(stats.filter.threshold).toBeCloseTo(r.threshold, 9);

    const scores = JSON.parse((await runCli(['filter', 'score', '--workspace', dir, '--json'])).stdout);
    expect(scores.images).toHaveLength(320);
    expect(scores.images.filter((i: { kept: boolean }) => i.kept).length).toBe(a.kept);

    const out = path.join(tmpDir(), 'npy');
    const exp = await runCli(['features', 'export', '--workspace', dir, '--format', 'npy', '--out', out]);
    expect(exp.code, exp.stderr).toBe(0);
    const npy = fs.readFileSync(path.join(out, 'features.npy'));
    expect(npy.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
    expect(npy.toString('latin1', 10, 10 + npy.readUInt16LE(8))).toMatch(new RegExp(`'shape': \\(320, ${EXTRACTOR_INFO[DEFAULT_EXTRACTOR].dim}\\)`));
    expect(fs.readFileSync(path.join(out, 'ids.txt'), 'utf8').trim().split('\n')).toHaveLength(320);

    const labels = path.join(tmpDir(), 'labels.csv');
    expect((await runCli(['label', 'export', '--workspace', dir, '--out', labels])).code).toBe(0);
    expect(fs.readFileSync(labels, 'utf8').trim().split('\n')).toHaveLength(321);
  }, 480_000);
});

describe('features job', () => {
  it('reports its backend, skips and reports a corrupt image, and resumes after a cancel without extracting twice', async () => {
    const ws = tmpWorkspace();
    const keys = await seedStoredImages(ws, 150);
    // a stored file that went bad after it was stored (still a usable image by the database)
    fs.writeFileSync(ws.store.pathFor(keys[7]!), Buffer.from('\xff\xd8\xff garbage, not a jpeg'));
    const corruptId = ws.db.prepare(`SELECT id FROM images WHERE key = ?`).pluck().get(keys[7]) as number;
    const dir = ws.dir;
    ws.close();
    const engine = Engine.open(dir);
    try {
      const job = engine.jobs.start('features', { extractor: 'mobilenet_v2' });
      await waitFor(() => (engine.jobs.get(job.id)!.done >= 48 ? true : null), 'extraction progress', 60_000);
      engine.jobs.cancel(job.id);
      const stopped = await engine.jobs.wait(job.id);
      expect(stopped.state).toBe('cancelled');
      const partial = (await openCache(engine.ws, 'mobilenet_v2')).size;
      expect(partial).toBeGreaterThanOrEqual(32);
      expect(partial).toBeLessThan(149);

      engine.jobs.resume(job.id);
      const final = await engine.jobs.wait(job.id);
      expect(final.state, final.error?.message).toBe('done');
      const r = final.result as { backend: string; images: number; extracted: number; failed: number; failures: Array<{ imageId: number; error: string }>; cached: number; imagesPerSecond: number };
      // only what the cancelled run had not stored is extracted again
      expect(r).toMatchObject({ images: 150, extracted: 149 - partial, failed: 1, cached: 149 });
      expect(r.failures).toEqual([{ imageId: corruptId, error: expect.any(String) }]);
      expect(r.backend).toMatch(hasOrt ? /^onnxruntime (cpu \(\d+ threads?\)|cuda)$/ : /^tfjs (wasm|cpu|tensorflow)/);
      const log = engine.ws.db.prepare(`SELECT message FROM job_log WHERE job_id = ? ORDER BY id`).pluck().all(job.id) as string[];
      expect(log.some((l) => l.includes(`image ${corruptId} skipped`))).toBe(true);
      expect(log.some((l) => l.includes(`on ${r.backend}`))).toBe(true);
      console.log(`features job: ${r.imagesPerSecond?.toFixed(1)} images/s on ${r.backend} (small synthetic JPEGs), ${partial} kept over the cancel`);
      const cache = await openCache(engine.ws, 'mobilenet_v2');
      expect(cache.has(corruptId)).toBe(false);
      await cache.close();
    } finally {
      await engine.close();
    }
  }, 120_000);
});
