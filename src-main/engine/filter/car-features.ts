// The car-v1 features: what the photo looks like (the MobileNetV2's pooled blocks 10, 13 and 16,
// from the centre crop at 224 px) and what the COCO car detector sees in the whole photo (the
// largest-scoring vehicle's box, its score and area share, whether it touches the frame, how many
// vehicles and people are in view). The detection summary is the row's last DETECTION_DIM values,
// so a cached feature row also says where the car is (carInRow), for the thumbnails and Predict.
import { decodeCropAndWhole, decodeWhole, writePreprocessed } from '../ml/decode.ts';
import { DETECTOR_INPUT_SIZE, loadCarDetector, type CarDetector, type Detection } from '../ml/car-detector.ts';
import { MOBILENET_BLOCKS_DIM, MOBILENET_INPUT_SIZE } from '../ml/mobilenet.ts';
import type { OrtDevice } from '../ml/ort.ts';
import type { FeatureExtractor } from './extract.ts';

export const CAR_V1_NAME = 'car-v1: mobilenet_v2 blocks 10/13/16 + centernet detection';
/** Values of the detection summary at the end of a car-v1 row. */
export const DETECTION_DIM = 12;
export const CAR_V1_DIM = MOBILENET_BLOCKS_DIM + DETECTION_DIM;
/**
 * Below this best-vehicle score a photo is said to have no car in it. Measured on
 * ../shared/data/listing-photos: 1.8% of the whole-car shots score below 0.25, 59% of the
 * interior/detail shots do.
 */
export const NO_CAR_SCORE = 0.25;
/** Vehicles counted in view: detections of a car, motorcycle, bus or truck at least this sure. */
const COUNT_SCORE = 0.3;
/** The main car is the largest vehicle box scoring at least this. */
const MAIN_SCORE = 0.2;
const EDGE = 0.02;

const VEHICLES = new Set([2, 3, 5, 7]);
const clip01 = (v: number) => Math.min(1, Math.max(0, v));

/**
 * The DETECTION_DIM summary of one photo's detections (best first): [0] the main car's score,
 * [1-4] its box, [5] its area share, [6] frame edges it touches, [7] vehicles in view, [8] the
 * best person score, [9] the best vehicle score, [10] main car is a bus/truck, [11] its centre's
 * distance from the photo's centre.
 */
export function detectionSummary(dets: readonly Detection[]): Float32Array {
  const out = new Float32Array(DETECTION_DIM);
  const vehicles = dets.filter((d) => VEHICLES.has(d.cls));
  out[8] = dets.find((d) => d.cls === 0)?.score ?? 0;
  if (!vehicles.length) return out;
  // the car the photo is of: the largest vehicle box the detector is fairly sure of (a sharp
  // small car in the background often outscores the blurry big one in front), else the best
  const area = (d: Detection) => (clip01(d.x2) - clip01(d.x1)) * (clip01(d.y2) - clip01(d.y1));
  const sure = vehicles.filter((v) => v.score >= MAIN_SCORE);
  const b = sure.length ? sure.reduce((a, v) => (area(v) > area(a) ? v : a)) : vehicles[0]!;
  const x1 = clip01(b.x1);
  const y1 = clip01(b.y1);
  const x2 = clip01(b.x2);
  const y2 = clip01(b.y2);
  out[0] = b.score;
  out[1] = x1;
  out[2] = y1;
  out[3] = x2;
  out[4] = y2;
  out[5] = (x2 - x1) * (y2 - y1);
  out[6] = (x1 < EDGE ? 1 : 0) + (y1 < EDGE ? 1 : 0) + (x2 > 1 - EDGE ? 1 : 0) + (y2 > 1 - EDGE ? 1 : 0);
  out[7] = vehicles.filter((v) => v.score >= COUNT_SCORE).length;
  out[9] = vehicles[0]!.score;
  out[10] = b.cls === 5 || b.cls === 7 ? 1 : 0;
  out[11] = Math.hypot((x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5);
  return out;
}

/** Where the car is, as a car-v1 row says. */
export interface CarInPhoto {
  /** The main car's score (0 when no vehicle was found). */
  score: number;
  /** Its box in [0, 1] of the photo's width and height; null when no vehicle was found. */
  box: { x1: number; y1: number; x2: number; y2: number } | null;
  /** Share of the photo the box covers. */
  areaShare: number;
  /** Frame edges the box touches (0-4). */
  edges: number;
  /** Vehicles in view (score >= 0.3). */
  vehicles: number;
  /** False when no vehicle scores NO_CAR_SCORE or more. */
  hasCar: boolean;
}

/** The detection part of a car-v1 row (`row` holds CAR_V1_DIM values from `offset`). */
export function carInRow(row: ArrayLike<number>, offset = 0): CarInPhoto {
  const at = (k: number) => Number(row[offset + MOBILENET_BLOCKS_DIM + k]);
  const score = at(0);
  const box = score > 0 ? { x1: at(1), y1: at(2), x2: at(3), y2: at(4) } : null;
  return { score, box, areaShare: at(5), edges: at(6), vehicles: at(7), hasCar: at(9) >= NO_CAR_SCORE };
}

/** The same from detections (Predict runs the detector itself). */
export function carInDetections(dets: readonly Detection[]): CarInPhoto {
  const s = new Float32Array(MOBILENET_BLOCKS_DIM + DETECTION_DIM);
  s.set(detectionSummary(dets), MOBILENET_BLOCKS_DIM);
  return carInRow(s);
}

/** The whole photo squashed to the detector's square input, RGB 0-255 as floats. */
export async function decodeForDetector(input: Buffer | string, size = DETECTOR_INPUT_SIZE): Promise<Float32Array> {
  return Float32Array.from(await decodeWhole(input, size));
}

export interface CarV1Options {
  runtime?: 'auto' | 'onnx' | 'tfjs';
  threads?: number;
  device?: OrtDevice;
  log?(level: 'info' | 'warn', message: string): void;
}

/**
 * The car-v1 extractor over a blocks extractor (`blocks`, 224 px input, MOBILENET_BLOCKS_DIM
 * out) and the detector. Its input per photo is the 224 px centre crop (scaled to [0, 1]) then
 * the whole photo at the detector's size (0-255), both made from one decode of the file.
 */
export async function carV1Extractor(blocks: FeatureExtractor & { backend: string }, opts: CarV1Options = {}): Promise<FeatureExtractor & { backend: string; detector: CarDetector }> {
  if (blocks.featureDim !== MOBILENET_BLOCKS_DIM || blocks.inputSize !== MOBILENET_INPUT_SIZE) throw new Error(`car-v1 needs the ${MOBILENET_BLOCKS_DIM}-d blocks extractor`);
  const detector = await loadCarDetector({ runtime: opts.runtime, threads: opts.threads, device: opts.device, log: opts.log });
  const A = MOBILENET_INPUT_SIZE * MOBILENET_INPUT_SIZE * 3;
  const D = DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3;
  return {
    name: 'car-v1',
    inputSize: MOBILENET_INPUT_SIZE,
    featureDim: CAR_V1_DIM,
    inputFloats: A + D,
    backend: blocks.backend === detector.backend ? blocks.backend : `${blocks.backend} + detector on ${detector.backend}`,
    detector,
    async decodeInput(data) {
      // one decode for both views (decodeCropAndWhole), the same pixels as decodeRgb + decodeForDetector
      const { crop, whole } = await decodeCropAndWhole(data, MOBILENET_INPUT_SIZE, DETECTOR_INPUT_SIZE);
      const out = new Float32Array(A + D);
      writePreprocessed(crop, out, 0);
      out.set(whole, A);
      return out;
    },
    async embed(batch, n) {
      const a = new Float32Array(n * A);
      const d = new Float32Array(n * D);
      for (let i = 0; i < n; i++) {
        a.set(batch.subarray(i * (A + D), i * (A + D) + A), i * A);
        d.set(batch.subarray(i * (A + D) + A, (i + 1) * (A + D)), i * D);
      }
      const look = await blocks.embed(a, n);
      const dets = await detector.detect(d, n);
      const out = new Float32Array(n * CAR_V1_DIM);
      for (let i = 0; i < n; i++) {
        out.set(look.subarray(i * MOBILENET_BLOCKS_DIM, (i + 1) * MOBILENET_BLOCKS_DIM), i * CAR_V1_DIM);
        out.set(detectionSummary(dets[i]!), i * CAR_V1_DIM + MOBILENET_BLOCKS_DIM);
      }
      return out;
    },
  };
}
