// The clip-vit-b16 extractor end to end on onnxruntime-node (an optional dependency: these tests
// skip, saying why, where it cannot be imported). The weights are a tiny ONNX model with the real
// encoder's interface (tests/fixtures/make_tiny_clip.py), installed the way a user installs the
// real one (`features weights clip-vit-b16 --from FILE`).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { openCache } from '../src-main/engine/filter/features.ts';
import { clipWeightsPath } from '../src-main/engine/filter/clip.ts';
import { runCli } from './helpers/processes.ts';
import { ROOT, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

const FIXTURE = path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-vit-b16.onnx');
const WRONG_DIM = path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-wrong-dim.onnx');

// The part of onnxruntime-node used here (declared, as the package is optional).
interface Tensor {
  data: Float32Array;
  dims: readonly number[];
}
interface Ort {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => Tensor;
  InferenceSession: {
    create(
      file: string,
      opts?: { executionProviders?: string[] },
    ): Promise<{
      inputNames: readonly string[];
      outputNames: readonly string[];
      run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
    }>;
  };
}

async function importOrt(): Promise<Ort | null> {
  const name = 'onnxruntime-node';
  try {
    const mod = (await import(name)) as Ort & { default?: Ort };
    return mod.InferenceSession ? mod : mod.default!;
  } catch (e) {
    console.log(`skipping the clip-vit-b16 end-to-end tests: onnxruntime-node cannot be imported (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}
const ort = await importOrt();

/** Whether onnxruntime-node has its CUDA provider (only then may the extractor report cuda). */
function ortHasCuda(): boolean {
  try {
    const bin = path.join(
      path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node')),
      '..',
      'bin',
      'napi-v6',
      process.platform,
      process.arch,
    );
    return fs.readdirSync(bin).some((f) => /onnxruntime_providers_cuda\.(so|dll)$/.test(f));
  } catch {
    return false;
  }
}

// CLIPImageProcessor's normalisation, written out here rather than imported, so the reference
// embedding below does not share code with the extractor it checks.
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** An image file as CLIP's pixel_values: shorter side to 224, centre crop, NCHW, normalised. */
async function pixelValues(file: string): Promise<Float32Array> {
  const { data, info } = await sharp(file)
    .rotate()
    .resize(224, 224, { fit: 'cover', position: 'centre' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels]).toEqual([224, 224, 3]);
  const plane = 224 * 224;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = (data[p * 3 + c]! / 255 - MEAN[c]!) / STD[c]!;
  return out;
}

function l2normalised(v: Float32Array): Float32Array {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
}

/** "Good" photos (light, a dark car-like block low in the frame) or "bad" ones (dark, a bright round detail). */
async function writePhotos(dir: string, kind: 'good' | 'bad', n: number): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const w = 200 + 24 * (i % 4);
    const h = 150 + 16 * (i % 3);
    const hue = (i * 67 + (kind === 'good' ? 0 : 30)) % 360;
    const svg =
      kind === 'good'
        ? `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="hsl(${hue},35%,78%)"/>
           <rect x="${20 + ((i * 7) % 40)}" y="${h / 2}" width="${w / 2}" height="${h / 4}" rx="12" fill="hsl(${(hue + 180) % 360},60%,30%)"/></svg>`
        : `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="hsl(${hue},45%,16%)"/>
           <circle cx="${w / 2 + ((i * 11) % 30) - 15}" cy="${h / 3}" r="${h / 4}" fill="hsl(${(hue + 90) % 360},70%,65%)"/></svg>`;
    await sharp(Buffer.from(svg))
      .jpeg({ quality: 88 })
      .toFile(path.join(dir, `${kind}-${String(i).padStart(2, '0')}.jpg`));
  }
  return dir;
}

interface FeaturesResult {
  extractor: string;
  backend: string | null;
  images: number;
  extracted: number;
  failed: number;
  cached: number;
}

describe.runIf(ort)('clip-vit-b16 on onnxruntime-node', () => {
  const SEEDED = 7;
  let dir: string;
  beforeAll(async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, SEEDED);
    dir = ws.dir;
    ws.close();
  });

  it('the fixture has the real encoder interface: pixel_values in, image_embeds [N, 512] out beside last_hidden_state', async () => {
    const s = await ort!.InferenceSession.create(FIXTURE, { executionProviders: ['cpu'] });
    expect(s.inputNames).toEqual(['pixel_values']);
    // last_hidden_state first: an extractor that took outputs[0] would get the wrong one
    expect(s.outputNames).toEqual(['last_hidden_state', 'image_embeds']);
    const r = await s.run({ pixel_values: new ort!.Tensor('float32', new Float32Array(2 * 3 * 224 * 224).fill(0.5), [2, 3, 224, 224]) });
    expect(r.image_embeds!.dims).toEqual([2, 512]);
    expect(r.last_hidden_state!.dims).toEqual([2, 784, 4]);
    expect(fs.statSync(FIXTURE).size).toBeLessThan(100_000);
  });

  it('installs the weights with --from, embeds every usable image as a 512-d unit vector on onnxruntime-node, equal to a direct ONNX Runtime run, and reuses the cache', async () => {
    const w = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', FIXTURE]);
    expect(w.code, w.stderr).toBe(0);
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(fs.readFileSync(FIXTURE))).toBe(true);

    const t0 = performance.now();
    const first = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16'], { timeoutMs: 120_000 });
    expect(first.code, first.stderr).toBe(0);
    const r = JSON.parse(first.stdout.trim().split('\n').at(-1)!) as FeaturesResult;
    const backend = ortHasCuda() ? expect.stringMatching(/^onnxruntime-node \((cuda|cpu)\)$/) : 'onnxruntime-node (cpu)';
    expect(r).toMatchObject({ extractor: 'clip-vit-b16', backend, images: SEEDED, extracted: SEEDED, failed: 0, cached: SEEDED });
    // ONNX Runtime printed no error (no CUDA attempt where its provider is not installed)
    if (!ortHasCuda()) expect(first.stderr).not.toMatch(/onnxruntime.*(error|fail)/i);
    console.log(
      `filter-clip: ${SEEDED} images embedded on ${r.backend} in ${((performance.now() - t0) / 1000).toFixed(1)} s (CLI process included)`,
    );

    const ws = Workspace.open(dir);
    try {
      const cache = await openCache(ws, 'clip-vit-b16');
      const { ids, data } = await cache.readAll();
      await cache.close();
      expect(cache.dim).toBe(512);
      expect(ids).toHaveLength(SEEDED);
      expect(data).toHaveLength(SEEDED * 512);
      const row = (k: number): Float32Array => data.subarray(k * 512, (k + 1) * 512);
      for (let k = 0; k < ids.length; k++) {
        expect(row(k).every(Number.isFinite)).toBe(true);
        expect(Math.hypot(...row(k))).toBeCloseTo(1, 5);
      }
      // different images (colours, shapes and where they are), different embeddings
      const cos = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, j) => s + x * b[j]!, 0);
      for (let a = 0; a < ids.length; a++) for (let b = a + 1; b < ids.length; b++) expect(cos(row(a), row(b))).toBeLessThan(0.99999);

      // the same images through ONNX Runtime directly, preprocessed here: the same vectors
      const keyOf = ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
      const session = await ort!.InferenceSession.create(FIXTURE, { executionProviders: ['cpu'] });
      for (const k of [0, 3, ids.length - 1]) {
        const file = ws.store.pathFor(keyOf.get(ids[k]) as string);
        const out = await session.run({ pixel_values: new ort!.Tensor('float32', await pixelValues(file), [1, 3, 224, 224]) });
        const expected = l2normalised(out.image_embeds!.data);
        let maxDiff = 0;
        for (let j = 0; j < 512; j++) maxDiff = Math.max(maxDiff, Math.abs(expected[j]! - row(k)[j]!));
        expect(maxDiff, `image ${ids[k]}`).toBeLessThan(1e-5);
      }
    } finally {
      ws.close();
    }

    // a second run finds every image in the cache and loads no model
    const second = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      backend: null,
      images: SEEDED,
      extracted: 0,
      cached: SEEDED,
    });
  }, 180_000);

  it('fits the junk filter on clip-vit-b16 features of labelled photos, extracting only the new images, and applies it', async () => {
    const root = tmpDir();
    const good = await writePhotos(path.join(root, 'good'), 'good', 12);
    const bad = await writePhotos(path.join(root, 'bad'), 'bad', 12);
    const imp = await runCli(['label', '--workspace', dir, '--good', good, '--bad', bad]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/good: 12 imported/);
    expect(imp.stdout).toMatch(/bad: 12 imported/);

    const fit = await runCli(['filter', 'fit', '--workspace', dir, '--extractor', 'clip-vit-b16', '--max-fnr', '0.1', '--json'], {
      timeoutMs: 180_000,
    });
    expect(fit.code, fit.stderr).toBe(0);
    const f = JSON.parse(fit.stdout) as {
      modelId: number;
      labelledGood: number;
      labelledBad: number;
      threshold: number;
      cvFalseNegativeRate: number;
      cvAccuracy: number;
    };
    expect(f).toMatchObject({ labelledGood: 12, labelledBad: 12 });
    expect(f.cvFalseNegativeRate).toBeLessThanOrEqual(0.1);
    // light whole-car frames against dark details: separable even by the tiny encoder's features
    expect(f.cvAccuracy).toBeGreaterThanOrEqual(0.9);
    console.log(
      `filter-clip: fit on tiny-clip features, threshold ${f.threshold.toFixed(3)}, CV accuracy ${(100 * f.cvAccuracy).toFixed(1)}%`,
    );

    const ws = Workspace.open(dir);
    try {
      expect(ws.db.prepare(`SELECT extractor FROM filter_models WHERE id = ?`).pluck().get(f.modelId)).toBe('clip-vit-b16');
      const fitJob = ws.db.prepare(`SELECT id FROM jobs WHERE kind = 'filter-fit' ORDER BY id DESC LIMIT 1`).pluck().get() as number;
      const log = ws.db.prepare(`SELECT message FROM job_log WHERE job_id = ? ORDER BY id`).pluck().all(fitJob) as string[];
      // the 24 labelled photos are new; the seeded images already had features
      expect(
        log.some((l) => /extracting clip-vit-b16 features of 24 images on onnxruntime-node/.test(l)),
        log.join('\n'),
      ).toBe(true);
      const cache = await openCache(ws, 'clip-vit-b16');
      expect(cache.size).toBe(SEEDED + 24);
      await cache.close();
    } finally {
      ws.close();
    }

    const apply = await runCli(['filter', 'apply', '--workspace', dir, '--json']);
    expect(apply.code, apply.stderr).toBe(0);
    const a = JSON.parse(apply.stdout) as { scored: number; kept: number; removed: number };
    expect(a.scored).toBe(SEEDED + 24);
    expect(a.kept + a.removed).toBe(SEEDED + 24);
  }, 240_000);

  it('weights with the wrong output shape fail the job with a message that says what was expected', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 3);
    const wsDir = ws.dir;
    ws.close();
    // the weights job refuses it (tests/filter-weights-hardening.test.ts); put in place by hand:
    expect((await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', wsDir, '--from', WRONG_DIM])).code).toBe(2);
    fs.mkdirSync(path.dirname(clipWeightsPath(wsDir)), { recursive: true });
    fs.copyFileSync(WRONG_DIM, clipWeightsPath(wsDir));
    const r = await runCli(['features', '--workspace', wsDir, '--extractor', 'clip-vit-b16']);
    expect(r.code).toBe(2);
    const out = r.stdout + r.stderr;
    expect(out).toContain(
      `${clipWeightsPath(wsDir)}: invalid weights: output pooler_output has shape [batch_size, 768], expected [N, 512] (the vision model with projection, image_embeds)`,
    );
    expect(out).not.toMatch(/\n\s+at /); // a user error, no stack
  }, 120_000);
});
