/**
 * Leader clustering over the near-pair graph, the "best copy" order it runs in, and the
 * exclusion decision of one group (policy, then the user's group override, then the user's
 * per-photo decisions). Pure functions: groups.ts feeds them from the workspace, summary.ts
 * re-applies the decision when the user changes one group.
 *
 * Why leaders: merging near pairs single-linkage lets similar-but-different photos chain into
 * one group (A like B, B like C, A nothing like C). Here nodes are visited best copy first; a node
 * joins the nearest leader already chosen whose group it is a verified near pair of in full
 * (complete linkage: every member within the distance of every other, the colour check passed)
 * and whose best copy its members are within the distance of; otherwise it becomes a leader
 * itself. So every member of a group is within the distance of the group's representative (its
 * leader's best copy) and of each other, and the pass is O(pairs) after one sort.
 */

/**
 * How good a copy is, as one comparable number: pixels first, then file bytes (at the same size
 * a sharper, less compressed copy holds more bytes). Larger is better. Bytes are capped at 2^24
 * so the sum stays an exact integer.
 */
export function copyQuality(width: number | null, height: number | null, bytes: number | null): number {
  const px = Math.max(0, width ?? 0) * Math.max(0, height ?? 0);
  return px * 2 ** 24 + Math.min(2 ** 24 - 1, Math.max(0, bytes ?? 0));
}

/** The best copy among ids: highest quality, then the lowest id (one pass). */
export function bestOf(ids: readonly number[], quality: (id: number) => number): number {
  let best = ids[0]!;
  let bestQ = quality(best);
  for (let i = 1; i < ids.length; i++) {
    const id = ids[i]!;
    const q = quality(id);
    if (q > bestQ || (q === bestQ && id < best)) {
      best = id;
      bestQ = q;
    }
  }
  return best;
}

/** Ids best copy first: higher quality, then the lower id. */
export function bestFirst(ids: readonly number[], quality: (id: number) => number): number[] {
  return ids.slice().sort((a, b) => quality(b) - quality(a) || a - b);
}

/**
 * One leader pass with complete-linkage admission. `order` lists the nodes in visiting order
 * (best copy first); `neighbours` holds each node's verified near pairs (other node, pHash
 * distance). A node may join a group only when it has a near pair within `maxDistance` with every
 * node already in the group (so no member is reached through a chain), and its members are
 * within `maxDistance` of the group's leader (`joinDistance`, default the pair's distance); among
 * such groups it joins the one whose leader is nearest, then the earliest. Otherwise it leads a
 * new group. O(pairs): a group qualifies when the node's neighbours in it number its size.
 * Returns each node's leader (a leader is its own).
 */
export function leaderPass(
  order: readonly number[],
  neighbours: ReadonlyMap<number, ReadonlyArray<readonly [number, number]>>,
  maxDistance: number,
  joinDistance?: (node: number, leader: number, pairDistance: number) => number,
): Map<number, number> {
  const rank = new Map<number, number>();
  order.forEach((n, i) => rank.set(n, i));
  const leaderOf = new Map<number, number>();
  const size = new Map<number, number>(); // leader -> nodes in its group
  for (const u of order) {
    const near = neighbours.get(u);
    if (!near) {
      // no near pair (an exact class on its own): a group of its own
      leaderOf.set(u, u);
      size.set(u, 1);
      continue;
    }
    // 1. u's near neighbours per group already formed, and its pair distance to each leader
    const inGroup = new Map<number, number>();
    const toLeader = new Map<number, number>();
    for (const [v, pairD] of near) {
      const l = leaderOf.get(v);
      if (pairD > maxDistance || l === undefined) continue;
      inGroup.set(l, (inGroup.get(l) ?? 0) + 1);
      if (v === l) toLeader.set(l, pairD);
    }
    // 2. the nearest leader of a group u is a near pair of in full
    let best = -1;
    let bestD = Infinity;
    let bestRank = Infinity;
    for (const [l, count] of inGroup) {
      if (count !== size.get(l)) continue;
      const pairD = toLeader.get(l)!;
      const d = joinDistance ? joinDistance(u, l, pairD) : pairD;
      if (d > maxDistance) continue;
      const r = rank.get(l)!;
      if (d < bestD || (d === bestD && r < bestRank)) {
        best = l;
        bestD = d;
        bestRank = r;
      }
    }
    // 3. join it, or lead a new group
    const l = best >= 0 ? best : u;
    leaderOf.set(u, l);
    size.set(l, (size.get(l) ?? 0) + 1);
  }
  return leaderOf;
}

export type DedupPolicyName = 'default' | 'original';
export type Decision = 'keep' | 'drop';

export const REASON = {
  spansListings: 'group spans listings',
  copyInListing: 'copy within one listing',
  exactRepeats: 'exact hash occurs more than once',
  groupDropped: 'dropped by the user',
  photoDropped: 'photo dropped by the user',
} as const;

export interface GroupForDecision {
  /** Member image ids. */
  ids: readonly number[];
  /** The kept copy under the default policy: the group's best copy. */
  representative: number;
  /** Listings the group's photos come from (an unlisted photo counts as one). */
  listings: number;
}

/**
 * Which members of one group are excluded from training, and why. The policy decides first
 * (default: a group spanning listings loses every copy, within one listing only the
 * representative stays; original: every image whose exact hash repeats), then the user's
 * override of the whole group, then the user's decision on single photos (most specific wins).
 */
export function groupExclusions(
  g: GroupForDecision,
  policy: DedupPolicyName,
  exactRepeats: (id: number) => boolean,
  override: Decision | null | undefined,
  decisions: ReadonlyMap<number, Decision>,
): Map<number, string> {
  const out = new Map<number, string>();
  // 1. the policy
  if (policy === 'default') {
    for (const id of g.ids) {
      if (g.listings > 1) out.set(id, REASON.spansListings);
      else if (id !== g.representative) out.set(id, REASON.copyInListing);
    }
  } else {
    for (const id of g.ids) if (exactRepeats(id)) out.set(id, REASON.exactRepeats);
  }
  // 2. the group override
  if (override === 'keep') out.clear();
  else if (override === 'drop') for (const id of g.ids) out.set(id, REASON.groupDropped);
  // 3. per-photo decisions
  for (const id of g.ids) {
    const d = decisions.get(id);
    if (d === 'keep') out.delete(id);
    else if (d === 'drop') out.set(id, REASON.photoDropped);
  }
  return out;
}
