/**
 * Duplicate groups from the hashes stored in the workspace, the exclusion policy, and the live
 * near-group count per distance. Shared by the dedup job (which writes the groups), the API
 * handlers and the benchmarks.
 *
 * Near pairs are found in two stages: candidate pairs within `maxDistance` pHash bits (the
 * multi-index search of near-index.ts over one representative per exact hash), then verified with
 * the 8x8 colour thumbnails (`thumbDistance <= THUMB_MAX_DISTANCE`): on the 2,221 shared real
 * photos every pair of different cars within pHash distance 10 is at least 24 apart in colour,
 * while re-encodes, resizes and brightness shifts stay under 4 and 2-5% crops under 19.
 */
import type { Db } from '../workspace/db.ts';
import { nearGroups, DEFAULT_MAX_DISTANCE } from './near-index.ts';
import { hamming32, phashToHalves } from './phash.ts';
import { thumbDistance } from './hash-row.ts';

export const THUMB_MAX_DISTANCE = 20;
export { DEFAULT_MAX_DISTANCE };

export type DedupMethod = 'exact' | 'near';
export type DedupPolicy = 'default' | 'original';

export interface GroupingOptions {
  method: DedupMethod;
  maxDistance: number;
  policy: DedupPolicy;
  /** Colour check for near pairs (default THUMB_MAX_DISTANCE; Infinity turns it off). */
  thumbMax?: number;
}

export interface GroupingResult {
  method: DedupMethod;
  policy: DedupPolicy;
  maxDistance: number;
  hashed: number;
  groups: number;
  imagesInGroups: number;
  excluded: number;
  candidatePairs: number;
  verifiedPairs: number;
  overridesApplied: number;
  /**
   * Near groups with a member further than maxDistance from the group's first member: photos
   * joined through a chain of similar ones (A like B, B like C) rather than copies of one picture.
   * `worst` is the one with the most members.
   */
  chained: { groups: number; worst: { groupId: number; size: number; listings: number; spread: number } | null };
  seconds: { load: number; near: number; write: number };
}

export interface NearPair {
  a: number;
  b: number;
  distance: number;
}

class UF {
  parent = new Map<number, number>();
  find(x: number): number {
    let p = this.parent.get(x);
    if (p === undefined) return x;
    let r = x;
    while (p !== undefined && p !== r) {
      r = p;
      p = this.parent.get(r);
    }
    // path compression
    let c = x;
    while (c !== r) {
      const n = this.parent.get(c)!;
      this.parent.set(c, r);
      c = n;
    }
    return r;
  }
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    if (ra < rb) this.parent.set(rb, ra);
    else this.parent.set(ra, rb);
    return true;
  }
}

interface Loaded {
  hashed: number;
  /** Exact classes with 2+ images: ids ascending (first = representative). */
  classes: number[][];
  /** One entry per exact hash: representative id and its pHash. */
  reps: Array<{ id: number; phash: string }>;
}

function load(db: Db, keepPhash: boolean): Loaded & { phashById: Map<number, string> } {
  const classes: number[][] = [];
  const nonRep = new Set<number>();
  const rows = db
    .prepare(
      `SELECT group_concat(id) ids FROM (SELECT id, exact_hash FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL ORDER BY exact_hash, id)
       GROUP BY exact_hash HAVING COUNT(*) > 1`,
    )
    .pluck()
    .all() as string[];
  for (const r of rows) {
    const ids = r.split(',').map(Number).sort((x, y) => x - y);
    classes.push(ids);
    for (let i = 1; i < ids.length; i++) nonRep.add(ids[i]!);
  }
  const reps: Array<{ id: number; phash: string }> = [];
  const phashById = new Map<number, string>();
  let hashed = 0;
  for (const [id, phash] of db.prepare(`SELECT id, phash FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL`).raw().iterate() as IterableIterator<[number, string]>) {
    hashed++;
    if (!nonRep.has(id)) reps.push({ id, phash });
    else if (keepPhash) phashById.set(id, phash);
  }
  if (keepPhash) for (const r of reps) phashById.set(r.id, r.phash);
  return { hashed, classes, reps, phashById };
}

/** Candidate pairs (pHash within maxDistance) among representatives, verified by colour. */
export function verifiedNearPairs(
  thumbOf: (id: number) => Uint8Array | null | undefined,
  reps: ReadonlyArray<{ id: number; phash: string }>,
  maxDistance: number,
  thumbMax = THUMB_MAX_DISTANCE,
): { pairs: NearPair[]; candidates: number } {
  const comps = nearGroups(reps, maxDistance, { quiet: true });
  if (comps.length === 0) return { pairs: [], candidates: 0 };
  const phashOf = new Map<number, [number, number]>();
  const wanted = new Set<number>();
  for (const c of comps) for (const id of c) wanted.add(id);
  for (const r of reps) if (wanted.has(r.id)) phashOf.set(r.id, phashToHalves(r.phash));
  const pairs: NearPair[] = [];
  let candidates = 0;
  for (const c of comps) {
    const h = c.map((id) => phashOf.get(id)!);
    const t = c.map((id) => thumbOf(id));
    for (let i = 0; i < c.length; i++)
      for (let j = i + 1; j < c.length; j++) {
        const d = hamming32(h[i]![0], h[i]![1], h[j]![0], h[j]![1]);
        if (d > maxDistance) continue;
        candidates++;
        if (thumbMax !== Infinity) {
          const ta = t[i];
          const tb = t[j];
          if (!ta || !tb || thumbDistance(ta, tb) > thumbMax) continue;
        }
        pairs.push({ a: c[i]!, b: c[j]!, distance: d });
      }
  }
  return { pairs, candidates };
}

/** Components (size >= 2, ids ascending) from exact classes plus near pairs up to `distance`. */
function components(classes: number[][], pairs: readonly NearPair[], distance: number | null): Array<{ ids: number[]; dist: Map<number, number> }> {
  const uf = new UF();
  const members = new Map<number, number[]>(); // representative -> its class
  for (const cl of classes) members.set(cl[0]!, cl);
  if (distance !== null) for (const p of pairs) if (p.distance <= distance) uf.union(p.a, p.b);
  const byRoot = new Map<number, Set<number>>();
  const touch = (rep: number) => {
    const r = uf.find(rep);
    let g = byRoot.get(r);
    if (!g) byRoot.set(r, (g = new Set()));
    g.add(rep);
  };
  for (const cl of classes) touch(cl[0]!);
  if (distance !== null)
    for (const p of pairs)
      if (p.distance <= distance) {
        touch(p.a);
        touch(p.b);
      }
  const out: Array<{ ids: number[]; dist: Map<number, number> }> = [];
  for (const repsOf of byRoot.values()) {
    const ids: number[] = [];
    for (const rep of repsOf) ids.push(...(members.get(rep) ?? [rep]));
    if (ids.length < 2) continue;
    ids.sort((x, y) => x - y);
    out.push({ ids, dist: new Map() });
  }
  return out;
}

/**
 * Builds the groups for `opts.method`, applies the policy and the overrides, and replaces the
 * workspace's grouping (dup_groups, dup_members, dup_pairs, dup_excluded) in one transaction.
 */
export function rebuildGroups(db: Db, opts: GroupingOptions): GroupingResult {
  const t0 = performance.now();
  const near = opts.method === 'near';
  const { hashed, classes, reps, phashById } = load(db, near);
  const t1 = performance.now();
  const thumbQ = db.prepare(`SELECT thumb FROM images WHERE id = ?`).pluck();
  // Near pairs (also what the slider counts from) only for the near method: an exact run keeps none.
  const { pairs, candidates } = near
    ? verifiedNearPairs((id) => thumbQ.get(id) as Buffer | null, reps, opts.maxDistance, opts.thumbMax ?? THUMB_MAX_DISTANCE)
    : { pairs: [] as NearPair[], candidates: 0 };
  const t2 = performance.now();
  const comps = components(classes, pairs, near ? opts.maxDistance : null);
  // pHash distance of every member to the group's first (lowest-id) member
  for (const c of comps) {
    if (!near) continue;
    const first = phashToHalves(phashById.get(c.ids[0]!)!);
    for (const id of c.ids) {
      const h = phashToHalves(phashById.get(id)!);
      c.dist.set(id, hamming32(first[0], first[1], h[0], h[1]));
    }
  }
  // listings of every grouped image, from one scan
  const listingsOf = new Map<number, number[]>();
  for (const c of comps) for (const id of c.ids) listingsOf.set(id, []);
  for (const [img, l] of db.prepare(`SELECT image_id, listing_rowid FROM listing_images`).raw().iterate() as IterableIterator<[number, number]>) {
    listingsOf.get(img)?.push(l);
  }
  const keyQ = db.prepare(`SELECT exact_hash FROM images WHERE id = ?`).pluck();
  const overrides = new Map(
    (db.prepare(`SELECT key, action FROM dup_overrides`).all() as Array<{ key: string; action: 'keep' | 'drop' }>).map((o) => [o.key, o.action]),
  );
  const excluded = new Map<number, { group: number | null; reason: string }>();
  const groupRows: Array<{ key: string; size: number; listings: number; ids: number[]; dist: Map<number, number> }> = [];
  for (const c of comps) {
    const listings = new Set<number>();
    let unlisted = 0;
    for (const id of c.ids) {
      const ls = listingsOf.get(id)!;
      if (ls.length === 0) unlisted++;
      for (const l of ls) listings.add(l);
    }
    groupRows.push({ key: keyQ.get(c.ids[0]!) as string, size: c.ids.length, listings: listings.size + unlisted, ids: c.ids, dist: c.dist });
  }
  groupRows.sort((a, b) => b.size - a.size || a.ids[0]! - b.ids[0]!);

  let overridesApplied = 0;
  const chained: GroupingResult['chained'] = { groups: 0, worst: null };
  const write = db.transaction(() => {
    db.prepare(`DELETE FROM dup_excluded`).run();
    db.prepare(`DELETE FROM dup_members`).run();
    db.prepare(`DELETE FROM dup_groups`).run();
    db.prepare(`DELETE FROM dup_pairs`).run();
    const insG = db.prepare(`INSERT INTO dup_groups (method, key, size, listings, max_distance) VALUES (?, ?, ?, ?, ?) RETURNING id`).pluck();
    const insM = db.prepare(`INSERT INTO dup_members (group_id, image_id, distance) VALUES (?, ?, ?)`);
    const insP = db.prepare(`INSERT OR IGNORE INTO dup_pairs (a, b, distance) VALUES (?, ?, ?)`);
    const insX = db.prepare(`INSERT OR REPLACE INTO dup_excluded (image_id, group_id, reason) VALUES (?, ?, ?)`);
    const groupOfImage = new Map<number, number>();
    for (const g of groupRows) {
      const gid = insG.get(opts.method, g.key, g.size, g.listings, opts.method === 'near' ? opts.maxDistance : 0) as number;
      let spread = 0;
      for (const id of g.ids) {
        const d = g.dist.get(id) ?? 0;
        spread = Math.max(spread, d);
        insM.run(gid, id, d);
        groupOfImage.set(id, gid);
      }
      if (opts.method === 'near' && spread > opts.maxDistance) {
        chained.groups++;
        if (!chained.worst || g.size > chained.worst.size) chained.worst = { groupId: gid, size: g.size, listings: g.listings, spread };
      }
      if (opts.policy === 'default') {
        if (g.listings > 1) for (const id of g.ids) excluded.set(id, { group: gid, reason: 'group spans listings' });
        else for (const id of g.ids.slice(1)) excluded.set(id, { group: gid, reason: 'copy within one listing' });
      }
    }
    if (opts.policy === 'original') {
      for (const cl of classes) for (const id of cl) excluded.set(id, { group: groupOfImage.get(id) ?? null, reason: 'exact hash occurs more than once' });
    }
    // overrides win
    for (const g of groupRows) {
      const o = overrides.get(g.key);
      if (!o) continue;
      overridesApplied++;
      const gid = groupOfImage.get(g.ids[0]!)!;
      for (const id of g.ids) {
        if (o === 'keep') excluded.delete(id);
        else excluded.set(id, { group: gid, reason: 'dropped by the user' });
      }
    }
    for (const [id, x] of excluded) insX.run(id, x.group, x.reason);
    for (const p of pairs) insP.run(Math.min(p.a, p.b), Math.max(p.a, p.b), p.distance);
    db.prepare(`INSERT INTO meta (key, value) VALUES ('dedup.last', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
      JSON.stringify({ method: opts.method, maxDistance: opts.maxDistance, policy: opts.policy, at: Date.now() }),
    );
  });
  write();
  const t3 = performance.now();
  return {
    method: opts.method,
    policy: opts.policy,
    maxDistance: opts.maxDistance,
    hashed,
    groups: groupRows.length,
    imagesInGroups: groupRows.reduce((s, g) => s + g.size, 0),
    excluded: excluded.size,
    candidatePairs: candidates,
    verifiedPairs: pairs.length,
    overridesApplied,
    chained,
    seconds: { load: (t1 - t0) / 1000, near: (t2 - t1) / 1000, write: (t3 - t2) / 1000 },
  };
}

export interface LastRun {
  method: DedupMethod;
  maxDistance: number;
  policy: DedupPolicy;
  at: number;
}

export function lastRun(db: Db): LastRun | null {
  const v = db.prepare(`SELECT value FROM meta WHERE key = 'dedup.last'`).pluck().get() as string | undefined;
  return v ? (JSON.parse(v) as LastRun) : null;
}

/**
 * Near groups (and the images in them) for every distance 0..maxDistance from the stored verified
 * pairs and exact classes: one pass over the pairs sorted by distance with an incremental
 * union-find, so a slider reads its count in O(1).
 */
export function nearCountsByDistance(db: Db, maxDistance: number): Array<{ distance: number; groups: number; images: number }> {
  const classes = (db
    .prepare(`SELECT MIN(id) rep, COUNT(*) n FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL GROUP BY exact_hash HAVING COUNT(*) > 1`)
    .raw()
    .all() as Array<[number, number]>);
  const size = new Map<number, number>();
  let groups = 0;
  let images = 0;
  for (const [rep, n] of classes) {
    size.set(rep, n);
    groups++;
    images += n;
  }
  const pairs = db.prepare(`SELECT a, b, distance FROM dup_pairs ORDER BY distance`).raw().all() as Array<[number, number, number]>;
  const uf = new UF();
  const out: Array<{ distance: number; groups: number; images: number }> = [];
  let p = 0;
  for (let d = 0; d <= maxDistance; d++) {
    while (p < pairs.length && pairs[p]![2] <= d) {
      const [a, b] = pairs[p++]!;
      const ra = uf.find(a);
      const rb = uf.find(b);
      if (ra === rb) continue;
      const sa = size.get(ra) ?? 1;
      const sb = size.get(rb) ?? 1;
      // groups: a component of size >= 2 counts once
      groups -= (sa >= 2 ? 1 : 0) + (sb >= 2 ? 1 : 0);
      images -= (sa >= 2 ? sa : 0) + (sb >= 2 ? sb : 0);
      uf.union(ra, rb);
      const r = uf.find(ra);
      size.set(r, sa + sb);
      groups++;
      images += sa + sb;
    }
    out.push({ distance: d, groups, images });
  }
  return out;
}
