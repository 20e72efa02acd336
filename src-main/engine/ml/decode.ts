// Image decoding for the image models: EXIF-rotate, resize the shorter side to `size`, centre
// crop to size x size, 8-bit sRGB, 3 channels. Evaluation-time preprocessing of the original
// pipeline ("resize + centre crop 224"); decodeCrops gives its 3-crop variant (three squares along
// the long side, whose embeddings the extractor averages).
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
  const pixels = size * size;
  if (info.channels === 3) return new Uint8Array(data.buffer, data.byteOffset, pixels * 3);
  const out = new Uint8Array(pixels * 3);
  if (info.channels === 1 || info.channels === 2) {
    // Greyscale (with or without alpha left over): replicate the grey channel.
    for (let i = 0; i < pixels; i++) {
      const g = data[i * info.channels];
      out[i * 3] = g;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = g;
    }
    return out;
  }
  for (let i = 0; i < pixels; i++) {
    out[i * 3] = data[i * info.channels];
    out[i * 3 + 1] = data[i * info.channels + 1];
    out[i * 3 + 2] = data[i * info.channels + 2];
  }
  return out;
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
