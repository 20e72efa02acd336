// 3-crop averaging (--crops 3): three square crops along an image's long side, each embedded,
// their mean L2-normalised; cached as a feature set of its own. Crops are checked on JPEGs made
// by sharp; the features job + filter fit runs end to end on real listing photos when present.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cropWindows, decodeCrops, decodeForModel, decodeRgb, writePreprocessed } from '../src-main/engine/ml/decode.ts';
import { extractFeatures, mobilenetExtractor, type ExtractInput, type FeatureExtractor } from '../src-main/engine/filter/extract.ts';
import { ensureFeatures, featureDir, openCache, parseFeatureSet, type EnsureFeaturesContext } from '../src-main/engine/filter/features.ts';
import { clipWeightsPath, loadClipExtractor } from '../src-main/engine/filter/clip.ts';
import { hasOrt } from './helpers/onnx.ts';
import { runCli } from './helpers/processes.ts';
import { ROOT, SHARED_DATA, hasSharedData, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

const RED = [220, 30, 30];
const GREEN = [30, 200, 40];
const BLUE = [30, 40, 220];

/** A JPEG of three equal bands (left to right, or top to bottom) in RED, GREEN, BLUE. */
async function bands(width: number, height: number, vertical: boolean): Promise<Buffer> {
  const colours = [RED, GREEN, BLUE].map(([r, g, b]) => `rgb(${r},${g},${b})`);
  const rects = colours
    .map((c, i) =>
      vertical
        ? `<rect x="0" y="${(i * height) / 3}" width="${width}" height="${height / 3}" fill="${c}"/>`
        : `<rect x="${(i * width) / 3}" y="0" width="${width / 3}" height="${height}" fill="${c}"/>`,
    )
    .join('');
  return sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${rects}</svg>`))
    .jpeg({ quality: 92 })
    .toBuffer();
}

/** A square JPEG with a pattern (so a wrong window would show). */
async function squareJpeg(side: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}"><rect width="100%" height="100%" fill="#d8c070"/>
    <circle cx="${side / 3}" cy="${side / 2}" r="${side / 4}" fill="#203060"/><rect x="${side / 2}" y="${side / 5}" width="${side / 3}" height="${side / 6}" fill="#902020"/></svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer();
}

function channelMeans(rgb: Uint8Array): number[] {
  const s = [0, 0, 0];
  for (let i = 0; i < rgb.length; i++) s[i % 3] += rgb[i];
  return s.map((v) => v / (rgb.length / 3));
}

function expectColour(rgb: Uint8Array, want: number[]): void {
  const m = channelMeans(rgb);
  for (let c = 0; c < 3; c++) expect(Math.abs(m[c] - want[c]), `mean ${m.map((v) => v.toFixed(1))} vs ${want}`).toBeLessThan(12);
}

/** The reference 3-crop feature, computed apart from extractFeatures: each crop embedded alone, mean, L2 norm. */
async function referenceCrops3(ex: FeatureExtractor, data: Buffer): Promise<Float32Array> {
  const per = ex.inputSize * ex.inputSize * 3;
  const mean = new Float64Array(ex.featureDim);
  for (const rgb of await decodeCrops(data, ex.inputSize)) {
    const input = new Float32Array(per);
    writePreprocessed(rgb, input);
    const row = await ex.embed(input, 1);
    for (let d = 0; d < ex.featureDim; d++) mean[d] += row[d] / 3;
  }
  const norm = Math.sqrt(mean.reduce((s, v) => s + v * v, 0));
  return Float32Array.from(mean, (v) => v / norm);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let landscape: Buffer;
let portrait: Buffer;
let square: Buffer;
beforeAll(async () => {
  landscape = await bands(672, 224 + 76, false); // 3 x (short side) would be 900: the crops overlap a little
  portrait = await bands(240, 720, true); // exactly three squares
  square = await squareJpeg(300);
});

describe('decodeCrops', () => {
  it('cuts left/centre/right of a landscape image, top/centre/bottom of a portrait one, and a square image thrice', async () => {
    const [l, c, r] = await decodeCrops(portrait, 224);
    for (const x of [l, c, r]) expect(x).toHaveLength(224 * 224 * 3);
    expectColour(l, RED);
    expectColour(c, GREEN);
    expectColour(r, BLUE);

    // 672x300 -> 502x224: the windows start at 0, 139 and 278, so the outer ones are mostly
    // (but not only) the outer bands, and the centre one is mostly green
    expect(cropWindows(502, 224, 224)).toEqual([
      { left: 0, top: 0 },
      { left: 139, top: 0 },
      { left: 278, top: 0 },
    ]);
    const [a, b, d] = (await decodeCrops(landscape, 224)).map(channelMeans);
    expect(a[0]).toBeGreaterThan(a[1]);
    expect(a[0]).toBeGreaterThan(a[2]);
    expect(b[1]).toBeGreaterThan(b[0]);
    expect(b[1]).toBeGreaterThan(b[2]);
    expect(d[2]).toBeGreaterThan(d[0]);
    expect(d[2]).toBeGreaterThan(d[1]);
    // an exact 3:1 landscape: each crop is one band
    const [l3, c3, r3] = await decodeCrops(await bands(600, 200, false), 224);
    expectColour(l3, RED);
    expectColour(c3, GREEN);
    expectColour(r3, BLUE);

    const sq = await decodeCrops(square, 224);
    expect(Buffer.from(sq[1]).equals(Buffer.from(sq[0]))).toBe(true);
    expect(Buffer.from(sq[2]).equals(Buffer.from(sq[0]))).toBe(true);
  });

  it('the centre crop is exactly the 1-crop decode (decodeRgb), and EXIF orientation is applied first', async () => {
    for (const img of [landscape, portrait, square]) {
      const [, centre] = await decodeCrops(img, 224);
      expect(Buffer.from(centre).equals(Buffer.from(await decodeRgb(img, 224)))).toBe(true);
    }
    // stored as a landscape, shown as a portrait (EXIF orientation 6: rotate 90 clockwise): the
    // crops run top to bottom of the displayed image, so the first is the stored left band
    const rotated = await sharp(await bands(600, 200, false)).withMetadata({ orientation: 6 }).jpeg({ quality: 92 }).toBuffer();
    const [top, mid, bottom] = await decodeCrops(rotated, 224);
    expectColour(top, RED);
    expectColour(mid, GREEN);
    expectColour(bottom, BLUE);
  });

  it('reports a corrupt file as an error', async () => {
    await expect(decodeCrops(Buffer.from('not a jpeg'), 224)).rejects.toThrow();
  });
});

async function checkExtractor(ex: FeatureExtractor): Promise<void> {
  const images = [landscape, portrait, square, await bands(600, 200, false)];
  const inputs: ExtractInput[] = images.map((data, i) => ({ id: i + 1, data }));
  const corrupt: ExtractInput = { id: 99, data: Buffer.from('not a jpeg') };
  const r3 = await extractFeatures([...inputs.slice(0, 2), corrupt, ...inputs.slice(2)], { batchSize: 3, crops: 3 }, ex);
  expect(r3.ids).toEqual([1, 2, 3, 4]);
  expect(r3.failures.map((f) => f.id)).toEqual([99]);
  expect(r3.extractor).toBe(`${ex.name}.crops3`);
  expect(r3.stats.done).toBe(4);
  for (let k = 0; k < images.length; k++) {
    const row = r3.features.subarray(k * ex.featureDim, (k + 1) * ex.featureDim);
    expect(Math.hypot(...row)).toBeCloseTo(1, 5);
    expect(maxAbsDiff(row, await referenceCrops3(ex, images[k]))).toBeLessThan(1e-5);
  }

  // 1 crop: the same rows as the default path, which is the centre-crop decode embedded alone
  const def = await extractFeatures(inputs, { batchSize: 3 }, ex);
  const one = await extractFeatures(inputs, { batchSize: 3, crops: 1 }, ex);
  expect(one.extractor).toBe(ex.name);
  expect(Buffer.from(one.features.buffer).equals(Buffer.from(def.features.buffer))).toBe(true);
  for (let k = 0; k < images.length; k++) {
    const alone = await ex.embed(await decodeForModel(images[k], ex.inputSize), 1);
    expect(maxAbsDiff(def.features.subarray(k * ex.featureDim, (k + 1) * ex.featureDim), alone)).toBeLessThan(1e-4);
  }
  // a landscape image's 3-crop feature is not its 1-crop one (after normalising both)
  const norm1 = Float32Array.from(def.features.subarray(0, ex.featureDim));
  const n1 = Math.hypot(...norm1);
  expect(maxAbsDiff(norm1.map((v) => v / n1), r3.features.subarray(0, ex.featureDim))).toBeGreaterThan(1e-3);
}

describe('3-crop features', () => {
  it('mobilenet_v2: each row is the L2-normalised mean of its three crops embedded apart; 1 crop is unchanged', async () => {
    await checkExtractor(await mobilenetExtractor());
  }, 120_000);

  it.runIf(hasOrt)('clip-vit-b16 (a tiny encoder with its interface): the same', async () => {
    const ws = tmpWorkspace();
    try {
      fs.mkdirSync(path.dirname(clipWeightsPath(ws.dir)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-vit-b16.onnx'), clipWeightsPath(ws.dir));
      await checkExtractor(await loadClipExtractor(ws.dir));
    } finally {
      ws.close();
    }
  }, 120_000);

  it('ensureFeatures keeps 1-crop and 3-crop features in separate caches, and a .crops3 name means crops 3', async () => {
    const ws = tmpWorkspace();
    try {
      await seedStoredImages(ws, 6);
      const ids = ws.db.prepare(`SELECT id FROM images ORDER BY id`).pluck().all() as number[];
      const logs: string[] = [];
      const c: EnsureFeaturesContext = { ws, signal: new AbortController().signal, progress: () => undefined, log: (_l, m) => void logs.push(m) };
      const one = await ensureFeatures(c, ids, 'mobilenet_v2');
      const three = await ensureFeatures(c, ids, 'mobilenet_v2', { crops: 3 });
      expect(one.extracted).toBe(6);
      expect(three.extracted).toBe(6); // nothing taken from the 1-crop cache
      expect(one.cache.extractor).toBe('mobilenet_v2');
      expect(three.cache.extractor).toBe('mobilenet_v2.crops3');
      await one.cache.close();
      await three.cache.close();
      expect(featureDir(ws, 'mobilenet_v2')).toBe(path.join(ws.dir, 'features', 'mobilenet_v2'));
      expect(featureDir(ws, 'mobilenet_v2.crops3')).toBe(path.join(ws.dir, 'features', 'mobilenet_v2.crops3'));
      expect(fs.readdirSync(path.join(ws.dir, 'features')).sort()).toEqual(['mobilenet_v2', 'mobilenet_v2.crops3']);
      for (const d of ['mobilenet_v2', 'mobilenet_v2.crops3']) expect(fs.readdirSync(path.join(ws.dir, 'features', d)).length).toBeGreaterThan(0);

      // the set name alone finds the 3-crop cache: nothing extracted again
      const again = await ensureFeatures(c, ids, 'mobilenet_v2.crops3');
      expect(again.extracted).toBe(0);
      const rows3 = await again.cache.readAll();
      await again.cache.close();
      const c1 = await openCache(ws, 'mobilenet_v2');
      const rows1 = await c1.readAll();
      await c1.close();
      expect(rows3.ids).toEqual(ids);
      expect(rows1.ids).toEqual(ids);
      // the rows are what extractFeatures gives with and without crops
      const ex = await mobilenetExtractor();
      const inputs = ids.map((id) => ({ id, data: ws.store.pathFor(ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck().get(id) as string) }));
      expect(maxAbsDiff(rows1.data, (await extractFeatures(inputs, {}, ex)).features)).toBeLessThan(1e-5);
      expect(maxAbsDiff(rows3.data, (await extractFeatures(inputs, { crops: 3 }, ex)).features)).toBeLessThan(1e-5);
      expect(logs.some((m) => m.includes('extracting mobilenet_v2.crops3 features of 6 images'))).toBe(true);

      expect(parseFeatureSet('clip-vit-b16.crops3')).toEqual({ extractor: 'clip-vit-b16', crops: 3 });
      expect(parseFeatureSet('mobilenet_v2')).toEqual({ extractor: 'mobilenet_v2', crops: 1 });
      expect(() => parseFeatureSet('mobilenet_v2.crops2')).toThrow(/unknown feature set/);
    } finally {
      ws.close();
    }
  }, 120_000);
});

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const present = hasSharedData('listing-photos/good') && hasSharedData('listing-photos/bad');
if (!present) console.log(`skipping the 3-crop features + filter fit run on real photos: ${PHOTOS} is absent`);

describe.runIf(present)('features --crops 3, filter fit --crops 3 and apply on real listing photos', () => {
  it('extracts 3-crop features of 40 labelled photos, fits the filter on them, and apply scores with the same set', async () => {
    const root = tmpDir();
    const dir = path.join(root, 'ws');
    for (const lab of ['good', 'bad']) {
      fs.mkdirSync(path.join(root, lab));
      const files = fs
        .readdirSync(path.join(PHOTOS, lab))
        .filter((f) => f.endsWith('.jpg'))
        .sort();
      // spread over the folder (its names start with the view, or interior/detail)
      const every = Math.max(1, Math.floor(files.length / 20));
      files
        .filter((_, i) => i % every === 0)
        .slice(0, 20)
        .forEach((f) => fs.copyFileSync(path.join(PHOTOS, lab, f), path.join(root, lab, f)));
    }
    const imp = await runCli(['label', '--workspace', dir, '--create', '--good', path.join(root, 'good'), '--bad', path.join(root, 'bad')]);
    expect(imp.code, imp.stderr).toBe(0);

    const bad = await runCli(['features', '--workspace', dir, '--extractor', 'mobilenet_v2', '--crops', '2']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--crops must be one of 1, 3, got '2'/);

    const t0 = performance.now();
    const f = await runCli(['features', '--workspace', dir, '--extractor', 'mobilenet_v2', '--labelled-only', '--crops', '3'], { timeoutMs: 180_000 });
    expect(f.code, f.stderr).toBe(0);
    const fr = JSON.parse(f.stdout.trim().split('\n').at(-1)!);
    expect(fr).toMatchObject({ extractor: 'mobilenet_v2', crops: 3, featureSet: 'mobilenet_v2.crops3', images: 40, extracted: 40, failed: 0, cached: 40 });
    console.log(`extract-crops: 40 photos x 3 crops at ${fr.imagesPerSecond.toFixed(1)} images/s on ${fr.backend} (${((performance.now() - t0) / 1000).toFixed(1)} s with the CLI)`);

    const fit = await runCli(['filter', 'fit', '--workspace', dir, '--extractor', 'mobilenet_v2', '--crops', '3', '--max-fnr', '0.1', '--json'], { timeoutMs: 180_000 });
    expect(fit.code, fit.stderr).toBe(0);
    const r = JSON.parse(fit.stdout);
    expect(r).toMatchObject({ featureSet: 'mobilenet_v2.crops3', labelledGood: 20, labelledBad: 20 });
    // 40 photos: well above chance, not the accuracy of a full fit
    expect(r.cvAccuracy).toBeGreaterThan(0.65);
    console.log(`extract-crops: filter on 3-crop features, CV accuracy ${(100 * r.cvAccuracy).toFixed(1)}%, bad removed ${(100 * r.cvBadRemoved).toFixed(1)}%`);

    const apply = await runCli(['filter', 'apply', '--workspace', dir, '--json'], { timeoutMs: 180_000 });
    expect(apply.code, apply.stderr).toBe(0);
    expect(JSON.parse(apply.stdout)).toMatchObject({ scored: 40 });
    // fit and apply used the 3-crop cache: no 1-crop features were ever extracted
    expect(fs.readdirSync(path.join(dir, 'features'))).toEqual(['mobilenet_v2.crops3']);
  }, 300_000);
});
