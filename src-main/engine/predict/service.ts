// Predictions the engine makes itself (not as a job): one uploaded or named image, a square crop
// panned along a wide photo, and intervention sets. The loaded model is kept per run and
// checkpoint (the two most recent), and reloaded when the checkpoint file changes.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { CompareItem, CropPan, CropStep, Prediction, PredictRecord } from '../api/contract/predict.ts';
import { PREDICT_UPLOAD_MAX_BYTES } from '../api/contract/predict.ts';
import { UserError } from '../workspace/errors.ts';
import { decodeImage, DEFAULT_MAX_PIXELS, ImageFileError, isImageName, probeImage, readImageBytes, thumbnailDataUrl, toModelInput } from './decode-file.ts';
import { loadPredictor, type Predictor } from './model-loader.ts';
import { resolveRun } from './runs.ts';
import { inPredictionSet, isInside, realPath } from './store.ts';
import type { Workspace } from '../workspace/workspace.ts';

const loaded = new Map<string, { stamp: string; promise: Promise<Predictor> }>();
const KEEP = 2;

export async function predictorFor(ws: Workspace, runId?: string, checkpoint?: string): Promise<{ predictor: Predictor; runId: string; checkpoint: string }> {
  const r = resolveRun(ws, runId, checkpoint);
  const key = `${r.run.dir}\u0000${r.checkpoint}`;
  const st = fs.statSync(r.file);
  const stamp = `${st.size}:${st.mtimeMs}`;
  let hit = loaded.get(key);
  if (hit && hit.stamp !== stamp) {
    void hit.promise.then((p) => p.dispose()).catch(() => undefined);
    loaded.delete(key);
    hit = undefined;
  }
  if (!hit) {
    hit = { stamp, promise: loadPredictor(r.run.dir, { checkpoint: r.checkpoint }) };
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
  return { predictor: await hit.promise, runId: r.run.id, checkpoint: r.checkpoint };
}

export async function disposePredictors(): Promise<void> {
  const all = [...loaded.values()];
  loaded.clear();
  for (const h of all) (await h.promise.catch(() => null))?.dispose();
}

/** One image, from a path or uploaded bytes (base64). Per-file problems come back as `error`. */
export async function predictOne(
  ws: Workspace,
  p: { runId?: string; checkpoint?: string; path?: string; data?: string; name?: string },
): Promise<PredictRecord & { runId: string; checkpoint: string }> {
  if (!p.path === !p.data) throw new UserError('give either path or data');
  let input: string | Buffer;
  let label: string;
  if (p.data) {
    const buf = Buffer.from(p.data, 'base64');
    if (buf.length > PREDICT_UPLOAD_MAX_BYTES) throw new UserError(`upload of ${buf.length} bytes is over the ${PREDICT_UPLOAD_MAX_BYTES}-byte limit`);
    input = buf;
    label = p.name ?? 'upload';
  } else {
    input = path.resolve(p.path!);
    label = input;
  }
  const { predictor, runId, checkpoint } = await predictorFor(ws, p.runId, p.checkpoint);
  const base = { path: label, rel: path.basename(label), runId, checkpoint };
  try {
    const d = await decodeImage(input, { size: predictor.inputSize });
    const [prediction] = await predictor.predictInputs(d.input, 1);
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

export async function cropPan(ws: Workspace, p: { runId?: string; checkpoint?: string; path: string; steps: number }): Promise<CropPan & { runId: string; checkpoint: string }> {
  const file = path.resolve(p.path);
  const { predictor, runId, checkpoint } = await predictorFor(ws, p.runId, p.checkpoint);
  const S = predictor.inputSize;
  let buf: Buffer;
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    buf = await readImageBytes(file);
    await probeImage(buf, DEFAULT_MAX_PIXELS);
    raw = await sharp(buf, { failOn: 'truncated', limitInputPixels: DEFAULT_MAX_PIXELS, animated: false })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UserError(`${file}: ${e instanceof ImageFileError ? e.message : `does not decode: ${(e as Error).message.split('\n')[0]}`}`);
  }
  const { width, height, channels } = raw.info;
  const rects = cropRects(width, height, p.steps);
  const per = S * S * 3;
  const batch = new Float32Array(rects.length * per);
  await Promise.all(
    rects.map(async (r, i) => {
      const { data, info } = await sharp(raw.data, { raw: { width, height, channels } })
        .extract({ left: r.left, top: r.top, width: r.size, height: r.size })
        .resize(S, S, { fit: 'cover', position: 'centre' })
        .raw()
        .toBuffer({ resolveWithObject: true });
      batch.set(toModelInput(data, info.channels, S), i * per);
    }),
  );
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
  return { runId, checkpoint, path: file, width, height, tracked, steps, image: thumb.dataUrl };
}

export async function compare(ws: Workspace, p: { runId?: string; checkpoint?: string; paths: string[] }): Promise<{ runId: string; checkpoint: string; items: CompareItem[] }> {
  let runId = '';
  let checkpoint = '';
  const recs: Array<PredictRecord> = [];
  for (const f of p.paths) {
    const r = await predictOne(ws, { runId: p.runId, checkpoint: p.checkpoint, path: f });
    runId = r.runId;
    checkpoint = r.checkpoint;
    recs.push(r);
  }
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
  return { runId, checkpoint, items };
}

/**
 * A JPEG thumbnail (data URL) of an image of this workspace: one in a prediction set (inside a
 * predicted folder, or a file a set recorded) or in the workspace's image store. Any other path is
 * refused, so the API cannot be used to read arbitrary images of the engine's machine.
 */
export async function thumbnail(ws: Workspace, p: { path: string; size: number }): Promise<{ dataUrl: string; width: number; height: number }> {
  const file = path.resolve(p.path);
  if (!isImageName(file)) throw new UserError(`${file} does not have an image extension`);
  if (!isInside(realPath(ws.store.root) ?? ws.store.root, realPath(file) ?? file) && !inPredictionSet(ws.dir, file)) {
    throw new UserError(`${file} is not an image of this workspace: thumbnails are only made of images in a prediction set (a predicted folder) or in the workspace's image store`);
  }
  try {
    return await thumbnailDataUrl(file, p.size);
  } catch (e) {
    if (e instanceof ImageFileError) throw new UserError(`${file}: ${e.message}`);
    throw e;
  }
}
