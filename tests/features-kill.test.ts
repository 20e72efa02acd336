// A hard kill of feature extraction loses only the batch in flight: the rows the job had reported
// done are in the cache when it is next opened (the buffered rows' journal becomes a shard), and a
// rerun extracts only the rest, storing every image exactly once.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { FeatureCache } from '../src-main/engine/filter/feature-cache.ts';
import { listJournals } from '../src-main/engine/filter/feature-journal.ts';
import { openCache } from '../src-main/engine/filter/features.ts';
import { CLI, runCli, waitFor } from './helpers/processes.ts';
import { ROOT, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

// enough that extraction on ONNX Runtime (60+ images/s on 2 cores) is still running at the kill
const IMAGES = 512;

describe('features: SIGKILL', () => {
  it('keeps every row reported done (not up to 2,048 lost), and a rerun completes them with no duplicates', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, IMAGES);
    const dir = ws.dir;
    ws.close();

    const child = spawn(process.execPath, [CLI, 'features', '--workspace', dir, '--extractor', 'mobilenet_v2'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // the job's progress as the engine persists it (once a second); read-only, beside the writer
    const db = new Database(path.join(dir, 'studio.db'), { readonly: true, fileMustExist: true });
    const progress = (): number => (db.prepare(`SELECT done FROM jobs WHERE kind = 'features' ORDER BY id DESC LIMIT 1`).pluck().get() as number | undefined) ?? 0;
    let reported = 0;
    let firstRowsAt = 0;
    try {
      // some rows done and a second of extraction since the first: several batches, far fewer than 2,048
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`features exited early: ${stderr}`);
          reported = progress();
          if (reported > 0 && firstRowsAt === 0) firstRowsAt = Date.now();
          return reported >= 48 && Date.now() - firstRowsAt >= 1000;
        },
        'the features job to report rows done',
        120_000,
        50,
      );
      child.kill('SIGKILL');
      await exited;
    } finally {
      db.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(reported).toBeLessThan(IMAGES);
    const featDir = path.join(dir, 'features', 'mobilenet_v2');
    // the kill left the buffered rows in a journal (no shard: fewer than 2,048 rows)
    expect(listJournals(featDir).length).toBe(1);

    const kept = await FeatureCache.open(featDir, 'mobilenet_v2', 1280);
    const keptIds = (await kept.readAll()).ids;
    await kept.close();
    // progress is reported after a batch is stored, so every row reported done was committed
    expect(keptIds.length).toBeGreaterThanOrEqual(reported);
    console.log(`features-kill: ${reported} rows reported done at the kill, ${keptIds.length} in the cache after it`);
    expect(new Set(keptIds).size).toBe(keptIds.length);
    expect(listJournals(featDir)).toEqual([]); // the journal became a shard

    const rerun = await runCli(['features', '--workspace', dir, '--extractor', 'mobilenet_v2'], { timeoutMs: 300_000 });
    expect(rerun.code, rerun.stderr).toBe(0);
    const r = JSON.parse(rerun.stdout.trim().split('\n').at(-1)!) as { images: number; extracted: number; cached: number };
    expect(r).toMatchObject({ images: IMAGES, extracted: IMAGES - keptIds.length, cached: IMAGES });

    const w = Workspace.open(dir);
    try {
      const cache = await openCache(w, 'mobilenet_v2');
      const { ids, data } = await cache.readAll();
      await cache.close();
      expect(ids.length).toBe(IMAGES);
      expect(new Set(ids).size).toBe(IMAGES);
      expect(data.every(Number.isFinite)).toBe(true);
    } finally {
      w.close();
    }
    expect(listJournals(featDir)).toEqual([]);
  }, 420_000);

  it('a journal left by a dead writer becomes a shard with the same rows, up to a torn last record, skipping rows already stored', async () => {
    const dir = tmpDir();
    const dim = 5;
    const row = (id: number): number[] => Array.from({ length: dim }, (_, k) => id * 10 + k + 0.25);
    const writer = await FeatureCache.open(dir, 'x', dim, { bufferRows: 100 });
    await writer.append([1, 2, 3], Float32Array.from([1, 2, 3].flatMap(row)));
    await writer.append([4, 5], Float32Array.from([4, 5].flatMap(row)));
    await writer.append([6], Float32Array.from(row(6)));
    // nothing reached a shard yet; the journal holds the three records, and a live writer's journal is left alone
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('shard-'))).toEqual([]);
    const [journal] = listJournals(dir);
    expect(journal).toBeDefined();
    const early = await FeatureCache.open(dir, 'x', dim);
    expect(early.size).toBe(0);
    expect(listJournals(dir)).toEqual([journal]);
    // the writer dies (its journal now names a pid that has exited; the writer object is abandoned)
    // with its last record cut by the kill, and id 2 was stored meanwhile by another writer
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => gone.once('exit', r));
    const torn = path.join(dir, `journal-${gone.pid!}-abcdef.rows`);
    fs.renameSync(path.join(dir, journal!), torn);
    fs.truncateSync(torn, fs.statSync(torn).size - 3);
    const other = await FeatureCache.open(dir, 'x', dim);
    await other.append([2], Float32Array.from(row(2)));

    const reader = await FeatureCache.open(dir, 'x', dim);
    expect(listJournals(dir)).toEqual([]);
    expect(reader.size).toBe(5);
    const all = await reader.readAll();
    expect([...all.ids].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    const got = await reader.read([5, 1, 4, 6, 2]);
    expect(got.ids).toEqual([5, 1, 4, 2]);
    expect(Array.from(got.data)).toEqual([5, 1, 4, 2].flatMap(row).map((v) => Math.fround(v)));
  });
});
