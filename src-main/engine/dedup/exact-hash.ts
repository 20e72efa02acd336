/**
 * The original pipeline's "perceptual" hash, reproduced byte for byte in layout:
 *
 *   resize to exactly 16x16 RGB (Lanczos3, aspect ignored), keep `value >> 4` of every channel
 *   byte (768 bytes, row-major, R G B), append one byte
 *   `round(clamp(log2(width / height), -4, 4)) + 4`, SHA-256, lower-case hex.
 *
 * Choices (documented because they change hashes):
 * - width/height are the stored pixel dimensions; EXIF orientation is NOT applied (the original
 *   Rust `image` crate loaded pixels as stored and never rotated), and the pixels hashed are the
 *   stored, unrotated ones too.
 * - The image is fully decoded first and then resized, as the original did; libvips' JPEG
 *   shrink-on-load (decoding at 1/2, 1/4, 1/8 scale) is deliberately avoided because it would
 *   make a JPEG hash differently from a PNG of the very same pixels.
 * - Alpha is dropped (not composited), greyscale / CMYK / 16-bit inputs are converted to 8-bit sRGB
 *   with 3 channels, as `into_rgb8()` did.
 * - Lanczos3 is libvips' (sharp's) implementation; it is not bit-identical to the Rust `image`
 *   crate's, so hashes equal the original's layout but not necessarily its exact values.
 * - `round` is round-half-away-from-zero (Rust's f64::round); with integer dimensions a log2 ratio
 *   of exactly ±k.5 cannot occur, so this never differs from Math.round in practice.
 *
 * Decoding errors (corrupt bytes, truncated JPEGs: sharp's default failOn 'warning' is kept) are
 * thrown as an Error whose message starts with "cannot decode image".
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { PHASH_SIZE, PHASH_VARIANT, halvesToPhash, phashHalvesFromGray32, type PHash, type PhashVariant } from './phash.ts';

export const EXACT_HASH_SIZE = 16;

export interface ImageHashes {
  /** 64 hex characters: the original pipeline's hash (exact duplicates). */
  exact: string;
  /** 16 hex characters: 64-bit DCT perceptual hash (near duplicates). */
  phash: PHash;
  /** Stored pixel dimensions (no EXIF rotation). */
  width: number;
  height: number;
}

interface Decoded {
  data: Buffer;
  width: number;
  height: number;
}

function describe(input: Buffer | string): string {
  return typeof input === 'string' ? input : `buffer of ${input.length} bytes`;
}

function decodeError(input: Buffer | string, e: unknown): Error {
  const msg = e instanceof Error ? e.message : String(e);
  return new Error(`cannot decode image (${describe(input)}): ${msg.trim()}`, { cause: e });
}

/** Full decode to 8-bit sRGB, 3 channels, stored orientation. */
async function decodeRgb(input: Buffer | string): Promise<Decoded> {
  if (typeof input !== 'string' && input.length === 0) throw new Error('cannot decode image (empty buffer)');
  try {
    const { data, info } = await sharp(input, { failOn: 'warning' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { data, width: info.width, height: info.height };
  } catch (e) {
    throw decodeError(input, e);
  }
}

function rawInput(d: Decoded) {
  return sharp(d.data, { raw: { width: d.width, height: d.height, channels: 3 } });
}

/** The aspect byte: round(clamp(log2(w/h), -4, 4)) + 4, rounding half away from zero. */
export function aspectByte(width: number, height: number): number {
  const l = Math.min(4, Math.max(-4, Math.log2(width / height)));
  const r = Math.sign(l) * Math.round(Math.abs(l));
  return r + 4;
}

/** Hash bytes from the 16x16x3 Lanczos thumbnail and the original dimensions. */
export function exactHashFromThumb(thumb16: Uint8Array, width: number, height: number): string {
  const n = EXACT_HASH_SIZE * EXACT_HASH_SIZE * 3;
  if (thumb16.length !== n) throw new Error(`exact hash: expected ${n} bytes, got ${thumb16.length}`);
  const bytes = Buffer.alloc(n + 1);
  for (let i = 0; i < n; i++) bytes[i] = thumb16[i]! >> 4;
  bytes[n] = aspectByte(width, height);
  return createHash('sha256').update(bytes).digest('hex');
}

async function thumb16(d: Decoded): Promise<Buffer> {
  return rawInput(d)
    .resize(EXACT_HASH_SIZE, EXACT_HASH_SIZE, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
}

/**
 * 32x32 greyscale (Rec. 601 luma) by exact area averaging of the decoded pixels, in JS: cheaper
 * than a second libvips pipeline and a proper anti-aliased downscale for the DCT.
 */
export function gray32FromRgb(data: Uint8Array, width: number, height: number): Float64Array {
  const S = PHASH_SIZE;
  // Each source column (row) overlaps at most two target cells when the source is at least S
  // wide (high); smaller sources are magnified by the same formula with a finer split.
  const split = (n: number) => {
    const scale = S / n; // target cells per source pixel
    const k = Math.ceil(scale) + 1;
    const idx = new Int32Array(n * k).fill(-1);
    const wt = new Float64Array(n * k);
    for (let x = 0; x < n; x++) {
      const a = x * scale;
      const b = a + scale;
      let m = 0;
      for (let c = Math.floor(a); c < Math.min(S, Math.ceil(b)); c++) {
        const w = Math.min(b, c + 1) - Math.max(a, c);
        if (w > 0) {
          idx[x * k + m] = c;
          wt[x * k + m] = w;
          m++;
        }
      }
    }
    return { idx, wt, k };
  };
  const cx = split(width);
  const cy = split(height);
  const row = new Float64Array(S);
  const out = new Float64Array(S * S);
  // Fast path (source at least S wide): source column x feeds cell c0[x] (weight w0) and c0[x]+1.
  const fast = width >= S;
  const c0 = new Int32Array(width);
  const w0 = new Float64Array(width);
  const w1 = new Float64Array(width);
  if (fast) {
    for (let x = 0; x < width; x++) {
      c0[x] = cx.idx[x * cx.k]!;
      w0[x] = cx.wt[x * cx.k]!;
      const c1 = cx.idx[x * cx.k + 1]!;
      w1[x] = c1 >= 0 ? cx.wt[x * cx.k + 1]! : 0;
    }
  }
  const rowx = new Float64Array(S + 1);
  for (let y = 0; y < height; y++) {
    if (fast) {
      rowx.fill(0);
      for (let x = 0, p = y * width * 3; x < width; x++, p += 3) {
        const l = 0.299 * data[p]! + 0.587 * data[p + 1]! + 0.114 * data[p + 2]!;
        const c = c0[x]!;
        rowx[c] += w0[x]! * l;
        rowx[c + 1] += w1[x]! * l;
      }
      for (let i = 0; i < S; i++) row[i] = rowx[i]!;
    } else row.fill(0);
    for (let x = 0, p = y * width * 3; !fast && x < width; x++, p += 3) {
      const l = 0.299 * data[p]! + 0.587 * data[p + 1]! + 0.114 * data[p + 2]!;
      for (let m = 0; m < cx.k; m++) {
        const c = cx.idx[x * cx.k + m]!;
        if (c < 0) break;
        row[c]! += cx.wt[x * cx.k + m]! * l;
      }
    }
    for (let m = 0; m < cy.k; m++) {
      const r = cy.idx[y * cy.k + m]!;
      if (r < 0) break;
      const w = cy.wt[y * cy.k + m]!;
      const o = r * S;
      for (let i = 0; i < S; i++) out[o + i]! += w * row[i]!;
    }
  }
  // Weights sum to (S/width)*(S/height) per source pixel: each cell is an area mean.
  return out;
}

function gray32(d: Decoded): Float64Array {
  return gray32FromRgb(d.data, d.width, d.height);
}

/** The original pipeline's hash of an image (file path or encoded bytes). */
export async function exactHash(input: Buffer | string): Promise<string> {
  const d = await decodeRgb(input);
  return exactHashFromThumb(await thumb16(d), d.width, d.height);
}

/** Both hashes from a single decode. */
export async function hashImage(input: Buffer | string, opts: { phashVariant?: PhashVariant } = {}): Promise<ImageHashes> {
  const d = await decodeRgb(input);
  const t = await thumb16(d);
  const [hi, lo] = phashHalvesFromGray32(gray32(d), opts.phashVariant ?? PHASH_VARIANT);
  return { exact: exactHashFromThumb(t, d.width, d.height), phash: halvesToPhash(hi, lo), width: d.width, height: d.height };
}

/** pHash alone (still one decode). */
export async function phashImage(input: Buffer | string, variant: PhashVariant = PHASH_VARIANT): Promise<PHash> {
  const d = await decodeRgb(input);
  const [hi, lo] = phashHalvesFromGray32(gray32(d), variant);
  return halvesToPhash(hi, lo);
}
