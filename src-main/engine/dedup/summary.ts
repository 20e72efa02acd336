/**
 * Read side of dedup and the user's review: summary, group pages, live near counts, group
 * overrides, per-photo decisions, keep the best copy. Used by the API
 * handlers and the CLI; `stats --json` gains its `dedup` section from here.
 */
import type { Db } from '../workspace/db.ts';
import { UserError } from '../workspace/errors.ts';
import { addStats } from '../stats.ts';
import type { DedupAcceptAll, DedupGroup, DedupGroupPage, DedupMember, DedupNearCount, DedupSummary } from '../api/contract/dedup.ts';
import { lastRun, nearCountsByDistance } from './groups.ts';
import { groupExclusions, type Decision } from './leader.ts';

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
  representative: number;
  decisions: number;
}

// Groups written before migration 008 have no representative: their lowest-id member stands in.
const GROUP_COLS = `g.id, g.key, g.method, g.size, g.listings, o.action AS override,
  COALESCE(g.representative, (SELECT MIN(image_id) FROM dup_members WHERE group_id = g.id)) AS representative,
  (SELECT COUNT(*) FROM dup_members dm JOIN dup_decisions d ON d.image_id = dm.image_id WHERE dm.group_id = g.id) AS decisions`;

const NO_GROUP = (id: number) => `no duplicate group ${id} (groups are renumbered by every dedup run; list them again)`;

/** Members of each group, the representative first, then by distance to it. */
function withMembers(db: Db, rows: GroupRow[], maxMembers: number): DedupGroup[] {
  const mq = db.prepare(
    `SELECT m.image_id AS imageId, i.key, i.width, i.height, i.bytes, m.distance, x.reason AS excludedReason, d.action AS decision
       FROM dup_members m JOIN images i ON i.id = m.image_id LEFT JOIN dup_excluded x ON x.image_id = m.image_id
       LEFT JOIN dup_decisions d ON d.image_id = m.image_id
      WHERE m.group_id = ? ORDER BY m.image_id = ? DESC, m.distance, m.image_id LIMIT ?`,
  );
  const lq = db.prepare(
    `SELECT DISTINCT l.id, l.listing_id AS listingId, l.title, l.url FROM listing_images li JOIN listings l ON l.id = li.listing_rowid
      WHERE li.image_id = ? ORDER BY l.id`,
  );
  type Row = Omit<DedupMember, 'excluded' | 'listings' | 'representative'>;
  return rows.map((g) => ({
    ...g,
    members: (mq.all(g.id, g.representative, maxMembers) as Row[]).map((m) => ({
      ...m,
      representative: m.imageId === g.representative,
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
  if (!row) throw new UserError(NO_GROUP(id));
  return withMembers(db, [row], maxMembers)[0]!;
}

/**
 * Rewrites the exclusions of one group from the last run's policy, the group's override and its
 * photos' decisions (the same decision a dedup run makes, leader.ts groupExclusions).
 */
function reapplyGroup(db: Db, gid: number): void {
  const g = db.prepare(`SELECT ${GROUP_COLS} FROM dup_groups g LEFT JOIN dup_overrides o ON o.key = g.key WHERE g.id = ?`).get(gid) as GroupRow;
  const ids = db.prepare(`SELECT image_id FROM dup_members WHERE group_id = ? ORDER BY image_id`).pluck().all(gid) as number[];
  const decisions = new Map(
    db
      .prepare(`SELECT d.image_id, d.action FROM dup_decisions d JOIN dup_members m ON m.image_id = d.image_id WHERE m.group_id = ?`)
      .raw()
      .all(gid) as Array<[number, Decision]>,
  );
  const repeats = db.prepare(`SELECT COUNT(*) FROM images a JOIN images b ON a.exact_hash = b.exact_hash AND b.state = 'stored' WHERE a.id = ?`).pluck();
  const excluded = groupExclusions(
    { ids, representative: g.representative, listings: g.listings },
    lastRun(db)?.policy ?? 'default',
    (id) => (repeats.get(id) as number) > 1,
    g.override,
    decisions,
  );
  db.prepare(`DELETE FROM dup_excluded WHERE group_id = ? OR image_id IN (SELECT image_id FROM dup_members WHERE group_id = ?)`).run(gid, gid);
  const ins = db.prepare(`INSERT OR REPLACE INTO dup_excluded (image_id, group_id, reason) VALUES (?, ?, ?)`);
  for (const [id, reason] of excluded) ins.run(id, gid, reason);
}

/**
 * Sets (or clears, action null) the override of a whole group, identified by its key or its
 * current id, and applies it to the current exclusions at once; the next dedup run applies it
 * again. The group's per-photo decisions are cleared: the whole-group choice replaces them.
 */
export function setOverride(db: Db, p: { key?: string; groupId?: number; action: Decision | null }): DedupGroup {
  let gid: number | undefined;
  let key = p.key;
  if (p.groupId !== undefined) {
    const r = db.prepare(`SELECT id, key FROM dup_groups WHERE id = ?`).get(p.groupId) as { id: number; key: string } | undefined;
    if (!r) throw new UserError(NO_GROUP(p.groupId));
    gid = r.id;
    key = r.key;
  } else if (key !== undefined) {
    gid = db.prepare(`SELECT id FROM dup_groups WHERE key = ?`).pluck().get(key) as number | undefined;
    if (gid === undefined) throw new UserError(`no current duplicate group with key ${key}`);
  } else throw new UserError('name the group: its id or its key');
  db.transaction(() => {
    if (p.action === null) db.prepare(`DELETE FROM dup_overrides WHERE key = ?`).run(key);
    else
      db.prepare(`INSERT INTO dup_overrides (key, action, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET action = excluded.action, at = excluded.at`).run(
        key,
        p.action,
        Date.now(),
      );
    db.prepare(`DELETE FROM dup_decisions WHERE image_id IN (SELECT image_id FROM dup_members WHERE group_id = ?)`).run(gid);
    reapplyGroup(db, gid!);
  })();
  return dedupGroup(db, gid!);
}

/**
 * Keeps or drops one photo of a duplicate group (null: back to the group's override or the
 * policy). The decision is stored by image, applied now and by every later run while the photo is
 * in a group.
 */
export function setDecision(db: Db, p: { imageId: number; action: Decision | null }): DedupGroup {
  const gid = db.prepare(`SELECT group_id FROM dup_members WHERE image_id = ?`).pluck().get(p.imageId) as number | undefined;
  if (gid === undefined) {
    const exists = db.prepare(`SELECT 1 FROM images WHERE id = ?`).get(p.imageId);
    throw new UserError(exists ? `image ${p.imageId} is in no duplicate group, so there is nothing to keep or drop (run dedup first, or pick a photo from a group)` : `no image ${p.imageId}`);
  }
  db.transaction(() => {
    if (p.action === null) db.prepare(`DELETE FROM dup_decisions WHERE image_id = ?`).run(p.imageId);
    else
      db.prepare(`INSERT INTO dup_decisions (image_id, action, at) VALUES (?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET action = excluded.action, at = excluded.at`).run(
        p.imageId,
        p.action,
        Date.now(),
      );
    reapplyGroup(db, gid);
  })();
  return dedupGroup(db, gid);
}

/** "Keep the best copy" of one group, inside the caller's transaction. */
function keepBestIn(db: Db, gid: number): void {
  const g = db.prepare(`SELECT ${GROUP_COLS} FROM dup_groups g LEFT JOIN dup_overrides o ON o.key = g.key WHERE g.id = ?`).get(gid) as GroupRow | undefined;
  if (!g) throw new UserError(NO_GROUP(gid));
  const ids = db.prepare(`SELECT image_id FROM dup_members WHERE group_id = ?`).pluck().all(gid) as number[];
  db.prepare(`DELETE FROM dup_overrides WHERE key = ?`).run(g.key);
  const put = db.prepare(`INSERT INTO dup_decisions (image_id, action, at) VALUES (?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET action = excluded.action, at = excluded.at`);
  const at = Date.now();
  for (const id of ids) put.run(id, id === g.representative ? 'keep' : 'drop', at);
  reapplyGroup(db, gid);
}

/** Keeps the group's best copy (its representative) and drops every other photo of it. */
export function keepBest(db: Db, p: { groupId: number }): DedupGroup {
  db.transaction(() => keepBestIn(db, p.groupId))();
  return dedupGroup(db, p.groupId);
}

/** "Keep the best copy" in every group without an override or a photo decision of the user's. */
export function acceptAll(db: Db): DedupAcceptAll {
  const open = db
    .prepare(
      `SELECT g.id FROM dup_groups g WHERE NOT EXISTS (SELECT 1 FROM dup_overrides o WHERE o.key = g.key)
         AND NOT EXISTS (SELECT 1 FROM dup_members m JOIN dup_decisions d ON d.image_id = m.image_id WHERE m.group_id = g.id)
       ORDER BY g.id`,
    )
    .pluck()
    .all() as number[];
  db.transaction(() => {
    for (const gid of open) keepBestIn(db, gid);
  })();
  return { groups: open.length, excluded: n(db, `SELECT COUNT(*) FROM dup_excluded`) };
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
