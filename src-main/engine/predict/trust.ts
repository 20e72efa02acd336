// What a prediction knows of its own reliability (Prediction.trust), for whole photos:
//   filter   the workspace's junk filter (the newest fitted one) scored on the photo: below its
//            threshold the photo is not a whole-car photo, and the price model never saw such;
//   ood      the distance (1 - cosine) from the photo's features to the nearest training photo's,
//            against the 99th percentile of the test split's nearest distances; a heads run's
//            reference (a seeded sample of its training split's cached features, L2-normalised)
//            is built on first use into runs/<id>/ood-reference.{f32,json} by the engine, which
//            has the workspace; a finetune run has none (its features are not cached);
//   warnings junk / far / no-car, and the untrained / clipped ones prediction itself adds.
// The predictor works without a workspace (a run folder copied elsewhere): no filter, no reference,
// and the rest of the prediction as always.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Prediction, PredictHead, PredictionTrust, PredictionWarning } from '../api/contract/predict.ts';
import type { Workspace } from '../workspace/workspace.ts';
import { currentModel } from '../filter/filter-model.ts';
import { SvmClassifier } from '../filter/svm.ts';
import { dimOf, EXTRACTORS, loadExtractor, openCache, type ExtractorName } from '../filter/features.ts';
import { DETECTOR_INPUT_SIZE } from '../ml/car-detector.ts';
import { splitRows } from '../train/labels.ts';
import { trainingSet } from '../train/dataset.ts';
import { loadRunConfig, runExtractor, runSplit, runTestFraction, type RunConfigFile } from '../train/trainer.ts';
import { mulberry32 } from '../util/random.ts';
import { untrainedHeads } from './runs.ts';
import type { DecodedPhoto } from './model-loader.ts';

/** The junk filter a prediction is scored by: the workspace's newest fit, as the engine sees it. */
export interface FilterSpec {
  /** The workspace whose studio.db holds the filter (read read-only by whoever scores). */
  wsDir: string;
  modelId: number;
  extractor: string;
  threshold: number;
}

/** The workspace's current junk filter, or null when none is fitted. */
export function currentFilterSpec(ws: Workspace): FilterSpec | null {
  const m = currentModel(ws);
  return m ? { wsDir: ws.dir, modelId: m.id, extractor: m.extractor, threshold: m.threshold } : null;
}

// ---------- the distance to the training data ----------

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
function nearestDistance(ref: Float32Array, rows: number, dim: number, q: Float32Array, qo: number, skip = -1): number {
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

const checked = new Map<string, number>();
const RECHECK_MS = 30_000;

/**
 * Makes sure a heads run has an up-to-date reference of its training features (building it from
 * the workspace's feature cache when missing or stale) and returns it; null for a finetune run or
 * when no training row has cached features. Checked at most every 30 s per run.
 */
export function ensureOodReference(ws: Workspace, runDir: string, log?: (level: 'info' | 'warn', message: string) => void): Promise<OodReference | null> {
  // one check (and build) per run at a time: concurrent requests wait for it
  const running = inFlight.get(runDir);
  if (running) return running;
  const p = checkOrBuild(ws, runDir, log).finally(() => inFlight.delete(runDir));
  inFlight.set(runDir, p);
  return p;
}

const inFlight = new Map<string, Promise<OodReference | null>>();

async function checkOrBuild(ws: Workspace, runDir: string, log?: (level: 'info' | 'warn', message: string) => void): Promise<OodReference | null> {
  const last = checked.get(runDir);
  if (last && Date.now() - last < RECHECK_MS) return readOodReference(runDir);
  const cfg = await loadRunConfig(runDir);
  if (cfg.config.mode !== 'heads') return null;
  const extractor = runExtractor(cfg);
  if (!(EXTRACTORS as readonly string[]).includes(extractor)) return null;
  const cache = await openCache(ws, extractor as ExtractorName);
  try {
    const have = readOodReference(runDir);
    if (have && have.meta.extractor === extractor && have.meta.cacheRows === cache.size && have.meta.runCreatedAt === cfg.createdAt) {
      checked.set(runDir, Date.now());
      return have;
    }
    const built = await buildReference(ws, cfg, extractor as ExtractorName, cache);
    checked.set(runDir, Date.now());
    if (!built) return null;
    writeReference(runDir, built);
    log?.('info', `distance reference of run ${path.basename(runDir)}: ${built.meta.rows} of ${built.meta.trainRows} training photos, 99% of ${built.meta.testRows} test photos within ${built.meta.threshold.toFixed(3)}`);
    return built;
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
    for (let i = 0; i < test.ids.length; i++) {
      distances.push(nearestDistance(data, n, dim, test.data, i * dim));
      await yieldEvery(i);
    }
  } else {
    // no cached test rows: each sampled training row's nearest other one stands in
    for (let i = 0; i < Math.min(n, OOD_MAX_QUERIES); i++) {
      distances.push(nearestDistance(data, n, dim, data, i * dim, i));
      await yieldEvery(i);
    }
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

/** Lets the event loop run every 16 queries (the engine builds a reference on its main thread: its API keeps answering). */
function yieldEvery(i: number): Promise<void> | undefined {
  return i % 16 === 15 ? new Promise((resolve) => setImmediate(resolve)) : undefined;
}

function writeReference(runDir: string, ref: OodReference): void {
  const tmp = (f: string) => path.join(runDir, `.${f}.tmp`);
  fs.writeFileSync(tmp(OOD_FILES.data), Buffer.from(ref.data.buffer, ref.data.byteOffset, ref.data.byteLength));
  fs.renameSync(tmp(OOD_FILES.data), path.join(runDir, OOD_FILES.data));
  fs.writeFileSync(tmp(OOD_FILES.meta), JSON.stringify(ref.meta, null, 2));
  fs.renameSync(tmp(OOD_FILES.meta), path.join(runDir, OOD_FILES.meta));
}

// ---------- the assessor a predictor calls ----------

/** What predictPhotos hands the assessor beside the predictions. */
export interface PhotoBatch {
  photos: readonly DecodedPhoto[];
  /** The run's feature rows of the photos (a heads run), else null. */
  features: Float32Array | null;
  /** The run's extractor (heads runs), null for finetune. */
  extractor: ExtractorName | null;
  /** The run's model input side (the photo's S*S*3 view) and whether its input also holds the detector's view. */
  inputSize: number;
  detectorView: boolean;
  inputFloats: number;
}

export interface TrustAssessor {
  /** Adds trust (filter score, distance, warnings) to each whole-photo prediction, in place. */
  assess(preds: Prediction[], batch: PhotoBatch): Promise<void>;
  /** The filter model id scored with (part of a cached predictor's key), null without one. */
  filterModelId: number | null;
  dispose(): void;
}

export interface TrustOptions {
  /** The workspace's current junk filter, or null (none fitted, or no workspace). */
  filter?: FilterSpec | null;
  /** The run's distance reference (ensureOodReference / readOodReference), or null. */
  ood?: OodReference | null;
  log?(level: 'info' | 'warn', message: string): void;
}

const HEAD_NAMES: Record<PredictHead, string> = { price: 'price bins', median: 'median price', makeModel: 'make/model', year: 'year' };

const fix2 = (v: number) => v.toFixed(2);

/** The warning texts, in the user's words. */
export const warningText = {
  junk: (score: number, threshold: number) =>
    `not a whole-car photo (junk filter score ${fix2(score)}, below its threshold ${fix2(threshold)}): the price model was not trained on photos like this`,
  far: (distance: number, threshold: number) =>
    `far from the photos this run was trained on (distance ${distance.toFixed(2)}, 99% of test photos are within ${threshold.toFixed(2)})`,
  noCar: () => 'no car found in this photo: the prediction is unreliable',
  untrained: (head: PredictHead) => `the ${HEAD_NAMES[head]} head of this run never trained: its output means nothing`,
};

/** The trust a prediction starts with: the run's untrained heads (prediction's own base when present). */
function baseTrust(p: Prediction, untrained: PredictHead[]): PredictionTrust {
  if (p.trust) return p.trust;
  const warnings: PredictionWarning[] = untrained.map((h) => ({ code: 'untrained', message: warningText.untrained(h) }));
  p.trust = { filter: null, ood: null, untrained: [...untrained], warnings };
  return p.trust;
}

interface LoadedFilter {
  spec: FilterSpec;
  clf: SvmClassifier;
  /** Null when the filter reads the run's own features. */
  features: ((batch: PhotoBatch) => Promise<Float32Array | null>) | null;
}

/** Reads a fitted filter's SVM from the workspace's database (read-only: the worker has no engine). */
function readClassifier(spec: FilterSpec): SvmClassifier {
  const db = new Database(path.join(spec.wsDir, 'studio.db'), { readonly: true, fileMustExist: true });
  try {
    const s = db.prepare(`SELECT model FROM filter_models WHERE id = ?`).pluck().get(spec.modelId) as string | undefined;
    if (!s) throw new Error(`the workspace has no filter model ${spec.modelId}`);
    return SvmClassifier.deserialize(s);
  } finally {
    db.close();
  }
}

/**
 * The filter's own features of the photos when its extractor is not the run's: made from the
 * decoded photo's views (the run's S*S*3 input at 224 px, and the detector's view for car-v1).
 * Null when those views cannot make its input (said once in the log).
 */
function otherFeatures(spec: FilterSpec, log: (level: 'info' | 'warn', m: string) => void): (batch: PhotoBatch) => Promise<Float32Array | null> {
  let loaded: ReturnType<typeof loadExtractor> | null = null;
  let warned = false;
  const refuse = (why: string): null => {
    if (!warned) log('warn', `the junk filter (${spec.extractor} features) cannot score these photos: ${why}; predictions carry no filter score`);
    warned = true;
    return null;
  };
  return async (b) => {
    if (!(EXTRACTORS as readonly string[]).includes(spec.extractor)) return refuse(`this CarStudio does not know the extractor '${spec.extractor}'`);
    loaded ??= loadExtractor(spec.extractor as ExtractorName, spec.wsDir, { log });
    const ex = await loaded.catch((e: unknown) => {
      refuse(`its extractor did not load (${(e instanceof Error ? e.message : String(e)).split('\n')[0]})`);
      return null;
    });
    if (!ex) return null;
    const S = ex.inputSize;
    const per = S * S * 3;
    const D = DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3;
    const wantsDet = spec.extractor === 'car-v1';
    if (S !== b.inputSize) return refuse(`it reads ${S} px photos and this run's ${b.inputSize} px`);
    const floats = wantsDet ? per + D : per;
    if (ex.decodeInput && ex.inputFloats !== floats) return refuse(`it reads photos its own way`);
    const batch = new Float32Array(b.photos.length * floats);
    for (let i = 0; i < b.photos.length; i++) {
      const ph = b.photos[i];
      batch.set(ph.input.subarray(0, per), i * floats);
      if (wantsDet) {
        const det = b.detectorView ? ph.input.subarray(per, per + D) : ph.det;
        if (!det || det.length < D) return refuse('the car detector did not load, and its features need the detector');
        batch.set(det.subarray(0, D), i * floats + per);
      }
    }
    return ex.embed(batch, b.photos.length);
  };
}

/** The assessor of a run's predictions (untrained heads from its config) with the filter and reference given. */
export function createTrust(cfg: RunConfigFile, opts: TrustOptions = {}): TrustAssessor {
  const log = opts.log ?? ((level, m) => process.stderr.write(`${level === 'warn' ? 'warning: ' : ''}${m}\n`));
  const untrained = untrainedHeads(cfg);
  const runExtractorName = cfg.config.mode === 'heads' ? runExtractor(cfg) : null;
  let filter: LoadedFilter | null = null;
  if (opts.filter) {
    try {
      const clf = readClassifier(opts.filter);
      const same = opts.filter.extractor === runExtractorName;
      filter = { spec: opts.filter, clf, features: same ? null : otherFeatures(opts.filter, log) };
    } catch (e) {
      log('warn', `the junk filter could not be read (${(e instanceof Error ? e.message : String(e)).split('\n')[0]}); predictions carry no filter score`);
    }
  }
  const ood = opts.ood && opts.ood.meta.extractor === runExtractorName && opts.ood.meta.dim === cfg.featureDim ? opts.ood : null;

  async function filterScores(b: PhotoBatch): Promise<Float64Array | null> {
    if (!filter) return null;
    const x = filter.features ? await filter.features(b) : b.features;
    if (!x || x.length < b.photos.length * filter.clf.dim) return null;
    return filter.clf.decisionValues({ data: x.subarray(0, b.photos.length * filter.clf.dim), rows: b.photos.length, cols: filter.clf.dim });
  }

  return {
    filterModelId: filter?.spec.modelId ?? null,
    async assess(preds, b) {
      const scores = await filterScores(b);
      const dim = cfg.featureDim;
      const unit = ood && b.features ? normaliseRows(Float32Array.from(b.features.subarray(0, preds.length * dim)), dim) : null;
      preds.forEach((p, i) => {
        const t = baseTrust(p, untrained);
        if (scores && filter) {
          const score = Math.round(scores[i] * 1e4) / 1e4;
          const junk = score < filter.spec.threshold;
          t.filter = { modelId: filter.spec.modelId, extractor: filter.spec.extractor, score, threshold: filter.spec.threshold, junk };
          if (junk) t.warnings.push({ code: 'junk', message: warningText.junk(score, filter.spec.threshold) });
        }
        if (ood && unit) {
          const distance = Math.round(nearestDistance(ood.data, ood.meta.rows, dim, unit, i * dim) * 1e4) / 1e4;
          const far = distance > ood.meta.threshold;
          t.ood = { distance, threshold: ood.meta.threshold, far };
          if (far) t.warnings.push({ code: 'far', message: warningText.far(distance, ood.meta.threshold) });
        }
        if (p.car && !p.car.hasCar && !t.warnings.some((w) => w.code === 'no-car')) t.warnings.push({ code: 'no-car', message: warningText.noCar() });
      });
    },
    dispose() {
      filter = null;
    },
  };
}

/** One line on a set of predictions: how many carry a warning, and which. */
export function warningSummary(preds: ReadonlyArray<Prediction | undefined>): string {
  const with_ = preds.filter((p) => p?.trust?.warnings.some((w) => w.code !== 'untrained'));
  const count = (code: PredictionWarning['code']) => preds.filter((p) => p?.trust?.warnings.some((w) => w.code === code)).length;
  const parts: string[] = [];
  const junk = count('junk');
  const far = count('far');
  const noCar = count('no-car');
  if (junk) parts.push(`${junk} not whole-car photo${junk === 1 ? '' : 's'}`);
  if (far) parts.push(`${far} far from the training photos`);
  if (noCar) parts.push(`${noCar} without a car found`);
  const n = preds.filter(Boolean).length;
  return `${with_.length} of ${n} photos carry a warning${parts.length ? `: ${parts.join(', ')}` : ''}`;
}
