// Feature extraction with the nsfwjs MobileNetV2 backbone on the wasm backend, and the binary
// feature cache. Uses real listing photos from ../shared/data when present, else JPEGs made by
// sharp.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendInfo } from '../src-main/engine/ml/backend.ts';
import { decodeForModel } from '../src-main/engine/ml/decode.ts';
import { loadMobilenetBackbone, type MobilenetBackbone } from '../src-main/engine/ml/mobilenet.ts';
import { extractFeatures, type ExtractInput } from '../src-main/engine/filter/extract.ts';
import { FeatureCache, npyHeader } from '../src-main/engine/filter/feature-cache.ts';
import { SHARED_DATA, makeJpeg, tmpDir } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');

async function samplePhotos(n: number): Promise<{ name: string; data: Buffer }[]> {
  if (fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad'))) {
    const pick = (sub: string, k: number) =>
      fs
        .readdirSync(path.join(PHOTOS, sub))
        .filter((f) => f.endsWith('.jpg'))
        .sort()
        .slice(0, k)
        .map((f) => ({ name: `${sub}/${f}`, data: fs.readFileSync(path.join(PHOTOS, sub, f)) }));
    return [...pick('good', Math.ceil(n / 2)), ...pick('bad', Math.floor(n / 2))];
  }
  console.log(`filter-features: ${PHOTOS} is absent, using JPEGs made by sharp instead of real photos`);
  return Promise.all(
    Array.from({ length: n }, async (_, i) => ({ name: `made-${i}.jpg`, data: await makeJpeg(320 + 16 * i, 240, i + 1) })),
  );
}

/** Parses a .npy v1.0 header: returns descr, fortran_order, shape and the data offset. */
function parseNpy(buf: Buffer): { descr: string; fortran: boolean; shape: number[]; offset: number } {
  expect(buf.subarray(0, 6).equals(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]))).toBe(true);
  expect([buf[6], buf[7]]).toEqual([1, 0]);
  const len = buf.readUInt16LE(8);
  const offset = 10 + len;
  expect(offset % 64).toBe(0);
  const text = buf.toString('latin1', 10, offset);
  expect(text.endsWith('\n')).toBe(true);
  const m = /^\{'descr': '([<>|][a-z]\d)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \} *\n$/.exec(text);
  expect(m, text).not.toBeNull();
  const shape = m![3]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  return { descr: m![1], fortran: m![2] === 'True', shape, offset };
}

describe('MobileNetV2 features on wasm', () => {
  let backend: BackendInfo;
  let backbone: MobilenetBackbone;
  let photos: { name: string; data: Buffer }[];

  beforeAll(async () => {
    backend = await initBackend('wasm');
    backbone = await loadMobilenetBackbone(backend.tf);
    photos = await samplePhotos(6);
  });

  it('runs on the wasm backend and says so', () => {
    expect(backend.name).toBe('wasm');
    expect(backend.tf.getBackend()).toBe('wasm');
    expect(backend.canTrainConv).toBe(false);
    expect(backend.note).toMatch(/wasm/);
    expect(backbone.featureDim).toBe(1280);
    expect(backbone.model.outputs[0].shape).toEqual([null, 1280]);
  });

  it('decodes to 224x224 RGB in [0,1] with a centre crop', async () => {
    const x = await decodeForModel(photos[0].data);
    expect(x).toHaveLength(224 * 224 * 3);
    expect(x.every((v) => v >= 0 && v <= 1)).toBe(true);
    // A wide image whose left and right thirds are red and the middle blue: the crop keeps blue.
    const wide = await sharp({ create: { width: 600, height: 200, channels: 3, background: '#ff0000' } })
      .composite([
        {
          input: await sharp({ create: { width: 200, height: 200, channels: 3, background: '#0000ff' } })
            .png()
            .toBuffer(),
          left: 200,
          top: 0,
        },
      ])
      .png()
      .toBuffer();
    const c = await decodeForModel(wide, 224);
    const px = (i: number) => [c[i * 3], c[i * 3 + 1], c[i * 3 + 2]];
    expect(px(112 * 224 + 112)[2]).toBeGreaterThan(0.9);
    expect(px(112 * 224 + 112)[0]).toBeLessThan(0.1);
  });

  it('extracts finite, deterministic 1280-d rows and reports a corrupt file without failing', async () => {
    const corrupt = Buffer.concat([photos[0].data.subarray(0, 200), Buffer.alloc(300, 7)]);
    const inputs: ExtractInput[] = [
      ...photos.map((p, i) => ({ id: 100 + i, data: p.data })),
      { id: 999, data: corrupt },
      { id: 1000, data: photos[0].data }, // the same image again
    ];
    const batches: number[] = [];
    const errors: number[] = [];
    const r = await extractFeatures(
      inputs,
      { batchSize: 3, onBatch: (b, p) => void batches.push(p.done + p.failed), onError: (f) => void errors.push(f.id) },
      backbone,
    );
    expect(r.dim).toBe(1280);
    expect(r.ids).toEqual([...photos.map((_, i) => 100 + i), 1000]);
    expect(r.failures.map((f) => f.id)).toEqual([999]);
    expect(r.failures[0].error.length).toBeGreaterThan(0);
    expect(errors).toEqual([999]);
    expect(batches).toEqual([3, 6, 8]);
    expect(r.features).toHaveLength(r.ids.length * 1280);
    expect(r.features.every((v) => Number.isFinite(v))).toBe(true);
    // ReLU + average pool: non-negative, and not all zero.
    expect(r.features.every((v) => v >= 0)).toBe(true);
    const row = (k: number) => r.features.subarray(k * 1280, (k + 1) * 1280);
    expect(row(0).some((v) => v > 0)).toBe(true);
    // Same image, same features (in a different batch position).
    expect(Array.from(row(r.ids.length - 1))).toEqual(Array.from(row(0)));
    // Different images, different features.
    expect(Array.from(row(1))).not.toEqual(Array.from(row(0)));
    // Matches a single-image forward pass of the same decode, up to float noise.
    const single = await backbone.embed(await decodeForModel(photos[1].data), 1);
    let maxDiff = 0;
    for (let j = 0; j < 1280; j++) maxDiff = Math.max(maxDiff, Math.abs(single[j] - row(1)[j]));
    expect(maxDiff).toBeLessThan(1e-4);
    console.log(
      `filter-features: ${r.ids.length + r.failures.length} images at ${r.stats.imagesPerSecond.toFixed(1)} images/s on ${backend.name} (batch 3, decode included)`,
    );
  });

  it('round-trips features through the cache and exports valid .npy files', async () => {
    const r = await extractFeatures(
      photos.map((p, i) => ({ id: 10 + i, data: p.data })),
      { batchSize: 4 },
      backbone,
    );
    const dir = path.join(tmpDir('carstudio-features-'), 'cache');
    const cache = await FeatureCache.open(dir, backbone.name, 1280);
    const half = 3;
    expect(await cache.append(r.ids.slice(0, half), r.features.slice(0, half * 1280))).toBe(half);
    expect(await cache.append(r.ids.slice(half), r.features.slice(half * 1280))).toBe(r.ids.length - half);
    // Appending an id again is a no-op.
    expect(await cache.append([r.ids[0]], r.features.slice(0, 1280))).toBe(0);
    expect(cache.has(r.ids[0])).toBe(true);
    expect(cache.has(12345)).toBe(false);
    const shards = fs.readdirSync(dir).filter((f) => f.startsWith('shard-'));
    expect(shards).toHaveLength(2);
    expect(fs.readdirSync(dir).some((f) => f.includes('.tmp-'))).toBe(false);

    // A fresh open sees the same rows; a different extractor or dim is refused.
    const reopened = await FeatureCache.open(dir, backbone.name, 1280);
    expect(reopened.size).toBe(r.ids.length);
    const all = await reopened.readAll();
    expect(all.ids).toEqual(r.ids);
    expect(Array.from(all.data)).toEqual(Array.from(r.features));
    await expect(FeatureCache.open(dir, 'clip-vit-b16', 512)).rejects.toThrow(/holds/);

    const out = path.join(tmpDir('carstudio-npy-'), 'export');
    const exp = await reopened.exportNpy(out);
    expect(exp.rows).toBe(r.ids.length);
    const feat = fs.readFileSync(path.join(out, 'features.npy'));
    const h = parseNpy(feat);
    expect(h).toMatchObject({ descr: '<f4', fortran: false, shape: [r.ids.length, 1280] });
    expect(feat.length).toBe(h.offset + r.ids.length * 1280 * 4);
    const back = new Float32Array(feat.buffer.slice(feat.byteOffset + h.offset, feat.byteOffset + feat.length));
    expect(Array.from(back)).toEqual(Array.from(r.features));
    const idsNpy = fs.readFileSync(path.join(out, 'ids.npy'));
    const hi = parseNpy(idsNpy);
    expect(hi).toMatchObject({ descr: '<i8', shape: [r.ids.length] });
    const idsBack = Array.from({ length: r.ids.length }, (_, i) => Number(idsNpy.readBigInt64LE(hi.offset + i * 8)));
    expect(idsBack).toEqual(r.ids);
    expect(fs.readFileSync(path.join(out, 'ids.txt'), 'utf8').trim().split('\n').map(Number)).toEqual(r.ids);
  });
});

describe('feature cache without a model', () => {
  it('buffers small appends into one shard and survives a stale temporary file', async () => {
    const dir = path.join(tmpDir('carstudio-features-'), 'cache');
    const cache = await FeatureCache.open(dir, 'toy', 3, { bufferRows: 5 });
    await cache.append([1, 2], Float32Array.from([1, 2, 3, 4, 5, 6]));
    await cache.append([3, 2, 3], Float32Array.from([7, 8, 9, 0, 0, 0, 0, 0, 0]));
    expect(cache.size).toBe(3);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('shard-'))).toHaveLength(0);
    await cache.append([4, 5], Float32Array.from([10, 11, 12, 13, 14, 15]));
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('shard-'))).toHaveLength(1);
    await cache.append([6], Float32Array.from([16, 17, 18]));
    await cache.close();
    const stale = path.join(dir, '.shard.tmp-0123456789ab');
    fs.writeFileSync(stale, 'half a shard');
    const old = new Date(Date.now() - 3600_000);
    fs.utimesSync(stale, old, old);
    const again = await FeatureCache.open(dir, 'toy', 3);
    expect(fs.existsSync(stale)).toBe(false);
    const all = await again.readAll();
    expect(all.ids).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(all.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
    const some = await again.read([5, 1, 77]);
    expect(some.ids).toEqual([5, 1]);
    expect(Array.from(some.data)).toEqual([13, 14, 15, 1, 2, 3]);
    await expect(again.append([7], new Float32Array(2))).rejects.toThrow(/floats/);
  });

  it('reads only the rows asked for, across shards, buffered rows and shards another writer added', async () => {
    const dir = path.join(tmpDir('carstudio-features-'), 'cache');
    const dim = 4;
    const row = (id: number) => Float32Array.from({ length: dim }, (_, k) => id * 10 + k);
    const rows = (ids: number[]) => {
      const m = new Float32Array(ids.length * dim);
      ids.forEach((id, i) => m.set(row(id), i * dim));
      return m;
    };
    const a = await FeatureCache.open(dir, 'toy', dim);
    await a.append([1, 2, 3], rows([1, 2, 3]));
    await a.append([4, 5], rows([4, 5]));
    // another process appends a shard to the same folder
    const b = await FeatureCache.open(dir, 'toy', dim);
    await b.append([6, 7], rows([6, 7]));
    // and this one buffers a row it has not written yet
    const buffered = await FeatureCache.open(dir, 'toy', dim, { bufferRows: 100 });
    await buffered.append([8], rows([8]));

    const r = await buffered.rows([7, 99, 2, 8, 5]);
    expect(r.ids).toEqual([7, 2, 8, 5]);
    const out = new Float32Array(3 * dim);
    r.gather([3, 0, 1], out);
    expect(Array.from(out)).toEqual([...row(5), ...row(7), ...row(2)]);
    expect(() => r.gather([4], out)).toThrow(/row 4 of 4/);
    r.close();
    expect(() => r.gather([0], out)).toThrow(/closed/);
    const got = await a.read([6, 1, 8]);
    expect(got.ids).toEqual([6, 1, 8]);
    expect(Array.from(got.data)).toEqual([...row(6), ...row(1), ...row(8)]);
    // a shard cut short is an error, not silent zeros
    const shard = fs.readdirSync(dir).filter((f) => f.startsWith('shard-')).sort()[0]!;
    const full = fs.readFileSync(path.join(dir, shard));
    const fresh = await FeatureCache.open(dir, 'toy', dim);
    const lastRows = await fresh.rows([3]);
    fs.writeFileSync(path.join(dir, shard), full.subarray(0, full.length - 8));
    expect(() => lastRows.gather([0], new Float32Array(dim))).toThrow(/ended early/);
    lastRows.close();
  });

  it('writes .npy headers that start data on a 64-byte boundary', () => {
    for (const shape of [[0, 1280], [1, 1], [123456, 1280], [7]]) {
      const h = npyHeader('<f4', shape);
      expect(h.length % 64).toBe(0);
      const parsed = parseNpy(Buffer.concat([h]));
      expect(parsed.shape).toEqual(shape);
    }
  });
});
