/**
 * Deterministic JPEG rendering for the demo site: (imageId, seed) -> bytes.
 *
 * Image ids (see catalog.ts):
 * - `e-<modelIndex>-<year>-<colorIndex>-<view>-<variant>`: a whole-car exterior scene whose body
 *   shape follows the model's body style and proportions, whose paint is the listing colour, whose
 *   grille/badge follow the make and whose styling (boxy vs sleek, chrome bumpers, light bars)
 *   follows the year; background (sky, ground, time of day) varies with the variant.
 * - `s-<modelIndex>`: the dealer stock photo of a model (studio background), shared by listings.
 * - `j-<kind>-<variant>`: junk close-ups: wheel, dashboard, interior, sticker, placeholder, keys.
 */
import sharp from 'sharp';
import { DEMO_COLORS, DEMO_MODELS, JUNK_KINDS, CURRENT_YEAR, prng, hash32, type BodyStyle, type JunkKind } from './catalog.ts';

export type ParsedImageId =
  | { kind: 'exterior'; modelIndex: number; year: number; colorIndex: number; view: number; variant: string }
  | { kind: 'stock'; modelIndex: number }
  | { kind: 'junk'; junk: JunkKind; variant: string };

export function parseImageId(imageId: string): ParsedImageId | null {
  let m = /^e-(\d+)-(\d{4})-(\d+)-(\d)-([A-Za-z0-9]+)$/.exec(imageId);
  if (m) {
    const modelIndex = Number(m[1]);
    const colorIndex = Number(m[3]);
    if (modelIndex >= DEMO_MODELS.length || colorIndex >= DEMO_COLORS.length) return null;
    return { kind: 'exterior', modelIndex, year: Number(m[2]), colorIndex, view: Number(m[4]), variant: m[5] };
  }
  m = /^s-(\d+)$/.exec(imageId);
  if (m) {
    const modelIndex = Number(m[1]);
    return modelIndex < DEMO_MODELS.length ? { kind: 'stock', modelIndex } : null;
  }
  m = /^j-([a-z]+)-([A-Za-z0-9]+)$/.exec(imageId);
  if (m && (JUNK_KINDS as readonly string[]).includes(m[1])) return { kind: 'junk', junk: m[1] as JunkKind, variant: m[2] };
  return null;
}

const rgb = (c: readonly number[]): string => `rgb(${c.map((v) => Math.max(0, Math.min(255, Math.round(v)))).join(',')})`;
const shade = (c: readonly number[], f: number): number[] => c.map((v) => v * f);

interface BodyShape {
  length: number; // fraction of width
  height: number; // body height (fraction of length)
  cabinStart: number; // fractions along the length
  cabinEnd: number;
  roof: number; // cabin height (fraction of length)
  ground: number; // clearance (fraction of length)
  wheel: number; // wheel radius (fraction of length)
  bed?: boolean;
}

const SHAPES: Record<BodyStyle, BodyShape> = {
  sedan: { length: 0.78, height: 0.14, cabinStart: 0.28, cabinEnd: 0.74, roof: 0.13, ground: 0.035, wheel: 0.075 },
  coupe: { length: 0.76, height: 0.12, cabinStart: 0.33, cabinEnd: 0.72, roof: 0.1, ground: 0.028, wheel: 0.075 },
  hatch: { length: 0.66, height: 0.15, cabinStart: 0.3, cabinEnd: 0.95, roof: 0.15, ground: 0.035, wheel: 0.075 },
  suv: { length: 0.78, height: 0.2, cabinStart: 0.27, cabinEnd: 0.96, roof: 0.15, ground: 0.06, wheel: 0.09 },
  truck: { length: 0.86, height: 0.19, cabinStart: 0.44, cabinEnd: 0.72, roof: 0.16, ground: 0.07, wheel: 0.09, bed: true },
  van: { length: 0.8, height: 0.22, cabinStart: 0.2, cabinEnd: 0.97, roof: 0.17, ground: 0.045, wheel: 0.08 },
  wagon: { length: 0.8, height: 0.15, cabinStart: 0.27, cabinEnd: 0.97, roof: 0.14, ground: 0.045, wheel: 0.078 },
};

function makeHue(make: string): number {
  return hash32(make) % 360;
}

function carSvg(
  W: number,
  H: number,
  modelIndex: number,
  year: number,
  paintIn: readonly number[],
  opts: { mirror: boolean; scale: number; dx: number; groundY: number },
): string {
  const m = DEMO_MODELS[modelIndex];
  const s = SHAPES[m.body];
  const L = W * s.length * opts.scale;
  const x0 = (W - L) / 2 + opts.dx;
  const wheelR = L * s.wheel;
  const bottom = opts.groundY - wheelR * 0.6;
  const bodyTop = bottom - L * s.height;
  const roofY = bodyTop - L * s.roof;
  const age = CURRENT_YEAR - year;
  const modern = age < 8;
  const boxy = age > 18;
  const corner = boxy ? L * 0.01 : L * 0.04;
  const slope = boxy ? 0.02 : modern ? 0.09 : 0.06;
  const cs = x0 + L * s.cabinStart;
  const ce = x0 + L * s.cabinEnd;
  const glass = modern ? 'rgb(40,50,62)' : 'rgb(120,150,175)';
  const hue = makeHue(m.make);
  // What makes a used car look cheap or dear in a photo: old paint fades towards grey and picks up
  // rust; an expensive model shows gloss and big bright alloys.
  const fade = Math.min(0.65, age * 0.035);
  const paint = paintIn.map((v) => v * (1 - fade) + 150 * fade);
  const premium = m.basePrice >= 45000;
  const parts: string[] = [];
  parts.push(`<ellipse cx="${x0 + L / 2}" cy="${opts.groundY}" rx="${L * 0.52}" ry="${wheelR * 0.35}" fill="rgba(0,0,0,0.35)"/>`);
  // Cabin (greenhouse).
  parts.push(
    `<path d="M ${cs} ${bodyTop} L ${cs + L * slope * 1.8} ${roofY} L ${ce - L * slope} ${roofY} L ${ce} ${bodyTop} Z" fill="${rgb(paint)}"/>`,
  );
  const inset = L * 0.015;
  const mid = (cs + ce) / 2;
  parts.push(
    `<path d="M ${cs + inset * 2} ${bodyTop} L ${cs + L * slope * 1.8 + inset} ${roofY + inset} L ${mid - inset / 2} ${roofY + inset} L ${mid - inset / 2} ${bodyTop} Z" fill="${glass}"/>`,
    `<path d="M ${mid + inset / 2} ${bodyTop} L ${mid + inset / 2} ${roofY + inset} L ${ce - L * slope - inset} ${roofY + inset} L ${ce - inset * 2} ${bodyTop} Z" fill="${glass}"/>`,
  );
  // Body.
  const bodyEnd = x0 + L;
  parts.push(`<rect x="${x0}" y="${bodyTop}" width="${bodyEnd - x0}" height="${bottom - bodyTop}" rx="${corner}" fill="${rgb(paint)}"/>`);
  if (s.bed) {
    parts.push(`<rect x="${x0 + L * 0.01}" y="${bodyTop - L * 0.012}" width="${cs - x0 - L * 0.03}" height="${L * 0.02}" fill="${rgb(shade(paint, 0.7))}"/>`);
  }
  // Shoulder line and door seams.
  parts.push(`<line x1="${x0 + corner}" y1="${bodyTop + (bottom - bodyTop) * 0.35}" x2="${x0 + L - corner}" y2="${bodyTop + (bottom - bodyTop) * 0.35}" stroke="${rgb(shade(paint, 0.75))}" stroke-width="${Math.max(1, L * 0.004)}"/>`);
  parts.push(`<line x1="${mid}" y1="${bodyTop}" x2="${mid}" y2="${bottom - L * 0.01}" stroke="${rgb(shade(paint, 0.6))}" stroke-width="${Math.max(1, L * 0.003)}"/>`);
  // Bumpers: chrome on old cars, body-coloured/dark on new.
  const bumper = boxy ? 'rgb(210,212,215)' : modern ? rgb(shade(paint, 0.85)) : 'rgb(50,50,52)';
  parts.push(`<rect x="${x0 - L * 0.01}" y="${bottom - L * 0.03}" width="${L * 0.07}" height="${L * 0.028}" rx="${L * 0.008}" fill="${bumper}"/>`);
  parts.push(`<rect x="${x0 + L * 0.94}" y="${bottom - L * 0.03}" width="${L * 0.07}" height="${L * 0.028}" rx="${L * 0.008}" fill="${bumper}"/>`);
  // Lights: the front is at the right end (before mirroring).
  if (modern) {
    parts.push(`<rect x="${x0 + L * 0.955}" y="${bodyTop + L * 0.012}" width="${L * 0.045}" height="${L * 0.01}" fill="rgb(240,250,255)"/>`);
    parts.push(`<rect x="${x0}" y="${bodyTop + L * 0.012}" width="${L * 0.04}" height="${L * 0.012}" fill="rgb(220,20,30)"/>`);
  } else {
    parts.push(`<circle cx="${x0 + L * 0.975}" cy="${bodyTop + L * 0.025}" r="${L * 0.015}" fill="rgb(255,245,200)"/>`);
    parts.push(`<rect x="${x0}" y="${bodyTop + L * 0.015}" width="${L * 0.02}" height="${L * 0.025}" fill="rgb(200,30,30)"/>`);
  }
  // Make badge / grille accent (hue by make).
  parts.push(`<circle cx="${x0 + L * 0.9}" cy="${bodyTop + (bottom - bodyTop) * 0.55}" r="${L * 0.012}" fill="hsl(${hue},70%,45%)" stroke="rgb(230,230,230)" stroke-width="${Math.max(1, L * 0.003)}"/>`);
  parts.push(`<rect x="${x0 + L * 0.985}" y="${bodyTop + (bottom - bodyTop) * 0.3}" width="${L * 0.015}" height="${(bottom - bodyTop) * 0.45}" fill="hsl(${hue},25%,${modern ? 15 : 60}%)"/>`);
  if (premium) {
    parts.push(`<rect x="${x0 + L * 0.05}" y="${bodyTop + (bottom - bodyTop) * 0.12}" width="${L * 0.85}" height="${(bottom - bodyTop) * 0.1}" rx="${L * 0.01}" fill="rgba(255,255,255,0.55)"/>`);
  }
  if (age > 12) {
    const spots = Math.min(6, Math.floor((age - 10) / 3));
    for (let i = 0; i < spots; i++) {
      const sx = x0 + L * (0.08 + ((i * 0.37 + (year % 7) * 0.11) % 0.84));
      parts.push(`<ellipse cx="${sx}" cy="${bottom - (bottom - bodyTop) * 0.22}" rx="${L * 0.03}" ry="${(bottom - bodyTop) * 0.14}" fill="rgb(120,62,28)" opacity="0.85"/>`);
    }
  }
  // Wheels.
  for (const wx of [x0 + L * 0.19, x0 + L * (s.bed ? 0.8 : 0.8)]) {
    parts.push(`<circle cx="${wx}" cy="${opts.groundY - wheelR}" r="${wheelR}" fill="rgb(22,22,22)"/>`);
    parts.push(
      `<circle cx="${wx}" cy="${opts.groundY - wheelR}" r="${wheelR * (premium ? 0.8 : modern ? 0.68 : 0.5)}" fill="${premium ? 'rgb(225,228,232)' : modern ? 'rgb(70,72,76)' : 'rgb(190,192,196)'}"/>`,
    );
    parts.push(`<circle cx="${wx}" cy="${opts.groundY - wheelR}" r="${wheelR * 0.15}" fill="rgb(30,30,30)"/>`);
  }
  const g = parts.join('');
  return opts.mirror ? `<g transform="translate(${W},0) scale(-1,1)">${g}</g>` : `<g>${g}</g>`;
}

function exteriorSvg(p: { modelIndex: number; year: number; colorIndex: number; view: number; variant: string }, seed: number): { svg: string; W: number; H: number } {
  const r = prng(hash32(seed, 'img', p.modelIndex, p.year, p.colorIndex, p.view, p.variant));
  const W = 320 + Math.floor(r() * 481);
  const H = Math.round(W * (r() < 0.7 ? 0.75 : 0.5625));
  const skyHue = 195 + r() * 25;
  const dusk = r() < 0.2;
  const sky1 = dusk ? `hsl(${20 + r() * 20},70%,60%)` : `hsl(${skyHue},65%,${70 + r() * 15}%)`;
  const sky2 = dusk ? `hsl(${260 + r() * 20},35%,35%)` : `hsl(${skyHue},55%,${50 + r() * 10}%)`;
  // The scene varies in its large shapes (horizon, where the car stands and how big it is,
  // buildings and trees), not only in colour: photos of different cars must not look like
  // near-duplicates to a perceptual hash, as they don't in real listings.
  const groundY = H * (0.66 + r() * 0.24);
  const groundColor = r() < 0.5 ? `rgb(${90 + r() * 20},${90 + r() * 20},${95 + r() * 20})` : `rgb(${70 + r() * 30},${110 + r() * 30},${60 + r() * 20})`;
  const paint = DEMO_COLORS[p.colorIndex].rgb;
  const scale = p.view === 2 ? 0.8 + r() * 0.1 : 0.95 + r() * 0.1;
  const dx = (r() - 0.5) * W * (p.view === 3 ? 0.3 : 0.16);
  const car = carSvg(W, H, p.modelIndex, p.year, paint, { mirror: p.view === 1 || p.view === 3, scale, dx, groundY });
  const scenery: string[] = [];
  const nb = Math.floor(r() * 6);
  for (let i = 0; i < nb; i++) {
    const bw = W * (0.08 + r() * 0.22);
    const bh = H * (0.1 + r() * 0.4);
    scenery.push(`<rect x="${r() * W - bw / 2}" y="${groundY - H * 0.18 - bh}" width="${bw}" height="${bh}" fill="hsl(${r() * 360},${10 + r() * 25}%,${25 + r() * 55}%)"/>`);
  }
  const nt = Math.floor(r() * 4);
  for (let i = 0; i < nt; i++) {
    const tx = r() * W;
    const tr = H * (0.08 + r() * 0.18);
    const ty = groundY - H * 0.18 - tr * (0.6 + r() * 0.8);
    scenery.push(`<rect x="${tx - tr * 0.12}" y="${ty}" width="${tr * 0.24}" height="${groundY - H * 0.18 - ty}" fill="rgb(70,50,35)"/>`);
    scenery.push(`<circle cx="${tx}" cy="${ty}" r="${tr}" fill="hsl(${90 + r() * 50},${30 + r() * 30}%,${18 + r() * 22}%)"/>`);
  }
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">` +
    `<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${sky1}"/><stop offset="1" stop-color="${sky2}"/></linearGradient></defs>` +
    `<rect width="${W}" height="${H}" fill="url(#sky)"/>` +
    scenery.join('') +
    `<rect y="${groundY - H * 0.18}" width="${W}" height="${H}" fill="${groundColor}"/>` +
    `<rect y="${groundY - H * 0.03}" width="${W}" height="${H}" fill="rgb(${60 + r() * 30},${60 + r() * 30},${62 + r() * 30})"/>` +
    car +
    `</svg>`;
  return { svg, W, H };
}

function stockSvg(modelIndex: number, seed: number): { svg: string; W: number; H: number } {
  const m = DEMO_MODELS[modelIndex];
  const r = prng(hash32(seed, 'stock', modelIndex));
  const W = 640;
  const H = 480;
  const colorIndex = hash32(m.make, m.model) % DEMO_COLORS.length;
  const year = CURRENT_YEAR - 1;
  const car = carSvg(W, H, modelIndex, year, DEMO_COLORS[colorIndex].rgb, { mirror: r() < 0.5, scale: 0.95, dx: 0, groundY: H * 0.8 });
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">` +
    `<defs><radialGradient id="st" cx="0.5" cy="0.45" r="0.7"><stop offset="0" stop-color="rgb(250,250,250)"/><stop offset="1" stop-color="rgb(190,192,196)"/></radialGradient></defs>` +
    `<rect width="${W}" height="${H}" fill="url(#st)"/>` +
    `<rect y="${H * 0.8}" width="${W}" height="${H * 0.2}" fill="rgb(215,215,218)"/>` +
    car +
    `<rect x="0" y="0" width="${W}" height="${H * 0.08}" fill="hsl(${makeHue(m.make)},50%,30%)"/>` +
    `</svg>`;
  return { svg, W, H };
}

function junkSvg(kind: JunkKind, variant: string, seed: number): { svg: string; W: number; H: number } {
  const r = prng(hash32(seed, 'junk', kind, variant));
  const W = 320 + Math.floor(r() * 481);
  const H = Math.round(W * 0.75);
  const cx = W / 2 + (r() - 0.5) * W * 0.2;
  const cy = H / 2 + (r() - 0.5) * H * 0.2;
  const R = Math.min(W, H) * (0.35 + r() * 0.15);
  const p: string[] = [];
  switch (kind) {
    case 'wheel': {
      p.push(`<rect width="${W}" height="${H}" fill="rgb(${70 + r() * 60},${70 + r() * 60},${70 + r() * 60})"/>`);
      p.push(`<circle cx="${cx}" cy="${cy}" r="${R * 1.25}" fill="rgb(20,20,20)"/>`);
      p.push(`<circle cx="${cx}" cy="${cy}" r="${R * 0.85}" fill="rgb(${170 + r() * 50},${170 + r() * 50},${175 + r() * 50})"/>`);
      const spokes = 5 + Math.floor(r() * 6);
      for (let i = 0; i < spokes; i++) {
        const a = (i / spokes) * Math.PI * 2 + r() * 0.2;
        p.push(`<line x1="${cx}" y1="${cy}" x2="${cx + Math.cos(a) * R * 0.8}" y2="${cy + Math.sin(a) * R * 0.8}" stroke="rgb(60,60,62)" stroke-width="${R * 0.08}"/>`);
      }
      p.push(`<circle cx="${cx}" cy="${cy}" r="${R * 0.15}" fill="rgb(40,40,40)"/>`);
      break;
    }
    case 'dashboard': {
      p.push(`<rect width="${W}" height="${H}" fill="rgb(${15 + r() * 20},${15 + r() * 20},${18 + r() * 20})"/>`);
      p.push(`<rect x="${W * 0.05}" y="${H * 0.2}" width="${W * 0.9}" height="${H * 0.5}" rx="${H * 0.08}" fill="rgb(35,35,40)"/>`);
      for (const gx of [0.3, 0.7]) {
        p.push(`<circle cx="${W * gx}" cy="${H * 0.45}" r="${H * 0.18}" fill="rgb(10,10,14)" stroke="rgb(200,200,210)" stroke-width="3"/>`);
        p.push(`<line x1="${W * gx}" y1="${H * 0.45}" x2="${W * gx + H * 0.14 * Math.cos(r() * 3)}" y2="${H * 0.45 - H * 0.14 * Math.sin(r() * 3)}" stroke="rgb(255,80,40)" stroke-width="4"/>`);
      }
      p.push(`<circle cx="${W * 0.5}" cy="${H * 1.05}" r="${H * 0.4}" fill="none" stroke="rgb(25,25,25)" stroke-width="${H * 0.08}"/>`);
      break;
    }
    case 'interior': {
      const c = [60 + r() * 150, 50 + r() * 120, 40 + r() * 100];
      p.push(`<rect width="${W}" height="${H}" fill="${rgb(shade(c, 0.5))}"/>`);
      p.push(`<rect x="${W * 0.1}" y="${H * 0.15}" width="${W * 0.32}" height="${H * 0.75}" rx="${W * 0.06}" fill="${rgb(c)}"/>`);
      p.push(`<rect x="${W * 0.58}" y="${H * 0.15}" width="${W * 0.32}" height="${H * 0.75}" rx="${W * 0.06}" fill="${rgb(c)}"/>`);
      for (let i = 1; i < 5; i++) p.push(`<line x1="${W * 0.12}" y1="${H * (0.15 + i * 0.15)}" x2="${W * 0.4}" y2="${H * (0.15 + i * 0.15)}" stroke="${rgb(shade(c, 0.7))}" stroke-width="2"/>`);
      break;
    }
    case 'sticker': {
      p.push(`<rect width="${W}" height="${H}" fill="rgb(${120 + r() * 40},${120 + r() * 40},${130 + r() * 40})"/>`);
      p.push(`<rect x="${W * 0.15}" y="${H * 0.05}" width="${W * 0.7}" height="${H * 0.9}" fill="rgb(248,248,244)"/>`);
      const lines = 8 + Math.floor(r() * 8);
      for (let i = 0; i < lines; i++) p.push(`<rect x="${W * 0.2}" y="${H * (0.1 + i * 0.05)}" width="${W * (0.2 + r() * 0.4)}" height="${H * 0.015}" fill="rgb(40,40,40)"/>`);
      p.push(`<rect x="${W * 0.2}" y="${H * 0.8}" width="${W * 0.6}" height="${H * 0.1}" fill="rgb(20,60,140)"/>`);
      break;
    }
    case 'placeholder': {
      p.push(`<rect width="${W}" height="${H}" fill="rgb(${200 + r() * 30},${200 + r() * 30},${200 + r() * 30})"/>`);
      p.push(`<rect x="${W * 0.35}" y="${H * 0.3}" width="${W * 0.3}" height="${H * 0.3}" rx="${W * 0.03}" fill="rgb(150,150,155)"/>`);
      p.push(`<circle cx="${W * 0.5}" cy="${H * 0.45}" r="${H * 0.08}" fill="rgb(215,215,220)"/>`);
      p.push(`<rect x="${W * 0.25}" y="${H * 0.7}" width="${W * 0.5}" height="${H * 0.04}" fill="rgb(150,150,155)"/>`);
      break;
    }
    case 'keys': {
      p.push(`<rect width="${W}" height="${H}" fill="rgb(${100 + r() * 80},${70 + r() * 50},${40 + r() * 30})"/>`);
      for (let i = 0; i < 2; i++) {
        const kx = W * (0.3 + i * 0.35);
        const ky = H * (0.4 + r() * 0.2);
        p.push(`<rect x="${kx - W * 0.06}" y="${ky - H * 0.12}" width="${W * 0.12}" height="${H * 0.24}" rx="${W * 0.03}" fill="rgb(25,25,25)"/>`);
        p.push(`<rect x="${kx - W * 0.012}" y="${ky + H * 0.12}" width="${W * 0.024}" height="${H * 0.3}" fill="rgb(190,190,195)"/>`);
      }
      break;
    }
  }
  return { svg: `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${p.join('')}</svg>`, W, H };
}

/** SVG source of an image, or null for an unknown id. */
export function imageSvg(imageId: string, seed: number): string | null {
  const p = parseImageId(imageId);
  if (!p) return null;
  if (p.kind === 'exterior') return exteriorSvg(p, seed).svg;
  if (p.kind === 'stock') return stockSvg(p.modelIndex, seed).svg;
  return junkSvg(p.junk, p.variant, seed).svg;
}

/** Render the JPEG of an image id (deterministic for a given sharp/libvips build), or null for an unknown id. */
export async function renderImage(imageId: string, seed: number): Promise<Buffer | null> {
  const svg = imageSvg(imageId, seed);
  if (svg === null) return null;
  return sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer();
}

// ---------------------------------------------------------------------------------------------
// A pixel bomb: a valid PNG that declares 20000x20000 (400 Mpx, over sharp's default
// limitInputPixels) yet is small on the wire. Built by hand (1-bit greyscale, all zero rows).

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

let pixelBombCache: Promise<Buffer> | null = null;

export const PIXEL_BOMB_SIZE = 20000;

/** The cached pixel-bomb PNG (generated once per process). */
export function pixelBombPng(): Promise<Buffer> {
  if (!pixelBombCache) {
    pixelBombCache = (async () => {
      const { deflateSync } = await import('node:zlib');
      const size = PIXEL_BOMB_SIZE;
      const rowBytes = 1 + Math.ceil(size / 8); // filter byte + 1 bit per pixel
      const raw = Buffer.alloc(rowBytes * size); // all zero: filter 0, black pixels
      const idat = deflateSync(raw, { level: 9 });
      const ihdr = Buffer.alloc(13);
      ihdr.writeUInt32BE(size, 0);
      ihdr.writeUInt32BE(size, 4);
      ihdr[8] = 1; // bit depth
      ihdr[9] = 0; // greyscale
      ihdr[10] = 0;
      ihdr[11] = 0;
      ihdr[12] = 0;
      const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
    })();
  }
  return pixelBombCache;
}
