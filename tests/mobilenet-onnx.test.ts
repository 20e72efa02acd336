// The nsfwjs MobileNetV2 converted to ONNX (keras-onnx.ts) against the tfjs backbone it is
// converted from: the same features, on the same decoded batch of real listing photos, within
// 1e-3 per value; the converted model is cached per user (reused untouched, rebuilt when damaged);
// and the features command's --runtime switch. Needs onnxruntime-node and ../shared/data (each
// test says so and skips without them).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as TF from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/ml/backend.ts';
import { decodeForModel } from '../src-main/engine/ml/decode.ts';
import { kerasToOnnx, KerasConversionError } from '../src-main/engine/ml/keras-onnx.ts';
import { loadMobilenetBackbone, readMobilenetArtifacts, MOBILENET_EXTRACTOR_NAME } from '../src-main/engine/ml/mobilenet.ts';
import { loadMobilenetOnnx, type MobilenetOnnx } from '../src-main/engine/ml/mobilenet-onnx.ts';
import { loadOrt } from '../src-main/engine/ml/ort.ts';
import { extractFeatures, mobilenetExtractor } from '../src-main/engine/filter/extract.ts';
import { openCache } from '../src-main/engine/filter/features.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { hasOrt } from './helpers/onnx.ts';
import { runCli } from './helpers/processes.ts';
import { SHARED_DATA, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const havePhotos = fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad'));
const S = 224;
const PER = S * S * 3;
const DIM = 1280;

if (!hasOrt) console.log('mobilenet-onnx: onnxruntime-node is not installed, skipping the ONNX Runtime tests');
if (!havePhotos) console.log(`mobilenet-onnx: ${PHOTOS} is absent, skipping the parity test on real photos`);

/** n real photos, half whole cars and half details, in a fixed order. */
function photoFiles(n: number): string[] {
  const pick = (sub: string, k: number) =>
    fs
      .readdirSync(path.join(PHOTOS, sub))
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .slice(0, k)
      .map((f) => path.join(PHOTOS, sub, f));
  return [...pick('good', Math.ceil(n / 2)), ...pick('bad', Math.floor(n / 2))];
}

async function decodeBatch(files: string[]): Promise<Float32Array> {
  const batch = new Float32Array(files.length * PER);
  for (let i = 0; i < files.length; i++) batch.set(await decodeForModel(files[i]!), i * PER);
  return batch;
}

/** Per image: the largest absolute difference and the cosine between two feature rows. */
function compareRows(a: Float32Array, b: Float32Array, n: number): { maxAbs: number[]; cosine: number[] } {
  const maxAbs: number[] = [];
  const cosine: number[] = [];
  for (let r = 0; r < n; r++) {
    let m = 0;
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = r * DIM; k < (r + 1) * DIM; k++) {
      m = Math.max(m, Math.abs(a[k]! - b[k]!));
      dot += a[k]! * b[k]!;
      na += a[k]! ** 2;
      nb += b[k]! ** 2;
    }
    maxAbs.push(m);
    cosine.push(dot / Math.sqrt(na * nb));
  }
  return { maxAbs, cosine };
}

function logsTo(lines: string[]) {
  return (level: 'info' | 'warn', message: string) => lines.push(`${level}: ${message}`);
}

describe('the Keras to ONNX converter', () => {
  it('refuses a layer kind it does not know, naming the layer', () => {
    const a = readMobilenetArtifacts();
    const topology = JSON.parse(JSON.stringify(a.modelTopology)) as { model_config: { config: { layers: { name: string; class_name: string }[] } } };
    const relu = topology.model_config.config.layers.find((l) => l.name === 'Conv1_relu')!;
    relu.class_name = 'PReLU';
    expect(() => kerasToOnnx({ ...a, modelTopology: topology }, { output: 'flatten_1' })).toThrow(KerasConversionError);
    expect(() => kerasToOnnx({ ...a, modelTopology: topology }, { output: 'flatten_1' })).toThrow(/Conv1_relu \(PReLU\).*not supported/);
    // a ReLU option it does not reproduce is refused too, not ignored
    relu.class_name = 'ReLU';
    (relu as unknown as { config: Record<string, unknown> }).config.negative_slope = 0.1;
    expect(() => kerasToOnnx({ ...a, modelTopology: topology }, { output: 'flatten_1' })).toThrow(/Conv1_relu \(ReLU\).*negative_slope/);
  });

  it('converts exactly the layers up to flatten_1 (BN folded into the convolutions, the zero paddings into their pads)', () => {
    const c = kerasToOnnx(readMobilenetArtifacts(), { output: 'flatten_1' });
    expect(c.inputShape).toEqual([224, 224, 3]);
    expect(c.outputShape).toEqual([1280]);
    expect(c.layers).toEqual({
      InputLayer: 1,
      ZeroPadding2D: 5,
      Conv2D: 35,
      BatchNormalization: 52,
      ReLU: 35,
      DepthwiseConv2D: 17,
      Add: 10,
      AveragePooling2D: 1,
      Flatten: 1,
    });
    const model = onnxProto.onnx.ModelProto.decode(c.bytes);
    expect(Number(model.irVersion)).toBe(7);
    expect(model.opsetImport.map((o) => Number(o.version))).toEqual([13]);
    const ops: Record<string, number> = {};
    for (const n of model.graph!.node!) ops[n.opType!] = (ops[n.opType!] ?? 0) + 1;
    // no BatchNormalization or Pad node: folded into the 52 convolutions; the Flatten of the
    // pooled [1, 1, 1280] goes back to NHWC first (Transpose) as Keras flattens channels_last
    expect(ops).toEqual({ Transpose: 2, Conv: 52, Clip: 35, Add: 10, AveragePool: 1, Flatten: 1, Identity: 1 });
    expect(c.nodes).toBe(102);
    const attr = (n: onnxProto.onnx.INodeProto, name: string) => n.attribute!.find((a) => a.name === name)!;
    const convs = model.graph!.node!.filter((n) => n.opType === 'Conv');
    expect(convs.filter((n) => Number(attr(n, 'group').i) !== 1)).toHaveLength(17); // the depthwise ones
    // Conv1: the ZeroPadding2D ((0, 1), (0, 1)) before it became its pads [top, left, bottom, right]
    expect(attr(convs[0]!, 'pads').ints!.map(Number)).toEqual([0, 0, 1, 1]);
    expect(attr(convs[0]!, 'strides').ints!.map(Number)).toEqual([2, 2]);
  });
});

describe.skipIf(!hasOrt)('the converter on a small Keras model with the options MobileNetV2 does not use', () => {
  it("matches tfjs: 'same' stride-2 padding on odd and even sizes, depth multiplier 2, a BN it cannot fold, a Pad, a 'same' average pool, a spatial Flatten, Dense", async () => {
    const { tf } = await initBackend('wasm');
    type Sym = TF.SymbolicTensor;
    const inp = tf.input({ shape: [9, 10, 3], name: 'img' });
    const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: true, name: 'c1' }).apply(inp) as Sym;
    const bn1 = tf.layers.batchNormalization({ name: 'bn1' }).apply(c1) as Sym; // folded into c1 (with its bias)
    const r1 = tf.layers.reLU({ maxValue: 6, name: 'r1' }).apply(bn1) as Sym;
    const dw = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, useBias: true, name: 'dw1' }).apply(r1) as Sym;
    const zp = tf.layers.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'zp1' }).apply(dw) as Sym; // two consumers: a Pad node
    const c2 = tf.layers.conv2d({ filters: 8, kernelSize: 2, padding: 'same', activation: 'relu', name: 'c2' }).apply(zp) as Sym;
    const bn2 = tf.layers.batchNormalization({ name: 'bn2' }).apply(c2) as Sym; // after a relu: not folded
    const c3 = tf.layers.conv2d({ filters: 8, kernelSize: 1, name: 'c3' }).apply(zp) as Sym;
    const add = tf.layers.add({ name: 'add1' }).apply([bn2, c3]) as Sym;
    const pool = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool' }).apply(add) as Sym;
    const flat = tf.layers.flatten({ name: 'flat' }).apply(pool) as Sym;
    const dense = tf.layers.dense({ units: 5, activation: 'relu', name: 'dense' }).apply(flat) as Sym;
    const model = tf.model({ inputs: inp, outputs: dense });
    for (const l of model.layers) {
      const ws = l.getWeights();
      // random weights; a batch norm's moving variance must be positive
      l.setWeights(ws.map((w, i) => (l.name.startsWith('bn') && i === 3 ? tf.randomUniform(w.shape, 0.5, 2, 'float32', 3) : tf.randomNormal(w.shape, 0, 0.5, 'float32', 7 + i))));
    }
    let artifacts: TF.io.ModelArtifacts | null = null;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const x = tf.randomUniform([3, 9, 10, 3], 0, 1, 'float32', 5);
    const xs = x.dataSync() as Float32Array;
    const ort = await loadOrt();
    const dir = tmpDir();
    for (const [output, sym] of [['dense', dense], ['flat', flat], ['add1', add]] as const) {
      const conv = kerasToOnnx(artifacts!, { output });
      const file = path.join(dir, `${output}.onnx`);
      fs.writeFileSync(file, conv.bytes);
      const sess = await ort.InferenceSession.create(file);
      const got = (await sess.run({ input: new ort.Tensor('float32', xs, [3, 9, 10, 3]) })).output!;
      const want = tf.model({ inputs: inp, outputs: sym }).predict(x) as TF.Tensor;
      expect([...got.dims]).toEqual(want.shape);
      const w = want.dataSync();
      let maxAbs = 0;
      for (let i = 0; i < w.length; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]! - got.data[i]!));
      expect(maxAbs, output).toBeLessThanOrEqual(1e-4);
      expect(Math.max(...Array.from(w, Math.abs)), output).toBeGreaterThan(0.1); // not all zero
      await sess.release?.();
    }
    const ops = onnxProto.onnx.ModelProto.decode(kerasToOnnx(artifacts!, { output: 'dense' }).bytes).graph!.node!.map((n) => n.opType);
    expect(ops.filter((o) => o === 'BatchNormalization')).toHaveLength(1);
    expect(ops.filter((o) => o === 'Pad')).toHaveLength(1);
  });
});

describe.skipIf(!hasOrt)('MobileNetV2 on ONNX Runtime', () => {
  let cacheDir: string;
  let onnx: MobilenetOnnx;
  const firstLog: string[] = [];

  beforeAll(async () => {
    cacheDir = tmpDir('carstudio-model-cache-');
    onnx = await loadMobilenetOnnx({ cacheDir, threads: 2, log: logsTo(firstLog) });
  });

  it.skipIf(!havePhotos)('gives the tfjs features on 50 real photos: max |diff| <= 1e-3 and cosine >= 0.9999 per image', async () => {
    const files = photoFiles(50);
    expect(files.length).toBe(50);
    const batch = await decodeBatch(files);
    const { tf } = await initBackend('wasm');
    const tfjs = await loadMobilenetBackbone(tf);
    let ref: Float32Array;
    try {
      ref = new Float32Array(50 * DIM);
      for (let i = 0; i < 50; i += 10) ref.set(await tfjs.embed(batch.subarray(i * PER, (i + 10) * PER), 10), i * DIM);
    } finally {
      tfjs.dispose();
    }
    const got = await onnx.embed(batch, 50);
    expect(got.length).toBe(50 * DIM);
    const { maxAbs, cosine } = compareRows(ref, got, 50);
    console.log(
      `mobilenet-onnx: 50 photos, max |onnx - tfjs| ${Math.max(...maxAbs).toExponential(2)}, min cosine ${Math.min(...cosine).toFixed(7)}, ` +
        `feature range up to ${Math.max(...ref).toFixed(2)}`,
    );
    for (let i = 0; i < 50; i++) {
      expect(maxAbs[i], files[i]).toBeLessThanOrEqual(1e-3);
      expect(cosine[i], files[i]).toBeGreaterThanOrEqual(0.9999);
    }
    // the features are not trivially equal (e.g. all zero): photos differ from one another
    expect(compareRows(got.subarray(0, DIM), got.subarray(DIM, 2 * DIM), 1).cosine[0]).toBeLessThan(0.99);
    // one image at a time gives the same rows as the batch
    const single = await onnx.embed(batch.subarray(7 * PER, 8 * PER), 1);
    expect(compareRows(single, got.subarray(7 * DIM, 8 * DIM), 1).maxAbs[0]).toBeLessThanOrEqual(1e-5);
  }, 180_000);

  it('writes the converted model once, and a second load reuses the cached file untouched', async () => {
    expect(firstLog.some((l) => l.startsWith('info: converting the nsfwjs MobileNetV2 to ONNX'))).toBe(true);
    const names = fs.readdirSync(cacheDir).sort();
    expect(names).toEqual([path.basename(onnx.file, '.onnx') + '.json', path.basename(onnx.file)]);
    const before = fs.statSync(onnx.file);
    const metaBefore = fs.statSync(onnx.file.replace(/\.onnx$/, '.json'));
    await new Promise((r) => setTimeout(r, 20)); // a rewrite would show in the mtime
    const log: string[] = [];
    const again = await loadMobilenetOnnx({ cacheDir, threads: 1, log: logsTo(log) });
    try {
      expect(again.file).toBe(onnx.file);
      expect(log).toEqual([]);
      const after = fs.statSync(onnx.file);
      expect(after.mtimeMs).toBe(before.mtimeMs);
      expect(after.ino).toBe(before.ino);
      expect(fs.statSync(onnx.file.replace(/\.onnx$/, '.json')).mtimeMs).toBe(metaBefore.mtimeMs);
      expect(fs.readdirSync(cacheDir).sort()).toEqual(names); // no temporaries left
      expect(again.backend).toMatch(/^onnxruntime (cpu \(1 thread\)|cuda)$/);
    } finally {
      await again.dispose();
    }
  });

  it('detects a damaged cached file (by its recorded sha256, or because ONNX Runtime cannot load it) and rebuilds it with a log line', async () => {
    const dir = tmpDir('carstudio-model-cache-');
    const first = await loadMobilenetOnnx({ cacheDir: dir, threads: 1, log: () => undefined });
    await first.dispose();
    const good = fs.readFileSync(first.file);
    const metaFile = first.file.replace(/\.onnx$/, '.json');
    const probe = await decodeBatch([path.join(PHOTOS, 'good', fs.readdirSync(path.join(PHOTOS, 'good')).sort()[0]!)]).catch(() => new Float32Array(PER).fill(0.5));
    const expected = await onnx.embed(probe, 1);

    // 1. same size, a few bytes changed in the weights: the recorded sha256 no longer matches
    const damaged = Buffer.from(good);
    for (let i = 0; i < 64; i++) damaged[Math.floor(good.length / 2) + i] ^= 0xff;
    fs.writeFileSync(first.file, damaged);
    let log: string[] = [];
    let ex = await loadMobilenetOnnx({ cacheDir: dir, threads: 1, log: logsTo(log) });
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^warn: the cached ONNX MobileNetV2 .*\.onnx is not usable \(its sha256 differs from the one recorded when it was written\): rebuilding it$/);
    expect(fs.readFileSync(first.file).equals(good)).toBe(true);
    expect(compareRows(await ex.embed(probe, 1), expected, 1).maxAbs[0]).toBeLessThanOrEqual(1e-5);
    await ex.dispose();

    // 2. truncated
    fs.writeFileSync(first.file, good.subarray(0, 1000));
    log = [];
    ex = await loadMobilenetOnnx({ cacheDir: dir, threads: 1, log: logsTo(log) });
    await ex.dispose();
    expect(log).toEqual([expect.stringMatching(/is not usable \(it is 1000 bytes, \d+ were written\): rebuilding it$/)]);
    expect(fs.readFileSync(first.file).equals(good)).toBe(true);

    // 3. a file whose record was rewritten to match it: only ONNX Runtime's load can tell
    const junk = Buffer.alloc(4096, 7);
    fs.writeFileSync(first.file, junk);
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { size: number; sha256: string };
    meta.size = junk.length;
    meta.sha256 = (await import('node:crypto')).createHash('sha256').update(junk).digest('hex');
    fs.writeFileSync(metaFile, JSON.stringify(meta));
    log = [];
    ex = await loadMobilenetOnnx({ cacheDir: dir, threads: 1, log: logsTo(log) });
    expect(log).toEqual([expect.stringMatching(/is not usable \(ONNX Runtime cannot load or run it: .+\): rebuilding it$/)]);
    expect(fs.readFileSync(first.file).equals(good)).toBe(true);
    expect(compareRows(await ex.embed(probe, 1), expected, 1).maxAbs[0]).toBeLessThanOrEqual(1e-5);
    await ex.dispose();

    // 4. the record gone: rebuilt (the file cannot be trusted without it)
    fs.rmSync(metaFile);
    log = [];
    ex = await loadMobilenetOnnx({ cacheDir: dir, threads: 1, log: logsTo(log) });
    await ex.dispose();
    expect(log).toEqual([expect.stringMatching(/is not usable \(its record .*\.json cannot be read \(ENOENT\)\): rebuilding it$/)]);
    expect(fs.existsSync(metaFile)).toBe(true);
  }, 120_000);

  it("is the default runtime, under the tfjs backbone's name, so both fill one feature cache", async () => {
    const saved = process.env.CARSTUDIO_MODEL_CACHE;
    process.env.CARSTUDIO_MODEL_CACHE = cacheDir;
    try {
      const auto = await mobilenetExtractor({ runtime: 'auto' });
      expect(auto.backend).toMatch(/^onnxruntime (cpu \(\d+ threads?\)|cuda)$/);
      expect(auto.name).toBe(MOBILENET_EXTRACTOR_NAME);
      const tfjs = await mobilenetExtractor({ runtime: 'tfjs' });
      expect(tfjs.backend).toMatch(/^tfjs (wasm|cpu|tensorflow)/);
      expect(tfjs.name).toBe(auto.name);
      expect([tfjs.inputSize, tfjs.featureDim]).toEqual([auto.inputSize, auto.featureDim]);
    } finally {
      if (saved === undefined) delete process.env.CARSTUDIO_MODEL_CACHE;
      else process.env.CARSTUDIO_MODEL_CACHE = saved;
    }
  });

  it('extractFeatures on the ONNX extractor returns the rows embed gives, decode included', async () => {
    const inputs = havePhotos ? photoFiles(6).map((f, i) => ({ id: i + 1, data: f })) : [];
    if (!inputs.length) return;
    const r = await extractFeatures(inputs, { batchSize: 4 }, onnx);
    expect(r.ids).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.extractor).toBe(MOBILENET_EXTRACTOR_NAME);
    const direct = await onnx.embed(await decodeBatch(inputs.map((x) => x.data)), 6);
    expect(Math.max(...compareRows(r.features, direct, 6).maxAbs)).toBeLessThanOrEqual(1e-5);
  });
});

describe('carstudio features --runtime', () => {
  const withoutOrt = {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(path.join(import.meta.dirname, 'helpers', 'hide-onnxruntime.mjs')).href}`.trim(),
  };

  it('--runtime onnx without onnxruntime-node is a clear error saying how to install it; auto uses tfjs there', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 3);
    const dir = ws.dir;
    ws.close();
    const r = await runCli(['features', '--workspace', dir, '--runtime', 'onnx'], { env: { ...withoutOrt, CARSTUDIO_MODEL_CACHE: tmpDir() } });
    expect(r.code).not.toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toContain('the onnx feature runtime needs onnxruntime-node');
    expect(out).toContain('ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install');
    expect(out).toContain('--runtime tfjs');
    // auto (the default) falls back to tfjs without a word of error
    const auto = await runCli(['features', '--workspace', dir], { env: withoutOrt });
    expect(auto.code, auto.stderr).toBe(0);
    expect((JSON.parse(auto.stdout.trim().split('\n').pop()!) as { backend: string; extracted: number }).backend).toMatch(/^tfjs (wasm|cpu|tensorflow)/);
    const bad = await runCli(['features', '--workspace', dir, '--runtime', 'gpu']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--runtime must be one of auto, onnx, tfjs, got 'gpu'");
  }, 120_000);

  it.skipIf(!hasOrt)('--runtime onnx and --runtime tfjs fill the same cache with the same features', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 6);
    const dir = ws.dir;
    ws.close();
    const env = { CARSTUDIO_MODEL_CACHE: tmpDir() };
    const a = await runCli(['features', '--workspace', dir, '--extractor', 'mobilenet_v2', '--runtime', 'onnx'], { env });
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.stdout.trim().split('\n').pop()!) as { backend: string; extracted: number };
    expect(ra.backend).toMatch(/^onnxruntime (cpu \(\d+ threads?\)|cuda)$/);
    expect(ra.extracted).toBe(6);
    const w1 = Workspace.open(dir);
    const c1 = await openCache(w1, 'mobilenet_v2');
    const first = await c1.readAll();
    await c1.close();
    expect(first.ids).toHaveLength(6);
    // empty the cache and fill it again on tfjs
    fs.rmSync(path.join(dir, 'features', 'mobilenet_v2'), { recursive: true, force: true });
    w1.close();
    const b = await runCli(['features', '--workspace', dir, '--extractor', 'mobilenet_v2', '--runtime', 'tfjs'], { env });
    expect(b.code, b.stderr).toBe(0);
    const rb = JSON.parse(b.stdout.trim().split('\n').pop()!) as { backend: string; extracted: number };
    expect(rb.backend).toMatch(/^tfjs /);
    expect(rb.extracted).toBe(6);
    const w2 = Workspace.open(dir);
    const c2 = await openCache(w2, 'mobilenet_v2');
    try {
      const second = await c2.read(first.ids);
      expect(second.ids).toEqual(first.ids);
      const { maxAbs } = compareRows(first.data, second.data, first.ids.length);
      expect(Math.max(...maxAbs)).toBeLessThanOrEqual(1e-3);
    } finally {
      await c2.close();
      w2.close();
    }
  }, 180_000);
});
