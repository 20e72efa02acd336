/**
 * What the workspace stores per image for dedup, from ONE decode: the original exact hash, the
 * 64-bit pHash (both identical to `hashImage`'s) and an 8x8 RGB colour thumbnail (192 bytes, the
 * 2x2 means of the same 16x16 Lanczos thumbnail the exact hash uses) that verifies near pairs:
 * pHash works on grey structure only, so two different cars photographed the same way (dealer
 * stock angles) can be close in pHash while their colours differ.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { EXACT_HASH_SIZE, exactHashFromThumb, gray32FromRgb } from './exact-hash.ts';
import { PHASH_VARIANT, halvesToPhash, phashHalvesFromGray32, type PHash } from './phash.ts';

export interface HashRow {
  exact: string;
  phash: PHash;
  /** 8x8x3 bytes, row-major RGB. */
  thumb: Buffer;
  width: number;
  height: number;
}

export const THUMB_BYTES = 8 * 8 * 3;

/** Decodes (full decode, stored orientation, 8-bit sRGB) and computes every dedup hash. */
export async function hashRow(input: Buffer | string): Promise<HashRow> {
  if (typeof input !== 'string' && input.length === 0) throw new Error('cannot decode image (empty buffer)');
  let data: Buffer;
  let width: number;
  let height: number;
  let t16: Buffer;
  try {
    const r = await sharp(input, { failOn: 'warning' }).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (r.info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${r.info.channels}`);
    data = r.data;
    width = r.info.width;
    height = r.info.height;
    t16 = await sharp(data, { raw: { width, height, channels: 3 } })
      .resize(EXACT_HASH_SIZE, EXACT_HASH_SIZE, { fit: 'fill', kernel: 'lanczos3' })
      .raw()
      .toBuffer();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`cannot decode image (${typeof input === 'string' ? input : `buffer of ${input.length} bytes`}): ${msg.trim()}`, { cause: e });
  }
  const [hi, lo] = phashHalvesFromGray32(gray32FromRgb(data, width, height), PHASH_VARIANT);
  return { exact: exactHashFromThumb(t16, width, height), phash: halvesToPhash(hi, lo), thumb: thumb8(t16), width, height };
}

function thumb8(t16: Buffer): Buffer {
  const out = Buffer.alloc(THUMB_BYTES);
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++)
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number) => t16[(yy * 16 + xx) * 3 + c]!;
        out[(y * 8 + x) * 3 + c] = (p(2 * y, 2 * x) + p(2 * y, 2 * x + 1) + p(2 * y + 1, 2 * x) + p(2 * y + 1, 2 * x + 1) + 2) >> 2;
      }
  return out;
}

/**
 * Colour difference of two 8x8 thumbnails, 0..255: per channel the mean is removed and the
 * deviations are scaled to the pair's common spread (so a brightness or contrast shift costs
 * little), then the mean absolute difference of the 192 values, plus a quarter of the mean
 * difference of the channel means relative to grey (what distinguishes a red car from a blue one
 * in the same pose: hue, not brightness).
 */
export function thumbDistance(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== THUMB_BYTES || b.length !== THUMB_BYTES) return 255;
  const ma = [0, 0, 0];
  const mb = [0, 0, 0];
  for (let i = 0; i < THUMB_BYTES; i++) {
    ma[i % 3]! += a[i]!;
    mb[i % 3]! += b[i]!;
  }
  for (let c = 0; c < 3; c++) {
    ma[c]! /= 64;
    mb[c]! /= 64;
  }
  const sa = [0, 0, 0];
  const sb = [0, 0, 0];
  for (let i = 0; i < THUMB_BYTES; i++) {
    sa[i % 3]! += Math.abs(a[i]! - ma[i % 3]!);
    sb[i % 3]! += Math.abs(b[i]! - mb[i % 3]!);
  }
  let d = 0;
  for (let i = 0; i < THUMB_BYTES; i++) {
    const c = i % 3;
    const s = (sa[c]! + sb[c]!) / 2 || 1;
    const k = s / 64;
    d += Math.abs(((a[i]! - ma[c]!) / (sa[c]! || 1)) * 64 * k - ((b[i]! - mb[c]!) / (sb[c]! || 1)) * 64 * k);
  }
  d /= THUMB_BYTES;
  // chroma of the means: channel mean minus the grey level of that image
  const ga = (ma[0]! + ma[1]! + ma[2]!) / 3;
  const gb = (mb[0]! + mb[1]! + mb[2]!) / 3;
  let chroma = 0;
  for (let c = 0; c < 3; c++) chroma += Math.abs(ma[c]! - ga - (mb[c]! - gb));
  return d + chroma / 4;
}

/** Stable identity of a set of image ids (used only where no exact hash anchors a group). */
export function idsKey(ids: readonly number[]): string {
  return createHash('sha256').update([...ids].sort((x, y) => x - y).join(',')).digest('hex').slice(0, 32);
}
