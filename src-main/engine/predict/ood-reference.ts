// A heads run's distance reference (what trust.ts scores a photo's 'ood' distance against): a
// seeded sample of the run's training-split cached features, L2-normalised, and the 99th
// percentile of the test split's nearest distances to it, in runs/<id>/ood-reference.{f32,json}.
//
// Building one reads thousands of cached feature rows and computes hundreds of nearest distances
// over them (seconds on a large workspace), so the engine never does it on its main thread:
// trust.ts ensureOodReference hands it to the reference worker (ood-worker.ts), which calls
// checkOrBuildReference here. The functions here run on whichever thread calls them.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { dimOf, EXTRACTORS, openCache, type ExtractorName } from '../filter/features.ts';
import { splitRows } from '../train/labels.ts';
import { trainingSet } from '../train/dataset.ts';
import { runExtractor, runSplit, runTestFraction, type RunConfigFile } from '../train/trainer.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import { mulberry32 } from '../util/random.ts';

export const OOD_FILES = { data: 'ood-reference.f32', meta: 'ood-reference.json' } as const;
/** Training rows kept in a reference at most (a seeded sample). */
export const OOD_MAX_ROWS = 4096;
/** Test rows whose nearest distances set the threshold, at most. */
const OOD_MAX_QUERIES = 400;
/** The share of test photos the threshold keeps within. */
const OOD_QUANTILE = 0.99;

export interface OodReferenceMeta {
  version: 1;
  extractor: string;
  dim: number;
  rows: number;
  /** Training rows the sample was drawn from, and the feature cache's size then (a change rebuilds it). */
  trainRows: number;
  cacheRows: number;
  /** The run's config.json createdAt (a new run in the same folder rebuilds it). */
  runCreatedAt: string;
  /** 99th percentile of the test split's nearest-training distances (leave-one-out on the sample when the split has no cached test rows). */
  threshold: number;
  testRows: number;
}

export interface OodReference {
  meta: OodReferenceMeta;
  /** rows x dim, each row L2-normalised. */
  data: Float32Array;
}

export type OodLog = (level: 'info' | 'warn', message: string) => void;

/** Rows scaled to unit length in place (a zero row stays zero). */
export function normaliseRows(x: Float32Array, dim: number): Float32Array {
  for (let o = 0; o < x.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
    const k = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) x[o + j] *= k;
  }
  return x;
}

/** 1 - the largest cosine between unit row `q` (at offset qo) and the reference rows (skipping row `skip`). */
export function nearestDistance(ref: Float32Array, rows: number, dim: number, q: Float32Array, qo: number, skip = -1): number {
  let best = -Infinity;
  for (let r = 0; r < rows; r++) {
    if (r === skip) continue;
    const o = r * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) s += ref[o + j] * q[qo + j];
    if (s > best) best = s;
  }
  return best === -Infinity ? 1 : Math.max(0, 1 - best);
}

function quantile(values: number[], q: number): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)];
}

/** A seeded sample of k of the items (all when there are fewer), in their order. */
function sample<T>(items: readonly T[], k: number, seed: number): T[] {
  if (items.length <= k) return [...items];
  const rnd = mulberry32(seed);
  const idx = items.map((_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx
    .slice(0, k)
    .sort((a, b) => a - b)
    .map((i) => items[i]);
}

/** The reference's meta when both files are there and agree in size (reads only the JSON), else null. */
export function readOodMeta(runDir: string): OodReferenceMeta | null {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(runDir, OOD_FILES.meta), 'utf8')) as OodReferenceMeta;
    const size = fs.statSync(path.join(runDir, OOD_FILES.data)).size;
    return meta.version === 1 && size === meta.rows * meta.dim * 4 ? meta : null;
  } catch {
    return null;
  }
}

export function readOodReference(runDir: string): OodReference | null {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(runDir, OOD_FILES.meta), 'utf8')) as OodReferenceMeta;
    const buf = fs.readFileSync(path.join(runDir, OOD_FILES.data));
    if (meta.version !== 1 || buf.length !== meta.rows * meta.dim * 4) return null;
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    return { meta, data };
  } catch {
    return null;
  }
}

/** Whether a run gets a reference at all: a heads run on an extractor this CarStudio knows. */
export function referenceExtractor(cfg: RunConfigFile): ExtractorName | null {
  if (cfg.config.mode !== 'heads') return null;
  const extractor = runExtractor(cfg);
  return (EXTRACTORS as readonly string[]).includes(extractor) ? (extractor as ExtractorName) : null;
}

/**
 * The run's reference, built from the workspace's feature cache (and written to the run folder)
 * when missing or stale; null for a finetune run or when no training row has cached features.
 * `built` says whether it was built now. Heavy on a large workspace: the engine calls this in the
 * reference worker only (trust.ts ensureOodReference).
 */
export async function checkOrBuildReference(ws: Workspace, runDir: string, cfg: RunConfigFile, log?: OodLog): Promise<{ ref: OodReference | null; built: boolean }> {
  const extractor = referenceExtractor(cfg);
  if (!extractor) return { ref: null, built: false };
  const cache = await openCache(ws, extractor);
  try {
    const have = readOodReference(runDir);
    if (have && have.meta.extractor === extractor && have.meta.cacheRows === cache.size && have.meta.runCreatedAt === cfg.createdAt) return { ref: have, built: false };
    const built = await buildReference(ws, cfg, extractor, cache);
    if (!built) return { ref: null, built: true };
    await writeReference(runDir, built);
    log?.('info', `distance reference of run ${path.basename(runDir)}: ${built.meta.rows} of ${built.meta.trainRows} training photos, 99% of ${built.meta.testRows} test photos within ${built.meta.threshold.toFixed(3)}`);
    return { ref: built, built: true };
  } finally {
    await cache.close();
  }
}

/** The reference's steps: the run's split of today's training set, a seeded sample of its cached train rows, the test rows' nearest distances. */
async function buildReference(ws: Workspace, cfg: RunConfigFile, extractor: ExtractorName, cache: Awaited<ReturnType<typeof openCache>>): Promise<OodReference | null> {
  const dim = dimOf(extractor);
  const { rows } = trainingSet(ws.db);
  const split = splitRows(rows, runSplit(cfg), runTestFraction(cfg));
  const trainIds = split.train.map((r) => r.imageId).filter((id) => cache.has(id));
  if (trainIds.length === 0) return null;
  const picked = sample(trainIds, OOD_MAX_ROWS, 0x00d5eed);
  const ref = await cache.read(picked);
  const data = normaliseRows(ref.data, dim);
  const n = ref.ids.length;
  const testIds = sample(
    split.test.map((r) => r.imageId).filter((id) => cache.has(id)),
    OOD_MAX_QUERIES,
    0x7e57,
  );
  const distances: number[] = [];
  if (testIds.length > 0) {
    const test = await cache.read(testIds);
    normaliseRows(test.data, dim);
    for (let i = 0; i < test.ids.length; i++) distances.push(nearestDistance(data, n, dim, test.data, i * dim));
  } else {
    // no cached test rows: each sampled training row's nearest other one stands in
    for (let i = 0; i < Math.min(n, OOD_MAX_QUERIES); i++) distances.push(nearestDistance(data, n, dim, data, i * dim, i));
  }
  const threshold = Math.round(quantile(distances, OOD_QUANTILE) * 1e4) / 1e4;
  const meta: OodReferenceMeta = {
    version: 1,
    extractor,
    dim,
    rows: n,
    trainRows: trainIds.length,
    cacheRows: cache.size,
    runCreatedAt: cfg.createdAt,
    threshold: Number.isFinite(threshold) ? threshold : 1,
    testRows: distances.length,
  };
  return { meta, data };
}

/** How old a writer's leftover temporary must be before a build removes it (a live writer's is younger). */
const STALE_TMP_MS = 10 * 60_000;

/**
 * Each file through a unique temporary, fsynced and renamed over it (readers see the old file or
 * the whole new one; two builders cannot clobber each other's temporary): the rows first, then
 * the JSON that names them.
 */
async function writeReference(runDir: string, ref: OodReference): Promise<void> {
  // temporaries of a writer killed mid-write (writeFileAtomic names them .<file>.<pid>.<hex>.tmp)
  for (const name of await fsp.readdir(runDir).catch(() => [] as string[])) {
    if (!/^\.ood-reference\.(f32|json)\..+\.tmp$/.test(name)) continue;
    const st = await fsp.stat(path.join(runDir, name)).catch(() => null);
    if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await fsp.rm(path.join(runDir, name), { force: true });
  }
  await writeFileAtomic(path.join(runDir, OOD_FILES.data), [new Uint8Array(ref.data.buffer, ref.data.byteOffset, ref.data.byteLength)]);
  await writeFileAtomic(path.join(runDir, OOD_FILES.meta), JSON.stringify(ref.meta, null, 2));
}
