/**
 * Dedup figures:
 * 1. hashing throughput of the dedup job over 10k stored 256px JPEGs using every core, against
 *    one image at a time on one thread (same hashing code, same run);
 * 2. the grouping (load hashes, exact classes, multi-index near search + colour check, leader
 *    groups, policy, write) on a workspace with 1M synthetic hash rows (target < 10 s), and the
 *    former single-linkage grouping of the same rows for the ratio;
 * 3. accuracy: recall per perturbation and false merges for exact, near (pHash only) and near
 *    verified by colour (what the job does), on real photos from ../shared/data when present plus
 *    generated ones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import { Engine } from '../src-main/engine/engine.ts';
import { hashRow, type HashRow } from '../src-main/engine/dedup/hash-row.ts';
import { rebuildGroups, verifiedNearPairs, THUMB_MAX_DISTANCE, type GroupingResult, type StepSeconds } from '../src-main/engine/dedup/groups.ts';
import { exactGroups, nearGroups, DEFAULT_MAX_DISTANCE } from '../src-main/engine/dedup/near-index.ts';
import { makeRng, perturb, PERTURBATION_KINDS, type PerturbationKind } from '../src-main/engine/dedup/bench-set.ts';
import { hamming } from '../src-main/engine/dedup/phash.ts';
import type { Benchmark } from './index.ts';

const SHARED = path.resolve(import.meta.dirname, '../../shared/data');

/** Real photos (when ../shared/data is here) and generated ones, as encoded bytes. */
async function sources(nReal: number, nGen: number): Promise<{ bufs: Buffer[]; real: number }> {
  const files: string[] = [];
  for (const sub of ['listing-photos/good', 'labelled-cars']) {
    const dir = path.join(SHARED, sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).sort()) if (/\.jpe?g$/i.test(f)) files.push(path.join(dir, f));
  }
  if (files.length === 0) console.log(`${SHARED} is absent: generated images only`);
  const rng = makeRng(11);
  const pick: string[] = [];
  const pool = files.slice();
  while (pick.length < nReal && pool.length) pick.push(pool.splice(Math.floor(rng() * pool.length), 1)[0]!);
  const bufs: Buffer[] = await Promise.all(pick.map((f) => fs.promises.readFile(f)));
  for (let i = 0; i < nGen; i++) bufs.push(await generated(i));
  return { bufs, real: pick.length };
}

async function generated(seed: number, width = 480, height = 360): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  const r = (k: number) => (((Math.sin(seed * 12.9898 + k * 78.233 + 0.5) * 43758.5453) % 1) + 1) % 1;
  const blobs = Array.from({ length: 6 }, (_, k) => ({ x: r(k) * width, y: r(k + 10) * height, s: 20 + r(k + 20) * 80, c: [r(k + 30), r(k + 40), r(k + 50)] }));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        let v = 50 + 130 * r(ch + 60) * (x / width) + 60 * r(ch + 70) * (y / height);
        for (const b of blobs) v += 120 * b.c[ch]! * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.s * b.s));
        raw[p + ch] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
}

/** What the scrape stores: short side 256, JPEG q90. */
const stored = (b: Buffer) => sharp(b).rotate().resize({ width: 256, height: 256, fit: 'outside', withoutEnlargement: true }).flatten({ background: '#fff' }).jpeg({ quality: 90 }).toBuffer();

async function pool<T>(n: number, conc: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

async function throughput(dir: string): Promise<Record<string, number>> {
  const N = 10_000;
  const { bufs } = await sources(100, 100 - 0);
  const small = await pool(bufs.length, 4, (i) => stored(bufs[i]!));
  const ws = Workspace.open(path.join(dir, 'tp'), { create: true });
  const ins = ws.db.prepare(`INSERT INTO images (key, url, state, width, height, bytes, updated_at) VALUES (?, ?, 'stored', 256, 256, ?, 0)`);
  const rows: Array<[string, string, number]> = [];
  await pool(N, 16, async (i) => {
    const url = `bench://${i}`;
    const key = ImageStore.keyFor(url);
    const b = small[i % small.length]!;
    await ws.store.write(key, b);
    rows[i] = [key, url, b.length];
  });
  ws.db.transaction(() => rows.forEach((r) => ins.run(...r)))();
  // reference: one image at a time (no overlap of libvips and the JS DCT), on 1000 of them
  sharp.concurrency(1);
  const REF = 1000;
  let t = performance.now();
  for (let i = 0; i < REF; i++) await hashRow(ws.store.pathFor(rows[i]![0]));
  const refPerS = REF / ((performance.now() - t) / 1000);
  ws.close();
  sharp.concurrency(0);
  // the dedup job (worker thread, all cores); its grouping step is timed separately and removed
  const engine = Engine.open(path.join(dir, 'tp'));
  t = performance.now();
  const job = engine.jobs.start('dedup', { method: 'exact' });
  const final = await engine.jobs.wait(job.id);
  const jobS = (performance.now() - t) / 1000;
  if (final.state !== 'done') throw new Error(`dedup job ${final.state}: ${final.error?.message}`);
  const t2 = performance.now();
  rebuildGroups(engine.ws.db, { method: 'exact', maxDistance: DEFAULT_MAX_DISTANCE, policy: 'default' });
  const groupS = (performance.now() - t2) / 1000;
  await engine.close();
  const perS = N / Math.max(0.001, jobS - groupS);
  console.log(
    `hashing ${N} stored 256px JPEGs on ${os.availableParallelism()} cores: ${perS.toFixed(0)} images/s in the dedup job (job ${jobS.toFixed(1)} s incl. ~${groupS.toFixed(1)} s grouping + worker start); ` +
      `one at a time: ${refPerS.toFixed(0)} images/s (${(perS / refPerS).toFixed(2)}x); target >= 500/s`,
  );
  return { images: N, cores: os.availableParallelism(), job_images_per_s: perS, single_images_per_s: refPerS, ratio_vs_single: perS / refPerS, job_s: jobS };
}

/**
 * N synthetic hash rows: 10% exact copies of an earlier image, 1% near copies (2-6 bits
 * flipped), the rest random; one listing per ten images. All rows share one colour thumbnail,
 * so every candidate pair passes the colour check (the worst case for the verify step).
 */
export function seedHashRows(db: Workspace['db'], N: number): void {
  const rng = makeRng(5);
  const rand32 = () => Math.floor(rng() * 2 ** 32);
  const hex = (x: number) => x.toString(16).padStart(8, '0');
  const thumb = randomBytes(192);
  const insI = db.prepare(`INSERT INTO images (id, key, url, state, width, height, bytes, updated_at, exact_hash, phash, thumb) VALUES (?, ?, ?, 'stored', 256, 192, 20000, 0, ?, ?, ?)`);
  const insL = db.prepare(`INSERT INTO listings (id, source, listing_id, url, scraped_at) VALUES (?, 'bench', ?, ?, 0)`);
  const insLI = db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, ?, ?)`);
  // 10% exact copies of an earlier image, 1% near copies (2-6 bits flipped), the rest random
  const exactOf: string[] = new Array(N + 1);
  const phOf: string[] = new Array(N + 1);
  db.transaction(() => {
    for (let l = 1; l <= N / 10; l++) insL.run(l, l, `bench://l/${l}`);
    for (let id = 1; id <= N; id++) {
      let ex: string;
      let ph: string;
      const u = rng();
      if (id > 100 && u < 0.1) {
        const src = 1 + Math.floor(rng() * (id - 1));
        ex = exactOf[src]!;
        ph = phOf[src]!;
      } else if (id > 100 && u < 0.11) {
        const src = 1 + Math.floor(rng() * (id - 1));
        let hi = parseInt(phOf[src]!.slice(0, 8), 16);
        let lo = parseInt(phOf[src]!.slice(8), 16);
        const flips = 2 + Math.floor(rng() * 5);
        for (let k = 0; k < flips; k++) {
          const b = Math.floor(rng() * 64);
          if (b < 32) hi = (hi ^ (1 << b)) >>> 0;
          else lo = (lo ^ (1 << (b - 32))) >>> 0;
        }
        ex = randomBytes(32).toString('hex');
        ph = hex(hi) + hex(lo);
      } else {
        ex = randomBytes(32).toString('hex');
        ph = hex(rand32()) + hex(rand32());
      }
      exactOf[id] = ex;
      phOf[id] = ph;
      insI.run(id, `k${id}`, `bench://i/${id}`, ex, ph, thumb);
      insLI.run(1 + ((id - 1) % (N / 10)), Math.floor((id - 1) / (N / 10)), id);
    }
  })();
}

const STEP_NAMES: Record<keyof StepSeconds, string> = {
  load: 'load',
  exact: 'exact',
  search: 'near search',
  verify: 'verify',
  group: 'groups',
  policy: 'policy',
  write: 'write',
};

async function grouping(dir: string): Promise<Record<string, number>> {
  const N = 1_000_000;
  const ws = Workspace.open(path.join(dir, 'g1m'), { create: true });
  const db = ws.db;
  let t = performance.now();
  seedHashRows(db, N);
  const seedS = (performance.now() - t) / 1000;
  t = performance.now();
  const near = rebuildGroups(db, { method: 'near', maxDistance: DEFAULT_MAX_DISTANCE, policy: 'default' });
  const nearS = (performance.now() - t) / 1000;
  // the former single-linkage grouping on the same rows, for the ratio
  t = performance.now();
  const single = rebuildGroups(db, { method: 'near', maxDistance: DEFAULT_MAX_DISTANCE, policy: 'default', linkage: 'single' });
  const singleS = (performance.now() - t) / 1000;
  t = performance.now();
  const exact = rebuildGroups(db, { method: 'exact', maxDistance: DEFAULT_MAX_DISTANCE, policy: 'original' });
  const exactS = (performance.now() - t) / 1000;
  ws.close();
  const steps = (r: GroupingResult) =>
    (Object.keys(r.seconds) as Array<keyof StepSeconds>).map((k) => `${STEP_NAMES[k]} ${r.seconds[k].toFixed(2)}`).join(', ');
  console.log(
    `grouping ${N.toLocaleString('en-US')} hash rows (seeded in ${seedS.toFixed(1)} s): near <= ${DEFAULT_MAX_DISTANCE} (leader) ${nearS.toFixed(2)} s ` +
      `(${steps(near)}; ${near.groups} groups, ${near.excluded} excluded, ${near.chained.groups} chained); ` +
      `single linkage ${singleS.toFixed(2)} s (${steps(single)}; ${single.groups} groups, ${single.chained.groups} chained; leader/single ${(nearS / singleS).toFixed(2)}x); ` +
      `exact ${exactS.toFixed(2)} s (${exact.groups} groups); target < 10 s`,
  );
  return {
    rows: N,
    near_s: nearS,
    ...Object.fromEntries(Object.entries(near.seconds).map(([k, v]) => [`near_${k}_s`, v])),
    single_linkage_s: singleS,
    leader_vs_single: nearS / singleS,
    exact_s: exactS,
    near_groups: near.groups,
    single_linkage_groups: single.groups,
    single_linkage_chained: single.chained.groups,
    exact_groups: exact.groups,
    near_candidates: near.candidatePairs,
  };
}

interface Entry {
  id: number;
  source: number;
  kind: PerturbationKind | 'original';
  h: HashRow;
}

async function accuracy(): Promise<Record<string, unknown>> {
  const all = await sources(300, 60);
  // The shared photos hold a few true duplicates (the same photo in two listings): keep one
  // source per stored exact hash so that "false merges" counts distinct photos only.
  const seen = new Set<string>();
  const srcHashes = await pool(all.bufs.length, 6, async (i) => (await hashRow(await stored(all.bufs[i]!))).exact);
  const bufs: Buffer[] = [];
  let real = 0;
  let droppedSources = 0;
  srcHashes.forEach((h, i) => {
    if (seen.has(h)) return void droppedSources++;
    seen.add(h);
    bufs.push(all.bufs[i]!);
    if (i < all.real) real++;
  });
  if (droppedSources) console.log(`${droppedSources} source photos dropped as exact duplicates of another source`);
  const kinds = PERTURBATION_KINDS;
  const rng = makeRng(2024);
  const jobs: Array<{ source: number; kind: PerturbationKind | 'original'; seed: number }> = [];
  bufs.forEach((_, s) => {
    jobs.push({ source: s, kind: 'original', seed: 0 });
    for (const k of kinds) jobs.push({ source: s, kind: k, seed: Math.floor(rng() * 2 ** 32) });
  });
  // perturb the full-size photo, then store it as the scrape does (256px JPEG), then hash
  const entries = await pool(jobs.length, 6, async (id) => {
    const j = jobs[id]!;
    const src = bufs[j.source]!;
    const bytes = j.kind === 'original' ? src : await perturb(src, j.kind, makeRng(j.seed));
    return { id, source: j.source, kind: j.kind, h: await hashRow(await stored(bytes)) } as Entry;
  });
  const D = DEFAULT_MAX_DISTANCE;
  const gExact = exactGroups(entries.map((e) => ({ id: e.id, exact: e.h.exact })));
  const gNear = nearGroups(
    entries.map((e) => ({ id: e.id, phash: e.h.phash })),
    D,
    { quiet: true },
  );
  // what the job does: one representative per exact hash, candidate pairs verified by colour
  const reps = new Map<string, Entry>();
  for (const e of entries) if (!reps.has(e.h.exact)) reps.set(e.h.exact, e);
  const { pairs } = verifiedNearPairs((id) => entries[id]!.h.thumb, [...reps.values()].map((e) => ({ id: e.id, phash: e.h.phash })), D, THUMB_MAX_DISTANCE);
  const parent = entries.map((_, i) => i);
  const find = (x: number): number => (parent[x] === x ? x : (parent[x] = find(parent[x]!)));
  for (const e of entries) parent[find(e.id)] = find(reps.get(e.h.exact)!.id);
  for (const p of pairs) parent[find(p.a)] = find(p.b);
  const gVer = new Map<number, number[]>();
  for (const e of entries) {
    const r = find(e.id);
    if (!gVer.has(r)) gVer.set(r, []);
    gVer.get(r)!.push(e.id);
  }
  const verified = [...gVer.values()].filter((g) => g.length > 1);

  const groupOf = (groups: number[][]) => {
    const g = new Int32Array(entries.length).fill(-1);
    groups.forEach((ids, gi) => ids.forEach((id) => (g[id] = gi)));
    return g;
  };
  const falseMerges = (groups: number[][], realOnly: boolean) => {
    const bad = new Set<number>();
    for (const g of groups) {
      const srcs = new Set(g.map((id) => entries[id]!.source));
      if (srcs.size > 1) for (const s of srcs) if (!realOnly || s < real) bad.add(s);
    }
    return bad.size;
  };
  const methods = { exact: groupOf(gExact), near: groupOf(gNear), verified: groupOf(verified) } as const;
  const orig = new Map<number, Entry>();
  for (const e of entries) if (e.kind === 'original') orig.set(e.source, e);
  const rows: Array<Record<string, number | string>> = [];
  const lines = [
    `dedup accuracy: ${bufs.length} sources (${real} real photos, ${bufs.length - real} generated), ${entries.length} images, pHash <= ${D}, colour check <= ${THUMB_MAX_DISTANCE}`,
    'kind        pairs   exact   near (pHash)   near+colour   median d  max d',
  ];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  for (const k of kinds) {
    const cs = entries.filter((e) => e.kind === k);
    const rec = (g: Int32Array) => cs.filter((c) => g[c.id]! >= 0 && g[c.id] === g[orig.get(c.source)!.id]).length / cs.length;
    const ds = cs.map((c) => hamming(c.h.phash, orig.get(c.source)!.h.phash)).sort((a, b) => a - b);
    const r = { kind: k, pairs: cs.length, exact: rec(methods.exact), near: rec(methods.near), verified: rec(methods.verified), medianD: ds[Math.floor((ds.length - 1) / 2)]!, maxD: ds[ds.length - 1]! };
    rows.push(r);
    lines.push(
      `${k.padEnd(10)} ${String(r.pairs).padStart(6)}  ${pct(r.exact).padStart(6)}   ${pct(r.near).padStart(12)}   ${pct(r.verified).padStart(11)}   ${String(r.medianD).padStart(8)}  ${String(r.maxD).padStart(5)}`,
    );
  }
  const fm = {
    exact: falseMerges(gExact, false),
    near: falseMerges(gNear, false),
    verified: falseMerges(verified, false),
    exactReal: falseMerges(gExact, true),
    nearReal: falseMerges(gNear, true),
    verifiedReal: falseMerges(verified, true),
  };
  lines.push(
    `false merges (distinct sources grouped with another): exact ${fm.exact}, near (pHash) ${fm.near}, near+colour ${fm.verified}; ` +
      `of them real photos: ${fm.exactReal}, ${fm.nearReal}, ${fm.verifiedReal}`,
  );
  console.log(lines.join('\n'));
  return { sources: bufs.length, real, droppedSources, kinds: rows, falseMerges: fm };
}

export const dedupBench: Benchmark = {
  name: 'dedup',
  description: 'dedup hashing throughput (10k stored JPEGs, all cores vs one at a time), grouping 1M hash rows, and accuracy per perturbation (exact vs near vs near+colour)',
  async run() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-bench-dedup-'));
    try {
      // BENCH_DEDUP_PART=grouping (or throughput, accuracy; comma-separated) runs only those parts
      const parts = (process.env.BENCH_DEDUP_PART ?? 'throughput,grouping,accuracy').split(',');
      const out: Record<string, unknown> = {};
      if (parts.includes('throughput')) out.throughput = await throughput(dir);
      if (parts.includes('grouping')) out.grouping = await grouping(dir);
      if (parts.includes('accuracy')) out.accuracy = await accuracy();
      return out;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
