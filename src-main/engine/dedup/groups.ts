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
 *
 * Groups are then formed by leader clustering over the verified pairs (leader.ts): every member
 * is within `maxDistance` of the group's representative, its best copy (largest, then most bytes),
 * so similar-but-different photos no longer chain into one group. Exact classes are never split.
 */
import type { Db } from '../workspace/db.ts';
import { nearGroups, DEFAULT_MAX_DISTANCE } from './near-index.ts';
import { hamming32, phashToHalves } from './phash.ts';
import { thumbDistance } from './hash-row.ts';
import { bestOf, copyQuality, groupExclusions, leaderPass, type Decision } from './leader.ts';

export const THUMB_MAX_DISTANCE = 20;
export { DEFAULT_MAX_DISTANCE };

export type DedupMethod = 'exact' | 'near';
export type DedupPolicy = 'default' | 'original';
/** leader: every member within the distance of the representative; single: union of all pairs (kept to compare). */
export type DedupLinkage = 'leader' | 'single';

export interface GroupingOptions {
  method: DedupMethod;
  maxDistance: number;
  policy: DedupPolicy;
  /** Colour check for near pairs (default THUMB_MAX_DISTANCE; Infinity turns it off). */
  thumbMax?: number;
  /** Default 'leader'; 'single' is the former single-linkage grouping, for the benchmark's comparison. */
  linkage?: DedupLinkage;
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
  /** The user's per-photo keep/drop decisions applied (photos still grouped). */
  decisionsApplied: number;
  /**
   * Near groups with a member further than maxDistance from the group's representative: photos
   * joined through a chain of similar ones (A like B, B like C) rather than copies of one picture.
   * Leader clustering makes none (single linkage does); `worst` is the one with the most members.
   */
  chained: { groups: number; worst: { groupId: number; size: number; listings: number; spread: number } | null };
  seconds: { load: number; near: number; group: number; write: number };
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
  /** Exact classes with 2+ images: ids ascending (first = the one the near search uses). */
  classes: number[][];
  /** One entry per exact hash: the lowest id and its pHash. */
  reps: Array<{ id: number; phash: string }>;
  phashById: Map<number, string>;
  /** copyQuality of every hashed image. */
  qualityById: Map<number, number>;
}

function load(db: Db, keepPhash: boolean): Loaded {
  const classes = exactClasses(db);
  const nonRep = new Set<number>();
  for (const ids of classes) for (let i = 1; i < ids.length; i++) nonRep.add(ids[i]!);
  const reps: Array<{ id: number; phash: string }> = [];
  const phashById = new Map<number, string>();
  const qualityById = new Map<number, number>();
  let hashed = 0;
  const all = db.prepare(`SELECT id, phash, width, height, bytes FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL`).raw();
  for (const [id, phash, w, h, bytes] of all.iterate() as IterableIterator<[number, string, number | null, number | null, number | null]>) {
    hashed++;
    qualityById.set(id, copyQuality(w, h, bytes));
    if (!nonRep.has(id)) reps.push({ id, phash });
    else if (keepPhash) phashById.set(id, phash);
  }
  if (keepPhash) for (const r of reps) phashById.set(r.id, r.phash);
  return { hashed, classes, reps, phashById, qualityById };
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

/** Exact classes with 2+ stored, hashed images: ids ascending. */
function exactClasses(db: Db): number[][] {
  const rows = db
    .prepare(
      `SELECT group_concat(id) ids FROM (SELECT id, exact_hash FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL ORDER BY exact_hash, id)
       GROUP BY exact_hash HAVING COUNT(*) > 1`,
    )
    .pluck()
    .all() as string[];
  return rows.map((r) => r.split(',').map(Number).sort((x, y) => x - y));
}

/** Single linkage: connected components of exact classes plus near pairs up to `distance` (ids ascending). */
function singleLinkage(classes: number[][], pairs: readonly NearPair[], distance: number | null): number[][] {
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
  const out: number[][] = [];
  for (const repsOf of byRoot.values()) {
    const ids: number[] = [];
    for (const rep of repsOf) ids.push(...(members.get(rep) ?? [rep]));
    if (ids.length >= 2) out.push(ids.sort((x, y) => x - y));
  }
  return out;
}

/**
 * Leader clustering (leader.ts) of exact classes, never split, plus near pairs up to `distance`.
 * A node is an exact class (named by its lowest id, the id the near search used) or a single
 * photo; nodes are visited best copy first, and a node joins a leader only when all its members
 * are within `distance` of the leader's best copy (`phashOf`; null: exact groups only). Groups of
 * two or more, ids ascending.
 */
function leaderGroups(
  classes: number[][],
  pairs: readonly NearPair[],
  distance: number | null,
  quality: (id: number) => number,
  phashOf: ((id: number) => [number, number]) | null,
): number[][] {
  // 1. nodes and their near neighbours
  const members = new Map<number, number[]>();
  for (const cl of classes) members.set(cl[0]!, cl);
  const nodes = new Set<number>(members.keys());
  const neighbours = new Map<number, Array<[number, number]>>();
  const link = (a: number, b: number, d: number) => {
    let l = neighbours.get(a);
    if (!l) neighbours.set(a, (l = []));
    l.push([b, d]);
  };
  if (distance !== null)
    for (const p of pairs)
      if (p.distance <= distance) {
        link(p.a, p.b, p.distance);
        link(p.b, p.a, p.distance);
        nodes.add(p.a);
        nodes.add(p.b);
      }
  // 2. each node's best copy, and the visiting order: best copies first
  const bestOfNode = new Map<number, number>();
  const ranked: Array<{ node: number; best: number; q: number }> = [];
  for (const node of nodes) {
    const m = members.get(node);
    const best = m ? bestOf(m, quality) : node;
    bestOfNode.set(node, best);
    ranked.push({ node, best, q: quality(best) });
  }
  ranked.sort((a, b) => b.q - a.q || a.best - b.best);
  const order = ranked.map((r) => r.node);
  // 3. how far a node's members are from a leader's best copy (the pair's own distance when
  //    both are single photos)
  const join =
    phashOf &&
    ((u: number, v: number, pairD: number): number => {
      const mu = members.get(u);
      const bv = bestOfNode.get(v)!;
      if (!mu && bv === v) return pairD;
      const [hh, hl] = phashOf(bv);
      let d = 0;
      for (const id of mu ?? [u]) {
        const [xh, xl] = phashOf(id);
        d = Math.max(d, hamming32(hh, hl, xh, xl));
      }
      return d;
    });
  // 4. the pass, then the members of each leader's group
  const leaderOf = leaderPass(order, neighbours, distance ?? 0, join ?? undefined);
  const byLeader = new Map<number, number[]>();
  for (const n of order) {
    const l = leaderOf.get(n)!;
    let g = byLeader.get(l);
    if (!g) byLeader.set(l, (g = []));
    g.push(...(members.get(n) ?? [n]));
  }
  const out: number[][] = [];
  for (const ids of byLeader.values()) if (ids.length >= 2) out.push(ids.sort((x, y) => x - y));
  return out;
}

interface BuiltGroup {
  key: string;
  ids: number[];
  representative: number;
  /** pHash distance of every member to the representative (0 for exact groups). */
  dist: Map<number, number>;
  size: number;
  listings: number;
}

/** Listings per group (distinct listings, plus one per unlisted photo), from one scan. */
function countListings(db: Db, groups: ReadonlyArray<{ ids: number[] }>): number[] {
  const listingsOf = new Map<number, number[]>();
  for (const g of groups) for (const id of g.ids) listingsOf.set(id, []);
  for (const [img, l] of db.prepare(`SELECT image_id, listing_rowid FROM listing_images`).raw().iterate() as IterableIterator<[number, number]>) {
    listingsOf.get(img)?.push(l);
  }
  return groups.map((g) => {
    const listings = new Set<number>();
    let unlisted = 0;
    for (const id of g.ids) {
      const ls = listingsOf.get(id)!;
      if (ls.length === 0) unlisted++;
      for (const l of ls) listings.add(l);
    }
    return listings.size + unlisted;
  });
}

/**
 * Builds the groups for `opts.method`, applies the policy, the group overrides and the per-photo
 * decisions, and replaces the workspace's grouping (dup_groups, dup_members, dup_pairs,
 * dup_excluded) in one transaction.
 */
export function rebuildGroups(db: Db, opts: GroupingOptions): GroupingResult {
  const t0 = performance.now();
  const near = opts.method === 'near';

  // 1. hashes, exact classes and copy quality
  const { hashed, classes, reps, phashById, qualityById } = load(db, near);
  const quality = (id: number) => qualityById.get(id) ?? 0;
  const halves = new Map<number, [number, number]>();
  const phashOf = (id: number): [number, number] => {
    let h = halves.get(id);
    if (!h) halves.set(id, (h = phashToHalves(phashById.get(id)!)));
    return h;
  };
  const t1 = performance.now();

  // 2. near pairs (also what the slider counts from), only for the near method
  const thumbQ = db.prepare(`SELECT thumb FROM images WHERE id = ?`).pluck();
  const { pairs, candidates } = near
    ? verifiedNearPairs((id) => thumbQ.get(id) as Buffer | null, reps, opts.maxDistance, opts.thumbMax ?? THUMB_MAX_DISTANCE)
    : { pairs: [] as NearPair[], candidates: 0 };
  const t2 = performance.now();

  // 3. groups, each with its representative (best copy) and member distances to it
  const distance = near ? opts.maxDistance : null;
  const idLists = opts.linkage === 'single' ? singleLinkage(classes, pairs, distance) : leaderGroups(classes, pairs, distance, quality, near ? phashOf : null);
  const keyQ = db.prepare(`SELECT exact_hash FROM images WHERE id = ?`).pluck();
  const listingCounts = countListings(db, idLists.map((ids) => ({ ids })));
  const groups: BuiltGroup[] = idLists.map((ids, i) => {
    const representative = bestOf(ids, quality);
    const dist = new Map<number, number>();
    if (near) {
      const [rh, rl] = phashOf(representative);
      for (const id of ids) {
        const [h, l] = phashOf(id);
        dist.set(id, hamming32(rh, rl, h, l));
      }
    }
    return { key: keyQ.get(ids[0]!) as string, ids, representative, dist, size: ids.length, listings: listingCounts[i]! };
  });
  groups.sort((a, b) => b.size - a.size || a.ids[0]! - b.ids[0]!);
  const t3 = performance.now();

  // 4. the user's choices, kept across runs
  const overrides = new Map(
    (db.prepare(`SELECT key, action FROM dup_overrides`).all() as Array<{ key: string; action: Decision }>).map((o) => [o.key, o.action]),
  );
  const decisions = new Map(db.prepare(`SELECT image_id, action FROM dup_decisions`).raw().all() as Array<[number, Decision]>);
  const inClass = new Set<number>();
  for (const cl of classes) for (const id of cl) inClass.add(id);

  // 5. write the grouping and what it excludes
  let overridesApplied = 0;
  let decisionsApplied = 0;
  let excludedCount = 0;
  const chained: GroupingResult['chained'] = { groups: 0, worst: null };
  const write = db.transaction(() => {
    db.prepare(`DELETE FROM dup_excluded`).run();
    db.prepare(`DELETE FROM dup_members`).run();
    db.prepare(`DELETE FROM dup_groups`).run();
    db.prepare(`DELETE FROM dup_pairs`).run();
    const insG = db.prepare(`INSERT INTO dup_groups (method, key, size, listings, max_distance, representative) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`).pluck();
    const insM = db.prepare(`INSERT INTO dup_members (group_id, image_id, distance) VALUES (?, ?, ?)`);
    const insP = db.prepare(`INSERT OR IGNORE INTO dup_pairs (a, b, distance) VALUES (?, ?, ?)`);
    const insX = db.prepare(`INSERT OR REPLACE INTO dup_excluded (image_id, group_id, reason) VALUES (?, ?, ?)`);
    for (const g of groups) {
      const gid = insG.get(opts.method, g.key, g.size, g.listings, near ? opts.maxDistance : 0, g.representative) as number;
      let spread = 0;
      for (const id of g.ids) {
        const d = g.dist.get(id) ?? 0;
        spread = Math.max(spread, d);
        insM.run(gid, id, d);
        if (decisions.has(id)) decisionsApplied++;
      }
      if (near && spread > opts.maxDistance) {
        chained.groups++;
        if (!chained.worst || g.size > chained.worst.size) chained.worst = { groupId: gid, size: g.size, listings: g.listings, spread };
      }
      const override = overrides.get(g.key);
      if (override) overridesApplied++;
      const excluded = groupExclusions(g, opts.policy, (id) => inClass.has(id), override, decisions);
      for (const [id, reason] of excluded) insX.run(id, gid, reason);
      excludedCount += excluded.size;
    }
    for (const p of pairs) insP.run(Math.min(p.a, p.b), Math.max(p.a, p.b), p.distance);
    db.prepare(`INSERT INTO meta (key, value) VALUES ('dedup.last', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
      JSON.stringify({ method: opts.method, maxDistance: opts.maxDistance, policy: opts.policy, at: Date.now() }),
    );
  });
  write();
  const t4 = performance.now();
  return {
    method: opts.method,
    policy: opts.policy,
    maxDistance: opts.maxDistance,
    hashed,
    groups: groups.length,
    imagesInGroups: groups.reduce((s, g) => s + g.size, 0),
    excluded: excludedCount,
    candidatePairs: candidates,
    verifiedPairs: pairs.length,
    overridesApplied,
    decisionsApplied,
    chained,
    seconds: { load: (t1 - t0) / 1000, near: (t2 - t1) / 1000, group: (t3 - t2) / 1000, write: (t4 - t3) / 1000 },
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
 * Near groups (and the images in them) for every distance 0..maxDistance, as a dedup run at that
 * distance would form them: leader clustering of the exact classes and the stored verified pairs
 * up to that distance. Computed once per run (the API caches it), so a slider reads its count in
 * O(1).
 */
export function nearCountsByDistance(db: Db, maxDistance: number): Array<{ distance: number; groups: number; images: number }> {
  const classes = exactClasses(db);
  const pairs = (db.prepare(`SELECT a, b, distance FROM dup_pairs`).raw().all() as Array<[number, number, number]>).map(([a, b, distance]) => ({ a, b, distance }));
  // quality and pHash of every image a group can hold
  const info = db.prepare(`SELECT width, height, bytes, phash FROM images WHERE id = ?`);
  const cache = new Map<number, { q: number; h: [number, number] }>();
  const of = (id: number) => {
    let c = cache.get(id);
    if (!c) {
      const r = info.get(id) as { width: number | null; height: number | null; bytes: number | null; phash: string };
      cache.set(id, (c = { q: copyQuality(r.width, r.height, r.bytes), h: phashToHalves(r.phash) }));
    }
    return c;
  };
  const out: Array<{ distance: number; groups: number; images: number }> = [];
  for (let d = 0; d <= maxDistance; d++) {
    const gs = leaderGroups(classes, pairs, d, (id) => of(id).q, (id) => of(id).h);
    out.push({ distance: d, groups: gs.length, images: gs.reduce((s, g) => s + g.length, 0) });
  }
  return out;
}
