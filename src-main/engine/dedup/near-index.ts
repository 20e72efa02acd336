/**
 * Exact and near-duplicate grouping without comparing all pairs.
 *
 * Near duplicates: multi-index hashing over the 64-bit pHash. The hash is split into 4 chunks of
 * 16 bits. Generalised pigeonhole: if chunk c is given a radius r_c and sum(r_c + 1) >= D + 1,
 * two hashes within Hamming distance D agree within r_c bits on at least one chunk c. (With
 * r_c = 0 and D + 1 chunks this is the plain "one chunk matches exactly" rule; with 16-bit chunks
 * exact-match buckets hold N / 65536 items, where 6-bit chunks would hold N / 64 and blow up.)
 * For D = 10 the radii are (2, 2, 2, 1).
 *
 * Each chunk gets a counting-sorted table (bucket = chunk value) holding copies of the hashes, so
 * comparing two buckets is a sequential scan. For every non-empty bucket k and every mask m with
 * popcount(m) <= r_c, the pairs of bucket k x bucket k^m are verified with the full 64-bit Hamming
 * distance; verified pairs are merged with union-find; connected components of size >= 2 are
 * returned. A pair found through several chunks is merged twice, which is harmless.
 *
 * Blow-up guards:
 * - identical hashes are collapsed first (a thousand copies of a blank placeholder image are one
 *   entry), so they cost nothing;
 * - a bucket pair whose product of sizes exceeds `maxBucketPairs` (default 2^24, i.e. two
 *   buckets of 4096 distinct hashes) is skipped for that chunk and counted in `stats.skippedPairs`
 *   (a warning is printed unless `quiet`). Such pairs usually still meet through another chunk;
 *   recall is exact only when `stats.skippedPairs === 0`. Random hashes never come near it
 *   (1M random hashes fill 16-bit buckets with ~15 each).
 * - small inputs (fewer than `BRUTE_FORCE_MAX` distinct hashes) or D > 20 use all pairs.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { phashToHalves, popcount32, type PHash } from './phash.ts';
import { kernelModule, wasm, type WasmMemory, type WasmModule } from './near-kernel.ts';

/**
 * Default near-duplicate distance for the 64-bit pHash, chosen from the perturbation benchmark
 * (bench-set.ts, 300 real listing photos): at 10, every re-encode, resize (0.5-1.5x), PNG/JPEG
 * change and +-5-10% brightness shift is found, 87% of 2-5% crops (71% at 8), and no distinct
 * photos are merged. Caveat measured on all 2,221 shared photos (all pairs): at 10 about eight
 * groups join different cars with similar composition, at 8 none do (besides true duplicates);
 * pass 8 where precision matters more than crop recall. Distances are even (see phash.ts).
 */
export const DEFAULT_MAX_DISTANCE = 10;

export const BRUTE_FORCE_MAX = 2000;

export interface NearGroupStats {
  distinctHashes: number;
  comparisons: number;
  verifiedPairs: number;
  skippedPairs: number;
  method: 'brute-force' | 'multi-index';
}

export interface NearGroupOptions {
  maxBucketPairs?: number;
  quiet?: boolean;
  /** 1 or 2 (default: 2 when the machine has two cores); used only for large inputs. */
  threads?: number;
  /** Filled in with counters when given. */
  stats?: Partial<NearGroupStats>;
  /** The scan: 'wasm' (default where WebAssembly runs) or 'js' (the fallback; kept to compare). */
  kernel?: 'wasm' | 'js';
}

class UnionFind {
  readonly parent: Int32Array;
  constructor(n: number, parent = new Int32Array(n)) {
    this.parent = parent;
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  find(x: number): number {
    const p = this.parent;
    while (p[x] !== x) {
      p[x] = p[p[x]!]!;
      x = p[x]!;
    }
    return x;
  }
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
    return true;
  }
}

/** Radii per 16-bit chunk with sum(r + 1) = D + 1 (r = -1: chunk unused). */
export function chunkRadii(maxDistance: number): number[] {
  const total = maxDistance + 1;
  const base = Math.floor(total / 4);
  return [0, 1, 2, 3].map((c) => base - 1 + (c < total % 4 ? 1 : 0));
}

function masksUpTo(r: number): number[] {
  const out: number[] = [];
  for (let m = 1; m < 1 << 16; m++) if (popcount32(m) <= r) out.push(m);
  return out;
}

function chunkKey(hi: number, lo: number, c: number): number {
  switch (c) {
    case 0:
      return hi >>> 16;
    case 1:
      return hi & 0xffff;
    case 2:
      return lo >>> 16;
    default:
      return lo & 0xffff;
  }
}

function sortedGroups(groups: Map<number, number[]>): number[][] {
  const out: number[][] = [];
  for (const g of groups.values()) {
    if (g.length >= 2) out.push(g.sort((a, b) => a - b));
  }
  out.sort((a, b) => a[0]! - b[0]!);
  return out;
}

interface ChunkTable {
  sH: Int32Array;
  sL: Int32Array;
  sIdx: Int32Array;
  off: Int32Array;
  nonEmpty: Int32Array;
  masks: Int32Array;
}

type Kernel = (
  t: ChunkTable,
  D: number,
  maxBucketPairs: number,
  parent: Int32Array,
  start: number,
  step: number,
  counters: Float64Array,
) => void;

/**
 * The scan, as plain JavaScript source so the very same code runs on the main thread and in a
 * worker (which cannot import this TypeScript module). Processes the non-empty buckets
 * start, start + step, ...; merges verified pairs into the union-find array `parent`.
 */
const KERNEL_SRC = `
function pc(x) {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
function find(p, x) {
  while (p[x] !== x) { p[x] = p[p[x]]; x = p[x]; }
  return x;
}
function union(p, a, b) {
  a = find(p, a); b = find(p, b);
  if (a === b) return;
  if (a < b) p[b] = a; else p[a] = b;
}
return function scan(t, D, maxBucketPairs, parent, start, step, counters) {
  const sH = t.sH, sL = t.sL, sIdx = t.sIdx, off = t.off, nonEmpty = t.nonEmpty, masks = t.masks;
  const ne = nonEmpty.length, nm = masks.length;
  let comparisons = 0, verified = 0, skipped = 0;
  for (let e = start; e < ne; e += step) {
    const k = nonEmpty[e];
    const a0 = off[k], a1 = off[k + 1], na = a1 - a0;
    if (na > 1) {
      const pairs = (na * (na - 1)) / 2;
      if (pairs > maxBucketPairs) skipped += pairs;
      else {
        comparisons += pairs;
        for (let i = a0; i < a1; i++) {
          const hi = sH[i], lo = sL[i];
          for (let j = i + 1; j < a1; j++) {
            const d1 = pc(hi ^ sH[j]);
            if (d1 > D) continue;
            if (d1 + pc(lo ^ sL[j]) <= D) { verified++; union(parent, sIdx[i], sIdx[j]); }
          }
        }
      }
    }
    for (let mi = 0; mi < nm; mi++) {
      const k2 = k ^ masks[mi];
      if (k2 < k) continue;
      const b0 = off[k2], b1 = off[k2 + 1];
      if (b1 === b0) continue;
      const pairs = na * (b1 - b0);
      if (pairs > maxBucketPairs) { skipped += pairs; continue; }
      comparisons += pairs;
      for (let i = a0; i < a1; i++) {
        const hi = sH[i], lo = sL[i];
        for (let j = b0; j < b1; j++) {
          const d1 = pc(hi ^ sH[j]);
          if (d1 > D) continue;
          if (d1 + pc(lo ^ sL[j]) <= D) { verified++; union(parent, sIdx[i], sIdx[j]); }
        }
      }
    }
  }
  counters[0] += comparisons; counters[1] += verified; counters[2] += skipped;
};
`;

let kernelFn: Kernel | undefined;
function getKernel(): Kernel {
  kernelFn ??= new Function(KERNEL_SRC)() as Kernel;
  return kernelFn;
}

const WORKER_SRC = `
const { workerData } = require('node:worker_threads');
const scan = new Function(workerData.kernel)();
const { tables, D, maxBucketPairs, parent, counters, flag } = workerData;
Atomics.store(flag, 0, 1);
Atomics.notify(flag, 0);
try {
  for (let i = 0; i < parent.length; i++) parent[i] = i;
  const c = new Float64Array(3);
  for (const t of tables) scan(t, D, maxBucketPairs, parent, 1, 2, c);
  counters.set(c);
  Atomics.store(flag, 0, 2);
} catch (e) {
  Atomics.store(flag, 0, 3);
}
Atomics.notify(flag, 0);
`;

/** Inputs with at least this many distinct hashes are scanned by the main thread plus one worker. */
export const PARALLEL_MIN = 200_000;
const WORKER_START_TIMEOUT_MS = 10_000;

/**
 * Starts a worker on the odd buckets. `wait()` blocks (Atomics.wait, so nearGroups stays
 * synchronous) and returns null when the worker failed to start or crashed, in which case the
 * caller does that share itself.
 */
function runInWorker(tables: ChunkTable[], D: number, maxBucketPairs: number, n: number) {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const parent = new Int32Array(new SharedArrayBuffer(4 * n));
  const counters = new Float64Array(new SharedArrayBuffer(24));
  let worker: Worker | undefined;
  try {
    worker = new Worker(WORKER_SRC, {
      eval: true,
      workerData: { kernel: KERNEL_SRC, tables, D, maxBucketPairs, parent, counters, flag },
    });
    worker.unref();
  } catch {
    worker = undefined;
  }
  return {
    wait(): { parent: Int32Array; counters: Float64Array } | null {
      if (!worker) return null;
      if (Atomics.wait(flag, 0, 0, WORKER_START_TIMEOUT_MS) === 'timed-out' && Atomics.load(flag, 0) === 0) {
        void worker.terminate();
        return null;
      }
      while (Atomics.load(flag, 0) === 1) Atomics.wait(flag, 0, 1);
      void worker.terminate();
      return Atomics.load(flag, 0) === 2 ? { parent, counters } : null;
    },
  };
}

/**
 * Groups of ids whose pHashes are within `maxDistance` bits, transitively (connected components);
 * only groups of two or more, each sorted by id, groups ordered by their smallest id.
 */
export function nearGroups(
  items: ReadonlyArray<{ id: number; phash: PHash | bigint }>,
  maxDistance: number = DEFAULT_MAX_DISTANCE,
  opts: NearGroupOptions = {},
): number[][] {
  const m = items.length;
  const iHi = new Int32Array(m);
  const iLo = new Int32Array(m);
  const ids = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const [hi, lo] = phashToHalves(items[i]!.phash);
    iHi[i] = hi | 0;
    iLo[i] = lo | 0;
    ids[i] = items[i]!.id;
  }
  return nearGroupsOfHalves(ids, iHi, iLo, maxDistance, opts);
}

/**
 * nearGroups over hashes already split into 32-bit halves (`iHi[i]`, `iLo[i]` the hash of
 * `ids[i]`): what the grouping of a workspace calls, without a string per hash.
 */
export function nearGroupsOfHalves(
  ids: ArrayLike<number>,
  iHi: Int32Array | Uint32Array,
  iLo: Int32Array | Uint32Array,
  maxDistance: number = DEFAULT_MAX_DISTANCE,
  opts: NearGroupOptions = {},
): number[][] {
  if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > 64) {
    throw new Error(`nearGroups: maxDistance must be an integer in 0..64, got ${maxDistance}`);
  }
  const D = maxDistance;
  // Collapse identical hashes (open-addressing table over the two 32-bit halves).
  const m = ids.length;
  let cap = 1;
  while (cap < m * 2) cap <<= 1;
  const slots = new Int32Array(cap).fill(-1);
  const itemU = new Int32Array(m);
  const H0 = new Int32Array(m);
  const L0 = new Int32Array(m);
  let n = 0;
  for (let i = 0; i < m; i++) {
    const hi = iHi[i]! | 0;
    const lo = iLo[i]! | 0;
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    let s = h & (cap - 1);
    for (;;) {
      const u = slots[s]!;
      if (u < 0) {
        slots[s] = n;
        H0[n] = hi;
        L0[n] = lo;
        itemU[i] = n++;
        break;
      }
      if (H0[u] === hi && L0[u] === lo) {
        itemU[i] = u;
        break;
      }
      s = (s + 1) & (cap - 1);
    }
  }
  const H = H0.subarray(0, n);
  const L = L0.subarray(0, n);
  const uf = new UnionFind(n);
  let comparisons = 0;
  let verified = 0;
  let skipped = 0;
  const bruteForce = n <= BRUTE_FORCE_MAX || D > 20;

  if (D >= 64) {
    for (let i = 1; i < n; i++) uf.union(0, i);
  } else if (bruteForce) {
    for (let i = 0; i < n; i++) {
      const hi = H[i]!;
      const lo = L[i]!;
      for (let j = i + 1; j < n; j++) {
        if (popcount32(hi ^ H[j]!) + popcount32(lo ^ L[j]!) <= D) {
          verified++;
          uf.union(i, j);
        }
      }
      comparisons += n - i - 1;
    }
  } else {
    const maxBucketPairs = opts.maxBucketPairs ?? 1 << 24;
    const threads = Math.max(1, Math.min(2, opts.threads ?? Math.min(2, availableParallelism())));
    const useWorker = threads > 1 && n >= PARALLEL_MIN;
    const mod = opts.kernel === 'js' ? null : kernelModule();
    const c = (mod && scanWasm(mod, H, L, uf, D, maxBucketPairs, useWorker)) || scanJs(H, L, uf, D, maxBucketPairs, useWorker);
    comparisons += c[0]!;
    verified += c[1]!;
    skipped += c[2]!;
    if (skipped > 0 && !opts.quiet) {
      console.warn(`nearGroups: skipped ${skipped} comparisons in oversized buckets (maxBucketPairs ${maxBucketPairs}); some near pairs may be missed`);
    }
  }

  // Components of size >= 2 only.
  const rootOf = new Int32Array(m);
  const size = new Int32Array(n);
  for (let i = 0; i < m; i++) {
    const r = uf.find(itemU[i]!);
    rootOf[i] = r;
    size[r]++;
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < m; i++) {
    const r = rootOf[i]!;
    if (size[r]! < 2) continue;
    let g = groups.get(r);
    if (!g) groups.set(r, (g = []));
    g.push(ids[i]!);
  }
  if (opts.stats) {
    Object.assign(opts.stats, {
      distinctHashes: n,
      comparisons,
      verifiedPairs: verified,
      skippedPairs: skipped,
      method: bruteForce || D >= 64 ? 'brute-force' : 'multi-index',
    } satisfies NearGroupStats);
  }
  return sortedGroups(groups);
}

/** Where one chunk table lies in the kernel's memory (byte offsets; ne and nm are counts). */
interface WasmTable {
  h: number;
  idx: number;
  off: number;
  nonEmpty: number;
  ne: number;
  masks: number;
  nm: number;
}

type WasmScan = (h: number, idx: number, off: number, nonEmpty: number, ne: number, masks: number, nm: number, parent: number, D: number, maxPairs: number, start: number, step: number, cnt: number) => void;

/**
 * Non-empty buckets per kernel call: V8 runs a WebAssembly function's optimised code from its next
 * call on, so a table is scanned in many calls rather than one. Even, so that each slice starts
 * on an even bucket.
 */
const SLICE = 1024;

function scanSlices(scan: WasmScan, t: WasmTable, parent: number, D: number, maxPairs: number, start: number, step: number, cnt: number): void {
  for (let e0 = 0; e0 < t.ne; e0 += SLICE) scan(t.h, t.idx, t.off, t.nonEmpty, Math.min(t.ne, e0 + SLICE), t.masks, t.nm, parent, D, maxPairs, e0 + start, step, cnt);
}

const WASM_WORKER_SRC = `
const SLICE = ${SLICE};
const { workerData } = require('node:worker_threads');
const { module, mem, tables, D, maxPairs, parent, n, cnt, flag } = workerData;
Atomics.store(flag, 0, 1);
Atomics.notify(flag, 0);
try {
  const scan = new WebAssembly.Instance(module, { env: { mem } }).exports.scan;
  const p = new Int32Array(mem.buffer, parent, n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (const t of tables)
    for (let e0 = 0; e0 < t.ne; e0 += SLICE) scan(t.h, t.idx, t.off, t.nonEmpty, Math.min(t.ne, e0 + SLICE), t.masks, t.nm, parent, D, maxPairs, e0 + 1, 2, cnt);
  Atomics.store(flag, 0, 2);
} catch (e) {
  Atomics.store(flag, 0, 3);
}
Atomics.notify(flag, 0);
`;

/**
 * The multi-index scan in WebAssembly (near-kernel.wat): the chunk tables are built straight into
 * one shared memory, the main thread scans the even non-empty buckets and a worker the odd ones
 * (each into its own union-find array, merged into `uf` here). Returns the counters
 * [comparisons, verified, skipped], or null when the memory cannot be had (then the caller runs
 * the JavaScript scan).
 */
function scanWasm(mod: WasmModule, H: Int32Array, L: Int32Array, uf: UnionFind, D: number, maxBucketPairs: number, useWorker: boolean): Float64Array | null {
  const n = H.length;
  const radii = chunkRadii(D);
  const B = 1 << 16;
  const active = [0, 1, 2, 3].filter((c) => radii[c]! >= 0);
  const masksOf = active.map((c) => masksUpTo(radii[c]!));
  // layout (8-byte aligned): per table h, idx, off, nonEmpty, masks; then two parents, counters
  let top = 0;
  const take = (bytes: number) => {
    const at = top;
    top += Math.ceil(bytes / 8) * 8;
    return at;
  };
  const layout: WasmTable[] = active.map((_, t) => ({ h: take(8 * n), idx: take(4 * n), off: take(4 * (B + 1)), nonEmpty: take(4 * B), ne: 0, masks: take(4 * masksOf[t]!.length), nm: masksOf[t]!.length }));
  const parents = [take(4 * n), take(4 * n)];
  const cnts = [take(24), take(24)];
  if (top > 2 ** 31) return null;
  let mem: WasmMemory;
  try {
    const pages = Math.ceil(top / 65536);
    mem = new wasm!.Memory({ initial: pages, maximum: pages, shared: true });
  } catch {
    return null;
  }
  const buf = mem.buffer;
  const u32 = new Uint32Array(buf);
  const i32 = new Int32Array(buf);
  const keys = new Int32Array(n);
  active.forEach((c, t) => {
    const tb = layout[t]!;
    const off = new Int32Array(buf, tb.off, B + 1);
    for (let i = 0; i < n; i++) {
      const k = chunkKey(H[i]! >>> 0, L[i]! >>> 0, c);
      keys[i] = k;
      off[k + 1]++;
    }
    const nonEmpty = new Int32Array(buf, tb.nonEmpty, B);
    let ne = 0;
    for (let k = 0; k < B; k++) {
      if (off[k + 1]! > 0) nonEmpty[ne++] = k;
      off[k + 1] += off[k]!;
    }
    tb.ne = ne;
    const fill = off.slice(0, B);
    const h2 = tb.h >> 2;
    const ix = tb.idx >> 2;
    for (let i = 0; i < n; i++) {
      const p = fill[keys[i]!]!++;
      u32[h2 + 2 * p] = L[i]!; // little-endian i64: low half first
      u32[h2 + 2 * p + 1] = H[i]!;
      i32[ix + p] = i;
    }
    i32.set(masksOf[t]!, tb.masks >> 2);
  });
  const scan = new wasm!.Instance(mod, { env: { mem } }).exports.scan as WasmScan;
  const counters = new Float64Array(buf, cnts[0]!, 6);
  const parentOf = (k: number) => new Int32Array(buf, parents[k]!, n);
  const p0 = parentOf(0);
  for (let i = 0; i < n; i++) p0[i] = i;
  const runShare = (start: number, step: number) => {
    for (const t of layout) scanSlices(scan, t, parents[0]!, D, maxBucketPairs, start, step, cnts[0]!);
  };
  let other: ReturnType<typeof startWorker> | null = null;
  if (useWorker) other = startWorker(WASM_WORKER_SRC, { module: mod, mem, tables: layout, D, maxPairs: maxBucketPairs, parent: parents[1]!, n, cnt: cnts[1]! });
  runShare(0, useWorker ? 2 : 1);
  if (other) {
    if (other.wait()) {
      const p1 = parentOf(1);
      for (let i = 0; i < n; i++) if (p1[i] !== i) uf.union(i, p1[i]!);
      for (let k = 0; k < 3; k++) counters[k] += counters[3 + k]!;
    } else runShare(1, 2); // the worker could not run: do its share here
  }
  for (let i = 0; i < n; i++) if (p0[i] !== i) uf.union(i, p0[i]!);
  return Float64Array.of(counters[0]!, counters[1]!, counters[2]!);
}

/**
 * Starts a worker from `src` with `data` (plus the flag it reports through). `wait()` blocks
 * (Atomics.wait, so nearGroups stays synchronous) and says whether the worker ran to the end.
 */
function startWorker(src: string, data: Record<string, unknown>) {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  let worker: Worker | undefined;
  try {
    worker = new Worker(src, { eval: true, workerData: { ...data, flag } });
    worker.unref();
  } catch {
    worker = undefined;
  }
  return {
    wait(): boolean {
      if (!worker) return false;
      if (Atomics.wait(flag, 0, 0, WORKER_START_TIMEOUT_MS) === 'timed-out' && Atomics.load(flag, 0) === 0) {
        void worker.terminate();
        return false;
      }
      while (Atomics.load(flag, 0) === 1) Atomics.wait(flag, 0, 1);
      void worker.terminate();
      return Atomics.load(flag, 0) === 2;
    },
  };
}

/** The multi-index scan in JavaScript (where WebAssembly cannot run): counters [comparisons, verified, skipped]. */
function scanJs(H: Int32Array, L: Int32Array, uf: UnionFind, D: number, maxBucketPairs: number, useWorker: boolean): Float64Array {
  const n = H.length;
  let comparisons = 0;
  let verified = 0;
  let skipped = 0;
  const radii = chunkRadii(D);
  const B = 1 << 16;
  const active = [0, 1, 2, 3].filter((c) => radii[c]! >= 0);
  const sab = (bytes: number) => new SharedArrayBuffer(Math.max(4, bytes));
  const tables: ChunkTable[] = [];
  const keys = new Int32Array(n);
  for (const c of active) {
    // Counting sort by chunk value; hashes copied so bucket scans are sequential.
    const off = new Int32Array(sab(4 * (B + 1)));
    for (let i = 0; i < n; i++) {
      const k = chunkKey(H[i]! >>> 0, L[i]! >>> 0, c);
      keys[i] = k;
      off[k + 1]++;
    }
    const nonEmptyAll = new Int32Array(B);
    let ne = 0;
    for (let k = 0; k < B; k++) {
      if (off[k + 1]! > 0) nonEmptyAll[ne++] = k;
      off[k + 1] += off[k]!;
    }
    const nonEmpty = new Int32Array(sab(4 * ne));
    nonEmpty.set(nonEmptyAll.subarray(0, ne));
    const sH = new Int32Array(sab(4 * n));
    const sL = new Int32Array(sab(4 * n));
    const sIdx = new Int32Array(sab(4 * n));
    const fill = off.slice(0, B);
    // The kernel's early exit tests the first array's 32 bits: make it the half that does NOT
    // contain chunk c (random bits there exceed D far more often than in the half that holds the
    // near-matching chunk).
    const first = c < 2 ? L : H;
    const second = c < 2 ? H : L;
    for (let i = 0; i < n; i++) {
      const p = fill[keys[i]!]!++;
      sH[p] = first[i]!;
      sL[p] = second[i]!;
      sIdx[p] = i;
    }
    tables.push({ sH, sL, sIdx, off, nonEmpty, masks: Int32Array.from(masksUpTo(radii[c]!)) });
  }
  const kernel = getKernel();
  const run = (parent: Int32Array, start: number, step: number): Float64Array => {
    const counters = new Float64Array(3);
    for (const t of tables) kernel(t, D, maxBucketPairs, parent, start, step, counters);
    return counters;
  };
  const tally = (c: ArrayLike<number>) => {
    comparisons += c[0]!;
    verified += c[1]!;
    skipped += c[2]!;
  };
  if (!useWorker) {
    tally(run(uf.parent, 0, 1));
  } else {
    const other = runInWorker(tables, D, maxBucketPairs, n);
    tally(run(uf.parent, 0, 2));
    const res = other.wait();
    if (res) {
      tally(res.counters);
      for (let i = 0; i < n; i++) if (res.parent[i] !== i) uf.union(i, res.parent[i]!);
    } else {
      // The worker could not run: do its share here.
      tally(run(uf.parent, 1, 2));
    }
  }
  return Float64Array.of(comparisons, verified, skipped);
}

/** Groups of ids sharing the same exact hash (size >= 2), sorted as nearGroups' are. */
export function exactGroups(items: ReadonlyArray<{ id: number; exact: string }>): number[][] {
  const groups = new Map<string, number[]>();
  for (const it of items) {
    let g = groups.get(it.exact);
    if (!g) groups.set(it.exact, (g = []));
    g.push(it.id);
  }
  const out: number[][] = [];
  for (const g of groups.values()) if (g.length >= 2) out.push(g.sort((a, b) => a - b));
  out.sort((a, b) => a[0]! - b[0]!);
  return out;
}
