// Intervention studies on one photo, as the seed's results section made them: an occlusion map
// (a grey square slid over the photo), a region edit (a rectangle blurred, greyed or patched from
// another photo) and a background swap (the car pasted onto other photos). Like the crop pan
// (service.ts) they run in the prediction worker, on the run's predictor: every variant of the
// photo is made from one decode (shrunk so its shorter side is at most WORK_SIDE pixels), turned
// into the model's input the way decodeImage makes it (the centre square, resized; a car-v1 run's
// input also holds the detector's view of the whole variant) and predicted 16 at a time. The
// unedited photo goes through the same steps, so every difference is the edit's alone. Nothing is
// random: the same photo, run and options give the same numbers and the same PNGs.
import sharp from 'sharp';
import type { Prediction } from '../api/contract/predict.ts';
import type { EditFill, EditStudy, FracRect, HeatTarget, OcclusionCell, OcclusionStudy, StudyDiff, StudyReading, SwapItem, SwapStudy } from '../api/contract/studies.ts';
import { SWAP_MAX_BACKGROUNDS } from '../api/contract/studies.ts';
import type { ReadablePath } from '../api/path-policy.ts';
import { DETECTOR_INPUT_SIZE } from '../ml/car-detector.ts';
import { UserError } from '../workspace/errors.ts';
import { DEFAULT_MAX_PIXELS, detectorFloats, ImageFileError, probeImage, readImageBytes, toModelInput } from './decode-file.ts';
import type { FullMakeModels, Predictor } from './model-loader.ts';
import { predictorFor, type ModelRef } from './service.ts';

/** The working decode's shorter side at most (twice the model's 224 px input). */
const WORK_SIDE = 448;
/** Variants predicted per batch. */
const BATCH = 16;
/** Flat grey (RGB) of the occlusion square and the 'grey' edit. */
const GREY = 128;

type Run = { runId: string; checkpoint: string };

export interface OcclusionParams {
  file: ReadablePath;
  size: number;
  stride?: number;
  png: boolean;
  /** What the PNG's heat map shows (default price). */
  target?: HeatTarget;
}

/** Each heat-map target's value of a cell: positive where hiding the region raised the price, or lowered the probability. */
export const HEAT_VALUE: Record<HeatTarget, (c: OcclusionCell) => number> = {
  price: (c) => c.dPrice,
  makeModel: (c) => c.dropMakeModel,
  year: (c) => c.dropYear,
};
export interface EditParams {
  file: ReadablePath;
  rect: FracRect;
  fill: EditFill;
  patch?: ReadablePath;
  png: boolean;
}
export interface SwapParams {
  file: ReadablePath;
  /** Background photos, already checked and cut to the limit (studies/backgrounds.ts). */
  backgrounds: ReadablePath[];
  /** Photos the folder holds in all (for the note when some were left out). */
  total: number;
  box?: FracRect;
  png: boolean;
}

/** An RGB image in memory (3 channels, interleaved). */
interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

/** A pixel rectangle inside a Raw. */
interface PxRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

// ---- decoding and the model's input ----

/** Decodes a checked photo (EXIF-oriented, shorter side at most `side`) to RGB; bad files are a UserError naming the file. */
async function loadRaw(file: ReadablePath, side = WORK_SIDE, fill?: { width: number; height: number }): Promise<Raw & { origWidth: number; origHeight: number }> {
  try {
    const buf = await readImageBytes(file.real);
    const { width, height } = await probeImage(buf, DEFAULT_MAX_PIXELS);
    const scale = Math.min(1, side / Math.min(width, height));
    const w = fill?.width ?? Math.max(1, Math.round(width * scale));
    const h = fill?.height ?? Math.max(1, Math.round(height * scale));
    const { data, info } = await sharp(buf, { failOn: 'truncated', limitInputPixels: DEFAULT_MAX_PIXELS, animated: false })
      .rotate()
      .resize(w, h, { fit: 'fill' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, origWidth: width, origHeight: height };
  } catch (e) {
    throw new UserError(`${file.given}: ${e instanceof ImageFileError ? e.message : `does not decode: ${(e as Error).message.split('\n')[0]}`}`);
  }
}

const rawSharp = (img: Raw) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });

/** The model's input for one image: the centre square at the model's size (decodeImage's layout), plus the detector's view for car-v1 runs. */
async function modelInput(p: Predictor, img: Raw): Promise<Float32Array> {
  const S = p.inputSize;
  const out = new Float32Array(p.inputFloats);
  const m = await rawSharp(img).resize(S, S, { fit: 'cover', position: 'centre' }).raw().toBuffer({ resolveWithObject: true });
  out.set(toModelInput(m.data, m.info.channels, S), 0);
  if (p.detectorView) {
    const D = DETECTOR_INPUT_SIZE;
    const v = await rawSharp(img).resize(D, D, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    out.set(detectorFloats(v.data, v.info.channels, D), S * S * 3);
  }
  return out;
}

/** Predicts `count` variants made one at a time by `make` (so at most a batch of them is in memory), 16 per batch. */
async function predictVariants(p: Predictor, count: number, make: (i: number) => Raw | Promise<Raw>): Promise<{ preds: Prediction[]; full: FullMakeModels }> {
  const preds: Prediction[] = [];
  const full: FullMakeModels = [];
  for (let i = 0; i < count; i += BATCH) {
    const n = Math.min(BATCH, count - i);
    const batch = new Float32Array(n * p.inputFloats);
    for (let k = 0; k < n; k++) batch.set(await modelInput(p, await make(i + k)), k * p.inputFloats);
    preds.push(...(await p.predictInputs(batch, n, full)));
  }
  return { preds, full };
}

// ---- pixel edits ----

/** A copy of `img` with `r` filled with flat grey, or with `from`'s pixels at the same place (`from` has img's size). */
function paint(img: Raw, r: PxRect, from: Raw | null): Raw {
  const data = Buffer.from(img.data);
  for (let y = r.top; y < r.top + r.height; y++) {
    const row = (y * img.width + r.left) * 3;
    if (from) from.data.copy(data, row, row, row + r.width * 3);
    else data.fill(GREY, row, row + r.width * 3);
  }
  return { data, width: img.width, height: img.height };
}

/** A fraction rectangle in pixels of an image, at least one pixel, inside it. */
function toPx(r: FracRect, w: number, h: number): PxRect {
  const left = Math.min(w - 1, Math.max(0, Math.round(r.x1 * w)));
  const top = Math.min(h - 1, Math.max(0, Math.round(r.y1 * h)));
  const right = Math.max(left + 1, Math.min(w, Math.round(r.x2 * w)));
  const bottom = Math.max(top + 1, Math.min(h, Math.round(r.y2 * h)));
  return { left, top, width: right - left, height: bottom - top };
}

function checkRect(r: FracRect, what: string): void {
  const ok = [r.x1, r.y1, r.x2, r.y2].every((v) => Number.isFinite(v) && v >= 0 && v <= 1) && r.x2 > r.x1 && r.y2 > r.y1;
  if (!ok) throw new UserError(`${what} (${r.x1}, ${r.y1})-(${r.x2}, ${r.y2}) is not inside the photo: give x1 < x2 and y1 < y2 as fractions of its width and height, from 0 to 1`);
}

// ---- reading a prediction ----

const r6 = (v: number) => Math.round(v * 1e6) / 1e6;
const cents = (v: number) => Math.round(v * 100) / 100;

/** What the studies track of the unedited photo: its top make/model (class index) and top year. */
interface Tracked {
  mm: number;
  mmLabel: string;
  year: number;
  yearLabel: string;
}

function trackedOf(p: Predictor, base: Prediction): Tracked {
  const mmLabel = base.makeModels[0]?.label ?? '';
  const yearLabel = base.topYears[0]?.label ?? '';
  return { mm: p.makeModelLabels.indexOf(mmLabel), mmLabel, year: base.years.findIndex((y) => y.label === yearLabel), yearLabel };
}

function readingOf(pred: Prediction, fullRow: number[], t: Tracked): StudyReading {
  return {
    medianPrice: cents(pred.medianPrice),
    binMedian: pred.binPrice ? cents(pred.binPrice.median) : null,
    makeModelP: r6(fullRow[t.mm] ?? 0),
    yearP: r6(pred.years[t.year]?.p ?? 0),
  };
}

/** Differences of `b` against `a` (as predict.compare gives them, plus the bins' median). */
export function diffOf(a: Prediction, b: Prediction): StudyDiff {
  return {
    medianPrice: cents(b.medianPrice - a.medianPrice),
    binMedian: a.binPrice && b.binPrice ? cents(b.binPrice.median - a.binPrice.median) : null,
    priceBinsTv: r6(b.priceBins.reduce((s, x, j) => s + Math.abs(x.p - (a.priceBins[j]?.p ?? 0)), 0) / 2),
    topMakeModelChanged: b.makeModels[0]?.label !== a.makeModels[0]?.label,
    topYearChanged: b.topYears[0]?.label !== a.topYears[0]?.label,
  };
}

async function jpegUrl(img: Raw, size: number): Promise<string> {
  const buf = await rawSharp(img).resize(size, size, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 82 }).toBuffer();
  return `data:image/jpeg;base64,${buf.toString('base64')}`;
}

async function pngBase64(img: Raw): Promise<string> {
  return (await rawSharp(img).png({ compressionLevel: 9 }).toBuffer()).toString('base64');
}

// ---- occlusion map ----

/** Start offsets of a `size` window stepped by `stride` along `len`, the last one flush with the end. */
export function windowStarts(len: number, size: number, stride: number): number[] {
  const out: number[] = [];
  for (let x = 0; x + size <= len; x += stride) out.push(x);
  if (out.length === 0) out.push(0);
  const last = out[out.length - 1]!;
  if (last + size < len) out.push(len - size);
  return out;
}

export async function occlusion(ref: ModelRef, q: OcclusionParams): Promise<OcclusionStudy & Run> {
  const p = await predictorFor(ref);
  const img = await loadRaw(q.file);
  // 1. the grid: a square of `size` of the shorter side, stepped by `stride`, over the working decode
  const stride = q.stride ?? q.size / 2;
  const shorter = Math.min(img.width, img.height);
  const side = Math.max(1, Math.round(q.size * shorter));
  const step = Math.max(1, Math.round(stride * shorter));
  const xs = windowStarts(img.width, side, step);
  const ys = windowStarts(img.height, side, step);
  const squares = ys.flatMap((top, row) => xs.map((left, col) => ({ row, col, px: { left, top, width: side, height: side } })));
  // 2. the unoccluded photo, then every occluded one, through the same pipeline
  const base = await predictVariants(p, 1, () => img);
  const basePred = base.preds[0]!;
  const t = trackedOf(p, basePred);
  const b = readingOf(basePred, base.full[0]!, t);
  const occluded = await predictVariants(p, squares.length, (i) => paint(img, squares[i]!.px, null));
  // 3. each cell's reading and its change against the unoccluded photo
  const cells: OcclusionCell[] = squares.map((s, i) => {
    const r = readingOf(occluded.preds[i]!, occluded.full[i]!, t);
    return {
      row: s.row,
      col: s.col,
      rect: { x1: r6(s.px.left / img.width), y1: r6(s.px.top / img.height), x2: r6((s.px.left + side) / img.width), y2: r6((s.px.top + side) / img.height) },
      ...r,
      dPrice: cents(r.medianPrice - b.medianPrice),
      dBinMedian: r.binMedian !== null && b.binMedian !== null ? cents(r.binMedian - b.binMedian) : null,
      dropMakeModel: r6(b.makeModelP - r.makeModelP),
      dropYear: r6(b.yearP - r.yearP),
    };
  });
  const study: OcclusionStudy & Run = {
    runId: ref.runId,
    checkpoint: ref.checkpoint,
    path: q.file.given,
    width: img.origWidth,
    height: img.origHeight,
    size: q.size,
    stride,
    rows: ys.length,
    cols: xs.length,
    base: { ...b, makeModel: t.mmLabel, year: t.yearLabel },
    cells,
    image: await jpegUrl(img, 640),
  };
  if (q.png) {
    study.pngTarget = q.target ?? 'price';
    study.png = await pngBase64(heatOverlay(img, cells, HEAT_VALUE[study.pngTarget]));
  }
  return study;
}

/**
 * The photo with the cells' values painted over it: each pixel gets the mean value of the squares
 * covering it, red where the value is positive (hiding the region raised the price, or lowered the
 * probability), blue where negative, more opaque the larger (scaled to the largest on the map,
 * opacity growing with the square root so that middling changes show too).
 */
export function heatOverlay(img: Raw, cells: readonly OcclusionCell[], value: (c: OcclusionCell) => number): Raw {
  const { width: w, height: h } = img;
  const sum = new Float64Array(w * h);
  const cnt = new Uint16Array(w * h);
  for (const c of cells) {
    const r = toPx(c.rect, w, h);
    const v = value(c);
    for (let y = r.top; y < r.top + r.height; y++)
      for (let x = r.left; x < r.left + r.width; x++) {
        sum[y * w + x] += v;
        cnt[y * w + x]++;
      }
  }
  let max = 0;
  for (let i = 0; i < sum.length; i++) if (cnt[i]) max = Math.max(max, Math.abs(sum[i]! / cnt[i]!));
  const data = Buffer.from(img.data);
  for (let i = 0; i < w * h; i++) {
    if (!cnt[i] || max === 0) continue;
    const v = sum[i]! / cnt[i]! / max;
    const a = 0.75 * Math.sqrt(Math.abs(v)); // the square root lifts the middling changes into view
    const col = v > 0 ? [220, 38, 38] : [37, 99, 235];
    for (let k = 0; k < 3; k++) data[i * 3 + k] = Math.round(data[i * 3 + k]! * (1 - a) + col[k]! * a);
  }
  return { data, width: w, height: h };
}

// ---- region edit ----

export async function regionEdit(ref: ModelRef, q: EditParams): Promise<EditStudy & Run> {
  checkRect(q.rect, 'the rectangle');
  if (q.fill === 'patch' && !q.patch) throw new UserError("fill 'patch' needs a second photo (patchPath) to take the patch from");
  const p = await predictorFor(ref);
  const img = await loadRaw(q.file);
  const px = toPx(q.rect, img.width, img.height);
  // 1. what fills the rectangle: the whole photo blurred, flat grey, or the patch photo stretched to this one's size
  let from: Raw | null = null;
  if (q.fill === 'blur') {
    const sigma = Math.max(2, Math.min(px.width, px.height) / 6);
    const { data } = await rawSharp(img).blur(sigma).raw().toBuffer({ resolveWithObject: true });
    from = { data, width: img.width, height: img.height };
  } else if (q.fill === 'patch') from = await loadRaw(q.patch!, WORK_SIDE, { width: img.width, height: img.height });
  const edited = paint(img, px, from);
  // 2. before and after through the same pipeline
  const { preds } = await predictVariants(p, 2, (i) => (i === 0 ? img : edited));
  const study: EditStudy & Run = {
    runId: ref.runId,
    checkpoint: ref.checkpoint,
    path: q.file.given,
    width: img.origWidth,
    height: img.origHeight,
    rect: q.rect,
    fill: q.fill,
    patchPath: q.fill === 'patch' ? q.patch!.given : null,
    before: preds[0]!,
    after: preds[1]!,
    diff: diffOf(preds[0]!, preds[1]!),
    beforeImage: await jpegUrl(img, 480),
    afterImage: await jpegUrl(edited, 480),
  };
  if (q.png) study.png = await pngBase64(edited);
  return study;
}

// ---- background swap ----

/** Where the car goes on a background: the box's relative centre, scaled to fit the box's relative size, the car's shape kept. */
export function placement(box: FracRect, car: { width: number; height: number }, bg: { width: number; height: number }): PxRect {
  const tw = (box.x2 - box.x1) * bg.width;
  const th = (box.y2 - box.y1) * bg.height;
  const scale = Math.min(tw / car.width, th / car.height);
  const width = Math.max(1, Math.min(bg.width, Math.round(car.width * scale)));
  const height = Math.max(1, Math.min(bg.height, Math.round(car.height * scale)));
  const cx = ((box.x1 + box.x2) / 2) * bg.width;
  const cy = ((box.y1 + box.y2) / 2) * bg.height;
  const left = Math.min(bg.width - width, Math.max(0, Math.round(cx - width / 2)));
  const top = Math.min(bg.height - height, Math.max(0, Math.round(cy - height / 2)));
  return { left, top, width, height };
}

async function composite(bg: Raw, car: Raw, at: PxRect): Promise<Raw> {
  const { data } = await rawSharp(car).resize(at.width, at.height, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  const out = Buffer.from(bg.data);
  for (let y = 0; y < at.height; y++) data.copy(out, ((at.top + y) * bg.width + at.left) * 3, y * at.width * 3, (y + 1) * at.width * 3);
  return { data: out, width: bg.width, height: bg.height };
}

export async function backgroundSwap(ref: ModelRef, q: SwapParams): Promise<SwapStudy & Run> {
  if (q.box) checkRect(q.box, 'the car box');
  const p = await predictorFor(ref);
  const img = await loadRaw(q.file);
  // 1. the car's box: given, or where the detector finds it in the photo
  let box = q.box ?? null;
  if (!box) {
    const car = (await p.predictPhotos([await p.decodePhoto(q.file.real)]))[0]?.car ?? null;
    if (!car) throw new UserError(`the car detector is not available here (${p.carSource}); draw a box around the car instead`);
    if (!car.hasCar || !car.box) throw new UserError(`${q.file.given}: the car detector found no car in this photo; draw a box around the car instead`);
    box = car.box;
  }
  const carPx = toPx(box, img.width, img.height);
  const { data: carData } = await rawSharp(img).extract(carPx).raw().toBuffer({ resolveWithObject: true });
  const car: Raw = { data: carData, width: carPx.width, height: carPx.height };
  // 2. one composite per background that decodes; one that does not gets its reason
  const comps: Array<{ file: ReadablePath; img: Raw | null; error: string | null }> = [];
  for (const f of q.backgrounds) {
    try {
      const bg = await loadRaw(f);
      comps.push({ file: f, img: await composite(bg, car, placement(box, car, bg)), error: null });
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      comps.push({ file: f, img: null, error: e.message.replace(`${f.given}: `, '') });
    }
  }
  // 3. the original and every composite through the same pipeline
  const ok = comps.filter((c) => c.img);
  const { preds } = await predictVariants(p, 1 + ok.length, (i) => (i === 0 ? img : ok[i - 1]!.img!));
  const original = preds[0]!;
  const items: SwapItem[] = [];
  let k = 1;
  for (const c of comps) {
    const pred = c.img ? preds[k++]! : null;
    items.push({ path: c.file.given, prediction: pred, error: c.error, diff: pred ? diffOf(original, pred) : null, image: c.img ? await jpegUrl(c.img, 320) : null });
  }
  const study: SwapStudy & Run = {
    runId: ref.runId,
    checkpoint: ref.checkpoint,
    path: q.file.given,
    width: img.origWidth,
    height: img.origHeight,
    box,
    boxSource: q.box ? 'given' : 'detector',
    original,
    items,
    backgrounds: q.total,
    note: q.total > q.backgrounds.length ? `the folder holds ${q.total} background photos; the swap used the first ${q.backgrounds.length} by name (at most ${SWAP_MAX_BACKGROUNDS})` : null,
  };
  if (q.png) {
    const label = (c: (typeof comps)[number], it: SwapItem) => `${c.file.given.split(/[\\/]/).pop()}: ${it.prediction ? `$${Math.round(it.prediction.medianPrice).toLocaleString('en-US')}` : 'does not decode'}`;
    study.png = await contactSheet(comps.map((c, i) => ({ img: c.img, label: label(c, items[i]!) })));
  }
  return study;
}

/** The composites in a grid of 240x180 tiles (4 across), each with its background's name and median price under it, as a PNG (base64). */
async function contactSheet(tiles: Array<{ img: Raw | null; label: string }>): Promise<string> {
  const TW = 240;
  const TH = 180;
  const LH = 22;
  const cols = Math.min(4, tiles.length);
  const rows = Math.ceil(tiles.length / cols);
  const parts: sharp.OverlayOptions[] = [];
  for (let i = 0; i < tiles.length; i++) {
    const t = tiles[i]!;
    const left = (i % cols) * TW;
    const top = Math.floor(i / cols) * (TH + LH);
    if (t.img) parts.push({ input: await rawSharp(t.img).resize(TW, TH, { fit: 'contain', background: '#222' }).png().toBuffer(), left, top });
    const text = t.label.replace(/[<>&]/g, '');
    parts.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${TW}" height="${LH}"><text x="6" y="16" font-family="sans-serif" font-size="14" fill="#fff">${text}</text></svg>`), left, top: top + TH });
  }
  const png = await sharp({ create: { width: cols * TW, height: rows * (TH + LH), channels: 3, background: '#111' } })
    .composite(parts)
    .png({ compressionLevel: 9 })
    .toBuffer();
  return png.toString('base64');
}
