// Predictions the engine makes itself (not as a job): one uploaded or named image, a square crop
// panned along a wide photo, intervention sets and thumbnails. These run in the prediction worker
// (predict-worker.ts, started by pool.ts), never on the engine's main thread; paths arrive already
// checked by the API's path policy (api/path-policy.ts) and are read by their real path. The
// loaded model is kept per run and checkpoint (the two most recent), and reloaded when the
// checkpoint file, the workspace's junk filter or the run's distance reference changes.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { CompareItem, CropPan, CropStep, Prediction, PredictRecord } from '../api/contract/predict.ts';
import { PREDICT_UPLOAD_MAX_BYTES } from '../api/contract/predict.ts';
import type { ReadablePath } from '../api/path-policy.ts';
import { UserError } from '../workspace/errors.ts';
import { DEFAULT_MAX_PIXELS, detectorFloats, ImageFileError, probeImage, readImageBytes, thumbnailDataUrl, toModelInput } from './decode-file.ts';
import { DETECTOR_INPUT_SIZE } from '../ml/car-detector.ts';
import { loadPredictor, type Predictor } from './model-loader.ts';
import { OOD_FILES, readOodReference, type FilterSpec } from './trust.ts';

/** A run and checkpoint resolved by the engine (predict/runs.ts resolveRun). */
export interface ModelRef {
  runId: string;
  runDir: string;
  checkpoint: string;
  /** The workspace's current junk filter (trust.ts currentFilterSpec); absent or null: none. */
  filter?: FilterSpec | null;
}

const loaded = new Map<string, { stamp: string; promise: Promise<Predictor> }>();
const KEEP = 2;

export async function predictorFor(ref: ModelRef): Promise<Predictor> {
  const key = `${ref.runDir}\u0000${ref.checkpoint}`;
  const st = fs.statSync(path.join(ref.runDir, `${ref.checkpoint}.ckpt`));
  const ood = fs.statSync(path.join(ref.runDir, OOD_FILES.meta), { throwIfNoEntry: false });
  const f = ref.filter ?? null;
  const stamp = `${st.size}:${st.mtimeMs}:${ood?.mtimeMs ?? '-'}:${f ? `${f.modelId}@${f.threshold}` : '-'}`;
  let hit = loaded.get(key);
  if (hit && hit.stamp !== stamp) {
    void hit.promise.then((p) => p.dispose()).catch(() => undefined);
    loaded.delete(key);
    hit = undefined;
  }
  if (!hit) {
    const trust = { filter: f, ood: readOodReference(ref.runDir) };
    hit = { stamp, promise: loadPredictor(ref.runDir, { checkpoint: ref.checkpoint, trust, workspaceDir: f?.wsDir }) };
    hit.promise.catch(() => loaded.delete(key));
    loaded.set(key, hit);
    while (loaded.size > KEEP) {
      const [oldKey, old] = loaded.entries().next().value as [string, { promise: Promise<Predictor> }];
      loaded.delete(oldKey);
      void old.promise.then((p) => p.dispose()).catch(() => undefined);
    }
  } else {
    // most recently used last
    loaded.delete(key);
    loaded.set(key, hit);
  }
  return hit.promise;
}

export async function disposePredictors(): Promise<void> {
  const all = [...loaded.values()];
  loaded.clear();
  for (const h of all) (await h.promise.catch(() => null))?.dispose();
}

/** One image, from a checked path or uploaded bytes (base64). Per-file problems come back as `error`. */
export async function predictOne(
  ref: ModelRef,
  p: { file?: ReadablePath; data?: string; name?: string },
): Promise<PredictRecord & { runId: string; checkpoint: string }> {
  if (!p.file === !p.data) throw new UserError('give either path or data');
  let input: string | Buffer;
  let label: string;
  if (p.data) {
    const buf = Buffer.from(p.data, 'base64');
    if (buf.length > PREDICT_UPLOAD_MAX_BYTES) throw new UserError(`upload of ${buf.length} bytes is over the ${PREDICT_UPLOAD_MAX_BYTES}-byte limit`);
    input = buf;
    label = p.name ?? 'upload';
  } else {
    input = p.file!.real;
    label = p.file!.given;
  }
  const predictor = await predictorFor(ref);
  const base = { path: label, rel: path.basename(label), runId: ref.runId, checkpoint: ref.checkpoint };
  try {
    const d = await predictor.decodePhoto(input);
    const [prediction] = await predictor.predictPhotos([d]);
    const mtimeMs = typeof input === 'string' ? fs.statSync(input).mtimeMs : undefined;
    return { ...base, bytes: d.bytes, mtimeMs, width: d.width, height: d.height, prediction };
  } catch (e) {
    if (e instanceof ImageFileError) return { ...base, bytes: Buffer.isBuffer(input) ? input.length : fileSize(input), error: e.message };
    throw e;
  }
}

function fileSize(f: string): number {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
}

/** Square crops (side = the shorter side) at `steps` evenly spaced positions along the longer side. */
export function cropRects(width: number, height: number, steps: number): Array<{ left: number; top: number; size: number }> {
  const size = Math.min(width, height);
  const span = Math.max(width, height) - size;
  return Array.from({ length: steps }, (_, i) => {
    const off = steps === 1 ? 0 : Math.round((span * i) / (steps - 1));
    return width >= height ? { left: off, top: 0, size } : { left: 0, top: off, size };
  });
}

/**
 * The crops' model inputs. The photo is decoded once, already shrunk (JPEG shrink-on-load) so its
 * shorter side is at most twice the model's input: a 24 MP photo costs about 1 MB of pixels, not
 * 72 MB, whatever its size. Crops are cut from that, at the rects' positions scaled down.
 */
async function cropInputs(
  buf: Buffer,
  width: number,
  height: number,
  rects: Array<{ left: number; top: number; size: number }>,
  S: number,
  detectorView: boolean,
): Promise<Float32Array> {
  const shorter = Math.min(width, height);
  const side = Math.min(shorter, 2 * S);
  const scale = side / shorter;
  const w = width >= height ? Math.max(side, Math.round(width * scale)) : side;
  const h = width >= height ? side : Math.max(side, Math.round(height * scale));
  const raw = await sharp(buf, { failOn: 'truncated', limitInputPixels: DEFAULT_MAX_PIXELS, animated: false })
    .rotate()
    .resize(w, h, { fit: 'fill' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  // a car-v1 run's input also holds the detector's view of the photo (here: of the crop)
  const D = DETECTOR_INPUT_SIZE;
  const per = S * S * 3 + (detectorView ? D * D * 3 : 0);
  const batch = new Float32Array(rects.length * per);
  for (let i = 0; i < rects.length; i++) {
    const r = rects[i];
    const left = Math.min(Math.round(r.left * scale), w - side);
    const top = Math.min(Math.round(r.top * scale), h - side);
    const crop = () => sharp(raw.data, { raw: { width: raw.info.width, height: raw.info.height, channels: raw.info.channels } }).extract({ left, top, width: side, height: side });
    const { data, info } = await crop().resize(S, S, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
    batch.set(toModelInput(data, info.channels, S), i * per);
    if (detectorView) {
      const v = await crop().resize(D, D, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
      batch.set(detectorFloats(v.data, v.info.channels, D), i * per + S * S * 3);
    }
  }
  return batch;
}

export async function cropPan(ref: ModelRef, p: { file: ReadablePath; steps: number }): Promise<CropPan & { runId: string; checkpoint: string }> {
  const predictor = await predictorFor(ref);
  const S = predictor.inputSize;
  let buf: Buffer;
  let width: number;
  let height: number;
  let batch: Float32Array;
  let rects: Array<{ left: number; top: number; size: number }>;
  try {
    buf = await readImageBytes(p.file.real);
    ({ width, height } = await probeImage(buf, DEFAULT_MAX_PIXELS));
    rects = cropRects(width, height, p.steps);
    batch = await cropInputs(buf, width, height, rects, S, predictor.detectorView);
  } catch (e) {
    throw new UserError(`${p.file.given}: ${e instanceof ImageFileError ? e.message : `does not decode: ${(e as Error).message.split('\n')[0]}`}`);
  }
  const per = predictor.inputFloats;
  const preds: Prediction[] = [];
  const full: number[][] = [];
  for (let i = 0; i < rects.length; i += 16) {
    const n = Math.min(16, rects.length - i);
    preds.push(...(await predictor.predictInputs(batch.subarray(i * per, (i + n) * per), n, full)));
  }
  // Follow the make/models with the most probability summed over every crop.
  const labels = predictor.makeModelLabels;
  const mass = labels.map((_, j) => full.reduce((s, row) => s + row[j], 0));
  const order = mass.map((m, j) => [m, j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3).map(([, j]) => j);
  const tracked = order.map((j) => labels[j]);
  const steps: CropStep[] = preds.map((pr, i) => ({
    position: i,
    crop: rects[i],
    medianPrice: pr.medianPrice,
    tracked: order.map((j) => full[i][j]),
    top: pr.makeModels[0],
  }));
  const thumb = await thumbnailDataUrl(buf, 640);
  return { runId: ref.runId, checkpoint: ref.checkpoint, path: p.file.given, width, height, tracked, steps, image: thumb.dataUrl };
}

export async function compare(ref: ModelRef, p: { files: ReadablePath[] }): Promise<{ runId: string; checkpoint: string; items: CompareItem[] }> {
  const recs: Array<PredictRecord> = [];
  for (const file of p.files) recs.push(await predictOne(ref, { file }));
  const first = recs[0].prediction;
  const items: CompareItem[] = recs.map((r, i) => {
    const pr = r.prediction ?? null;
    let diff: CompareItem['diff'] = null;
    if (i > 0 && first && pr) {
      diff = {
        medianPrice: pr.medianPrice - first.medianPrice,
        priceBinsTv: pr.priceBins.reduce((s, b, j) => s + Math.abs(b.p - first.priceBins[j].p), 0) / 2,
        topMakeModelChanged: pr.makeModels[0].label !== first.makeModels[0].label,
        topYearChanged: pr.topYears[0].label !== first.topYears[0].label,
      };
    }
    return { path: r.path, prediction: pr, error: r.error ?? null, diff };
  });
  return { runId: ref.runId, checkpoint: ref.checkpoint, items };
}

/** A JPEG thumbnail (data URL) of a checked path (the API refuses any path outside the readable folders). */
export async function thumbnail(p: { file: ReadablePath; size: number }): Promise<{ dataUrl: string; width: number; height: number }> {
  try {
    return await thumbnailDataUrl(p.file.real, p.size);
  } catch (e) {
    if (e instanceof ImageFileError) throw new UserError(`${p.file.given}: ${e.message}`);
    throw e;
  }
}
