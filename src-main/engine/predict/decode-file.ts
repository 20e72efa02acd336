// Reading the photos of a folder for prediction: which files count as images, the walk, and the
// decode with the model's evaluation preprocessing (EXIF rotation, shorter side to 224, centre
// crop, RGB / 255: the same as ml/decode.ts, which the training features were made with), with a
// clear reason for every file that cannot be used.
import fsp from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { writePreprocessed } from '../ml/decode.ts';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif'];
/** Default pixel limit (width x height as the file declares it): 120 MP, above any phone camera's JPEG. */
export const DEFAULT_MAX_PIXELS = 120_000_000;
/** Files above this size are refused before reading (a photo is rarely over 100 MB). */
export const MAX_FILE_BYTES = 200 * 1024 * 1024;

/** A file that cannot be predicted, with the reason shown to the user. */
export class ImageFileError extends Error {
  override name = 'ImageFileError';
}

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** HEIC/HEIF needs libheif with an HEVC decoder; sharp's prebuilt binaries have AVIF only. */
export function heicSupported(): boolean {
  const heif = (sharp.format as unknown as Record<string, { input?: { fileSuffix?: string[] } }>).heif;
  return Boolean(heif?.input?.fileSuffix?.includes('.heic'));
}

/**
 * Files under `root` with an image extension (symbolic links to files included: readers follow
 * them), recursively, in a stable (sorted) order; also the other files passed over (`ignored`,
 * and their paths in `others`). Symbolic links to folders are not followed.
 */
export async function walkImages(root: string): Promise<{ files: string[]; ignored: number; others: string[] }> {
  const files: string[] = [];
  const others: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile() || e.isSymbolicLink()) {
        if (isImageName(e.name)) files.push(p);
        else others.push(p);
      }
    }
  };
  const st = await fsp.stat(root).catch(() => null);
  if (!st) throw new ImageFileError(`${root} does not exist`);
  if (!st.isDirectory()) throw new ImageFileError(`${root} is not a folder`);
  await visit(root);
  return { files, ignored: others.length, others };
}

export interface DecodedImage {
  /** 224*224*3 float32, RGB in [0, 1]. */
  input: Float32Array;
  /**
   * With `detectorSize`: the whole photo squashed to detectorSize x detectorSize, RGB 0-255 as
   * floats (the car detector's input, as car-features.ts decodeForDetector makes it).
   */
  det?: Float32Array;
  /** Oriented size of the original. */
  width: number;
  height: number;
  bytes: number;
}

export interface DecodeOptions {
  size?: number;
  maxPixels?: number;
  /** Also decode the car detector's view of the whole photo at this size (DecodedImage.det). */
  detectorSize?: number;
}

/** Reads a file (or takes bytes) and checks what can be said before decoding. */
export async function readImageBytes(input: string | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(input)) {
    if (input.length === 0) throw new ImageFileError('empty file (0 bytes)');
    return input;
  }
  const st = await fsp.stat(input).catch((e: NodeJS.ErrnoException) => {
    throw new ImageFileError(`cannot read: ${e.code ?? e.message}`);
  });
  if (!st.isFile()) throw new ImageFileError('not a regular file');
  if (st.size === 0) throw new ImageFileError('empty file (0 bytes)');
  if (st.size > MAX_FILE_BYTES) throw new ImageFileError(`too large: ${st.size} bytes, over the ${MAX_FILE_BYTES}-byte limit`);
  try {
    return await fsp.readFile(input);
  } catch (e) {
    throw new ImageFileError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Width and height after EXIF orientation, checked against the pixel limit; throws ImageFileError. */
export async function probeImage(buf: Buffer, maxPixels = DEFAULT_MAX_PIXELS): Promise<{ width: number; height: number; format: string }> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (e) {
    const msg = (e as Error).message;
    if (looksLikeHeic(buf)) throw new ImageFileError(heicReason());
    if (/unsupported image format/i.test(msg)) throw new ImageFileError('not an image: the content is not a format sharp can read');
    throw new ImageFileError(`corrupt image header: ${firstLine(msg)}`);
  }
  if ((meta.format === 'heif' && looksLikeHeic(buf) && !heicSupported()) || (!meta.format && looksLikeHeic(buf)))
    throw new ImageFileError(heicReason());
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!w || !h) throw new ImageFileError(`not an image: no dimensions in the ${meta.format ?? 'unknown'} header`);
  if (w * h > maxPixels)
    throw new ImageFileError(`too large: ${w}x${h} = ${(w * h / 1e6).toFixed(1)} MP, over the ${(maxPixels / 1e6).toFixed(0)} MP pixel limit`);
  const rotated = (meta.orientation ?? 1) >= 5;
  return { width: rotated ? h : w, height: rotated ? w : h, format: meta.format ?? 'unknown' };
}

/** Decodes into the model's input layout; throws ImageFileError with the reason. */
export async function decodeImage(input: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const size = opts.size ?? 224;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const buf = await readImageBytes(input);
  const { width, height, format } = await probeImage(buf, maxPixels);
  let data: Buffer;
  let info: sharp.OutputInfo;
  let det: Float32Array | undefined;
  try {
    // failOn 'truncated': a photo cut short is an error; harmless warnings (odd EXIF) are not.
    const model = sharp(buf, { failOn: 'truncated', limitInputPixels: maxPixels, animated: false })
      .rotate()
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const D = opts.detectorSize;
    const view = D
      ? sharp(buf, { failOn: 'truncated', limitInputPixels: maxPixels, animated: false })
          .rotate()
          .resize(D, D, { fit: 'fill' })
          .toColourspace('srgb')
          .removeAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true })
      : null;
    const [m, v] = await Promise.all([model, view]);
    ({ data, info } = m);
    if (v && D) det = detectorFloats(v.data, v.info.channels, D);
  } catch (e) {
    const msg = firstLine((e as Error).message);
    const cut = truncationHint(buf, format);
    if (cut) throw new ImageFileError(`truncated or corrupt: ${cut} (${msg})`);
    if (/premature end|truncat|unexpected end|end of (file|stream|input)|not enough data|read error/i.test(msg))
      throw new ImageFileError(`truncated or corrupt: ${msg}`);
    throw new ImageFileError(`does not decode: ${msg}`);
  }
  if (info.width !== size || info.height !== size) throw new ImageFileError(`decoded to ${info.width}x${info.height}, expected ${size}x${size}`);
  return { input: toModelInput(data, info.channels, size), ...(det ? { det } : {}), width, height, bytes: buf.length };
}

/** Interleaved pixels with 1-4 channels (size x size) to the detector's RGB 0-255 floats. */
export function detectorFloats(data: Buffer, channels: number, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * channels + (channels < 3 ? 0 : c)]!;
  }
  return out;
}

/** Interleaved pixels with 1-4 channels (size x size) to the model's 3-channel float input. */
export function toModelInput(data: Buffer, channels: number, size: number): Float32Array {
  const info = { channels };
  const pixels = size * size;
  let rgb: Uint8Array;
  if (info.channels === 3) rgb = new Uint8Array(data.buffer, data.byteOffset, pixels * 3);
  else {
    rgb = new Uint8Array(pixels * 3);
    const c = info.channels;
    for (let i = 0; i < pixels; i++) {
      const grey = c < 3;
      rgb[i * 3] = data[i * c];
      rgb[i * 3 + 1] = data[i * c + (grey ? 0 : 1)];
      rgb[i * 3 + 2] = data[i * c + (grey ? 0 : 2)];
    }
  }
  const out = new Float32Array(pixels * 3);
  writePreprocessed(rgb, out);
  return out;
}

/** A small JPEG of an image (EXIF-rotated), as a data URL. */
export async function thumbnailDataUrl(input: string | Buffer, size = 240, maxPixels = DEFAULT_MAX_PIXELS): Promise<{ dataUrl: string; width: number; height: number }> {
  const buf = await readImageBytes(input);
  await probeImage(buf, maxPixels);
  try {
    const { data, info } = await sharp(buf, { limitInputPixels: maxPixels, animated: false })
      .rotate()
      .resize(size, size, { fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 78 })
      .toBuffer({ resolveWithObject: true });
    return { dataUrl: `data:image/jpeg;base64,${data.toString('base64')}`, width: info.width, height: info.height };
  } catch (e) {
    throw new ImageFileError(`does not decode: ${firstLine((e as Error).message)}`);
  }
}

/** Says why a file looks cut short, from its container's end marker. */
function truncationHint(buf: Buffer, format: string): string | null {
  if (format === 'jpeg') {
    const tail = buf.subarray(Math.max(0, buf.length - 64));
    if (tail.lastIndexOf(Buffer.from([0xff, 0xd9])) < 0) return 'the JPEG ends before its end-of-image marker';
  }
  if (format === 'png' && buf.lastIndexOf(Buffer.from('IEND', 'latin1')) < 0) return 'the PNG has no IEND chunk';
  return null;
}

function looksLikeHeic(buf: Buffer): boolean {
  if (buf.length < 12 || buf.toString('latin1', 4, 8) !== 'ftyp') return false;
  return /^(heic|heix|hevc|hevx|heim|heis|mif1|msf1)$/.test(buf.toString('latin1', 8, 12));
}

function heicReason(): string {
  return 'HEIC is not supported by this build of sharp (its libvips has no HEVC decoder); convert the photo to JPEG';
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
