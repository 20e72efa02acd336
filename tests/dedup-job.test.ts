import { describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import { getStats } from '../src-main/engine/stats.ts';
import { hashImage } from '../src-main/engine/dedup/exact-hash.ts';
import { hashRow, THUMB_BYTES } from '../src-main/engine/dedup/hash-row.ts';
import { acceptAll, dedupGroups, dedupSummary, keepBest, nearCount, setDecision, setOverride } from '../src-main/engine/dedup/summary.ts';
import { rebuildGroups } from '../src-main/engine/dedup/groups.ts';
import { ingestImage } from '../src-main/engine/scrape/image-ingest.ts';
import { openLedger } from '../src-main/engine/scrape/ledger.ts';
import type { DedupParams } from '../src-main/engine/dedup/dedup-kind.ts';
import type { JobInfo } from '../src-main/engine/api/contract/index.ts';
import { seedStoredImages, tmpWorkspace } from './helpers/workspace.ts';
import { dedupFixture as fixture, photo } from './helpers/dedup-fixture.ts';
import { runCli, waitFor } from './helpers/processes.ts';

async function runDedup(engine: Engine, params: Partial<DedupParams>): Promise<JobInfo> {
  const job = engine.jobs.start('dedup', params);
  const final = await engine.jobs.wait(job.id);
  expect(final.state, final.error?.message).toBe('done');
  return final;
}

const excludedNames = (engine: Engine, ids: Record<string, number>): string[] => {
  const ex = new Set(engine.ws.db.prepare(`SELECT image_id FROM dup_excluded`).pluck().all() as number[]);
  return Object.entries(ids)
    .filter(([, id]) => ex.has(id))
    .map(([n]) => n)
    .sort();
};

describe('dedup job', () => {
  it('hashes the backlog, skips a corrupt file, and groups and excludes by method and policy; overrides survive re-runs', async () => {
    const { dir, ids } = await fixture();
    const engine = Engine.open(dir);
    try {
      const first = await runDedup(engine, { method: 'near', maxDistance: 10, policy: 'default' });
      const r = first.result as { hashed: number; errors: number; groups: number; imagesInGroups: number; excluded: number };
      expect(r).toMatchObject({ hashed: 12, errors: 1, groups: 3, imagesInGroups: 6 });
      // the corrupt file is reported in the log and recorded, and the rest completed
      const warn = engine.jobs.logs(first.id).filter((l) => l.level === 'warn');
      expect(warn.some((l) => l.message.includes(`image ${ids.x} skipped`))).toBe(true);
      const xRow = engine.ws.db.prepare(`SELECT exact_hash, hash_error FROM images WHERE id = ?`).get(ids.x) as { exact_hash: string | null; hash_error: string };
      expect(xRow.exact_hash).toBeNull();
      expect(xRow.hash_error).toMatch(/cannot decode image/);
      // stored hashes equal hashImage of the stored file
      const key = engine.ws.db.prepare(`SELECT key, exact_hash, phash FROM images WHERE id = ?`).get(ids.c2) as { key: string; exact_hash: string; phash: string };
      const h = await hashImage(engine.ws.store.pathFor(key.key));
      expect([key.exact_hash, key.phash]).toEqual([h.exact, h.phash]);
      // default policy: groups spanning listings lose every copy; within one listing the lowest id stays
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c1', 'c2']);
      // usable_images: stored, decodable, not excluded
      const usable = engine.ws.db.prepare(`SELECT COUNT(*) FROM usable_images`).pluck().get();
      expect(usable).toBe(13 - 1 - 5);
      const page = dedupGroups(engine.ws.db, { offset: 0, limit: 10, maxMembers: 10 });
      expect(page.total).toBe(3);
      const gc = page.groups.find((g) => g.members.some((m) => m.imageId === ids.c1))!;
      expect(gc.listings).toBe(2);
      expect(gc.members.map((m) => m.listings[0]!.title)).toEqual(['Car 4', 'Car 5']);
      expect(gc.members[1]!.distance).toBeGreaterThanOrEqual(0);

      // the slider counts from the stored pairs: exact groups at 0, plus the near one further out
      expect(nearCount(engine.ws.db, 0)).toMatchObject({ distance: 0, groups: 2, images: 4 });
      expect(nearCount(engine.ws.db, 10)).toMatchObject({ groups: 3, images: 6, maxDistance: 10 });
      expect(nearCount(engine.ws.db, 30).distance).toBe(10);

      // exact method: the resized copy is no longer a duplicate
      await runDedup(engine, { method: 'exact', policy: 'default' });
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2']);
      // original policy: every image whose exact hash repeats
      await runDedup(engine, { method: 'exact', policy: 'original' });
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b1', 'b2']);

      // overrides: keep A (its key is the exact hash, so it is the same group under either method)
      await runDedup(engine, { method: 'near', maxDistance: 10, policy: 'default' });
      const ga = dedupGroups(engine.ws.db, { offset: 0, limit: 10, maxMembers: 10 }).groups.find((g) => g.members.some((m) => m.imageId === ids.a1))!;
      const kept = setOverride(engine.ws.db, { groupId: ga.id, action: 'keep' });
      expect(kept.override).toBe('keep');
      expect(kept.members.every((m) => !m.excluded)).toBe(true);
      const gc2 = dedupGroups(engine.ws.db, { offset: 0, limit: 10, maxMembers: 10 }).groups.find((g) => g.members.some((m) => m.imageId === ids.c1))!;
      setOverride(engine.ws.db, { groupId: gc2.id, action: 'drop' });
      expect(excludedNames(engine, ids)).toEqual(['b2', 'c1', 'c2']);
      // ... and survive re-runs, with either method
      const again = await runDedup(engine, { method: 'near', maxDistance: 10, policy: 'default' });
      expect((again.result as { overridesApplied: number }).overridesApplied).toBe(2);
      expect(excludedNames(engine, ids)).toEqual(['b2', 'c1', 'c2']);
      await runDedup(engine, { method: 'exact', policy: 'original' });
      expect(excludedNames(engine, ids)).toEqual(['b1', 'b2']);
      // clearing returns the group to the policy
      const gaExact = dedupGroups(engine.ws.db, { offset: 0, limit: 10, maxMembers: 10 }).groups.find((g) => g.members.some((m) => m.imageId === ids.a1))!;
      setOverride(engine.ws.db, { groupId: gaExact.id, action: null });
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b1', 'b2']);

      // the stats section
      const stats = getStats(engine.ws.db);
      expect(stats.dedup).toMatchObject({ hashed: 12, groups: 2, images_in_groups: 4, excluded: 4, hash_errors: 1 });
      expect(dedupSummary(engine.ws.db).excludedShare).toBeCloseTo(4 / 13);
    } finally {
      await engine.close();
    }
  }, 60_000);

  it('per-photo decisions win over the group override, are cleared by it, and apply while the photo is grouped', async () => {
    const { dir, ids } = await fixture();
    const engine = Engine.open(dir);
    try {
      await runDedup(engine, { method: 'near', maxDistance: 10, policy: 'default' });
      const db = engine.ws.db;
      const gc = dedupGroups(db, { offset: 0, limit: 10, maxMembers: 10 }).groups.find((g) => g.members.some((m) => m.imageId === ids.c1))!;
      // the larger original is the best copy, listed first
      expect(gc.representative).toBe(ids.c1);
      expect(gc.members.map((m) => m.imageId)).toEqual([ids.c1, ids.c2]);
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c1', 'c2']);
      // keep one photo of a group that spans listings
      const kept = setDecision(db, { imageId: ids.c2!, action: 'keep' });
      expect(kept.decisions).toBe(1);
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c1']);
      // the whole-group choice replaces the photo decisions
      const dropped = setOverride(db, { groupId: gc.id, action: 'drop' });
      expect(dropped.decisions).toBe(0);
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c1', 'c2']);
      // a photo decision wins over the group override
      setDecision(db, { imageId: ids.c1!, action: 'keep' });
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c2']);
      // the exact method does not group C: the decision waits, unapplied, and is back with the near method
      const exact = await runDedup(engine, { method: 'exact', policy: 'default' });
      expect((exact.result as { decisionsApplied: number }).decisionsApplied).toBe(0);
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2']);
      const near = await runDedup(engine, { method: 'near', maxDistance: 10, policy: 'default' });
      expect((near.result as { decisionsApplied: number; overridesApplied: number }).decisionsApplied).toBe(1);
      expect(excludedNames(engine, ids)).toEqual(['a1', 'a2', 'b2', 'c2']);
      // keep the best copy in the one-listing group B: b1 kept, b2 dropped by the user
      const gb = dedupGroups(db, { offset: 0, limit: 10, maxMembers: 10 }).groups.find((g) => g.members.some((m) => m.imageId === ids.b1))!;
      const best = keepBest(db, { groupId: gb.id });
      expect(best.members.map((m) => [m.imageId, m.excluded, m.decision])).toEqual([
        [ids.b1, false, 'keep'],
        [ids.b2, true, 'drop'],
      ]);
      // accept all: only group A is undecided; its best copy (equal copies: the lower id) stays
      expect(acceptAll(db)).toEqual({ groups: 1, excluded: 3 });
      expect(excludedNames(engine, ids)).toEqual(['a2', 'b2', 'c2']);
      // a photo in no group
      expect(() => setDecision(db, { imageId: ids.d0!, action: 'drop' })).toThrow(/is in no duplicate group/);
    } finally {
      await engine.close();
    }
  }, 60_000);

  it('resumes after a cancel without hashing anything twice', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 1500);
    const dir = ws.dir;
    ws.close();
    const engine = Engine.open(dir);
    try {
      const job = engine.jobs.start('dedup', { method: 'exact' });
      await waitFor(() => (engine.jobs.get(job.id)!.done >= 256 ? true : null), 'hashing progress');
      engine.jobs.cancel(job.id);
      const stopped = await engine.jobs.wait(job.id);
      expect(stopped.state).toBe('cancelled');
      const partial = engine.ws.db.prepare(`SELECT COUNT(*) FROM images WHERE exact_hash IS NOT NULL`).pluck().get() as number;
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(1500);
      engine.jobs.resume(job.id);
      const final = await engine.jobs.wait(job.id);
      expect(final.state).toBe('done');
      expect(final.resumedCount).toBe(1);
      const r = final.result as { hashed: number; hashedThisRun: number; errors: number };
      // hashedThisRun counts both runs through the checkpoint: each image hashed exactly once
      expect(r).toMatchObject({ hashed: 1500, hashedThisRun: 1500, errors: 0 });
    } finally {
      await engine.close();
    }
  }, 60_000);

  it('hashes images as the scrape stores them', async () => {
    const ws = tmpWorkspace();
    try {
      const bytes = await photo(77, 800, 600);
      const key = ImageStore.keyFor('/img/77.jpg');
      const info = await ingestImage(ws.store, key, bytes, 256);
      const h = await hashRow(ws.store.pathFor(key));
      expect(info.hashes).toEqual({ exact: h.exact, phash: h.phash, thumb: h.thumb });
      const ledger = openLedger(ws.db, 'test');
      const listing = { url: 'http://x.test/77', title: 'Car 77', price: 1 } as unknown as Parameters<typeof ledger.commitListing>[1];
      ledger.commitListing(77, listing, [{ key, url: '/img/77.jpg', state: 'stored', ...info }], 1);
      const row = ws.db.prepare(`SELECT exact_hash, phash, hash_error FROM images WHERE key = ?`).get(key) as Record<string, string | null>;
      expect(row).toEqual({ exact_hash: h.exact, phash: h.phash, hash_error: null });
      // nothing left for the dedup job's backlog
      expect(ws.db.prepare(`SELECT COUNT(*) FROM images WHERE state = 'stored' AND exact_hash IS NULL AND hash_error IS NULL`).pluck().get()).toBe(0);
    } finally {
      ws.close();
    }
  });

  it('runs from the CLI: dedup --json, override, and stats --json', async () => {
    const { dir, ids } = await fixture();
    const run = await runCli(['dedup', '--workspace', dir, '--method', 'exact', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { groups: number; excluded: number; errors: number; state: string };
    expect(out).toMatchObject({ state: 'done', groups: 2, excluded: 3, errors: 1 });
    expect(run.stderr).toMatch(/warning|warn: image \d+ skipped/);
    const ws = Workspace.open(dir);
    const gid = ws.db.prepare(`SELECT group_id FROM dup_members WHERE image_id = ?`).pluck().get(ids.b1) as number;
    ws.close();
    const ov = await runCli(['dedup', 'override', '--workspace', dir, '--group', String(gid), '--drop']);
    expect(ov.code, ov.stderr).toBe(0);
    expect(ov.stdout).toMatch(/drop; 2 excluded/);
    const bad = await runCli(['dedup', 'override', '--workspace', dir, '--group', String(gid)]);
    expect(bad.code).toBe(2);
    const stats = await runCli(['stats', '--workspace', dir, '--json']);
    expect(JSON.parse(stats.stdout).dedup).toMatchObject({ hashed: 12, groups: 2, images_in_groups: 4, excluded: 4 });
  }, 60_000);

  it('splits a chain of similar photos into groups around leaders, each member within the distance of its representative', async () => {
    // hashes stored as the dedup job stores them: 12 photos whose pHashes step 4 bits at a time
    // (each within 10 of the next two, the first and last 44 apart), same colours and size; and
    // two copies of another picture
    const ws = tmpWorkspace();
    const dir = ws.dir;
    const thumb = Buffer.alloc(THUMB_BYTES, 90);
    const ins = ws.db.prepare(
      `INSERT INTO images (key, url, state, width, height, bytes, updated_at, exact_hash, phash, thumb) VALUES (?, ?, 'stored', 64, 48, 1000, 0, ?, ?, ?) RETURNING id`,
    ).pluck();
    const bits = (n: number): string => {
      const v = (1n << BigInt(n)) - 1n;
      return v.toString(16).padStart(16, '0');
    };
    const chain: number[] = [];
    for (let k = 0; k < 12; k++) chain.push(ins.get(`k${k}`, `http://example.test/chain/${k}.jpg`, `x${k}`, bits(4 * k), thumb) as number);
    for (let k = 0; k < 2; k++) ins.get(`c${k}`, `http://example.test/copy/${k}.jpg`, `y${k}`, 'ffffffffffffffff', Buffer.alloc(THUMB_BYTES, 200));
    // single linkage (the former grouping) makes one chained group of all 12
    const single = rebuildGroups(ws.db, { method: 'near', maxDistance: 10, policy: 'default', linkage: 'single' });
    expect(single).toMatchObject({ groups: 2, chained: { groups: 1, worst: { size: 12, spread: 44 } } });
    ws.close();

    const r = await runCli(['dedup', '--workspace', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/chains of similar/);
    const engine = Engine.open(dir);
    try {
      const last = engine.jobs.list().find((j) => j.kind === 'dedup')!;
      expect(last.result).toMatchObject({ groups: 5, chainedGroups: 0 });
      // equal copies are visited by id: k0 leads k1, k2 (4 and 8 bits); k3 is 12 from k0, so it leads k4, k5; ...
      const groups = dedupGroups(engine.ws.db, { offset: 0, limit: 10, maxMembers: 20 }).groups;
      const chainGroups = groups.filter((g) => g.members.some((m) => chain.includes(m.imageId)));
      expect(chainGroups.map((g) => g.members.map((m) => chain.indexOf(m.imageId)).sort((a, b) => a - b)).sort((a, b) => a[0]! - b[0]!)).toEqual([
        [0, 1, 2],
        [3, 4, 5],
        [6, 7, 8],
        [9, 10, 11],
      ]);
      for (const g of chainGroups) {
        expect(g.members[0]!.representative).toBe(true);
        expect(g.members[0]!.imageId).toBe(g.representative);
        expect(Math.max(...g.members.map((m) => m.distance))).toBeLessThanOrEqual(10);
        // one listing-less photo each: "spans listings", so all excluded by the default policy
        expect(g.listings).toBe(3);
      }
    } finally {
      await engine.close();
    }
    // at a distance no step reaches (each is 4 bits), only the copies group
    const tight = await runCli(['dedup', '--workspace', dir, '--max-distance', '3', '--json']);
    expect(tight.code, tight.stderr).toBe(0);
    expect(JSON.parse(tight.stdout)).toMatchObject({ groups: 1, chainedGroups: 0 });
  }, 60_000);
});
