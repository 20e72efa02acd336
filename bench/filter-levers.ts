// The junk filter's levers, each against the others on the 1,321 labelled photos of
// ../shared/data/listing-photos (794 whole-car shots = good, 527 interiors and details = bad):
// the extractor (flatten_1, its 3-crop average, the pooled blocks, the car crop, the detector
// alone, car-v1), feature standardisation, the nested C search and the threshold's margin. Every
// figure is the share of bad photos removed at the threshold where at most 1% of the good ones
// are lost, on 10-fold cross-validated decision values; and each extractor's images/s, decode
// and detector included, measured in the same run.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { carInRow, CAR_V1_DIM, decodeForDetector, DETECTION_DIM } from '../src-main/engine/filter/car-features.ts';
import { extractFeatures, type FeatureExtractor } from '../src-main/engine/filter/extract.ts';
import { loadExtractor, type ExtractorName } from '../src-main/engine/filter/features.ts';
import { tuneSvm, type MatrixInput } from '../src-main/engine/filter/svm.ts';
import { chooseThreshold, fnrInterval, thresholdTable } from '../src-main/engine/filter/threshold.ts';
import { decodeRgb, writePreprocessed } from '../src-main/engine/ml/decode.ts';
import { MOBILENET_BLOCKS_DIM, MOBILENET_INPUT_SIZE } from '../src-main/engine/ml/mobilenet.ts';

export const LISTING_PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos');

interface Labelled {
  files: string[];
  y: number[];
}

export function listingPhotos(): Labelled {
  const files: string[] = [];
  const y: number[] = [];
  for (const [sub, label] of [
    ['good', 1],
    ['bad', 0],
  ] as const) {
    for (const f of fs.readdirSync(path.join(LISTING_PHOTOS, sub)).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort()) {
      files.push(path.join(LISTING_PHOTOS, sub, f));
      y.push(label);
    }
  }
  return { files, y };
}

interface Features {
  X: Float32Array;
  dim: number;
  ids: number[];
  imagesPerSecond: number;
  backend: string;
}

async function extract(ex: FeatureExtractor & { backend: string }, files: string[], crops: 1 | 3 = 1): Promise<Features> {
  const r = await extractFeatures(
    files.map((data, id) => ({ id, data })),
    { batchSize: 16, crops },
    ex,
  );
  return { X: r.features, dim: r.dim, ids: r.ids, imagesPerSecond: r.stats.imagesPerSecond, backend: ex.backend };
}

/** Columns [from, to) of every row. */
function columns(f: Features, from: number, to: number): Features {
  const n = f.ids.length;
  const d = to - from;
  const X = new Float32Array(n * d);
  for (let i = 0; i < n; i++) X.set(f.X.subarray(i * f.dim + from, i * f.dim + to), i * d);
  return { ...f, X, dim: d };
}

/**
 * The blocks features of the car crop: a square around the main car's box (from the car-v1 row),
 * 10% margin, clipped to the photo; the whole photo when no car was found.
 */
async function carCrops(files: string[], carRows: Features, blocks: FeatureExtractor): Promise<Features> {
  const t0 = performance.now();
  const S = 224;
  const rows: Float32Array[] = [];
  const B = 16;
  for (let s = 0; s < files.length; s += B) {
    const chunk = files.slice(s, s + B);
    const buf = new Float32Array(chunk.length * S * S * 3);
    await Promise.all(
      chunk.map(async (file, k) => {
        const i = s + k;
        const car = carInRow(carRows.X, i * carRows.dim);
        const { data, info } = await sharp(file).rotate().toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
        const W = info.width;
        const H = info.height;
        let pipeline = sharp(data, { raw: { width: W, height: H, channels: info.channels as 3 } });
        if (car.hasCar && car.box) {
          const bx1 = car.box.x1 * W;
          const bx2 = car.box.x2 * W;
          const by1 = car.box.y1 * H;
          const by2 = car.box.y2 * H;
          const side = Math.max(bx2 - bx1, by2 - by1) * 1.1;
          const l = Math.max(0, Math.round((bx1 + bx2) / 2 - side / 2));
          const t = Math.max(0, Math.round((by1 + by2) / 2 - side / 2));
          const w = Math.max(8, Math.min(W - l, Math.round(side)));
          const h = Math.max(8, Math.min(H - t, Math.round(side)));
          pipeline = pipeline.extract({ left: Math.min(l, W - w), top: Math.min(t, H - h), width: w, height: h });
        }
        const rgb = await pipeline.resize(S, S, { fit: 'cover' }).raw().toBuffer();
        writePreprocessed(new Uint8Array(rgb.buffer, rgb.byteOffset, rgb.length), buf, k * S * S * 3);
      }),
    );
    rows.push(await blocks.embed(buf, chunk.length));
  }
  const X = new Float32Array(files.length * MOBILENET_BLOCKS_DIM);
  let off = 0;
  for (const r of rows) {
    X.set(r, off);
    off += r.length;
  }
  return { X, dim: MOBILENET_BLOCKS_DIM, ids: files.map((_, i) => i), imagesPerSecond: files.length / ((performance.now() - t0) / 1000), backend: 'car-v1 rows + blocks' };
}

export interface LeverRow {
  lever: string;
  features: string;
  svm: string;
  badRemoved: number;
  goodLost: number;
  fnrUpper90: number;
  seconds: number;
}

/** 10-fold out-of-fold decision values under the SVM options asked for (tuneSvm: a grid of one C skips the inner search). */
async function cv(X: MatrixInput, y: number[], o: { standardize: boolean; cGrid: number[] }): Promise<Float64Array> {
  return (await tuneSvm(X, y, { folds: 10, seed: 0, cGrid: o.cGrid, standardize: o.standardize })).scores;
}

/** Bad removed and good lost at the threshold for FNR <= 1% (with margin z: its Wilson upper bound <= 1%), and the 90% upper bound there. */
function atCap(scores: Float64Array, y: number[], z: number): { badRemoved: number; goodLost: number; fnrUpper90: number } {
  const row = chooseThreshold(thresholdTable(scores, y), 0.01, { margin: z });
  return { badRemoved: row.badRemoved, goodLost: row.falseNegativeRate, fnrUpper90: fnrInterval(row).upper };
}

/** Runs every lever on the shared photos. */
export async function filterLevers(): Promise<{ rows: LeverRow[]; throughput: Record<string, number> }> {
  const { files, y } = listingPhotos();
  const load = (name: ExtractorName) => loadExtractor(name, '/nonexistent-workspace', { runtime: 'auto' });
  const throughput: Record<string, number> = {};
  const feats: Record<string, Features> = {};
  for (const name of ['mobilenet_v2', 'mobilenet_v2-blocks', 'car-v1'] as const) {
    const f = await extract(await load(name), files);
    if (f.ids.length !== files.length) throw new Error(`${name}: ${files.length - f.ids.length} photos failed to decode`);
    feats[name] = f;
    throughput[name] = f.imagesPerSecond;
    console.log(`  ${name}: ${f.imagesPerSecond.toFixed(1)} images/s on ${f.backend} (decode${name === 'car-v1' ? ' and detector' : ''} included)`);
  }
  // car-v1 as it read photos before, each decoded twice (the centre crop, then the whole photo
  // for the detector), on the same photos in the same run: its images/s against the one-decode
  // car-v1 above, and the largest difference between their rows (the same pixels: none expected)
  const carV1 = await load('car-v1');
  const twice = Object.assign(Object.create(carV1) as typeof carV1, {
    async decodeInput(data: Buffer | string): Promise<Float32Array> {
      const A = MOBILENET_INPUT_SIZE * MOBILENET_INPUT_SIZE * 3;
      const [rgb, det] = await Promise.all([decodeRgb(data, MOBILENET_INPUT_SIZE), decodeForDetector(data)]);
      const out = new Float32Array(A + det.length);
      writePreprocessed(rgb, out, 0);
      out.set(det, A);
      return out;
    },
  });
  const ref = await extract(twice, files);
  throughput['car-v1 (two decodes)'] = ref.imagesPerSecond;
  let maxDiff = 0;
  for (let i = 0; i < ref.X.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref.X[i]! - feats['car-v1']!.X[i]!));
  throughput['car-v1 one decode / two decodes'] = feats['car-v1']!.imagesPerSecond / ref.imagesPerSecond;
  console.log(
    `  car-v1 decoding each photo twice (as before): ${ref.imagesPerSecond.toFixed(1)} images/s; one decode ${(feats['car-v1']!.imagesPerSecond / ref.imagesPerSecond).toFixed(2)}x that, max |row difference| ${maxDiff.toExponential(1)} over ${ref.ids.length} photos`,
  );
  feats['mobilenet_v2.crops3'] = await extract(await load('mobilenet_v2'), files, 3);
  throughput['mobilenet_v2.crops3'] = feats['mobilenet_v2.crops3'].imagesPerSecond;
  console.log(`  mobilenet_v2.crops3: ${throughput['mobilenet_v2.crops3']!.toFixed(1)} images/s`);
  feats.detection = columns(feats['car-v1']!, CAR_V1_DIM - DETECTION_DIM, CAR_V1_DIM);
  feats['car crop blocks'] = await carCrops(files, feats['car-v1']!, await load('mobilenet_v2-blocks'));

  const plan: Array<[string, string, { standardize: boolean; cGrid: number[] }, number]> = [
    ['baseline (the original feature set)', 'mobilenet_v2', { standardize: false, cGrid: [1] }, 0],
    ['3-crop averaging + L2', 'mobilenet_v2.crops3', { standardize: false, cGrid: [1] }, 0],
    ['pooled ImageNet blocks 10/13/16', 'mobilenet_v2-blocks', { standardize: false, cGrid: [1] }, 0],
    ['+ standardisation', 'mobilenet_v2-blocks', { standardize: true, cGrid: [1] }, 0],
    ['car crop (blocks of the detected car)', 'car crop blocks', { standardize: true, cGrid: [1] }, 0],
    ['detector summary alone (12 values)', 'detection', { standardize: true, cGrid: [1] }, 0],
    ['car-v1 without standardisation', 'car-v1', { standardize: false, cGrid: [1] }, 0],
    ['car-v1 (blocks + detection), standardised', 'car-v1', { standardize: true, cGrid: [1] }, 0],
    ['+ nested C search {1, 4}', 'car-v1', { standardize: true, cGrid: [1, 4] }, 0],
    ['+ threshold margin (FNR upper bound, z 1.645)', 'car-v1', { standardize: true, cGrid: [1, 4] }, 1.645],
  ];
  const rows: LeverRow[] = [];
  const cache = new Map<string, Float64Array>();
  for (const [lever, set, o, z] of plan) {
    const f = feats[set]!;
    const t0 = performance.now();
    const key = `${set}|${o.standardize}|${o.cGrid.join(',')}`;
    let scores = cache.get(key);
    if (!scores) {
      scores = await cv({ data: f.X, rows: f.ids.length, cols: f.dim }, y, o);
      cache.set(key, scores);
    }
    const m = atCap(scores, y, z);
    const row: LeverRow = { lever, features: `${set} (${f.dim})`, svm: `${o.standardize ? 'standardised' : 'raw'}, C ${o.cGrid.join('|')}${z ? `, margin z ${z}` : ''}`, ...m, seconds: (performance.now() - t0) / 1000 };
    rows.push(row);
    console.log(`  ${lever.padEnd(48)} ${row.features.padEnd(28)} bad removed ${(100 * m.badRemoved).toFixed(1)}%, good lost ${(100 * m.goodLost).toFixed(2)}%(90% upper bound ${(100 * m.fnrUpper90).toFixed(2)}%)`);
  }
  return { rows, throughput };
}

