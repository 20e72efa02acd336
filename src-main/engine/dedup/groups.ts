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
import { nearGroupsOfHalves, DEFAULT_MAX_DISTANCE } from './near-index.ts';
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
  /**
   * Time per step: read the hashes (load), exact classes (exact), the multi-index near search
   * (search), the pair check in full and by colour (verify), leader or single-linkage groups with
   * their representatives (group), listings, keys, policy and the user's choices (policy), and
   * the write (write).
   */
  seconds: StepSeconds;
}

export interface StepSeconds {
  load: number;
  exact: number;
  search: number;
  verify: number;
  group: number;
  policy: number;
  write: number;
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

/**
 * Every stored, hashed image as rows in id order (row r: ids[r]), read in one scan: pHash halves
 * and copy quality per row, and the exact classes (rows of 2+ images sharing an exact hash,
 * ascending: the first is the one the near search uses) with their exact hash. Rows stand for
 * ids throughout the grouping: they sort as the ids do, so every tie broken by the lower id
 * breaks the same way.
 */
interface Loaded {
  hashed: number;
  ids: Float64Array;
  hi: Uint32Array;
  lo: Uint32Array;
  quality: Float64Array;
  /** Exact classes with 2+ images: rows ascending. */
  classes: number[][];
  /** The exact hash of each class's first row. */
  classKey: Map<number, string>;
  /** One row per exact hash (the lowest id), ascending. */
  reps: Int32Array;
  /** Rows whose stored pHash is not 16 hex digits (the near search refuses them). */
  badPhash: number[];
}

const HEX = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 16; i++) t['0123456789abcdef'.charCodeAt(i)] = t['0123456789ABCDEF'.charCodeAt(i)] = i;
  return t;
})();

/** Integers (exact below 2^53) separated by `sep`, in order, into `out` from `at`; returns the end. */
function parseInts(s: string, sep: number, out: Float64Array, at: number): number {
  let v = 0;
  let sign = 1;
  let k = at;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === sep) {
      out[k++] = sign * v;
      v = 0;
      sign = 1;
    } else if (c === 45) sign = -1;
    else v = v * 10 + (c - 48);
  }
  if (s.length) out[k++] = sign * v;
  return k;
}

const LOAD_PAGE = 100_000;
/**
 * A stored pHash that is not 16 ASCII characters reads as this (no hex digit), so the others stay
 * aligned; one of 16 ASCII characters that are not all hex digits is caught while parsing.
 */
const BAD_PHASH = 'zzzzzzzzzzzzzzzz';

/** Adds the seconds since `since` to `sec[step]`; returns now. */
function lap(sec: StepSeconds | undefined, step: keyof StepSeconds, since: number): number {
  const now = performance.now();
  if (sec) sec[step] += (now - since) / 1000;
  return now;
}

function load(db: Db, sec?: StepSeconds): Loaded {
  let t = performance.now();
  // one page: ids, pHashes (16 hex digits each, concatenated) and copyQuality (leader.ts) as three
  // strings, so that a million rows cost a few hundred strings, not millions of values
  const page = db
    .prepare(
      `SELECT group_concat(id, ','), group_concat(CASE WHEN length(phash) = 16 AND length(CAST(phash AS BLOB)) = 16 THEN phash ELSE '${BAD_PHASH}' END, ''),
              group_concat(CAST(max(0, ifnull(width, 0)) * max(0, ifnull(height, 0)) * 16777216 + min(16777215, max(0, ifnull(bytes, 0))) AS INTEGER), ','), max(id), count(*)
         FROM (SELECT id, phash, width, height, bytes FROM images WHERE state = 'stored' AND exact_hash IS NOT NULL AND id > ? ORDER BY id LIMIT ${LOAD_PAGE})`,
    )
    .raw();
  const parts: Array<{ ids: Float64Array; hi: Uint32Array; lo: Uint32Array; quality: Float64Array }> = [];
  const badPhash: number[] = [];
  let hashed = 0;
  let after = -Infinity;
  for (;;) {
    const [idS, phS, qS, maxId, n] = page.get(after) as [string | null, string, string, number, number];
    if (idS === null || n === 0) break;
    const part = { ids: new Float64Array(n), hi: new Uint32Array(n), lo: new Uint32Array(n), quality: new Float64Array(n) };
    parseInts(idS, 44, part.ids, 0);
    parseInts(qS, 44, part.quality, 0);
    for (let r = 0; r < n; r++) {
      let a = 0;
      let b = 0;
      let bad = 0;
      const o = 16 * r;
      for (let i = 0; i < 8; i++) {
        const x = HEX[phS.charCodeAt(o + i)] ?? -1;
        const y = HEX[phS.charCodeAt(o + 8 + i)] ?? -1;
        bad |= x | y;
        a = (a << 4) | x;
        b = (b << 4) | y;
      }
      if (bad < 0) badPhash.push(hashed + r);
      part.hi[r] = a;
      part.lo[r] = b;
    }
    parts.push(part);
    hashed += n;
    after = maxId;
    if (n < LOAD_PAGE) break;
  }
  const ids = new Float64Array(hashed);
  const hi = new Uint32Array(hashed);
  const lo = new Uint32Array(hashed);
  const quality = new Float64Array(hashed);
  let at = 0;
  for (const p of parts) {
    ids.set(p.ids, at);
    hi.set(p.hi, at);
    lo.set(p.lo, at);
    quality.set(p.quality, at);
    at += p.ids.length;
  }
  t = lap(sec, 'load', t);
  // exact classes from the exact-hash index (no table lookups); members that are not stored
  // (not among the rows) are left out here
  const rowOf = (id: number): number => {
    let l = 0;
    let h = hashed - 1;
    while (l <= h) {
      const m = (l + h) >> 1;
      const v = ids[m]!;
      if (v === id) return m;
      if (v < id) l = m + 1;
      else h = m - 1;
    }
    return -1;
  };
  const text = db
    .prepare(
      `SELECT group_concat(c, ';') FROM (SELECT exact_hash || ':' || group_concat(id) c FROM images INDEXED BY images_exact_hash
        WHERE exact_hash IS NOT NULL GROUP BY exact_hash HAVING COUNT(*) > 1)`,
    )
    .pluck()
    .get() as string | null;
  const classes: number[][] = [];
  const classKey = new Map<number, string>();
  const inClassNotFirst = new Uint8Array(hashed);
  const tmp = new Float64Array(1024);
  if (text)
    for (const c of text.split(';')) {
      const colon = c.indexOf(':');
      const body = c.slice(colon + 1);
      const buf = body.length / 2 + 1 <= tmp.length ? tmp : new Float64Array(body.length / 2 + 1);
      const k = parseInts(body, 44, buf, 0);
      const cl: number[] = [];
      for (let i = 0; i < k; i++) {
        const r = rowOf(buf[i]!);
        if (r >= 0) cl.push(r);
      }
      if (cl.length < 2) continue;
      cl.sort((x, y) => x - y);
      for (let i = 1; i < cl.length; i++) inClassNotFirst[cl[i]!] = 1;
      classes.push(cl);
      classKey.set(cl[0]!, c.slice(0, colon));
    }
  const reps = new Int32Array(hashed);
  let nr = 0;
  for (let r = 0; r < hashed; r++) if (!inClassNotFirst[r]) reps[nr++] = r;
  lap(sec, 'exact', t);
  return { hashed, ids, hi, lo, quality, classes, classKey, reps: reps.subarray(0, nr), badPhash };
}

/** Candidate pairs (pHash within maxDistance) among representatives, verified by colour. */
export function verifiedNearPairs(
  thumbOf: (id: number) => Uint8Array | null | undefined,
  reps: ReadonlyArray<{ id: number; phash: string }>,
  maxDistance: number,
  thumbMax = THUMB_MAX_DISTANCE,
): { pairs: NearPair[]; candidates: number } {
  const hi = new Uint32Array(reps.length);
  const lo = new Uint32Array(reps.length);
  const ids = new Float64Array(reps.length);
  reps.forEach((r, i) => {
    [hi[i], lo[i]] = phashToHalves(r.phash);
    ids[i] = r.id;
  });
  const rows = Int32Array.from(reps, (_, i) => i);
  const { pairs, candidates } = verifiedNearRows(rows, hi, lo, (i) => thumbOf(ids[i]!), maxDistance, thumbMax);
  return { pairs: pairs.map((p) => ({ a: ids[p.a]!, b: ids[p.b]!, distance: p.distance })), candidates };
}

/**
 * verifiedNearPairs over loaded rows: the near search over `rows` (the hashes hi[r], lo[r]), then
 * every candidate pair within a component checked in full and by colour. Pairs name rows.
 */
function verifiedNearRows(
  rows: Int32Array,
  hi: Uint32Array,
  lo: Uint32Array,
  thumbOf: (row: number) => Uint8Array | null | undefined,
  maxDistance: number,
  thumbMax: number,
  sec?: StepSeconds,
): { pairs: NearPair[]; candidates: number } {
  let t = performance.now();
  const rh = new Uint32Array(rows.length);
  const rl = new Uint32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    rh[i] = hi[rows[i]!]!;
    rl[i] = lo[rows[i]!]!;
  }
  const comps = nearGroupsOfHalves(rows, rh, rl, maxDistance, { quiet: true });
  t = lap(sec, 'search', t);
  const pairs: NearPair[] = [];
  let candidates = 0;
  for (const c of comps) {
    const t = c.map((r) => thumbOf(r));
    for (let i = 0; i < c.length; i++)
      for (let j = i + 1; j < c.length; j++) {
        const a = c[i]!;
        const b = c[j]!;
        const d = hamming32(hi[a]!, lo[a]!, hi[b]!, lo[b]!);
        if (d > maxDistance) continue;
        candidates++;
        if (thumbMax !== Infinity) {
          const ta = t[i];
          const tb = t[j];
          if (!ta || !tb || thumbDistance(ta, tb) > thumbMax) continue;
        }
        pairs.push({ a, b, distance: d });
      }
  }
  lap(sec, 'verify', t);
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
  // 2. each node's best copy, and the visiting order: best copies first. A node without near
  //    pairs (an exact class on its own) is a group of its own wherever it comes in the order,
  //    and no other node's choice depends on it: it goes straight to the output.
  const out: number[][] = [];
  const bestOfNode = new Map<number, number>();
  const ranked: Array<{ node: number; best: number; q: number }> = [];
  for (const node of nodes) {
    const m = members.get(node);
    if (!neighbours.has(node)) {
      if (m && m.length >= 2) out.push(m.slice());
      continue;
    }
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
  for (const ids of byLeader.values()) if (ids.length >= 2) out.push(ids.sort((x, y) => x - y));
  return out;
}

interface BuiltGroup {
  key: string;
  /** Member rows, ascending (the ids ascending). */
  rows: number[];
  /** Member ids, as rows. */
  ids: number[];
  representative: number;
  /** The largest pHash distance of a member to the representative (0 for exact groups). */
  spread: number;
  size: number;
  listings: number;
}

/**
 * Listings per group (distinct listings, plus one per unlisted photo), from the index on
 * image_id, in one string. Groups are lists of rows (disjoint); `ids` names the rows.
 */
function countListings(db: Db, groups: ReadonlyArray<readonly number[]>, ids: Float64Array): number[] {
  // the grouped ids ascending (rows ascending), and the group of each
  const groupOfRow = new Int32Array(ids.length).fill(-1);
  groups.forEach((rows, gi) => {
    for (const r of rows) groupOfRow[r] = gi;
  });
  const wanted: number[] = [];
  const groupAt: number[] = [];
  for (let r = 0; r < ids.length; r++)
    if (groupOfRow[r]! >= 0) {
      wanted.push(ids[r]!);
      groupAt.push(groupOfRow[r]!);
    }
  const text = db
    .prepare(`SELECT group_concat(image_id || ',' || listing_rowid, ',') FROM listing_images WHERE image_id IN (SELECT value FROM json_each(?))`)
    .pluck()
    .get(JSON.stringify(wanted)) as string | null;
  const flat = new Float64Array(text ? text.length / 2 + 1 : 0);
  const n = text ? parseInts(text, 44, flat, 0) : 0;
  const listed = new Uint8Array(wanted.length);
  const first = new Float64Array(groups.length).fill(-1);
  const more = new Map<number, Set<number>>();
  for (let k = 0; k + 1 < n; k += 2) {
    const img = flat[k]!;
    const l = flat[k + 1]!;
    let lo = 0;
    let hi = wanted.length - 1;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (wanted[m]! < img) lo = m + 1;
      else hi = m;
    }
    listed[lo] = 1;
    const g = groupAt[lo]!;
    if (first[g]! < 0) first[g] = l;
    else if (first[g] !== l) {
      let set = more.get(g);
      if (!set) more.set(g, (set = new Set([first[g]!])));
      set.add(l);
    }
  }
  const counts = groups.map((_, g) => more.get(g)?.size ?? (first[g]! < 0 ? 0 : 1));
  for (let k = 0; k < wanted.length; k++) if (!listed[k]) counts[groupAt[k]!]!++;
  return counts;
}

/** Rows per INSERT statement when writing the grouping (one statement, many VALUES tuples). */
const WRITE_BATCH = 100;
/** SQLite page cache during the write, KiB. */
const WRITE_CACHE_KIB = 256 * 1024;

/**
 * Builds the groups for `opts.method`, applies the policy, the group overrides and the per-photo
 * decisions, and replaces the workspace's grouping (dup_groups, dup_members, dup_pairs,
 * dup_excluded) in one transaction.
 */
export function rebuildGroups(db: Db, opts: GroupingOptions): GroupingResult {
  const sec: StepSeconds = { load: 0, exact: 0, search: 0, verify: 0, group: 0, policy: 0, write: 0 };
  const version = db.pragma('data_version', { simple: true }) as number; // see the write
  const near = opts.method === 'near';

  // 1. hashes, exact classes and copy quality, as rows in id order
  const L = load(db, sec);
  const { hashed, ids, hi, lo, classes } = L;
  if (near && L.badPhash.length) {
    // what the near search says of it (phashToHalves throws with the stored value)
    phashToHalves(db.prepare(`SELECT phash FROM images WHERE id = ?`).pluck().get(ids[L.badPhash[0]!]!) as string);
  }
  const quality = (r: number) => L.quality[r]!;
  const phashOf = (r: number): [number, number] => [hi[r]!, lo[r]!];

  // 2. near pairs (also what the slider counts from), only for the near method
  const thumbQ = db.prepare(`SELECT thumb FROM images WHERE id = ?`).pluck();
  const { pairs, candidates } = near
    ? verifiedNearRows(L.reps, hi, lo, (r) => thumbQ.get(ids[r]!) as Buffer | null, opts.maxDistance, opts.thumbMax ?? THUMB_MAX_DISTANCE, sec)
    : { pairs: [] as NearPair[], candidates: 0 };
  let t = performance.now();

  // 3. groups, each with its representative (best copy) and member distances to it
  const distance = near ? opts.maxDistance : null;
  const rowLists = opts.linkage === 'single' ? singleLinkage(classes, pairs, distance) : leaderGroups(classes, pairs, distance, quality, near ? phashOf : null);
  t = lap(sec, 'group', t);
  const { groups, distOf } = describeGroups(db, L, rowLists, near, quality);

  // 4. the user's choices, kept across runs
  const overrides = new Map(
    (db.prepare(`SELECT key, action FROM dup_overrides`).all() as Array<{ key: string; action: Decision }>).map((o) => [o.key, o.action]),
  );
  const decisions = new Map(db.prepare(`SELECT image_id, action FROM dup_decisions`).raw().all() as Array<[number, Decision]>);
  const inClass = new Uint8Array(hashed);
  for (const cl of classes) for (const r of cl) inClass[r] = 1;

  // 5. the grouping and what it excludes, as rows in each table's key order (rows ascending
  //    are ids ascending), then one write (writeGrouping)
  let overridesApplied = 0;
  let decisionsApplied = 0;
  let excludedCount = 0;
  const chained: GroupingResult['chained'] = { groups: 0, worst: null };
  const gFlat: unknown[] = [];
  const gidOf = new Int32Array(hashed); // 0: in no group
  const reasonOf: Array<string | undefined> = new Array(hashed);
  // whether a member's exact hash repeats (the 'original' policy), for the group at hand
  let rowsOfGroup: readonly number[] = [];
  let idsOfGroup: readonly number[] = [];
  let repeatsInGroup: Map<number, boolean> | null = null;
  const exactRepeats = (id: number): boolean => {
    if (idsOfGroup.length <= 16) return inClass[rowsOfGroup[idsOfGroup.indexOf(id)]!] === 1;
    if (!repeatsInGroup) {
      repeatsInGroup = new Map();
      for (let k = 0; k < idsOfGroup.length; k++) repeatsInGroup.set(idsOfGroup[k]!, inClass[rowsOfGroup[k]!] === 1);
    }
    return repeatsInGroup.get(id) === true;
  };
  groups.forEach((g, gi) => {
    const gid = gi + 1; // the table is emptied first, so these are the ids SQLite would assign
    gFlat.push(gid, opts.method, g.key, g.size, g.listings, near ? opts.maxDistance : 0, g.representative);
    for (const r of g.rows) gidOf[r] = gid;
    const spread = g.spread;
    if (decisions.size) for (const id of g.ids) if (decisions.has(id)) decisionsApplied++;
    if (near && spread > opts.maxDistance) {
      chained.groups++;
      if (!chained.worst || g.size > chained.worst.size) chained.worst = { groupId: gid, size: g.size, listings: g.listings, spread };
    }
    const override = overrides.get(g.key);
    if (override) overridesApplied++;
    rowsOfGroup = g.rows;
    idsOfGroup = g.ids;
    repeatsInGroup = null;
    const excluded = groupExclusions(g, opts.policy, exactRepeats, override, decisions);
    if (excluded.size)
      g.ids.forEach((id, k) => {
        const reason = excluded.get(id);
        if (reason !== undefined) reasonOf[g.rows[k]!] = reason;
      });
    excludedCount += excluded.size;
  });
  const mFlat: number[] = [];
  const xFlat: unknown[] = [];
  for (let r = 0; r < hashed; r++) {
    const gid = gidOf[r]!;
    if (gid === 0) continue;
    mFlat.push(gid, ids[r]!, distOf[r]!);
    const reason = reasonOf[r];
    if (reason !== undefined) xFlat.push(ids[r]!, gid, reason);
  }
  const pFlat = pairs
    .map((p) => [Math.min(ids[p.a]!, ids[p.b]!), Math.max(ids[p.a]!, ids[p.b]!), p.distance] as const)
    .sort((x, y) => x[0] - y[0] || x[1] - y[1])
    .flat();
  t = lap(sec, 'policy', t);
  writeGrouping(db, opts, version, { groups: gFlat, members: mFlat, excluded: xFlat, pairs: pFlat });
  lap(sec, 'write', t);
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
    seconds: sec,
  };
}

/**
 * Each group's key (the exact hash of its lowest id: known for exact classes, the rest in one
 * query), representative (best copy), listings and, for the near method, every member's pHash
 * distance to the representative (`distOf`, by row) and the group's spread; largest first.
 */
function describeGroups(db: Db, L: Loaded, rowLists: number[][], near: boolean, quality: (r: number) => number): { groups: BuiltGroup[]; distOf: Int32Array } {
  const { hashed, ids, hi, lo } = L;
  const idLists = rowLists.map((rows) => rows.map((r) => ids[r]!));
  const listingCounts = countListings(db, rowLists, ids);
  const keyOf = new Map<number, string>();
  const unkeyed = rowLists.filter((rows) => !L.classKey.has(rows[0]!)).map((rows) => ids[rows[0]!]!);
  if (unkeyed.length)
    for (const [id, key] of db.prepare(`SELECT id, exact_hash FROM images WHERE id IN (SELECT value FROM json_each(?))`).raw().iterate(JSON.stringify(unkeyed)) as IterableIterator<[number, string]>)
      keyOf.set(id, key);
  const distOf = new Int32Array(hashed); // each member's pHash distance to its representative
  const groups: BuiltGroup[] = rowLists.map((rows, i) => {
    const rep = bestOf(rows, quality);
    let spread = 0;
    if (near) {
      const rh = hi[rep]!;
      const rl = lo[rep]!;
      for (const r of rows) spread = Math.max(spread, (distOf[r] = hamming32(rh, rl, hi[r]!, lo[r]!)));
    }
    return { key: L.classKey.get(rows[0]!) ?? keyOf.get(ids[rows[0]!]!)!, rows, ids: idLists[i]!, representative: ids[rep]!, spread, size: rows.length, listings: listingCounts[i]! };
  });
  groups.sort((a, b) => b.size - a.size || a.rows[0]! - b.rows[0]!);
  return { groups, distOf };
}

/** The rows of one grouping, flattened in each table's column order and key order. */
interface GroupingRows {
  groups: readonly unknown[];
  members: readonly number[];
  excluded: readonly unknown[];
  pairs: readonly number[];
}

/**
 * Replaces the grouping tables with `rows` in one transaction: a hundred rows per statement, each
 * table's rows in its key order, so that its b-trees are appended to rather than split.
 * `version`: the database's data_version when the rows were read (see the foreign keys below).
 */
function writeGrouping(db: Db, opts: GroupingOptions, version: number, rows: GroupingRows): void {
  const { groups: gFlat, members: mFlat, excluded: xFlat, pairs: pFlat } = rows;
  const insert = (head: string, cols: number, flat: readonly unknown[]) => {
    const tuple = `(${new Array(cols).fill('?').join(', ')})`;
    const full = db.prepare(head + new Array(WRITE_BATCH).fill(tuple).join(', '));
    const step = WRITE_BATCH * cols;
    let i = 0;
    for (; i + step <= flat.length; i += step) full.run(flat.slice(i, i + step));
    if (i < flat.length) db.prepare(head + new Array((flat.length - i) / cols).fill(tuple).join(', ')).run(flat.slice(i));
  };
  // Foreign keys: every id written was read from this database moments ago, so the per-row checks
  // (a lookup in images for each member and exclusion, most of the write's time on a large
  // workspace) are skipped when nothing else committed since the read (data_version, checked
  // under the write lock); otherwise the write runs with them. The pragma only takes effect
  // outside a transaction.
  class Changed extends Error {}
  const write = (trusted: boolean) =>
    db.transaction(() => {
      db.prepare(`DELETE FROM dup_excluded`).run();
      db.prepare(`DELETE FROM dup_members`).run();
      db.prepare(`DELETE FROM dup_groups`).run();
      db.prepare(`DELETE FROM dup_pairs`).run();
      if (trusted && db.pragma('data_version', { simple: true }) !== version) throw new Changed();
      insert(`INSERT INTO dup_groups (id, method, key, size, listings, max_distance, representative) VALUES `, 7, gFlat);
      insert(`INSERT INTO dup_members (group_id, image_id, distance) VALUES `, 3, mFlat);
      insert(`INSERT OR REPLACE INTO dup_excluded (image_id, group_id, reason) VALUES `, 3, xFlat);
      insert(`INSERT OR IGNORE INTO dup_pairs (a, b, distance) VALUES `, 3, pFlat);
      db.prepare(`INSERT INTO meta (key, value) VALUES ('dedup.last', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
        JSON.stringify({ method: opts.method, maxDistance: opts.maxDistance, policy: opts.policy, at: Date.now() }),
      );
    })();
  // and a page cache that holds what the write touches (SQLite's default is 2 MB), for this write only
  const cacheSize = db.pragma('cache_size', { simple: true }) as number;
  const fk = db.pragma('foreign_keys', { simple: true }) === 1;
  db.pragma(`cache_size = ${Math.min(cacheSize, -WRITE_CACHE_KIB)}`);
  try {
    let done = false;
    if (fk && !db.inTransaction) {
      db.pragma('foreign_keys = OFF');
      try {
        write(true);
        done = true;
      } catch (e) {
        if (!(e instanceof Changed)) throw e;
      } finally {
        db.pragma('foreign_keys = ON');
      }
    }
    if (!done) write(false);
  } finally {
    db.pragma(`cache_size = ${cacheSize}`);
  }
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
