// The car detector: the COCO CenterNet (MobileNetV3 backbone) shipped in the npm package
// @vladmandic/human (MIT), converted from its TensorFlow.js graph model to ONNX by tf-graph-onnx.ts
// on first use and cached per user like the MobileNetV2 (model-cache.ts), or run on tfjs where
// ONNX Runtime is not installed. It sees the whole photo squashed to 256x256 (RGB 0-255, as the
// model was trained), and answers with the vehicles (car, motorcycle, bus, truck) and people in
// it: a box per heat-map peak, in [0, 1] of the photo's width and height.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { ensureCachedModel, type OnnxLog } from './model-cache.ts';
import { createOrtSession, loadOrt, OrtNotInstalled, type OrtDevice } from './ort.ts';
import { TF_GRAPH_ONNX_CONVERTER_VERSION, tfGraphToOnnx } from './tf-graph-onnx.ts';

/**
 * Detector input side. Measured on 2 cores (model alone, batches of 8): 512 px (its native size)
 * 18 images/s, 384: 28, 320: 49, 256: 92; on listing-photos the car-v1 filter removed 78.2% of
 * bad photos at 1% FNR with 256 px detections and 77.4% with 320 px ones, so the fastest it is.
 */
export const DETECTOR_INPUT_SIZE = 256;
/** Output stride of the CenterNet heat map. */
const STRIDE = 4;
/** COCO class ids kept: person, car, motorcycle, bus, truck. */
export const DETECTOR_CLASSES = [0, 2, 3, 5, 7] as const;
export const DETECTOR_CLASS_NAMES: Record<number, string> = { 0: 'person', 2: 'car', 3: 'motorcycle', 5: 'bus', 7: 'truck' };
/** Peaks below this are not reported. */
const MIN_SCORE = 0.1;
export const DETECTOR_NAME = 'centernet-mobilenet_v3-coco';
const OUTPUTS = ['tower_0/keypoints', 'tower_0/wh'];

export interface Detection {
  /** Box corners in [0, 1] of the image's width and height (may reach slightly outside). */
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  /** COCO class id (DETECTOR_CLASSES). */
  cls: number;
}

export interface CarDetector {
  name: string;
  inputSize: number;
  backend: string;
  /** batch: n images, NHWC inputSize x inputSize RGB 0-255 float32. Detections best first per image. */
  detect(batch: Float32Array, n: number): Promise<Detection[][]>;
}

const require = createRequire(import.meta.url);

/** The models folder of the @vladmandic/human package (its `exports` map hides it from require). */
export function humanModelDir(): string {
  let dir = path.dirname(require.resolve('@vladmandic/human'));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === '@vladmandic/human') return path.join(dir, 'models');
    const up = path.dirname(dir);
    if (up === dir) throw new Error('could not find the @vladmandic/human package directory');
    dir = up;
  }
}

/** The detector's graph model as tfjs model artifacts (model.json + its one weight file). */
export function readDetectorArtifacts(): TF.io.ModelArtifacts {
  const dir = humanModelDir();
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'centernet.json'), 'utf8')) as {
    modelTopology: unknown;
    weightsManifest: { paths: string[]; weights: TF.io.WeightsManifestEntry[] }[];
    format?: string;
  };
  const chunks = json.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const all = Buffer.concat(chunks);
  return {
    modelTopology: json.modelTopology as object,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
    format: json.format ?? 'graph-model',
  };
}

/**
 * Turns the heat map (n x classes x G x G, sigmoid scores, NCHW) and box sizes (n x 4 x G x G:
 * left, top, right, bottom distances from the peak in input pixels) into detections: every
 * local 3x3 maximum above MIN_SCORE, best first. `layout` 'nhwc' reads tfjs's NHWC outputs.
 */
export function decodeDetections(heat: Float32Array, wh: Float32Array, n: number, classes: readonly number[], grid: number, layout: 'nchw' | 'nhwc' = 'nchw'): Detection[][] {
  const C = classes.length;
  const G = grid;
  const S = G * STRIDE;
  const hIdx = layout === 'nchw' ? (i: number, c: number, y: number, x: number) => ((i * C + c) * G + y) * G + x : (i: number, c: number, y: number, x: number) => ((i * G + y) * G + x) * C + c;
  const wIdx = layout === 'nchw' ? (i: number, k: number, y: number, x: number) => ((i * 4 + k) * G + y) * G + x : (i: number, k: number, y: number, x: number) => ((i * G + y) * G + x) * 4 + k;
  const out: Detection[][] = [];
  for (let i = 0; i < n; i++) {
    const dets: Detection[] = [];
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < G; y++) {
        for (let x = 0; x < G; x++) {
          const v = heat[hIdx(i, c, y, x)]!;
          if (v < MIN_SCORE) continue;
          let peak = true;
          for (let dy = -1; dy <= 1 && peak; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = y + dy;
              const xx = x + dx;
              if ((dy || dx) && yy >= 0 && yy < G && xx >= 0 && xx < G && heat[hIdx(i, c, yy, xx)]! > v) {
                peak = false;
                break;
              }
            }
          }
          if (!peak) continue;
          const px = x * STRIDE;
          const py = y * STRIDE;
          dets.push({
            x1: (px - wh[wIdx(i, 0, y, x)]!) / S,
            y1: (py - wh[wIdx(i, 1, y, x)]!) / S,
            x2: (px + wh[wIdx(i, 2, y, x)]!) / S,
            y2: (py + wh[wIdx(i, 3, y, x)]!) / S,
            score: v,
            cls: classes[c]!,
          });
        }
      }
    }
    dets.sort((a, b) => b.score - a.score);
    out.push(dets);
  }
  return out;
}

const loaded = new Map<string, Promise<CarDetector>>();

/** The detector on ONNX Runtime when it loads (else tfjs), once per process and runtime. */
export function loadCarDetector(opts: { runtime?: 'auto' | 'onnx' | 'tfjs'; threads?: number; device?: OrtDevice; log?: OnnxLog } = {}): Promise<CarDetector> {
  const runtime = opts.runtime ?? 'auto';
  const key = `${runtime}:${opts.threads ?? ''}:${opts.device ?? process.env.CARSTUDIO_ORT_DEVICE ?? ''}`;
  let p = loaded.get(key);
  if (!p) {
    p = runtime === 'tfjs' ? loadTfjs() : loadOnnx(opts).catch((e: unknown) => {
      if (runtime === 'onnx' || !(e instanceof OrtNotInstalled)) throw e;
      return loadTfjs();
    });
    loaded.set(key, p);
    p.catch(() => {
      if (loaded.get(key) === p) loaded.delete(key);
    });
  }
  return p;
}

async function loadOnnx(opts: { threads?: number; device?: OrtDevice; log?: OnnxLog }): Promise<CarDetector> {
  const ort = await loadOrt();
  const S = DETECTOR_INPUT_SIZE;
  const G = S / STRIDE;
  const artifacts = readDetectorArtifacts();
  const source = crypto
    .createHash('sha256')
    .update(JSON.stringify(artifacts.modelTopology))
    .update(new Uint8Array(artifacts.weightData as ArrayBuffer))
    .digest('hex');
  const build = () =>
    tfGraphToOnnx(artifacts, {
      outputs: OUTPUTS,
      inputSize: S,
      keepChannels: { 'tower_0/keypoints': [...DETECTOR_CLASSES] },
      docString: `${DETECTOR_NAME} from @vladmandic/human (sha256 ${source}), ${S}px`,
    }).bytes;
  const opened = await ensureCachedModel({
    base: `${DETECTOR_NAME}-${S}-${source.slice(0, 16)}-g${TF_GRAPH_ONNX_CONVERTER_VERSION}`,
    source,
    converter: TF_GRAPH_ONNX_CONVERTER_VERSION,
    what: 'ONNX car detector',
    from: 'the COCO CenterNet of @vladmandic/human',
    build,
    log: opts.log,
    open: (file, log) =>
      createOrtSession(ort, file, {
        device: opts.device,
        threads: opts.threads,
        log,
        async check(session) {
          const res = await session.run({ tower_0_images: new ort.Tensor('float32', new Float32Array(S * S * 3), [1, S, S, 3]) });
          if (res.tower_0_keypoints?.dims[1] !== DETECTOR_CLASSES.length || res.tower_0_wh?.dims[2] !== G) throw new Error('its outputs do not have the detector shapes');
        },
      }),
  });
  const { session, backend } = opened;
  return {
    name: DETECTOR_NAME,
    inputSize: S,
    backend,
    async detect(batch, n) {
      if (n <= 0) return [];
      const res = await session.run({ tower_0_images: new ort.Tensor('float32', batch.subarray(0, n * S * S * 3), [n, S, S, 3]) });
      return decodeDetections(res.tower_0_keypoints!.data as Float32Array, res.tower_0_wh!.data as Float32Array, n, DETECTOR_CLASSES, G);
    },
  };
}

async function loadTfjs(): Promise<CarDetector> {
  const { initBackend } = await import('./backend.ts');
  const info = await initBackend('auto');
  const tf = info.tf;
  const model = await tf.loadGraphModel(tf.io.fromMemory(readDetectorArtifacts()));
  const S = DETECTOR_INPUT_SIZE;
  // the graph's resize targets are fixed for its own 512 px input: scale the input up to it
  const NATIVE = 512;
  const G = NATIVE / STRIDE;
  const keep = tf.tensor1d([...DETECTOR_CLASSES], 'int32');
  return {
    name: DETECTOR_NAME,
    inputSize: S,
    backend: `tfjs ${info.name}`,
    async detect(batch, n) {
      const out: Detection[][] = [];
      for (let i = 0; i < n; i++) {
        const x = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(batch.subarray(i * S * S * 3, (i + 1) * S * S * 3), [1, S, S, 3]), [NATIVE, NATIVE]));
        const [kp, wh] = model.execute(x, OUTPUTS) as TF.Tensor[];
        const kept = tf.gather(kp!, keep, 3);
        const heat = (await kept.data()) as Float32Array;
        const sizes = (await wh!.data()) as Float32Array;
        tf.dispose([x, kp!, wh!, kept]);
        out.push(...decodeDetections(heat, sizes, 1, DETECTOR_CLASSES, G, 'nhwc'));
      }
      return out;
    },
  };
}
