// The COCO car detector: the TensorFlow.js graph model converted to ONNX (tf-graph-onnx.ts) gives
// the same heat map and box sizes as tfjs running the graph itself; the heat-map decoding finds
// every local peak and maps it to a box; on real listing photos the whole-car shots have a car
// box covering much of the frame and most interior shots have none; the car-v1 feature rows carry
// that box. Needs onnxruntime-node and ../shared/data for the parts that say so.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { carInRow, CAR_V1_DIM, decodeForDetector, detectionSummary, DETECTION_DIM } from '../src-main/engine/filter/car-features.ts';
import { extractFeatures } from '../src-main/engine/filter/extract.ts';
import { loadExtractor } from '../src-main/engine/filter/features.ts';
import { decodeDetections, DETECTOR_CLASSES, DETECTOR_INPUT_SIZE, loadCarDetector, readDetectorArtifacts } from '../src-main/engine/ml/car-detector.ts';
import { MOBILENET_BLOCKS_DIM } from '../src-main/engine/ml/mobilenet.ts';
import { loadOrt } from '../src-main/engine/ml/ort.ts';
import { GraphConversionError, tfGraphToOnnx } from '../src-main/engine/ml/tf-graph-onnx.ts';
import { hasOrt } from './helpers/onnx.ts';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const havePhotos = fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad'));
if (!hasOrt) console.log('car-detector: onnxruntime-node is not installed, skipping the ONNX Runtime tests');
if (!havePhotos) console.log(`car-detector: ${PHOTOS} is absent, skipping the tests on real photos`);

const pick = (sub: string, prefix: string, n: number): string[] =>
  fs
    .readdirSync(path.join(PHOTOS, sub))
    .filter((f) => f.startsWith(prefix) && f.endsWith('.jpg'))
    .sort()
    .slice(0, n)
    .map((f) => path.join(PHOTOS, sub, f));

describe('decodeDetections', () => {
  it('reports each local maximum above 0.1 as a box, best first, and skips its neighbours', () => {
    const G = 8;
    const C = DETECTOR_CLASSES.length;
    const heat = new Float32Array(C * G * G);
    const wh = new Float32Array(4 * G * G);
    const car = DETECTOR_CLASSES.indexOf(2);
    const person = DETECTOR_CLASSES.indexOf(0);
    const at = (c: number, y: number, x: number) => (c * G + y) * G + x;
    heat[at(car, 2, 3)] = 0.8;
    heat[at(car, 2, 4)] = 0.5; // a shoulder of the same peak: not a second car
    heat[at(car, 6, 6)] = 0.3;
    heat[at(person, 1, 1)] = 0.05; // below the floor
    for (let k = 0; k < 4; k++) wh[(k * G + 2) * G + 3] = 4 * (k + 1);
    const [dets] = decodeDetections(heat, wh, 1, DETECTOR_CLASSES, G);
    expect(dets!.map((d) => [d.cls, d.score])).toEqual([
      [2, expect.closeTo(0.8, 6)],
      [2, expect.closeTo(0.3, 6)],
    ]);
    // peak at x=3, y=2 on a stride-4 grid of a 32 px input: x 12 px - 4, y 8 px - 8, ...
    const d = dets![0]!;
    expect([d.x1, d.y1, d.x2, d.y2].map((v) => v * 32)).toEqual([8, 0, 24, 24].map((v) => expect.closeTo(v, 5)));
  });

  it('summarises the main car as the largest box it is fairly sure of, not the sharpest small one', () => {
    const s = detectionSummary([
      { x1: 0.9, y1: 0.2, x2: 1.0, y2: 0.3, score: 0.6, cls: 2 },
      { x1: 0.05, y1: 0.1, x2: 0.95, y2: 0.9, score: 0.3, cls: 2 },
      { x1: 0.4, y1: 0.4, x2: 0.5, y2: 0.6, score: 0.5, cls: 0 },
    ]);
    expect(s.length).toBe(DETECTION_DIM);
    expect(s[0]).toBeCloseTo(0.3, 6); // the big car's score
    expect(s[5]).toBeCloseTo(0.9 * 0.8, 5); // its area share
    expect(s[7]).toBe(2); // two vehicles >= 0.3
    expect(s[8]).toBeCloseTo(0.5, 6); // a person
    expect(s[9]).toBeCloseTo(0.6, 6); // the best vehicle score
    expect(Array.from(detectionSummary([]))).toEqual(new Array(DETECTION_DIM).fill(0));
  });
});

describe('tf-graph-onnx', () => {
  it('refuses an op it does not convert, naming the node', () => {
    const art = readDetectorArtifacts();
    const topo = structuredClone(art.modelTopology) as { node: { name: string; op: string }[] };
    const n = topo.node.find((x) => x.op === 'Relu6')!;
    n.op = 'Selu';
    expect(() => tfGraphToOnnx({ ...art, modelTopology: topo }, { outputs: ['tower_0/keypoints'] })).toThrow(GraphConversionError);
    expect(() => tfGraphToOnnx({ ...art, modelTopology: topo }, { outputs: ['tower_0/keypoints'] })).toThrow(`cannot convert node ${n.name} (Selu) to ONNX: op Selu is not supported`);
  });

  it.skipIf(!hasOrt || !havePhotos)(
    'gives the heat map and box sizes tfjs computes from the graph, on a real photo at 512 px',
    async () => {
      const art = readDetectorArtifacts();
      const S = 512;
      const file = pick('good', 'angle-front', 1)[0]!;
      const raw = await sharp(file).resize(S, S, { fit: 'fill' }).removeAlpha().raw().toBuffer();
      const x = Float32Array.from(raw);
      const conv = tfGraphToOnnx(art, { outputs: ['tower_0/keypoints', 'tower_0/wh'] });
      const ort = await loadOrt();
      const session = await ort.InferenceSession.create(conv.bytes);
      const out = await session.run({ [conv.inputName]: new ort.Tensor('float32', x, [1, S, S, 3]) });
      const kp = out.tower_0_keypoints!.data as Float32Array;
      const wh = out.tower_0_wh!.data as Float32Array;
      const tf = await import('@tensorflow/tfjs');
      await tf.setBackend('cpu');
      const model = await tf.loadGraphModel(tf.io.fromMemory(art));
      const [tkp, twh] = model.execute(tf.tensor4d(x, [1, S, S, 3]), ['tower_0/keypoints', 'tower_0/wh']) as import('@tensorflow/tfjs').Tensor[];
      const a = (await tkp!.data()) as Float32Array; // NHWC
      const b = (await twh!.data()) as Float32Array;
      const G = S / 4;
      let dk = 0;
      let dw = 0;
      let peak = 0;
      for (let yy = 0; yy < G; yy++)
        for (let xx = 0; xx < G; xx++) {
          for (let c = 0; c < 80; c++) dk = Math.max(dk, Math.abs(a[(yy * G + xx) * 80 + c]! - kp[(c * G + yy) * G + xx]!));
          for (let c = 0; c < 4; c++) dw = Math.max(dw, Math.abs(b[(yy * G + xx) * 4 + c]! - wh[(c * G + yy) * G + xx]!));
          peak = Math.max(peak, a[(yy * G + xx) * 80 + 2]!);
        }
      expect(peak).toBeGreaterThan(0.3); // tfjs sees a car: the comparison is of something
      expect(dk).toBeLessThan(1e-4);
      expect(dw).toBeLessThan(0.05); // box sizes run to ~300 px
    },
    180_000,
  );
});

describe.skipIf(!hasOrt || !havePhotos)('on real listing photos', () => {
  it('finds a large car in whole-car shots and none in most interior shots, and car-v1 rows carry the box', async () => {
    process.env.CARSTUDIO_MODEL_CACHE = tmpDir('car-detector-cache');
    const cars = [...pick('good', 'angle-front', 4), ...pick('good', 'profile', 4)];
    const interiors = pick('bad', 'interior__', 8);
    const detector = await loadCarDetector({ runtime: 'onnx' });
    const batch = new Float32Array(16 * DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3);
    const all = [...cars, ...interiors];
    for (let i = 0; i < all.length; i++) batch.set(await decodeForDetector(all[i]!), i * DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3);
    const dets = await detector.detect(batch, all.length);
    const summaries = dets.map((d) => detectionSummary(d));
    const carAreas = summaries.slice(0, 8).map((s) => s[5]!);
    expect(carAreas.filter((a) => a > 0.2).length).toBeGreaterThanOrEqual(7);
    const interiorCars = summaries.slice(8).filter((s) => s[9]! >= 0.25).length;
    expect(interiorCars).toBeLessThanOrEqual(4);

    const ex = await loadExtractor('car-v1', tmpDir('car-v1-ws'), { runtime: 'onnx' });
    const r = await extractFeatures(
      all.map((data, id) => ({ id, data })),
      { batchSize: 8 },
      ex,
    );
    expect(r.dim).toBe(CAR_V1_DIM);
    expect(r.ids.length).toBe(16);
    for (let i = 0; i < 16; i++) {
      const row = r.features.subarray(i * CAR_V1_DIM, (i + 1) * CAR_V1_DIM);
      // the look part is one unit vector
      let ss = 0;
      for (let d = 0; d < MOBILENET_BLOCKS_DIM; d++) ss += row[d]! * row[d]!;
      expect(ss).toBeCloseTo(1, 3);
      // the detection part is what the detector said of the same photo
      expect(carInRow(row).score).toBeCloseTo(summaries[i]![0]!, 2);
    }
    const first = carInRow(r.features, 0);
    expect(first.hasCar).toBe(true);
    expect(first.box!.x2 - first.box!.x1).toBeGreaterThan(0.3);
  }, 180_000);

  it('finds the same main car on the tfjs fallback (where ONNX Runtime is missing) as on ONNX Runtime', async () => {
    const files = pick('good', 'angle-front', 2);
    const batch = new Float32Array(2 * DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3);
    for (let i = 0; i < 2; i++) batch.set(await decodeForDetector(files[i]!), i * DETECTOR_INPUT_SIZE * DETECTOR_INPUT_SIZE * 3);
    const onnx = await (await loadCarDetector({ runtime: 'onnx' })).detect(batch, 2);
    const tfjs = await loadCarDetector({ runtime: 'tfjs' });
    expect(tfjs.backend).toMatch(/^tfjs /);
    const other = await tfjs.detect(batch, 2);
    for (let i = 0; i < 2; i++) {
      const a = detectionSummary(onnx[i]!);
      const b = detectionSummary(other[i]!);
      const iou = (() => {
        const ix = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
        const iy = Math.max(0, Math.min(a[4]!, b[4]!) - Math.max(a[2]!, b[2]!));
        return (ix * iy) / (a[5]! + b[5]! - ix * iy);
      })();
      expect(iou).toBeGreaterThan(0.6);
    }
  }, 180_000);

  it('skips a corrupt photo with its reason and keeps the others', async () => {
    const dir = tmpDir('car-v1-bad');
    const bad = path.join(dir, 'broken.jpg');
    fs.writeFileSync(bad, Buffer.from('not a jpeg at all'));
    const ex = await loadExtractor('car-v1', dir, { runtime: 'onnx' });
    const r = await extractFeatures(
      [
        { id: 1, data: pick('good', 'profile', 1)[0]! },
        { id: 2, data: bad },
      ],
      {},
      ex,
    );
    expect(r.ids).toEqual([1]);
    expect(r.failures.map((f) => f.id)).toEqual([2]);
    expect(r.failures[0]!.error.length).toBeGreaterThan(5);
  }, 120_000);
});
