/**
 * Read side of dedup: summary, group pages, live near counts, overrides. Used by the API
 * handlers and the CLI; `stats --json` gains its `dedup` section from here.
 */
import type { Db } from '../workspace/db.ts';
import { UserError } from '../workspace/errors.ts';
import { addStats } from '../stats.ts';
import type { DedupGroup, DedupGroupPage, DedupMember, DedupNearCount, DedupSummary } from '../api/contract/dedup.ts';
import { lastRun, nearCountsByDistance } from './groups.ts';

const n = (db: Db, sql: string): number => db.prepare(sql).pluck().get() as number;

export function dedupSummary(db: Db): DedupSummary {
  const stored = n(db, `SELECT COUNT(*) FROM images WHERE state = 'stored'`);
  const excluded = n(db, `SELECT COUNT(*) FROM dup_excluded x JOIN images i ON i.id = x.image_id WHERE i.state = 'stored'`);
  return {
    stored,
    hashed: n(db, `SELECT COUNT(*) FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL`),
    hashErrors: n(db, `SELECT COUNT(*) FROM images WHERE state = 'stored' AND hash_error IS NOT NULL`),
    groups: n(db, `SELECT COUNT(*) FROM dup_groups`),
    imagesInGroups: n(db, `SELECT COUNT(*) FROM dup_members`),
    excluded,
    excludedShare: stored ? excluded / stored : 0,
    last: lastRun(db),
  };
}

addStats('dedup', (db) => {
  const s = dedupSummary(db);
  return { hashed: s.hashed, groups: s.groups, images_in_groups: s.imagesInGroups, excluded: s.excluded, hash_errors: s.hashErrors, method: s.last?.method ?? null };
});

interface GroupRow {
  id: number;
  key: string;
  method: 'exact' | 'near';
  size: number;
  listings: number;
  override: 'keep' | 'drop' | null;
}

const GROUP_COLS = `g.id, g.key, g.method, g.size, g.listings, o.action AS override`;

function withMembers(db: Db, rows: GroupRow[], maxMembers: number): DedupGroup[] {
  const mq = db.prepare(
    `SELECT m.image_id AS imageId, i.key, i.width, i.height, m.distance, x.reason AS excludedReason
       FROM dup_members m JOIN images i ON i.id = m.image_id LEFT JOIN dup_excluded x ON x.image_id = m.image_id
      WHERE m.group_id = ? ORDER BY m.image_id LIMIT ?`,
  );
  const lq = db.prepare(
    `SELECT DISTINCT l.id, l.listing_id AS listingId, l.title, l.url FROM listing_images li JOIN listings l ON l.id = li.listing_rowid
      WHERE li.image_id = ? ORDER BY l.id`,
  );
  return rows.map((g) => ({
    ...g,
    members: (mq.all(g.id, maxMembers) as Array<Omit<DedupMember, 'excluded' | 'listings'>>).map((m) => ({
      ...m,
      excluded: m.excludedReason != null,
      listings: lq.all(m.imageId) as DedupMember['listings'],
    })),
  }));
}

export function dedupGroups(db: Db, p: { offset: number; limit: number; maxMembers: number }): DedupGroupPage {
  const rows = db
    .prepare(`SELECT ${GROUP_COLS} FROM dup_groups g LEFT JOIN dup_overrides o ON o.key = g.key ORDER BY g.size DESC, g.id LIMIT ? OFFSET ?`)
    .all(p.limit, p.offset) as GroupRow[];
  return { total: n(db, `SELECT COUNT(*) FROM dup_groups`), groups: withMembers(db, rows, p.maxMembers) };
}

export function dedupGroup(db: Db, id: number, maxMembers = 50): DedupGroup {
  const row = db.prepare(`SELECT ${GROUP_COLS} FROM dup_groups g LEFT JOIN dup_overrides o ON o.key = g.key WHERE g.id = ?`).get(id) as GroupRow | undefined;
  if (!row) throw new UserError(`no duplicate group ${id} (groups are renumbered by every dedup run; list them again)`);
  return withMembers(db, [row], maxMembers)[0]!;
}

/**
 * Sets (or clears, action null) the override of a group, identified by its key or its current id,
 * and applies it to the current exclusions at once; the next dedup run applies it again.
 */
export function setOverride(db: Db, p: { key?: string; groupId?: number; action: 'keep' | 'drop' | null }): DedupGroup {
  let gid: number | undefined;
  let key = p.key;
  if (p.groupId !== undefined) {
    const r = db.prepare(`SELECT id, key FROM dup_groups WHERE id = ?`).get(p.groupId) as { id: number; key: string } | undefined;
    if (!r) throw new UserError(`no duplicate group ${p.groupId} (groups are renumbered by every dedup run; list them again)`);
    gid = r.id;
    key = r.key;
  } else if (key !== undefined) {
    gid = db.prepare(`SELECT id FROM dup_groups WHERE key = ?`).pluck().get(key) as number | undefined;
    if (gid === undefined) throw new UserError(`no current duplicate group with key ${key}`);
  } else throw new UserError('name the group: its id or its key');
  const last = lastRun(db);
  db.transaction(() => {
    if (p.action === null) db.prepare(`DELETE FROM dup_overrides WHERE key = ?`).run(key);
    else
      db.prepare(`INSERT INTO dup_overrides (key, action, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET action = excluded.action, at = excluded.at`).run(
        key,
        p.action,
        Date.now(),
      );
    const ids = db.prepare(`SELECT image_id FROM dup_members WHERE group_id = ? ORDER BY image_id`).pluck().all(gid) as number[];
    db.prepare(`DELETE FROM dup_excluded WHERE group_id = ? OR image_id IN (SELECT image_id FROM dup_members WHERE group_id = ?)`).run(gid, gid);
    const ins = db.prepare(`INSERT OR REPLACE INTO dup_excluded (image_id, group_id, reason) VALUES (?, ?, ?)`);
    if (p.action === 'drop') for (const id of ids) ins.run(id, gid, 'dropped by the user');
    else if (p.action === null) {
      // back to the policy of the last run
      const g = db.prepare(`SELECT listings FROM dup_groups WHERE id = ?`).get(gid) as { listings: number };
      if (last?.policy === 'original') {
        const rep = db.prepare(`SELECT COUNT(*) FROM images a JOIN images b ON a.exact_hash = b.exact_hash AND b.state = 'stored' WHERE a.id = ?`).pluck();
        for (const id of ids) if ((rep.get(id) as number) > 1) ins.run(id, gid, 'exact hash occurs more than once');
      } else if (g.listings > 1) for (const id of ids) ins.run(id, gid, 'group spans listings');
      else for (const id of ids.slice(1)) ins.run(id, gid, 'copy within one listing');
    }
  })();
  return dedupGroup(db, gid!);
}

const countCache = new WeakMap<Db, { stamp: string; counts: ReturnType<typeof nearCountsByDistance>; maxDistance: number }>();

/** Near groups at `distance` from the stored pairs (computed once per dedup run, then O(1)). */
export function nearCount(db: Db, distance: number): DedupNearCount {
  const last = lastRun(db);
  const maxDistance = last?.maxDistance ?? 0;
  const stamp = `${last?.at ?? 0}:${n(db, `SELECT COUNT(*) FROM dup_pairs`)}:${n(db, `SELECT COUNT(*) FROM images WHERE exact_hash IS NOT NULL`)}`;
  let c = countCache.get(db);
  if (!c || c.stamp !== stamp) {
    c = { stamp, counts: nearCountsByDistance(db, maxDistance), maxDistance };
    countCache.set(db, c);
  }
  const d = Math.min(distance, c.maxDistance);
  const r = c.counts[d]!;
  return { distance: d, maxDistance: c.maxDistance, groups: r.groups, images: r.images };
}
