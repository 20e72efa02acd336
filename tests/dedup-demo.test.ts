import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { rebuildGroups } from '../src-main/engine/dedup/groups.ts';
import { hamming } from '../src-main/engine/dedup/phash.ts';
import { dedupGroups } from '../src-main/engine/dedup/summary.ts';
import { DEMO_RANGE } from '../src-main/engine/scrape/demo-step.ts';
import type { DedupGroup } from '../src-main/engine/api/contract/index.ts';
import { runCli } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';

const D = 10;

interface Member {
  groupId: number;
  imageId: number;
  distance: number;
  representative: number;
  url: string;
  phash: string;
}

/** The demo image's name on the site: `j-keys-12x3`, `s-37` (a model's stock photo), `e-...`. */
const siteName = (url: string) => url.slice(url.indexOf('/images/') + 8).replace(/\.jpg.*$/, '');
const junkKind = (url: string) => /^j-([a-z]+)-/.exec(siteName(url))?.[1] ?? null;

function members(ws: Workspace): Map<number, Member[]> {
  const rows = ws.db
    .prepare(
      `SELECT m.group_id AS groupId, m.image_id AS imageId, m.distance, g.representative, i.url, i.phash
         FROM dup_members m JOIN dup_groups g ON g.id = m.group_id JOIN images i ON i.id = m.image_id ORDER BY m.group_id, m.image_id`,
    )
    .all() as Member[];
  const by = new Map<number, Member[]>();
  for (const r of rows) {
    if (!by.has(r.groupId)) by.set(r.groupId, []);
    by.get(r.groupId)!.push(r);
  }
  return by;
}

const mixesKeysAndDashboard = (ms: Member[]) => {
  const kinds = new Set(ms.map((m) => junkKind(m.url)));
  return kinds.has('keys') && kinds.has('dashboard');
};

describe('dedup on the demo workspace', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmpDir(), 'demo');
    const r = await runCli(
      ['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', String(DEMO_RANGE.minId), '--max-id', String(DEMO_RANGE.maxId), '--retry-delay-ms', '5'],
      { timeoutMs: 200_000 },
    );
    expect(r.code, r.stderr).toBe(0);
  }, 220_000);

  it('single linkage chains distinct photos; the leader grouping splits them, every member within the distance of its representative', async () => {
    // what the demo showed before: one keys group reaching a dashboard photo through a chain
    const ws = Workspace.open(dir);
    try {
      const single = rebuildGroups(ws.db, { method: 'near', maxDistance: D, policy: 'default', linkage: 'single' });
      expect(single.chained.groups).toBeGreaterThan(0);
      expect([...members(ws).values()].some(mixesKeysAndDashboard)).toBe(true);
    } finally {
      ws.close();
    }

    const run = await runCli(['dedup', '--workspace', dir, '--max-distance', String(D), '--json'], { timeoutMs: 120_000 });
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { state: string; groups: number; chainedGroups: number; summary: { excludedShare: number } };
    expect(out).toMatchObject({ state: 'done', chainedGroups: 0 });
    expect(run.stderr).not.toMatch(/chains of similar/);
    console.log(`demo (ids ${DEMO_RANGE.minId}-${DEMO_RANGE.maxId}): ${out.groups} near groups, ${(100 * out.summary.excludedShare).toFixed(1)}% of stored images excluded`);

    const ws2 = Workspace.open(dir);
    try {
      const groups = members(ws2);
      expect(groups.size).toBe(out.groups);
      for (const ms of groups.values()) {
        const rep = ms.find((m) => m.imageId === m.representative);
        expect(rep, `group ${ms[0]!.groupId} holds its representative`).toBeDefined();
        for (const m of ms) {
          // the stored distance is the pHash distance to the representative, and within D
          expect(m.distance).toBe(hamming(m.phash, rep!.phash));
          expect(m.distance).toBeLessThanOrEqual(D);
          // complete linkage: within D of every other member too
          for (const o of ms) expect(hamming(m.phash, o.phash)).toBeLessThanOrEqual(D);
        }
        expect(mixesKeysAndDashboard(ms), `group ${ms[0]!.groupId}: ${ms.map((m) => siteName(m.url)).join(' ')}`).toBe(false);
      }
      // the dealer stock photos of a black Tesla Model 3 (model 37), a white Prius (4) and a
      // brown Kia Soul (25), which single linkage put in one group, are apart
      const groupOf = new Map<string, number>();
      for (const ms of groups.values()) for (const m of ms) groupOf.set(siteName(m.url), m.groupId);
      const tesla = groupOf.get('s-37');
      if (tesla !== undefined) {
        expect(groupOf.get('s-4')).not.toBe(tesla);
        expect(groupOf.get('s-25')).not.toBe(tesla);
      }
      // the review shows the representative first, as the copy the policy keeps in a one-listing group
      const page = dedupGroups(ws2.db, { offset: 0, limit: 200, maxMembers: 500 });
      for (const g of page.groups) {
        expect(g.members[0]!.imageId).toBe(g.representative);
        expect(g.members[0]!.representative).toBe(true);
        if (g.listings === 1) expect(g.members.filter((m) => !m.excluded).map((m) => m.imageId)).toEqual([g.representative]);
      }
    } finally {
      ws2.close();
    }
  }, 150_000);

  it('per-photo decisions feed what training excludes and survive a re-run; keep-best keeps the representative', async () => {
    const usable = (ws: Workspace) => ws.db.prepare(`SELECT COUNT(*) FROM usable_images`).pluck().get() as number;
    const ws = Workspace.open(dir);
    let group: DedupGroup;
    let photo: number;
    let before: number;
    try {
      group = dedupGroups(ws.db, { offset: 0, limit: 1, maxMembers: 500 }).groups[0]!;
      expect(group.listings).toBeGreaterThan(1); // the largest group spans listings: all excluded
      expect(group.members.every((m) => m.excluded)).toBe(true);
      photo = group.members[1]!.imageId;
      before = usable(ws);
    } finally {
      ws.close();
    }
    // keep one photo from the CLI: it alone becomes usable
    const keep = await runCli(['dedup', 'decide', '--workspace', dir, '--image', String(photo), '--keep', '--json']);
    expect(keep.code, keep.stderr).toBe(0);
    const kept = JSON.parse(keep.stdout) as DedupGroup;
    expect(kept.members.filter((m) => !m.excluded).map((m) => m.imageId)).toEqual([photo]);
    expect(kept.members.find((m) => m.imageId === photo)!.decision).toBe('keep');
    // an image in no group is refused in the user's words
    const ws1 = Workspace.open(dir);
    const loner = ws1.db.prepare(`SELECT id FROM images WHERE state = 'stored' AND id NOT IN (SELECT image_id FROM dup_members) LIMIT 1`).pluck().get() as number;
    expect(usable(ws1)).toBe(before + 1);
    ws1.close();
    const bad = await runCli(['dedup', 'decide', '--workspace', dir, '--image', String(loner), '--drop']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is in no duplicate group/);

    // a re-run keeps the decision (the photo is still grouped)
    const again = await runCli(['dedup', '--workspace', dir, '--json'], { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ decisionsApplied: 1 });
    const ws2 = Workspace.open(dir);
    expect(usable(ws2)).toBe(before + 1);
    expect(ws2.db.prepare(`SELECT COUNT(*) FROM dup_excluded WHERE image_id = ?`).pluck().get(photo)).toBe(0);
    const gid = ws2.db.prepare(`SELECT group_id FROM dup_members WHERE image_id = ?`).pluck().get(photo) as number;
    ws2.close();
    // keep the best copy: the representative stays, every other photo (the kept one too) goes
    const best = await runCli(['dedup', 'keep-best', '--workspace', dir, '--group', String(gid), '--json']);
    expect(best.code, best.stderr).toBe(0);
    const g = JSON.parse(best.stdout) as DedupGroup;
    expect(g.members.filter((m) => !m.excluded).map((m) => m.imageId)).toEqual([g.representative]);
    expect(g.members.filter((m) => m.decision === 'drop')).toHaveLength(g.size - 1);
    // accept all: the best copy of every group not decided yet is kept, the other copies dropped
    const all = await runCli(['dedup', 'keep-best', '--workspace', dir, '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const r = JSON.parse(all.stdout) as { groups: number; excluded: number };
    const ws3 = Workspace.open(dir);
    try {
      const groups = ws3.db.prepare(`SELECT COUNT(*) FROM dup_groups`).pluck().get() as number;
      const inGroups = ws3.db.prepare(`SELECT COUNT(*) FROM dup_members`).pluck().get() as number;
      expect(r.groups).toBe(groups - 1);
      expect(r.excluded).toBe(inGroups - groups);
    } finally {
      ws3.close();
    }
  }, 150_000);
});
