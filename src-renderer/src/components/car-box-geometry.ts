// Plain TypeScript (no JSX), so the engine's tests can check it too.
export type Box = { x1: number; y1: number; x2: number; y2: number };

/**
 * A box in [0, 1] of a photo, mapped to [0, 1] of a frame the photo fills with `object-fit:
 * cover` (centred): the photo is scaled until it covers the frame and the overflow on one axis is
 * cropped evenly, so that axis' coordinates shrink toward the centre and parts may fall outside
 * (clipped here). `photoAspect` and `frameAspect` are width / height. Null when the box lies
 * wholly in the cropped-away part.
 */
export function boxInCover(box: Box, photoAspect: number, frameAspect: number): Box | null {
  // the share of the photo's width (or height) the frame shows
  const wShown = photoAspect > frameAspect ? frameAspect / photoAspect : 1;
  const hShown = photoAspect > frameAspect ? 1 : photoAspect / frameAspect;
  const mx = (v: number) => (v - (1 - wShown) / 2) / wShown;
  const my = (v: number) => (v - (1 - hShown) / 2) / hShown;
  const c = (v: number) => Math.min(1, Math.max(0, v));
  const out = { x1: c(mx(box.x1)), y1: c(my(box.y1)), x2: c(mx(box.x2)), y2: c(my(box.y2)) };
  return out.x2 > out.x1 && out.y2 > out.y1 ? out : null;
}
