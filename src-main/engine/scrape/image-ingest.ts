import fs from 'node:fs';
import sharp from 'sharp';
import type { ImageStore } from '../workspace/image-store.ts';
import { hashRow } from '../dedup/hash-row.ts';

/** Larger inputs are refused before decoding (a pixel bomb); 100 MP covers any real photo. */
export const MAX_INPUT_PIXELS = 100_000_000;

export interface StoredImage {
  width: number;
  height: number;
  bytes: number;
  /** Dedup hashes of the stored JPEG (see dedup/hash-row.ts); hashError when it cannot be hashed. */
  hashes?: StoredHashes;
}

export type StoredHashes = { exact: string; phash: string; thumb: Buffer } | { error: string };

/** Dedup hashes of stored bytes; never throws (a failure is recorded, and the dedup job skips it). */
export async function hashStored(input: Buffer | string): Promise<StoredHashes> {
  try {
    const h = await hashRow(input);
    return { exact: h.exact, phash: h.phash, thumb: h.thumb };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]! };
  }
}

/** An image that cannot be used (not an image, truncated, too large): recorded, never fatal. */
export class ImageRejected extends Error {
  override name = 'ImageRejected';
}

/**
 * Decodes image bytes (EXIF orientation applied), downsamples so the short side is at most
 * `resize` (never upscaling), re-encodes as JPEG and writes it atomically under `key`. A bad
 * image throws ImageRejected; a failing store (read-only, disk full) throws the store's error.
 */
export async function ingestImage(store: ImageStore, key: string, input: Buffer, resize: number): Promise<StoredImage> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    if (input.length === 0) throw new Error('empty body');
    // failOn 'warning' (sharp's default) rejects truncated JPEGs instead of storing grey halves.
    const img = sharp(input, { failOn: 'warning', limitInputPixels: MAX_INPUT_PIXELS }).rotate();
    const meta = await img.metadata();
    if (!meta.width || !meta.height) throw new Error('no image dimensions');
    const w = meta.autoOrient?.width ?? meta.width;
    const h = meta.autoOrient?.height ?? meta.height;
    const resizeOpts = w <= h ? { width: resize } : { height: resize };
    out = await img
      .resize({ ...resizeOpts, withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 90, mozjpeg: false })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageRejected(describeSharpError(e as Error));
  }
  const hashes = await hashStored(out.data);
  await store.write(key, out.data);
  return { width: out.info.width, height: out.info.height, bytes: out.data.length, hashes };
}

/** Reads back the size of a file already in the store (after a crash between write and commit). */
export async function storedInfo(store: ImageStore, key: string): Promise<StoredImage | null> {
  try {
    const file = store.pathFor(key);
    const meta = await sharp(file, { failOn: 'warning' }).metadata();
    if (!meta.width || !meta.height) return null;
    return { width: meta.width, height: meta.height, bytes: fs.statSync(file).size, hashes: await hashStored(file) };
  } catch {
    return null;
  }
}

function describeSharpError(e: Error): string {
  const m = e.message;
  if (/pixel limit/i.test(m)) return `image too large (over ${MAX_INPUT_PIXELS / 1e6} megapixels)`;
  if (/unsupported image format/i.test(m)) return 'not an image (unsupported format)';
  // libvips words the same damage differently from run to run (a warning under failOn, or an
  // error); record the stable category so the ledger does not depend on which one fired.
  if (/premature end|truncated|VipsJpeg|corrupt|failOn|extraneous bytes/i.test(m)) return 'corrupt or truncated image';
  return `cannot decode image: ${m.split('\n')[0]}`;
}
