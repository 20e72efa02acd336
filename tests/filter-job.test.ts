import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/processes.ts';
import { SHARED_DATA, hasSharedData, tmpDir } from './helpers/workspace.ts';

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
    const imp = await runCli(['label', '--workspace', dir, '--good', good, '--bad', bad]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/good: 160 imported/);
    expect(imp.stdout).toMatch(/bad: 160 imported, 0 already in the workspace, 1 unreadable/);
    expect(imp.stderr).toMatch(/zz-broken\.jpg/);
    // importing again changes nothing
    const again = await runCli(['label', '--workspace', dir, '--good', good]);
    expect(again.stdout).toMatch(/good: 0 imported, 160 already/);

    const fit = await runCli(['filter', 'fit', '--workspace', dir, '--max-fnr', '0.01', '--json'], { timeoutMs: 180_000 });
    expect(fit.code, fit.stderr).toBe(0);
    const r = JSON.parse(fit.stdout);
    expect(r.labelledGood).toBe(160);
    expect(r.labelledBad).toBe(160);
    expect(r.cvFalseNegativeRate).toBeLessThanOrEqual(0.01);
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
    expect(npy.toString('latin1', 10, 10 + npy.readUInt16LE(8))).toMatch(/'shape': \(320, 1280\)/);
    expect(fs.readFileSync(path.join(out, 'ids.txt'), 'utf8').trim().split('\n')).toHaveLength(320);

    const labels = path.join(tmpDir(), 'labels.csv');
    expect((await runCli(['label', 'export', '--workspace', dir, '--out', labels])).code).toBe(0);
    expect(fs.readFileSync(labels, 'utf8').trim().split('\n')).toHaveLength(321);
  }, 240_000);
});
