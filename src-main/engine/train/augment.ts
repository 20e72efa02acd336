// The original's training augmentations, with torchvision's semantics, on sharp:
//   RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(1, 1))  -> sharp extract + resize
//   RandomHorizontalFlip(0.5)                                 -> sharp flop
//   ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4) -> three blends on the 8-bit pixels in a
//                                                                random order, rounded and clamped after
//                                                                each (as PIL's ImageEnhance does)
// and its evaluation transform (resize the short side + centre crop).
//
// Everything random is drawn from an Rng seeded per sample, so an augmented image is a pure
// function of (file, seed): prefetching, worker scheduling and resuming never change it.
//
// Note on the crop: with ratio (1, 1) a crop of at least 80% of the area must be a square of side
// >= sqrt(0.8 W H); for a 4:3 image that exceeds the short side, so torchvision's 10 attempts all
// fail and it falls back to the centre square of full height. We reproduce that exactly.
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
 * Applies the colour jitter in place to interleaved 8-bit RGB, as torchvision does on PIL images:
 * each op blends with a degenerate image (black; the mean grey level; the greyscale image) and
 * rounds and clamps back to 8 bits before the next op.
 */
export function applyJitter(px: Uint8Array, ops: readonly JitterOp[]): void {
  const lut = new Uint8Array(256);
  for (const { op, factor: f } of ops) {
    if (op === 'saturation') {
      // Blend with the greyscale image: out = L + f (c - L), in 12-bit fixed point.
      const fi = Math.round(f * 4096);
      const gi = 4096 - fi;
      for (let i = 0; i < px.length; i += 3) {
        const r = px[i];
        const g = px[i + 1];
        const b = px[i + 2];
        const grey = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) * gi + 2048;
        const r2 = (r * fi + grey) >> 12;
        const g2 = (g * fi + grey) >> 12;
        const b2 = (b * fi + grey) >> 12;
        px[i] = r2 < 0 ? 0 : r2 > 255 ? 255 : r2;
        px[i + 1] = g2 < 0 ? 0 : g2 > 255 ? 255 : g2;
        px[i + 2] = b2 < 0 ? 0 : b2 > 255 ? 255 : b2;
      }
      continue;
    }
    // Brightness blends with black (out = f c); contrast with the mean grey level m (out = m + f (c - m)).
    let offset = 0;
    if (op === 'contrast') offset = meanGrey(px) * (1 - f);
    for (let v = 0; v < 256; v++) {
      const o = Math.round(v * f + offset);
      lut[v] = o < 0 ? 0 : o > 255 ? 255 : o;
    }
    for (let i = 0; i < px.length; i++) px[i] = lut[px[i]];
  }
}

/** Mean of the image's grey levels (PIL's "L" conversion: ITU-R 601 luma in 16-bit fixed point), rounded. */
export function meanGrey(px: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < px.length; i += 3) sum += (px[i] * 19595 + px[i + 1] * 38470 + px[i + 2] * 7471 + 0x8000) >> 16;
  return Math.round(sum / (px.length / 3));
}

/** Crops, resizes to size x size and flips with sharp; returns interleaved RGB bytes. */
export async function cropResizeFlip(input: Buffer | string, size: number, plan: AugmentPlan): Promise<Uint8Array> {
  return cropResizeFlipOn(sharp(input, { failOn: 'error' }), size, plan);
}

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
  // One sharp instance: the header read for the size is reused by the pipeline.
  const img = sharp(input, { failOn: 'error' });
  const m = await img.metadata();
  if (!m.width || !m.height) throw new Error('image has no dimensions');
  const [width, height] = (m.orientation ?? 1) >= 5 ? [m.height, m.width] : [m.width, m.height];
  const plan = planAugment(width, height, new Rng(seed), opts);
  const rgb = await cropResizeFlipOn(img, size, plan);
  applyJitter(rgb, plan.jitter);
  return rgb;
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
  for (let i = 0; i < rgb.length; i++) out[i] = UNIT[rgb[i]];
  return out;
}

/** The evaluation transform: resize the short side to size, centre crop, RGB in [0, 1]. */
export async function evalToFloat(input: Buffer | string, size: number): Promise<Float32Array> {
  return toUnitFloat(await decodeRgb(input, size));
}
