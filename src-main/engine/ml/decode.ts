// Image decoding for the image models: EXIF-rotate, resize the shorter side to `size`, centre
// crop to size x size, 8-bit sRGB, 3 channels. Evaluation-time preprocessing of the original
// pipeline ("resize + centre crop 224").
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
