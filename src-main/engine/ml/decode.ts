// Image decoding for the image models: EXIF-rotate, resize the shorter side to `size`, centre
// crop to size x size, 8-bit sRGB, 3 channels. Evaluation-time preprocessing of the original
// pipeline ("resize + centre crop 224"); decodeCrops gives its 3-crop variant (three squares along
// the long side, whose embeddings the extractor averages). decodeCropAndWhole gives car-v1's two
// views of a photo (the centre crop and the whole photo squashed) from one decode where it can.
import fsp from 'node:fs/promises';
import sharp from 'sharp';

/** The nsfwjs MobileNetV2 expects RGB scaled to [0, 1]: pixel / 255 (nsfwjs `infer`). */
export const PIXEL_SCALE = 1 / 255;

/** Decodes to interleaved RGB bytes, length size*size*3. Throws on a corrupt or unsupported file. */
export async function decodeRgb(input: Buffer | string, size = 224): Promise<Uint8Array> {
  const { data, info } = await sharp(input, { failOn: 'error' })
    .rotate()
    .resize(size, size, { fit: 'cover', position: 'centre' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size) {
    throw new Error(`decoded to ${info.width}x${info.height}, expected ${size}x${size}`);
  }
  return toRgb(data, info.channels, size * size);
}

/** `pixels` interleaved RGB bytes from sharp's raw output with `channels` channels (grey replicated, anything past RGB dropped). */
function toRgb(data: Buffer, channels: number, pixels: number): Uint8Array {
  if (channels === 3) return new Uint8Array(data.buffer, data.byteOffset, pixels * 3);
  const out = new Uint8Array(pixels * 3);
  if (channels === 1 || channels === 2) {
    // Greyscale (with or without alpha left over): replicate the grey channel.
    for (let i = 0; i < pixels; i++) {
      const g = data[i * channels];
      out[i * 3] = g;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = g;
    }
    return out;
  }
  for (let i = 0; i < pixels; i++) {
    out[i * 3] = data[i * channels];
    out[i * 3 + 1] = data[i * channels + 1];
    out[i * 3 + 2] = data[i * channels + 2];
  }
  return out;
}

/**
 * The whole photo, EXIF-rotated and squashed (not cropped) to size x size, as interleaved RGB
 * bytes: the car detector's view. Throws on a corrupt or unsupported file.
 */
export async function decodeWhole(input: Buffer | string, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(input, { failOn: 'error' })
    .rotate()
    .resize(size, size, { fit: 'fill' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size) throw new Error(`decoded to ${info.width}x${info.height}, expected ${size}x${size}`);
  return toRgb(data, info.channels, size * size);
}

/**
 * The JPEG shrink-on-load factor sharp (0.34, pipeline.cc, fastShrinkOnLoad on) decodes at for a
 * resize that shrinks both axes by at least `shrink`: 8, 4 or 2 at or past that reduction, halved
 * where the reduction's whole part equals it (libjpeg's rounding), else 1 (a full decode).
 */
export function jpegShrinkOnLoad(shrink: number): number {
  let s = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1;
  if (s > 1 && Math.trunc(shrink) === s) s /= 2;
  return s;
}

/** car-v1's two views of one photo, each as decodeRgb and decodeWhole give them. */
export interface CropAndWhole {
  /** The cropSize x cropSize centre crop (decodeRgb), RGB bytes. */
  crop: Uint8Array;
  /** The whole photo squashed to wholeSize x wholeSize (decodeWhole), RGB bytes. */
  whole: Uint8Array;
  /** How many times the file was decoded: 1, or 2 where one decode could not give the same pixels. */
  decodes: 1 | 2;
}

/**
 * EXIF orientation (1-8) as the flop and the explicit rotation that, applied after the resize,
 * give sharp's own auto-orientation (which rotates by `k` then flops): flop then rotate by -k.
 */
const ORIENT: Record<number, { flop: boolean; angle: number }> = {
  1: { flop: false, angle: 0 },
  2: { flop: true, angle: 0 },
  3: { flop: false, angle: 180 },
  4: { flop: true, angle: 180 },
  5: { flop: true, angle: 270 },
  6: { flop: false, angle: 90 },
  7: { flop: true, angle: 90 },
  8: { flop: false, angle: 270 },
};

/**
 * Both views car-v1 reads of a photo, byte for byte what decodeRgb(input, cropSize) and
 * decodeWhole(input, wholeSize) give, from one read and (for most photos) one decode: the file is
 * decoded once to raw pixels as stored (colour profile applied, not yet rotated), both views are
 * resized from that, and the EXIF orientation is applied after the resize, as sharp does it.
 * sharp decodes a large JPEG at 1/2, 1/4 or 1/8 of its size where a resize allows
 * (shrink-on-load), which one full decode cannot reproduce; so where either view would be decoded
 * that way (a JPEG whose short side is 672 px or more), and for formats other than 8-bit JPEG and
 * PNG, the two views are decoded apart as before (`decodes` 2). Throws on a corrupt or
 * unsupported file.
 */
export async function decodeCropAndWhole(input: Buffer | string, cropSize = 224, wholeSize = 256): Promise<CropAndWhole> {
  const buf = typeof input === 'string' ? await fsp.readFile(input) : input;
  const meta = await sharp(buf, { failOn: 'error' }).metadata();
  const orient = ORIENT[meta.orientation ?? 1] ?? ORIENT[1]!;
  const short = Math.min(meta.width ?? 0, meta.height ?? 0);
  const once =
    meta.depth === 'uchar' &&
    (meta.pages ?? 1) === 1 &&
    (meta.format === 'png' || (meta.format === 'jpeg' && jpegShrinkOnLoad(short / cropSize) === 1 && jpegShrinkOnLoad(short / wholeSize) === 1));
  if (!once) {
    const [crop, whole] = await Promise.all([decodeRgb(buf, cropSize), decodeWhole(buf, wholeSize)]);
    return { crop, whole, decodes: 2 };
  }
  const { data, info } = await sharp(buf, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const view = async (size: number, fit: 'cover' | 'fill'): Promise<Uint8Array> => {
    let p = sharp(data, raw).resize(size, size, { fit, position: 'centre' });
    if (orient.flop) p = p.flop();
    if (orient.angle) p = p.rotate(orient.angle);
    const out = await p.toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (out.info.width !== size || out.info.height !== size) throw new Error(`decoded to ${out.info.width}x${out.info.height}, expected ${size}x${size}`);
    return toRgb(out.data, out.info.channels, size * size);
  };
  const [crop, whole] = await Promise.all([view(cropSize, 'cover'), view(wholeSize, 'fill')]);
  return { crop, whole, decodes: 1 };
}

/** Writes `rgb` scaled by PIXEL_SCALE into `target` at element `offset` (NHWC, float32). */
export function writePreprocessed(rgb: Uint8Array, target: Float32Array, offset = 0): void {
  for (let i = 0; i < rgb.length; i++) target[offset + i] = rgb[i] * PIXEL_SCALE;
}

/** Decodes one image into the model's input layout: size*size*3 float32, RGB in [0, 1]. */
export async function decodeForModel(input: Buffer | string, size = 224): Promise<Float32Array> {
  const rgb = await decodeRgb(input, size);
  const out = new Float32Array(rgb.length);
  writePreprocessed(rgb, out);
  return out;
}

/** How many square crops an image gives: 1 (the centre, decodeRgb) or 3 (along the long side). */
export const CROP_COUNTS = [1, 3] as const;
export type CropCount = (typeof CROP_COUNTS)[number];

/** One square window of the resized image: its top-left corner, side `size`. */
export interface CropWindow {
  left: number;
  top: number;
}

/**
 * The three square windows of side `size` along the long side of a `width` x `height` image
 * whose short side is `size` (or more, rounding): left, centre, right for a landscape image, top,
 * centre, bottom for a portrait one. A square image gives the same window three times. The centre
 * is placed as sharp places a `cover` crop, so it is the window decodeRgb keeps.
 */
export function cropWindows(width: number, height: number, size: number): [CropWindow, CropWindow, CropWindow] {
  const mid = (len: number) => Math.floor((len - size + 1) / 2);
  if (width >= height) {
    const top = mid(height);
    return [
      { left: 0, top },
      { left: mid(width), top },
      { left: width - size, top },
    ];
  }
  const left = mid(width);
  return [
    { left, top: 0 },
    { left, top: mid(height) },
    { left, top: height - size },
  ];
}

/**
 * Decodes one image into the three square crops along its long side (cropWindows), each
 * size*size*3 interleaved RGB bytes. One read and one decode of the file: sharp EXIF-rotates it and
 * resizes its short side to `size` (as decodeRgb does before its centre crop), and the windows are
 * copied out of that. Throws on a corrupt or unsupported file.
 */
export async function decodeCrops(input: Buffer | string, size = 224): Promise<[Uint8Array, Uint8Array, Uint8Array]> {
  const { data, info } = await sharp(input, { failOn: 'error' })
    .rotate()
    .resize(size, size, { fit: 'outside' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width < size || info.height < size) {
    throw new Error(`decoded to ${info.width}x${info.height}, expected at least ${size}x${size}`);
  }
  const [a, b, c] = cropWindows(info.width, info.height, size);
  const copy = (w: CropWindow) => copyWindow(data, info.width, info.channels, w, size);
  return [copy(a), copy(b), copy(c)];
}

/** The size x size window at `w` of an interleaved image with `channels` channels, as RGB (grey replicated). */
function copyWindow(data: Uint8Array, width: number, channels: number, w: CropWindow, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const src = ((w.top + y) * width + w.left) * channels;
    const dst = y * size * 3;
    if (channels === 3) {
      out.set(data.subarray(src, src + size * 3), dst);
      continue;
    }
    for (let x = 0; x < size; x++) {
      const s = src + x * channels;
      const d = dst + x * 3;
      if (channels < 3) {
        out[d] = out[d + 1] = out[d + 2] = data[s];
      } else {
        out[d] = data[s];
        out[d + 1] = data[s + 1];
        out[d + 2] = data[s + 2];
      }
    }
  }
  return out;
}
