// car-v1 reads each photo as two views, the 224 px centre crop (decodeRgb) and the whole photo
// squashed to the detector's 256 px (decodeWhole). decodeCropAndWhole makes both from one decode
// of the file; these tests hold it to the same bytes as the two decodes apart, on JPEGs and PNGs
// made by sharp (sizes on both sides of sharp's shrink-on-load thresholds, all eight EXIF
// orientations, grey, alpha, colour profiles, CMYK) and on real listing photos when present.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeForDetector } from '../src-main/engine/filter/car-features.ts';
import { decodeCropAndWhole, decodeRgb, decodeWhole, jpegShrinkOnLoad } from '../src-main/engine/ml/decode.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const havePhotos = fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad'));
if (!havePhotos) console.log(`decode-once: ${PHOTOS} is absent, skipping the test on real photos`);

/** A textured image (smooth gradients plus fine noise, so every resize has work to do) as raw RGB. */
function texture(width: number, height: number, seed: number, channels: 1 | 3 | 4 = 3): { data: Buffer; raw: { width: number; height: number; channels: 1 | 3 | 4 } } {
  const rnd = mulberry32(seed);
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const smooth = 127 + 90 * Math.sin((x * (c + 1)) / 23 + seed) * Math.cos((y * (3 - c)) / 17);
        const v = c === 3 ? (x * 255) / width : smooth + (rnd() - 0.5) * 80;
        data[(y * width + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return { data, raw: { width, height, channels } };
}

async function jpeg(width: number, height: number, seed: number, opts: { orientation?: number; subsampling?: '4:2:0' | '4:4:4' } = {}): Promise<Buffer> {
  const t = texture(width, height, seed);
  let p = sharp(t.data, { raw: t.raw }).jpeg({ quality: 88, chromaSubsampling: opts.subsampling ?? '4:2:0' });
  if (opts.orientation) p = p.withMetadata({ orientation: opts.orientation });
  return p.toBuffer();
}

/** decodeCropAndWhole against the two decodes apart, byte for byte; returns how many decodes it took. */
async function expectSame(input: Buffer | string, label: string): Promise<number> {
  const got = await decodeCropAndWhole(input, 224, 256);
  const crop = await decodeRgb(input, 224);
  const whole = await decodeWhole(input, 256);
  expect(got.crop.length, label).toBe(224 * 224 * 3);
  expect(got.whole.length, label).toBe(256 * 256 * 3);
  expect(Buffer.from(got.crop).equals(Buffer.from(crop)), `${label}: centre crop`).toBe(true);
  expect(Buffer.from(got.whole).equals(Buffer.from(whole)), `${label}: whole photo`).toBe(true);
  return got.decodes;
}

describe('decodeCropAndWhole', () => {
  it('gives the same bytes as decodeRgb + decodeWhole, from one decode below the shrink-on-load sizes', async () => {
    // 380x250 and 800x600 are the listing photos' sizes; 450 and 600 short sides sit just past
    // 2x 224; 671 is the largest short side one decode can serve; odd sizes round differently
    const sizes: Array<[number, number]> = [
      [380, 250],
      [250, 380],
      [800, 600],
      [783, 601],
      [450, 800],
      [999, 671],
      [300, 300],
      [200, 150],
    ];
    for (const [i, [w, h]] of sizes.entries()) {
      for (const subsampling of ['4:2:0', '4:4:4'] as const) {
        const decodes = await expectSame(await jpeg(w, h, i + 1, { subsampling }), `${w}x${h} ${subsampling}`);
        expect(decodes, `${w}x${h}`).toBe(1);
      }
    }
  }, 120_000);

  it('applies every EXIF orientation as sharp does (after the resize), with no rotation first', async () => {
    for (let o = 1; o <= 8; o++) {
      for (const [w, h] of [
        [381, 250],
        [600, 451],
      ] as const) {
        const img = await jpeg(w, h, 10 + o, { orientation: o });
        expect((await sharp(img).metadata()).orientation).toBe(o);
        expect(await expectSame(img, `orientation ${o}, ${w}x${h}`)).toBe(1);
      }
    }
    // the orientation really is applied: a 6 (rotate 90 clockwise) of a landscape is a portrait
    const stored = await jpeg(400, 250, 3);
    const turned = await sharp(stored).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const upright = await sharp(stored).rotate(90).jpeg({ quality: 95 }).toBuffer();
    const a = (await decodeCropAndWhole(turned)).whole;
    const meanDiff = (b: Uint8Array) => {
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff += Math.abs(a[i]! - b[i]!);
      return diff / a.length;
    };
    // near the upright copy (JPEG re-encoding apart), far from the photo as stored
    expect(meanDiff(await decodeWhole(upright, 256))).toBeLessThan(0.4 * meanDiff(await decodeWhole(stored, 256)));
  }, 120_000);

  it('keeps to two decodes where sharp would shrink the JPEG on load, still the same bytes', async () => {
    // short side 672+: the 224 px crop is decoded at 1/2; 768+: the 256 px view too
    for (const [w, h, o] of [
      [900, 672, 1],
      [1024, 768, 6],
      [2400, 1800, 1],
    ] as const) {
      expect(await expectSame(await jpeg(w, h, w, { orientation: o }), `${w}x${h}`)).toBe(2);
    }
    expect([1.5, 2, 2.9, 3, 4.5, 5, 8, 9].map(jpegShrinkOnLoad)).toEqual([1, 1, 1, 2, 2, 4, 4, 8]);
  }, 120_000);

  it('matches on grey, CMYK and colour-profiled JPEGs and on PNGs with and without alpha', async () => {
    const t = texture(390, 260, 7);
    const grey = await sharp(t.data, { raw: t.raw }).toColourspace('b-w').jpeg({ quality: 90 }).toBuffer();
    expect((await sharp(grey).metadata()).channels).toBe(1);
    const cmyk = await sharp(t.data, { raw: t.raw }).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const p3 = await sharp(t.data, { raw: t.raw }).withIccProfile('p3').jpeg({ quality: 90 }).toBuffer();
    expect((await sharp(p3).metadata()).hasProfile).toBe(true);
    const rgba = texture(390, 260, 8, 4);
    const alphaPng = await sharp(rgba.data, { raw: rgba.raw }).png().toBuffer();
    const g = texture(300, 420, 9, 1);
    const greyPng = await sharp(g.data, { raw: g.raw }).png().toBuffer();
    const rgbPng = await sharp(t.data, { raw: t.raw }).png().toBuffer();
    const png16 = await sharp(t.data, { raw: t.raw }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    for (const [label, img, decodes] of [
      ['grey jpeg', grey, 1],
      ['cmyk jpeg', cmyk, 1],
      ['p3 jpeg', p3, 1],
      ['rgba png', alphaPng, 1],
      ['grey png', greyPng, 1],
      ['rgb png', rgbPng, 1],
      ['16-bit png', png16, 2],
    ] as const) {
      expect(await expectSame(img, label), label).toBe(decodes);
    }
    // a file path reads the same as its bytes; other formats decode apart, the same bytes
    const file = path.join(tmpDir('decode-once-'), 'photo.jpg');
    fs.writeFileSync(file, p3);
    expect(await expectSame(file, 'file path')).toBe(1);
    expect(await expectSame(await sharp(t.data, { raw: t.raw }).webp({ quality: 90 }).toBuffer(), 'webp')).toBe(2);
  }, 120_000);

  it('rejects a corrupt or truncated file, as the two decodes do', async () => {
    await expect(decodeCropAndWhole(Buffer.from('not a jpeg at all'))).rejects.toThrow();
    const whole = await jpeg(380, 250, 4);
    const cut = whole.subarray(0, Math.floor(whole.length / 2));
    await expect(decodeRgb(cut, 224)).rejects.toThrow();
    await expect(decodeCropAndWhole(cut)).rejects.toThrow();
    await expect(decodeCropAndWhole(path.join(tmpDir('decode-once-'), 'missing.jpg'))).rejects.toThrow();
  });

  it('decodeForDetector is decodeWhole at 256 px as floats', async () => {
    const img = await jpeg(380, 250, 5, { orientation: 8 });
    expect(Array.from(await decodeForDetector(img))).toEqual(Array.from(await decodeWhole(img, 256)));
  });
});

describe.runIf(havePhotos)('decodeCropAndWhole on real listing photos', () => {
  it('gives the same bytes as the two decodes on 30 good and 30 bad photos, each decoded once', async () => {
    const pick = (sub: string) =>
      fs
        .readdirSync(path.join(PHOTOS, sub))
        .filter((f) => f.endsWith('.jpg'))
        .sort()
        .filter((_, i) => i % 17 === 0)
        .slice(0, 30)
        .map((f) => path.join(PHOTOS, sub, f));
    const files = [...pick('good'), ...pick('bad')];
    expect(files.length).toBe(60);
    for (const f of files) expect(await expectSame(f, path.basename(f))).toBe(1);
  }, 120_000);
});
