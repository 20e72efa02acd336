/**
 * Perturbation benchmark for deduplication: from distinct source images, make perturbed copies
 * with sharp and measure, per method (exact hash; pHash within a distance) and per kind of
 * perturbation, the recall of true duplicate pairs (source, copy) and the false merges between
 * distinct sources.
 *
 * A pair counts as recalled when the source and its copy end up in the same group (what dedup
 * acts on). False merges: the number of distinct source images whose group (through any of its
 * images, copies included) also holds an image of another source.
 */
import { mulberry32 } from '../util/random.ts';
import sharp from 'sharp';
import { hashImage, type ImageHashes } from './exact-hash.ts';
import { exactGroups, nearGroups } from './near-index.ts';
import { hamming, type PhashVariant } from './phash.ts';

export const PERTURBATION_KINDS = ['reencode', 'resize', 'png', 'png-jpeg', 'crop', 'brightness'] as const;
export type PerturbationKind = (typeof PERTURBATION_KINDS)[number];

export interface KindResult {
  kind: PerturbationKind;
  pairs: number;
  exactRecall: number;
  nearRecall: number;
  /** Median / max pHash distance between source and copy. */
  medianDistance: number;
  maxDistance: number;
}

export interface Report {
  maxDistance: number;
  seed: number;
  sources: number;
  images: number;
  kinds: KindResult[];
  overall: { pairs: number; exactRecall: number; nearRecall: number };
  falseMerges: { exact: number; near: number };
  /** Smallest pHash distance between two different sources (how much margin D has). */
  minCrossDistance: number;
  table: string;
}

/** Deterministic PRNG (mulberry32). */
export const makeRng = mulberry32;

/** One perturbed copy of `src` (encoded bytes). */
export async function perturb(src: Buffer, kind: PerturbationKind, rng: () => number): Promise<Buffer> {
  const uni = (a: number, b: number) => a + (b - a) * rng();
  const img = sharp(src, { failOn: 'warning' });
  const meta = await img.metadata();
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!w || !h) throw new Error('perturb: source has no dimensions');
  switch (kind) {
    case 'reencode':
      return img.jpeg({ quality: Math.round(uni(50, 95)) }).toBuffer();
    case 'resize': {
      let s = uni(0.5, 1.5);
      if (Math.abs(s - 1) < 0.05) s = s < 1 ? 0.9 : 1.1;
      return img
        .resize(Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s)), { fit: 'fill' })
        .jpeg({ quality: 90 })
        .toBuffer();
    }
    case 'png':
      return img.png().toBuffer();
    case 'png-jpeg': {
      const png = await img.png().toBuffer();
      return sharp(png).jpeg({ quality: Math.round(uni(75, 95)) }).toBuffer();
    }
    case 'crop': {
      const f = () => uni(0.02, 0.05);
      const left = Math.round(w * f());
      const right = Math.round(w * f());
      const top = Math.round(h * f());
      const bottom = Math.round(h * f());
      return img
        .extract({ left, top, width: w - left - right, height: h - top - bottom })
        .jpeg({ quality: 90 })
        .toBuffer();
    }
    case 'brightness': {
      const d = uni(0.05, 0.1) * (rng() < 0.5 ? -1 : 1);
      return img.modulate({ brightness: 1 + d }).jpeg({ quality: 90 }).toBuffer();
    }
  }
}

interface Entry {
  id: number;
  source: number;
  kind: PerturbationKind | 'original';
  hashes: ImageHashes;
}

function falseMergeCount(groups: number[][], entries: Entry[]): number {
  const bad = new Set<number>();
  for (const g of groups) {
    const srcs = new Set(g.map((id) => entries[id]!.source));
    if (srcs.size > 1) for (const s of srcs) bad.add(s);
  }
  return bad.size;
}

function groupOf(groups: number[][], n: number): Int32Array {
  const g = new Int32Array(n).fill(-1);
  groups.forEach((ids, gi) => ids.forEach((id) => (g[id] = gi)));
  return g;
}

const pct = (x: number) => (Number.isNaN(x) ? '   -  ' : `${(100 * x).toFixed(1).padStart(5)}%`);

export function formatReport(r: Omit<Report, 'table'>): string {
  const lines = [
    `dedup benchmark: ${r.sources} sources, ${r.images} images, pHash distance <= ${r.maxDistance}, seed ${r.seed}`,
    'kind        pairs  exact recall  near recall  median d  max d',
  ];
  for (const k of r.kinds) {
    lines.push(
      `${k.kind.padEnd(10)} ${String(k.pairs).padStart(6)}  ${pct(k.exactRecall).padStart(12)}  ${pct(k.nearRecall).padStart(11)}  ${String(k.medianDistance).padStart(8)}  ${String(k.maxDistance).padStart(5)}`,
    );
  }
  lines.push(
    `${'all'.padEnd(10)} ${String(r.overall.pairs).padStart(6)}  ${pct(r.overall.exactRecall).padStart(12)}  ${pct(r.overall.nearRecall).padStart(11)}`,
    `false merges (distinct sources grouped with another): exact ${r.falseMerges.exact}, near ${r.falseMerges.near}`,
    `closest pair of different sources: pHash distance ${r.minCrossDistance}`,
  );
  return lines.join('\n');
}

export async function runDedupBenchmark(
  sources: Buffer[],
  opts: { maxDistance: number; seed: number; kinds?: readonly PerturbationKind[]; phashVariant?: PhashVariant; concurrency?: number },
): Promise<Report> {
  const kinds = opts.kinds ?? PERTURBATION_KINDS;
  const rng = makeRng(opts.seed);
  const concurrency = opts.concurrency ?? 4;
  // Draw all random numbers up front (deterministic regardless of async completion order).
  const jobs: Array<{ source: number; kind: PerturbationKind | 'original'; seed: number }> = [];
  sources.forEach((_, s) => {
    jobs.push({ source: s, kind: 'original', seed: 0 });
    for (const k of kinds) jobs.push({ source: s, kind: k, seed: Math.floor(rng() * 2 ** 32) });
  });
  const entries: Entry[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const id = next++;
      if (id >= jobs.length) return;
      const j = jobs[id]!;
      const src = sources[j.source]!;
      const bytes = j.kind === 'original' ? src : await perturb(src, j.kind, makeRng(j.seed));
      entries[id] = { id, source: j.source, kind: j.kind, hashes: await hashImage(bytes, { phashVariant: opts.phashVariant }) };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));

  const exact = exactGroups(entries.map((e) => ({ id: e.id, exact: e.hashes.exact })));
  const near = nearGroups(
    entries.map((e) => ({ id: e.id, phash: e.hashes.phash })),
    opts.maxDistance,
  );
  const gExact = groupOf(exact, entries.length);
  const gNear = groupOf(near, entries.length);
  const originals = new Map<number, Entry>();
  for (const e of entries) if (e.kind === 'original') originals.set(e.source, e);

  const kindResults: KindResult[] = [];
  let tot = 0;
  let totE = 0;
  let totN = 0;
  for (const k of kinds) {
    let pairs = 0;
    let e = 0;
    let nr = 0;
    const ds: number[] = [];
    for (const c of entries) {
      if (c.kind !== k) continue;
      const o = originals.get(c.source)!;
      pairs++;
      if (gExact[o.id]! >= 0 && gExact[o.id] === gExact[c.id]) e++;
      if (gNear[o.id]! >= 0 && gNear[o.id] === gNear[c.id]) nr++;
      ds.push(hamming(o.hashes.phash, c.hashes.phash));
    }
    ds.sort((a, b) => a - b);
    kindResults.push({
      kind: k,
      pairs,
      exactRecall: pairs ? e / pairs : NaN,
      nearRecall: pairs ? nr / pairs : NaN,
      medianDistance: ds.length ? ds[Math.floor((ds.length - 1) / 2)]! : NaN,
      maxDistance: ds.length ? ds[ds.length - 1]! : NaN,
    });
    tot += pairs;
    totE += e;
    totN += nr;
  }
  let minCross = 64;
  const origs = [...originals.values()];
  for (let i = 0; i < origs.length; i++)
    for (let j = i + 1; j < origs.length; j++) minCross = Math.min(minCross, hamming(origs[i]!.hashes.phash, origs[j]!.hashes.phash));

  const base = {
    maxDistance: opts.maxDistance,
    seed: opts.seed,
    sources: sources.length,
    images: entries.length,
    kinds: kindResults,
    overall: { pairs: tot, exactRecall: tot ? totE / tot : NaN, nearRecall: tot ? totN / tot : NaN },
    falseMerges: { exact: falseMergeCount(exact, entries), near: falseMergeCount(near, entries) },
    minCrossDistance: minCross,
  };
  return { ...base, table: formatReport(base) };
}
