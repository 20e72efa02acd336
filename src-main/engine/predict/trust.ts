// What a prediction knows of its own reliability (Prediction.trust), for whole photos:
//   filter   the workspace's junk filter (the newest fitted one) scored on the photo: below its
//            threshold the photo is not a whole-car photo, and the price model never saw such;
//   ood      the distance (1 - cosine) from the photo's features to the nearest training photo's,
//            against the 99th percentile of the test split's nearest distances; a heads run's
//            reference (a seeded sample of its training split's cached features, L2-normalised)
//            is built on first use into runs/<id>/ood-reference.{f32,json} by the engine, which
//            has the workspace, in its reference worker (ood-reference.ts, ood-worker.ts); a
//            finetune run has none (its features are not cached);
//   warnings junk / far / no-car, and the untrained / clipped ones prediction itself adds.
// The predictor works without a workspace (a run folder copied elsewhere): no filter, no reference,
// and the rest of the prediction as always.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Prediction, PredictHead, PredictionTrust, PredictionWarning } from '../api/contract/predict.ts';
import type { Workspace } from '../workspace/workspace.ts';
import { currentModel } from '../filter/filter-model.ts';
import { SvmClassifier } from '../filter/svm.ts';
import { EXTRACTORS, loadExtractor, type ExtractorName } from '../filter/features.ts';
import { DETECTOR_INPUT_SIZE } from '../ml/car-detector.ts';
import { loadRunConfig, runExtractor, type RunConfigFile } from '../train/trainer.ts';
import { UserError } from '../workspace/errors.ts';
import { untrainedHeads } from './runs.ts';
import type { DecodedPhoto } from './model-loader.ts';
import { nearestDistance, normaliseRows, readOodMeta, readOodReference, referenceExtractor, type OodLog, type OodReference, type OodReferenceMeta } from './ood-reference.ts';
import type { OodReply, OodTask } from './ood-worker.ts';

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

// The reference itself (its files, reading, building) is in ood-reference.ts; built in the
// reference worker (ood-worker.ts), never on the thread that asks for it.
export { OOD_FILES, OOD_MAX_ROWS, normaliseRows, readOodMeta, readOodReference, type OodReference, type OodReferenceMeta } from './ood-reference.ts';

const checked = new Map<string, number>();
const RECHECK_MS = 30_000;
const inFlight = new Map<string, Promise<OodReference | null>>();

/**
 * Makes sure a heads run has an up-to-date reference of its training features (building it from
 * the workspace's feature cache when missing or stale) and returns it; null for a finetune run or
 * when no training row has cached features. Checked at most every 30 s per run. The check and the
 * build run in the reference worker: the calling thread (the engine's main thread above all) only
 * waits for its answer. One check per run at a time: concurrent requests wait for the same one.
 */
export async function ensureOodReference(ws: Workspace, runDir: string, log?: OodLog): Promise<OodReference | null> {
  const last = checked.get(runDir);
  if (last && Date.now() - last < RECHECK_MS && !inFlight.has(runDir)) return readOodReference(runDir);
  return checkInWorker(ws, runDir, log);
}

/**
 * ensureOodReference for a caller that only needs the files in place (the API's predictions,
 * whose worker reads them): the meta, and no 20 MB read of the rows on this thread when the
 * reference was checked in the last 30 s.
 */
export async function ensureOodReferenceMeta(ws: Workspace, runDir: string, log?: OodLog): Promise<OodReferenceMeta | null> {
  const last = checked.get(runDir);
  if (last && Date.now() - last < RECHECK_MS && !inFlight.has(runDir)) return readOodMeta(runDir);
  return (await checkInWorker(ws, runDir, log))?.meta ?? null;
}

function checkInWorker(ws: Workspace, runDir: string, log?: OodLog): Promise<OodReference | null> {
  const running = inFlight.get(runDir);
  if (running) return running;
  const p = (async () => {
    const cfg = await loadRunConfig(runDir);
    if (!referenceExtractor(cfg)) return null; // a finetune run: nothing to build, nothing to remember
    const { ref } = await referenceWorker.run(ws.dir, runDir, cfg, log);
    checked.set(runDir, Date.now());
    return ref;
  })().finally(() => inFlight.delete(runDir));
  inFlight.set(runDir, p);
  return p;
}

/** How long an idle reference worker is kept (its modules loaded) before it is stopped. */
const OOD_WORKER_IDLE_MS = 60_000;

/**
 * The reference worker, started on first use by the thread that asks (the engine's main thread,
 * or a predict job's own thread) and stopped when idle for a minute. Tasks run in it one at a
 * time, in order; one that dies (out of memory, a crash) fails the tasks it held, and the next
 * task starts a fresh one. It keeps the process alive only while it has a task.
 */
class ReferenceWorker {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (r: { ref: OodReference | null; built: boolean }) => void; reject: (e: Error) => void; log?: OodLog }>();
  private nextId = 1;
  private idle: NodeJS.Timeout | null = null;

  run(wsDir: string, runDir: string, cfg: RunConfigFile, log?: OodLog): Promise<{ ref: OodReference | null; built: boolean }> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, log });
      const w = this.ensure();
      if (this.idle) clearTimeout(this.idle);
      this.idle = null;
      w.ref();
      w.postMessage({ id, wsDir, runDir, cfg } satisfies OodTask);
    });
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./ood-worker-boot.mjs', import.meta.url));
    w.on('message', (m: OodReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'log') {
        p.log?.(m.level, m.message);
        return;
      }
      this.pending.delete(m.id);
      if (m.type === 'done') p.resolve({ ref: m.ref, built: m.built });
      else {
        const err = m.error.user ? new UserError(m.error.message) : new Error(m.error.message);
        err.name = m.error.name;
        p.reject(err);
      }
      this.settled();
    });
    const lost = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = null;
      for (const p of this.pending.values()) p.reject(new Error(`the distance reference worker stopped (${why})`));
      this.pending.clear();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`exit code ${code}`));
    this.worker = w;
    return w;
  }

  /** Stops the worker now; the tasks it held fail (a later task starts a fresh one). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    for (const p of this.pending.values()) p.reject(new UserError('the engine is stopping'));
    this.pending.clear();
    if (w) await w.terminate();
  }

  /** With no task left: the worker no longer keeps the process alive, and stops after a while. */
  private settled(): void {
    if (this.pending.size || !this.worker) return;
    const w = this.worker;
    w.unref();
    this.idle = setTimeout(() => {
      if (this.worker !== w || this.pending.size) return;
      this.worker = null;
      void w.terminate();
    }, OOD_WORKER_IDLE_MS);
    this.idle.unref();
  }
}

const referenceWorker = new ReferenceWorker();

/** Stops this thread's reference worker (the engine's shutdown, through PredictPool.close): a build in flight fails, its temporary is swept by a later one. */
export function stopReferenceWorker(): Promise<void> {
  return referenceWorker.close();
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
