// The original's training augmentations, with torchvision's semantics, on sharp:
//   RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(1, 1))  -> sharp extract + resize
//   RandomHorizontalFlip(0.5)                                 -> sharp flop
//   ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4) -> three blends on the 8-bit pixels in a
//                                                                random order, truncated and clipped after
//                                                                each, bit-exact with PIL's ImageEnhance
// and its evaluation transform (resize the short side + centre crop).
//
// Everything random is drawn from an Rng seeded per sample, so an augmented image is a pure
// function of (file, seed): prefetching, worker scheduling and resuming never change it.
//
// Note on the crop: with ratio (1, 1) a crop of at least 80% of the area must be a square of side
// >= sqrt(0.8 W H); for a 4:3 image that exceeds the short side, so torchvision's 10 attempts all
// fail and it falls back to the centre square of full height. We reproduce that exactly.
import fs from 'node:fs/promises';
import { imageSize } from 'image-size';
import sharp from 'sharp';
import { decodeRgb, PIXEL_SCALE } from '../ml/decode.ts';
import { Rng } from './rng.ts';

export interface AugmentOptions {
  /** Area fraction of the crop. */
  scale: [number, number];
  /** Aspect ratio (w/h) range of the crop. */
  ratio: [number, number];
  /** Probability of a horizontal flip. */
  flipProb: number;
  brightness: number;
  contrast: number;
  saturation: number;
}

export const ORIGINAL_AUGMENT: AugmentOptions = {
  scale: [0.8, 1.0],
  ratio: [1, 1],
  flipProb: 0.5,
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.4,
};

export type JitterOp = { op: 'brightness' | 'contrast' | 'saturation'; factor: number };

export interface AugmentPlan {
  crop: { left: number; top: number; width: number; height: number };
  flip: boolean;
  jitter: JitterOp[];
}

/** torchvision's RandomResizedCrop.get_params + flip + ColorJitter.get_params, for a W x H image. */
export function planAugment(width: number, height: number, rng: Rng, o: AugmentOptions = ORIGINAL_AUGMENT): AugmentPlan {
  const area = width * height;
  let crop: AugmentPlan['crop'] | null = null;
  const logR: [number, number] = [Math.log(o.ratio[0]), Math.log(o.ratio[1])];
  for (let attempt = 0; attempt < 10 && !crop; attempt++) {
    const target = area * rng.uniform(o.scale[0], o.scale[1]);
    const aspect = Math.exp(rng.uniform(logR[0], logR[1]));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      crop = { left: rng.int(width - w + 1), top: rng.int(height - h + 1), width: w, height: h };
    }
  }
  if (!crop) {
    const inRatio = width / height;
    let w = width;
    let h = height;
    if (inRatio < o.ratio[0]) h = Math.round(w / o.ratio[0]);
    else if (inRatio > o.ratio[1]) w = Math.round(h * o.ratio[1]);
    crop = { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
  }
  const flip = rng.next() < o.flipProb;
  const ops: JitterOp[] = [];
  const factor = (s: number): number => rng.uniform(Math.max(0, 1 - s), 1 + s);
  if (o.brightness > 0) ops.push({ op: 'brightness', factor: factor(o.brightness) });
  if (o.contrast > 0) ops.push({ op: 'contrast', factor: factor(o.contrast) });
  if (o.saturation > 0) ops.push({ op: 'saturation', factor: factor(o.saturation) });
  rng.shuffle(ops);
  return { crop, flip, jitter: ops };
}

/**
 * Applies the colour jitter in place to interleaved 8-bit RGB exactly as torchvision does on PIL
 * images: each op is PIL's ImageEnhance, i.e. Image.blend(degenerate, image, factor) with the
 * degenerate image black (brightness), the rounded mean grey level (contrast) or the greyscale
 * image (saturation). PIL's blend computes in single precision and truncates to 8 bits (clipping
 * when the factor extrapolates), which is what the Math.fround calls and `| 0` reproduce.
 *
 * Brightness and contrast are per-channel maps, so consecutive ones are composed into one lookup
 * table (contrast's mean is taken through the pending table) and applied in the next saturation
 * pass or in one final pass: two or three passes over the pixels instead of four. With `out`, the
 * last pass writes the result there as float32 in [0, 1] (the models' input) instead of into `px`,
 * whose content is then unspecified.
 */
export function applyJitter(px: Uint8Array, ops: readonly JitterOp[], out?: Float32Array): void {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v;
  let pending = false;
  for (let k = 0; k < ops.length; k++) {
    const { op, factor } = ops[k];
    const f = Math.fround(factor);
    if (op === 'saturation') {
      saturate(px, f, pending ? lut : null, k === ops.length - 1 ? out : undefined);
      if (pending) for (let v = 0; v < 256; v++) lut[v] = v;
      pending = false;
      continue;
    }
    const m = op === 'contrast' ? meanGrey(px, pending ? lut : null) : 0;
    for (let v = 0; v < 256; v++) lut[v] = blend8(m, lut[v], f);
    pending = true;
  }
  if (pending && out) {
    const unit = Float32Array.from(lut, (v) => UNIT[v]);
    for (let i = 0; i < px.length; i++) out[i] = unit[px[i]];
  } else if (pending) {
    for (let i = 0; i < px.length; i++) px[i] = lut[px[i]];
  } else if (out && ops[ops.length - 1]?.op !== 'saturation') {
    writeUnitFloat(px, out);
  }
}

/** PIL's Image.blend of one 8-bit sample: (UINT8)(a + alpha (b - a)) in float, clipped. */
function blend8(a: number, b: number, alpha: number): number {
  const t = Math.fround(a + Math.fround(alpha * (b - a)));
  return t <= 0 ? 0 : t >= 255 ? 255 : t | 0;
}

/**
 * Saturation (ImageEnhance.Color): blend with the image's own grey level, after `lut` if given;
 * into `out` as float32 in [0, 1] if given, else in place.
 */
function saturate(px: Uint8Array, f: number, lut: Uint8Array | null, out?: Float32Array): void {
  for (let i = 0; i < px.length; i += 3) {
    const r = lut ? lut[px[i]] : px[i];
    const g = lut ? lut[px[i + 1]] : px[i + 1];
    const b = lut ? lut[px[i + 2]] : px[i + 2];
    const l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    if (out) {
      out[i] = UNIT[blend8(l, r, f)];
      out[i + 1] = UNIT[blend8(l, g, f)];
      out[i + 2] = UNIT[blend8(l, b, f)];
    } else {
      px[i] = blend8(l, r, f);
      px[i + 1] = blend8(l, g, f);
      px[i + 2] = blend8(l, b, f);
    }
  }
}

/**
 * Mean grey level (PIL's "L" conversion: ITU-R 601 luma in 16-bit fixed point) of the image, or of
 * the image mapped through `lut`, rounded as ImageEnhance.Contrast does.
 */
export function meanGrey(px: Uint8Array, lut: Uint8Array | null = null): number {
  let sum = 0;
  if (lut) {
    for (let i = 0; i < px.length; i += 3) sum += (lut[px[i]] * 19595 + lut[px[i + 1]] * 38470 + lut[px[i + 2]] * 7471 + 0x8000) >> 16;
  } else {
    for (let i = 0; i < px.length; i += 3) sum += (px[i] * 19595 + px[i + 1] * 38470 + px[i + 2] * 7471 + 0x8000) >> 16;
  }
  return Math.floor(sum / (px.length / 3) + 0.5);
}

/** Crops, resizes to size x size and flips with sharp; returns interleaved RGB bytes. */
async function cropResizeFlipOn(img: sharp.Sharp, size: number, plan: AugmentPlan): Promise<Uint8Array> {
  let p = img.rotate().extract(plan.crop).resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (plan.flip) p = p.flop();
  const { data, info } = await p.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) {
    const out = new Uint8Array(size * size * 3);
    for (let i = 0; i < size * size; i++)
      for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * info.channels + Math.min(c, info.channels - 1)];
    return out;
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** The augmented image as 8-bit RGB (size*size*3), fixed by `seed`. */
export async function augmentRgb(
  input: Buffer | string,
  size: number,
  seed: number,
  opts: AugmentOptions = ORIGINAL_AUGMENT,
): Promise<Uint8Array> {
  const { rgb, plan } = await cropped(input, size, seed, opts);
  applyJitter(rgb, plan.jitter);
  return rgb;
}

/**
 * The augmented image written into `out` (size*size*3 float32 in [0, 1]): the same sample as
 * `toUnitFloat(await augmentRgb(...))`, with the conversion folded into the jitter's last pass.
 */
export async function augmentInto(
  input: Buffer | string,
  size: number,
  seed: number,
  opts: AugmentOptions,
  out: Float32Array,
): Promise<void> {
  const { rgb, plan } = await cropped(input, size, seed, opts);
  applyJitter(rgb, plan.jitter, out);
}

async function cropped(input: Buffer | string, size: number, seed: number, opts: AugmentOptions): Promise<{ rgb: Uint8Array; plan: AugmentPlan }> {
  const bytes = typeof input === 'string' ? await fs.readFile(input) : input;
  const { width, height, orientation } = await dimensions(bytes);
  const [w, h] = orientation >= 5 ? [height, width] : [width, height];
  const plan = planAugment(w, h, new Rng(seed), opts);
  return { rgb: await cropResizeFlipOn(sharp(bytes, { failOn: 'error' }), size, plan), plan };
}

/**
 * Width, height and EXIF orientation from the file's header (image-size: ~0.02 ms, against ~0.3 ms
 * for a sharp metadata call), falling back to sharp for what image-size cannot read; a corrupt
 * file then fails in sharp with its own message.
 */
async function dimensions(bytes: Buffer): Promise<{ width: number; height: number; orientation: number }> {
  try {
    const d = imageSize(bytes);
    if (d.width > 0 && d.height > 0) return { width: d.width, height: d.height, orientation: d.orientation ?? 1 };
  } catch {
    // not a format image-size knows, or a damaged header: ask sharp
  }
  const m = await sharp(bytes, { failOn: 'error' }).metadata();
  if (!m.width || !m.height) throw new Error('image has no dimensions');
  return { width: m.width, height: m.height, orientation: m.orientation ?? 1 };
}

/**
 * One training sample: the augmented image as size*size*3 float32 RGB in [0, 1] (the backbone's
 * input scaling), fixed by `seed`.
 */
export async function augmentToFloat(
  input: Buffer | string,
  size: number,
  seed: number,
  opts: AugmentOptions = ORIGINAL_AUGMENT,
): Promise<Float32Array> {
  return toUnitFloat(await augmentRgb(input, size, seed, opts));
}

const UNIT = Float32Array.from({ length: 256 }, (_, v) => v * PIXEL_SCALE);

export function toUnitFloat(rgb: Uint8Array): Float32Array {
  const out = new Float32Array(rgb.length);
  writeUnitFloat(rgb, out);
  return out;
}

/** Writes `rgb` scaled to [0, 1] into `out` (at least as long). */
export function writeUnitFloat(rgb: Uint8Array, out: Float32Array): void {
  for (let i = 0; i < rgb.length; i++) out[i] = UNIT[rgb[i]];
}

/** The evaluation transform: resize the short side to size, centre crop, RGB in [0, 1]. */
export async function evalToFloat(input: Buffer | string, size: number): Promise<Float32Array> {
  return toUnitFloat(await decodeRgb(input, size));
}
