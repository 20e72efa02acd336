/**
 * Deterministic catalog of the demo listing site: which ids exist, and what each listing holds.
 *
 * Everything is a pure function of (seed, id): no state, any id range. Prices follow
 * make/model (base price), year (depreciation) and odometer, with noise, so that a model can
 * learn price signals from the rendered images (whose shape/colour depend on make/model/year).
 */
import { mix32, mulberry32 } from '../util/random.ts';

export type BodyStyle = 'sedan' | 'coupe' | 'hatch' | 'suv' | 'truck' | 'van' | 'wagon';

export interface DemoModel {
  make: string;
  model: string;
  body: BodyStyle;
  /** Price new (dollars, 2024). */
  basePrice: number;
  /** Fraction of value lost per year of age. */
  depreciation: number;
  firstYear: number;
  engines: string[];
  fuel: 'Gasoline' | 'Diesel' | 'Hybrid' | 'Electric';
  drives: string[];
}

const G = 'Gasoline' as const;
export const DEMO_MODELS: readonly DemoModel[] = [
  { make: 'Toyota', model: 'Camry', body: 'sedan', basePrice: 28000, depreciation: 0.08, firstYear: 1995, engines: ['2.5L I4', '3.5L V6'], fuel: G, drives: ['FWD'] },
  { make: 'Toyota', model: 'Corolla', body: 'sedan', basePrice: 22000, depreciation: 0.08, firstYear: 1995, engines: ['1.8L I4', '2.0L I4'], fuel: G, drives: ['FWD'] },
  { make: 'Toyota', model: 'RAV4', body: 'suv', basePrice: 31000, depreciation: 0.07, firstYear: 1998, engines: ['2.5L I4'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Toyota', model: 'Tacoma', body: 'truck', basePrice: 36000, depreciation: 0.05, firstYear: 1995, engines: ['2.7L I4', '3.5L V6'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Toyota', model: 'Prius', body: 'hatch', basePrice: 29000, depreciation: 0.09, firstYear: 2001, engines: ['1.8L I4 Hybrid'], fuel: 'Hybrid', drives: ['FWD'] },
  { make: 'Honda', model: 'Civic', body: 'sedan', basePrice: 24000, depreciation: 0.08, firstYear: 1995, engines: ['2.0L I4', '1.5L I4 Turbo'], fuel: G, drives: ['FWD'] },
  { make: 'Honda', model: 'Accord', body: 'sedan', basePrice: 28500, depreciation: 0.085, firstYear: 1995, engines: ['1.5L I4 Turbo', '2.0L I4 Turbo'], fuel: G, drives: ['FWD'] },
  { make: 'Honda', model: 'CR-V', body: 'suv', basePrice: 30500, depreciation: 0.075, firstYear: 1997, engines: ['1.5L I4 Turbo'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Honda', model: 'Odyssey', body: 'van', basePrice: 38000, depreciation: 0.1, firstYear: 1999, engines: ['3.5L V6'], fuel: G, drives: ['FWD'] },
  { make: 'Ford', model: 'F-150', body: 'truck', basePrice: 45000, depreciation: 0.07, firstYear: 1995, engines: ['3.5L V6 Turbo', '5.0L V8', '2.7L V6 Turbo'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Ford', model: 'Mustang', body: 'coupe', basePrice: 38000, depreciation: 0.07, firstYear: 1995, engines: ['2.3L I4 Turbo', '5.0L V8'], fuel: G, drives: ['RWD'] },
  { make: 'Ford', model: 'Escape', body: 'suv', basePrice: 29000, depreciation: 0.1, firstYear: 2001, engines: ['1.5L I3 Turbo', '2.0L I4 Turbo'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Ford', model: 'Explorer', body: 'suv', basePrice: 40000, depreciation: 0.095, firstYear: 1995, engines: ['2.3L I4 Turbo', '3.0L V6 Turbo'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Chevrolet', model: 'Silverado 1500', body: 'truck', basePrice: 44000, depreciation: 0.07, firstYear: 1999, engines: ['5.3L V8', '2.7L I4 Turbo', '6.2L V8'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Chevrolet', model: 'Malibu', body: 'sedan', basePrice: 25000, depreciation: 0.11, firstYear: 1997, engines: ['1.5L I4 Turbo'], fuel: G, drives: ['FWD'] },
  { make: 'Chevrolet', model: 'Equinox', body: 'suv', basePrice: 28000, depreciation: 0.1, firstYear: 2005, engines: ['1.5L I4 Turbo'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Chevrolet', model: 'Corvette', body: 'coupe', basePrice: 70000, depreciation: 0.05, firstYear: 1995, engines: ['6.2L V8'], fuel: G, drives: ['RWD'] },
  { make: 'Chevrolet', model: 'Tahoe', body: 'suv', basePrice: 58000, depreciation: 0.07, firstYear: 1995, engines: ['5.3L V8', '6.2L V8'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Nissan', model: 'Altima', body: 'sedan', basePrice: 27000, depreciation: 0.11, firstYear: 1995, engines: ['2.5L I4'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Nissan', model: 'Rogue', body: 'suv', basePrice: 29000, depreciation: 0.1, firstYear: 2008, engines: ['1.5L I3 Turbo', '2.5L I4'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Nissan', model: 'Frontier', body: 'truck', basePrice: 33000, depreciation: 0.07, firstYear: 1998, engines: ['3.8L V6'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Jeep', model: 'Wrangler', body: 'suv', basePrice: 38000, depreciation: 0.045, firstYear: 1997, engines: ['3.6L V6', '2.0L I4 Turbo'], fuel: G, drives: ['4WD'] },
  { make: 'Jeep', model: 'Grand Cherokee', body: 'suv', basePrice: 42000, depreciation: 0.09, firstYear: 1995, engines: ['3.6L V6', '5.7L V8'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Hyundai', model: 'Elantra', body: 'sedan', basePrice: 22000, depreciation: 0.1, firstYear: 1996, engines: ['2.0L I4'], fuel: G, drives: ['FWD'] },
  { make: 'Hyundai', model: 'Tucson', body: 'suv', basePrice: 29000, depreciation: 0.095, firstYear: 2005, engines: ['2.5L I4'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Kia', model: 'Soul', body: 'hatch', basePrice: 21000, depreciation: 0.1, firstYear: 2010, engines: ['2.0L I4'], fuel: G, drives: ['FWD'] },
  { make: 'Kia', model: 'Telluride', body: 'suv', basePrice: 40000, depreciation: 0.06, firstYear: 2020, engines: ['3.8L V6'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Subaru', model: 'Outback', body: 'wagon', basePrice: 32000, depreciation: 0.08, firstYear: 1996, engines: ['2.5L H4', '2.4L H4 Turbo'], fuel: G, drives: ['AWD'] },
  { make: 'Subaru', model: 'WRX', body: 'sedan', basePrice: 34000, depreciation: 0.07, firstYear: 2002, engines: ['2.4L H4 Turbo'], fuel: G, drives: ['AWD'] },
  { make: 'Volkswagen', model: 'Jetta', body: 'sedan', basePrice: 23000, depreciation: 0.11, firstYear: 1995, engines: ['1.5L I4 Turbo'], fuel: G, drives: ['FWD'] },
  { make: 'Volkswagen', model: 'Golf GTI', body: 'hatch', basePrice: 33000, depreciation: 0.08, firstYear: 1995, engines: ['2.0L I4 Turbo'], fuel: G, drives: ['FWD'] },
  { make: 'BMW', model: '3 Series', body: 'sedan', basePrice: 46000, depreciation: 0.12, firstYear: 1995, engines: ['2.0L I4 Turbo', '3.0L I6 Turbo'], fuel: G, drives: ['RWD', 'AWD'] },
  { make: 'BMW', model: 'X5', body: 'suv', basePrice: 66000, depreciation: 0.12, firstYear: 2000, engines: ['3.0L I6 Turbo', '4.4L V8 Turbo'], fuel: G, drives: ['AWD'] },
  { make: 'Mercedes-Benz', model: 'C-Class', body: 'sedan', basePrice: 47000, depreciation: 0.12, firstYear: 1995, engines: ['2.0L I4 Turbo'], fuel: G, drives: ['RWD', 'AWD'] },
  { make: 'Mercedes-Benz', model: 'G-Class', body: 'suv', basePrice: 140000, depreciation: 0.05, firstYear: 2002, engines: ['4.0L V8 Turbo'], fuel: G, drives: ['4WD'] },
  { make: 'Audi', model: 'A4', body: 'sedan', basePrice: 43000, depreciation: 0.12, firstYear: 1996, engines: ['2.0L I4 Turbo'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Lexus', model: 'RX 350', body: 'suv', basePrice: 50000, depreciation: 0.08, firstYear: 1999, engines: ['3.5L V6', '2.4L I4 Turbo'], fuel: G, drives: ['FWD', 'AWD'] },
  { make: 'Tesla', model: 'Model 3', body: 'sedan', basePrice: 42000, depreciation: 0.1, firstYear: 2018, engines: ['Electric'], fuel: 'Electric', drives: ['RWD', 'AWD'] },
  { make: 'Tesla', model: 'Model Y', body: 'suv', basePrice: 48000, depreciation: 0.1, firstYear: 2020, engines: ['Electric'], fuel: 'Electric', drives: ['AWD'] },
  { make: 'Porsche', model: '911', body: 'coupe', basePrice: 120000, depreciation: 0.04, firstYear: 1995, engines: ['3.0L H6 Turbo', '4.0L H6'], fuel: G, drives: ['RWD', 'AWD'] },
  { make: 'Ram', model: '1500', body: 'truck', basePrice: 46000, depreciation: 0.08, firstYear: 2011, engines: ['5.7L V8', '3.6L V6'], fuel: G, drives: ['RWD', '4WD'] },
  { make: 'Mazda', model: 'MX-5 Miata', body: 'coupe', basePrice: 31000, depreciation: 0.06, firstYear: 1995, engines: ['2.0L I4'], fuel: G, drives: ['RWD'] },
];

export const DEMO_COLORS: ReadonlyArray<{ name: string; rgb: [number, number, number] }> = [
  { name: 'White', rgb: [236, 236, 232] },
  { name: 'Black', rgb: [24, 24, 28] },
  { name: 'Silver', rgb: [178, 182, 188] },
  { name: 'Gray', rgb: [104, 108, 114] },
  { name: 'Red', rgb: [178, 28, 32] },
  { name: 'Blue', rgb: [30, 64, 150] },
  { name: 'Green', rgb: [36, 96, 56] },
  { name: 'Brown', rgb: [104, 70, 44] },
  { name: 'Yellow', rgb: [226, 190, 40] },
  { name: 'Orange', rgb: [222, 110, 30] },
];
const INTERIOR_COLORS = ['Black', 'Gray', 'Beige', 'Brown', 'Tan', 'White'];
export const JUNK_KINDS = ['wheel', 'dashboard', 'interior', 'sticker', 'placeholder', 'keys'] as const;
export type JunkKind = (typeof JUNK_KINDS)[number];
export const CURRENT_YEAR = 2024;

// ---------------------------------------------------------------------------------------------
// Deterministic hashing (no state): every random quantity is hash(seed, id, salt).


/** 32-bit hash of a list of numbers/strings. */
export function hash32(...parts: Array<number | string>): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    if (typeof p === 'number') {
      const lo = p >>> 0;
      const hi = Math.floor(p / 2 ** 32) >>> 0;
      h = mix32(h ^ lo);
      h = mix32(h ^ hi ^ 0x27d4eb2f);
    } else {
      for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p.charCodeAt(i), 0x01000193);
      h = mix32(h ^ p.length);
    }
  }
  return h >>> 0;
}

/** Uniform in [0, 1) from the hash of the parts. */
export function rand01(...parts: Array<number | string>): number {
  return hash32(...parts) / 2 ** 32;
}

/** A small seeded PRNG (mulberry32) for sequences within one listing. */
export const prng = mulberry32;

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length) % xs.length];
}

function gaussian(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  const v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

// ---------------------------------------------------------------------------------------------
// Listing model

export type ImageUrlForm = 'absolute' | 'root-relative' | 'path-relative' | 'protocol-relative';

export interface DemoImageRef {
  /** Image id; the server path is `/images/<imageId>.jpg`, the renderer decodes the id. */
  imageId: string;
  /** 'exterior' = whole-car photo, 'junk' = close-up, 'stock' = shared dealer stock photo (exterior). */
  kind: 'exterior' | 'junk' | 'stock';
  form: ImageUrlForm;
  /** Optional query string appended to the URL (makes a byte-identical image under another URL). */
  query?: string;
}

export interface DemoListing {
  id: number;
  modelIndex: number;
  make: string;
  model: string;
  body: BodyStyle;
  year: number;
  trim: string;
  price: number;
  odometer: number;
  engine: string;
  colorIndex: number;
  exteriorColor: string;
  interiorColor: string;
  driveGroup: string;
  fuelType: string;
  fuelEconomy: string[];
  vin: string;
  stockNumber: string;
  description: string;
  owner: { id: string; name: string; website: string };
  /** Image sources in page order (may include exact duplicates); `primary` indexes into it. */
  images: DemoImageRef[];
  primary: number;
}

export type ListingPresence = 'hit' | 'missing-404' | 'missing-gone';

export const DEFAULT_DEMO_SEED = 1234;

/** Whether id exists: ~55% hits, ~25% "no longer available" pages, ~20% 404s. */
export function listingPresence(seed: number, id: number): ListingPresence {
  const r = rand01(seed, id, 'presence');
  if (r < 0.55) return 'hit';
  if (r < 0.8) return 'missing-gone';
  return 'missing-404';
}

const TRIMS = ['Base', 'S', 'SE', 'LE', 'XLE', 'Sport', 'Limited', 'Touring', 'EX', 'LX', 'Premium'];
const DEALERS = ['Sunrise Auto', 'Metro Motors', 'Lakeside Cars', 'Hilltop Auto Group', 'Valley Pre-Owned', 'Coastal Car Co', 'Prairie Motors', 'Northgate Autos'];
const VIN_CHARS = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';

/** Expected price of a model at a year and odometer (before listing noise). */
export function expectedPrice(m: DemoModel, year: number, odometer: number): number {
  const age = Math.max(0, CURRENT_YEAR - year);
  const dep = Math.pow(1 - m.depreciation, age);
  const milesFactor = Math.max(0.55, 1 - odometer / 400000);
  return Math.max(1500, m.basePrice * dep * milesFactor);
}

/** The listing at `id`, or null when the id is a miss. Pure function of (seed, id). */
export function getListing(seed: number, id: number): DemoListing | null {
  if (listingPresence(seed, id) !== 'hit') return null;
  const r = prng(hash32(seed, id, 'listing'));
  const modelIndex = Math.floor(r() * DEMO_MODELS.length) % DEMO_MODELS.length;
  const m = DEMO_MODELS[modelIndex];
  const span = CURRENT_YEAR - m.firstYear;
  // Skew towards recent years.
  const year = CURRENT_YEAR - Math.min(span, Math.floor(Math.pow(r(), 1.7) * (span + 1)));
  const age = CURRENT_YEAR - year;
  const odometer = Math.max(5, Math.round((age + 0.3) * (9000 + 6000 * r()) + 500 * r()));
  const price = Math.round((expectedPrice(m, year, odometer) * Math.exp(0.08 * gaussian(r))) / 50) * 50;
  const colorIndex = Math.floor(r() * DEMO_COLORS.length) % DEMO_COLORS.length;
  const interiorColor = pick(r, INTERIOR_COLORS);
  const engine = pick(r, m.engines);
  const driveGroup = pick(r, m.drives);
  const trim = pick(r, TRIMS);
  let vin = '';
  for (let i = 0; i < 17; i++) vin += VIN_CHARS[Math.floor(r() * VIN_CHARS.length) % VIN_CHARS.length];
  const stockNumber = `S${Math.floor(r() * 1e6).toString().padStart(6, '0')}`;
  const dealerIndex = Math.floor(r() * DEALERS.length) % DEALERS.length;
  const dealer = DEALERS[dealerIndex];
  const owner = {
    id: String(100000 + dealerIndex * 7919),
    name: dealer,
    website: `https://www.${dealer.toLowerCase().replace(/[^a-z]+/g, '')}.example`,
  };
  const fuelEconomy =
    m.fuel === 'Electric'
      ? [`${110 + Math.floor(r() * 30)} MPGe City`, `${100 + Math.floor(r() * 25)} MPGe Highway`]
      : [`${15 + Math.floor(r() * 20)} City`, `${20 + Math.floor(r() * 20)} Highway`];

  // Images: 3..12 sources.
  const n = 3 + Math.floor(r() * 10);
  const forms: ImageUrlForm[] = ['absolute', 'root-relative', 'path-relative', 'protocol-relative'];
  const images: DemoImageRef[] = [];
  for (let i = 0; i < n; i++) {
    const form = forms[Math.floor(r() * forms.length) % forms.length];
    const roll = r();
    if (roll < 0.62) {
      const view = Math.floor(r() * 4);
      images.push({ imageId: `e-${modelIndex}-${year}-${colorIndex}-${view}-${id}x${i}`, kind: 'exterior', form });
    } else if (roll < 0.9) {
      const kind = pick(r, JUNK_KINDS);
      images.push({ imageId: `j-${kind}-${id}x${i}`, kind: 'junk', form });
    } else {
      // Dealer stock photo: shared by every listing of this model (same URL across listings).
      images.push({ imageId: `s-${modelIndex}`, kind: 'stock', form });
    }
  }
  // Duplicates within a listing: an exact repeat of an earlier source (same URL after
  // resolution), and sometimes the same image under another URL (query string).
  if (r() < 0.3 && images.length > 1) {
    const dup = images[Math.floor(r() * images.length) % images.length];
    images.push({ ...dup, form: pick(r, forms) });
  }
  if (r() < 0.15) {
    const dup = images[0];
    images.push({ ...dup, query: 'w=640' });
  }
  // Primary: the first exterior image if any, else 0; listed at a random position.
  let primary = images.findIndex((im) => im.kind === 'exterior');
  if (primary < 0) primary = 0;
  if (primary === 0 && images.length > 2 && r() < 0.5) {
    // Move the primary to a later position so "primary first" is exercised.
    const pos = 1 + (Math.floor(r() * (images.length - 1)) % (images.length - 1));
    const [p] = images.splice(0, 1);
    images.splice(pos, 0, p);
    primary = pos;
  }

  const c = DEMO_COLORS[colorIndex].name;
  const description =
    `<p>${year} ${m.make} ${m.model} ${trim} in ${c} &amp; ${interiorColor} interior.</p>` +
    `Clean history, ${odometer.toLocaleString('en-US')} miles.<br>Engine: ${engine}<br/>` +
    `Drive: ${driveGroup} &mdash; call ${dealer} today!`;

  return {
    id,
    modelIndex,
    make: m.make,
    model: m.model,
    body: m.body,
    year,
    trim,
    price,
    odometer,
    engine,
    colorIndex,
    exteriorColor: c,
    interiorColor,
    driveGroup,
    fuelType: m.fuel,
    fuelEconomy,
    vin,
    stockNumber,
    description,
    owner,
    images,
    primary,
  };
}

/** Path (with query) of an image ref on the site. */
export function imagePath(ref: DemoImageRef): string {
  return `/images/${ref.imageId}.jpg${ref.query ? `?${ref.query}` : ''}`;
}

/** The image `src` as written in the page, in the ref's URL form. */
export function imageSrc(ref: DemoImageRef, baseUrl: string): string {
  const path = imagePath(ref);
  const u = new URL(baseUrl);
  switch (ref.form) {
    case 'absolute':
      return `${u.protocol}//${u.host}${path}`;
    case 'protocol-relative':
      return `//${u.host}${path}`;
    case 'root-relative':
      return path;
    case 'path-relative':
      // Page is /cars-for-sale/vehicledetails.xhtml, so ../images/x resolves to /images/x.
      return `..${path}`;
  }
}

/** Absolute image URLs of a listing in the order a correct parser yields them (primary first, deduplicated). */
export function expectedImageUrls(listing: DemoListing, baseUrl: string): string[] {
  const order = [listing.primary, ...listing.images.map((_, i) => i).filter((i) => i !== listing.primary)];
  const seen = new Set<string>();
  const out: string[] = [];
  const u = new URL(baseUrl);
  for (const i of order) {
    const abs = `${u.protocol}//${u.host}${imagePath(listing.images[i])}`;
    if (!seen.has(abs)) {
      seen.add(abs);
      out.push(abs);
    }
  }
  return out;
}
