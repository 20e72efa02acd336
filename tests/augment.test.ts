import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AugmentPool, PrefetchLoader, sharedFloats, type AugmentTask } from '../src-main/engine/train/augment-pool.ts';
import { applyJitter, augmentInto, augmentRgb, meanGrey, ORIGINAL_AUGMENT, planAugment, toUnitFloat, type JitterOp } from '../src-main/engine/train/augment.ts';
import { Rng } from '../src-main/engine/train/rng.ts';
import { tmpDir } from './helpers/workspace.ts';

// torchvision's ColorJitter functions on a PIL image, computed once by tests/fixtures/jitter_pil.py
// (Debian's python3-torchvision); the test needs no Python.
const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures/jitter-pil.json'), 'utf8')) as {
  generator: string;
  width: number;
  height: number;
  input: string;
  cases: { ops: JitterOp[]; rgb: string }[];
};
const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));

describe('colour jitter', () => {
  it(`matches torchvision/PIL bit for bit (${fixture.generator}) in every op order`, () => {
    const input = bytes(fixture.input);
    expect(input.length).toBe(fixture.width * fixture.height * 3);
    expect(fixture.cases.length).toBeGreaterThanOrEqual(16);
    for (const c of fixture.cases) {
      const px = input.slice();
      applyJitter(px, c.ops);
      const want = bytes(c.rgb);
      const label = c.ops.map((o) => `${o.op} ${o.factor}`).join(' -> ');
      let differing = 0;
      for (let i = 0; i < px.length; i++) if (px[i] !== want[i]) differing++;
      expect(differing, label).toBe(0);
      // every case changes the image: the comparison is not vacuous
      expect(Buffer.from(px).equals(Buffer.from(input)), label).toBe(false);
      // the float path (the last pass writes the model input) gives the same pixels
      const out = new Float32Array(px.length);
      applyJitter(input.slice(), c.ops, out);
      expect(out, label).toEqual(toUnitFloat(want));
    }
  });

  it('takes the contrast mean through the pending brightness table as PIL does on the brightened image', () => {
    const px = bytes(fixture.input);
    const lut = Uint8Array.from({ length: 256 }, (_, v) => Math.min(255, v * 2));
    const mapped = px.map((v) => lut[v]);
    expect(meanGrey(px, lut)).toBe(meanGrey(mapped));
    expect(meanGrey(px, lut)).not.toBe(meanGrey(px));
  });

  it('an augmented JPEG is a pure function of (file, seed), and seeds differ', async () => {
    const file = path.join(tmpDir(), 'car.jpg');
    const w = 120;
    const h = 80;
    const raw = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      raw[i * 3] = (i * 7) % 256;
      raw[i * 3 + 1] = (i >> 3) % 256;
      raw[i * 3 + 2] = ((i % w) * 2) % 256;
    }
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(file);
    const buf = fs.readFileSync(file);
    const a = await augmentRgb(buf, 32, 7);
    expect(Buffer.from(await augmentRgb(file, 32, 7)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(await augmentRgb(buf, 32, 8)).equals(Buffer.from(a))).toBe(false);
    // the batch path writes exactly the floats of the 8-bit result, whatever the op order
    const lastOps = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const out = new Float32Array(32 * 32 * 3);
      await augmentInto(buf, 32, seed, ORIGINAL_AUGMENT, out);
      expect(out).toEqual(toUnitFloat(await augmentRgb(buf, 32, seed)));
      lastOps.add(planAugment(w, h, new Rng(seed)).jitter.at(-1)!.op);
    }
    expect(lastOps.size).toBe(3);
    // the plan for seed 7 includes all three jitter ops in some order
    expect(planAugment(w, h, new Rng(7)).jitter.map((o) => o.op).sort()).toEqual(['brightness', 'contrast', 'saturation']);
  });

  it('plans the crop on the EXIF-rotated image, as PIL after exif_transpose sees it', async () => {
    const dir = tmpDir();
    const w = 120;
    const h = 80;
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3;
        raw[i] = x * 2;
        raw[i + 1] = y * 3;
        raw[i + 2] = (x + y) % 256;
      }
    const plain = path.join(dir, 'plain.jpg');
    const tagged = path.join(dir, 'tagged.jpg');
    const upright = path.join(dir, 'upright.jpg');
    const q = { quality: 100, chromaSubsampling: '4:4:4' } as const;
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg(q).toFile(plain);
    // stored landscape, shown portrait (orientation 6: rotate 90 degrees clockwise)
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg(q).withMetadata({ orientation: 6 }).toFile(tagged);
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).rotate(90).jpeg(q).toFile(upright);
    const meanDiff = (a: Uint8Array, b: Uint8Array): number => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
    const t = await augmentRgb(tagged, 32, 3);
    expect(meanDiff(t, await augmentRgb(upright, 32, 3))).toBeLessThan(2);
    expect(meanDiff(t, await augmentRgb(plain, 32, 3))).toBeGreaterThan(10);
  });

  it('a corrupt file fails with sharp\'s message', async () => {
    const bad = path.join(tmpDir(), 'bad.jpg');
    fs.writeFileSync(bad, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(40, 7)]));
    await expect(augmentRgb(bad, 32, 1)).rejects.toThrow(/Input buffer|corrupt|unsupported|JPEG|VipsJpeg/i);
  });
});

describe('augmentation pool and prefetching loader', () => {
  let pool: AugmentPool;
  let files: string[];
  const S = 24;
  beforeAll(async () => {
    pool = new AugmentPool(2);
    const dir = tmpDir();
    files = [];
    for (let i = 0; i < 10; i++) {
      const f = path.join(dir, `img${i}.jpg`);
      await sharp({ create: { width: 60 + i * 7, height: 40 + i * 3, channels: 3, background: { r: 20 * i, g: 200 - 15 * i, b: 90 } } })
        .composite([{ input: { create: { width: 10, height: 10, channels: 3, background: { r: 255, g: 255, b: 0 } } }, left: i * 3, top: i }])
        .jpeg()
        .toFile(f);
      files.push(f);
    }
  });
  afterAll(async () => {
    await pool.close();
  });

  const task = (k: number, j: number, augment = true): AugmentTask => ({ input: files[(k * 3 + j) % files.length], size: S, seed: k * 100 + j, augment, opts: ORIGINAL_AUGMENT });

  it('every batch holds exactly the samples computed in-process, while buffers are recycled', async () => {
    const nBatches = 7;
    const B = 4;
    const loader = new PrefetchLoader(pool, (k) => (k >= nBatches ? null : Array.from({ length: k === nBatches - 1 ? 2 : B }, (_, j) => task(k, j))), 2);
    const buffers = new Set<ArrayBufferLike>();
    for (let k = 0; k < nBatches; k++) {
      const { data, n } = await loader.get(k);
      expect(n).toBe(k === nBatches - 1 ? 2 : B);
      expect(data.buffer).toBeInstanceOf(SharedArrayBuffer);
      buffers.add(data.buffer);
      for (let j = 0; j < n; j++) {
        const want = new Float32Array(S * S * 3);
        await augmentInto(task(k, j).input as string, S, task(k, j).seed, ORIGINAL_AUGMENT, want);
        expect(data.subarray(j * S * S * 3, (j + 1) * S * S * 3), `batch ${k} sample ${j}`).toEqual(want);
      }
    }
    // depth 2: at most the batch lent out plus two ahead (and one spare) were ever allocated for 6 full batches
    expect(buffers.size).toBeLessThanOrEqual(5);
  });

  it('fills a plain (non-shared) array too, and evaluation samples are the resize + centre crop', async () => {
    const out = new Float32Array(2 * S * S * 3);
    await pool.runInto([task(0, 0, false), task(0, 1, false)], out);
    const direct = sharedFloats(2 * S * S * 3);
    await pool.runInto([task(0, 0, false), task(0, 1, false)], direct);
    expect(out).toEqual(direct);
    expect(out.some((v) => v > 0)).toBe(true);
  });

  it('a corrupt image in a batch fails the batch with the file named', async () => {
    const bad = path.join(tmpDir(), 'broken.jpg');
    fs.writeFileSync(bad, Buffer.from('not a jpeg at all'));
    await expect(pool.runInto([task(0, 0), { ...task(0, 1), input: bad }], sharedFloats(2 * S * S * 3))).rejects.toThrow(/broken\.jpg/);
    // the pool keeps working
    expect((await pool.run(task(1, 1))).length).toBe(S * S * 3);
  });
});
