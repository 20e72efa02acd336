// The label spaces of the price model (pipeline.md section 4): ten price bins, the median-price
// regression target, the dataset's most frequent (make, model) pairs (top K, default 512) plus
// "Unknown", and the model years the dataset spans plus "unknown". Labels may be partial: a row
// without a price, a make/model or a year has no label for that head (its mask is 0), and the
// head neither trains nor is scored on it. Also the deterministic train/test splits: by listing
// (the default: every photo of one car on the same side) or by photo (the original's).
// Pure functions over plain rows: the dataset view of a workspace feeds them.
import { createHash } from 'node:crypto';

/** Upper bounds (inclusive) of the first nine price bins, in dollars; the tenth is "$60k+". */
export const PRICE_BOUNDS: readonly number[] = [10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000];
export const PRICE_BIN_LABELS: readonly string[] = [
  '$0-10k',
  '$10k-15k',
  '$15k-20k',
  '$20k-25k',
  '$25k-30k',
  '$30k-35k',
  '$35k-40k',
  '$40k-50k',
  '$50k-60k',
  '$60k+',
];
export const NUM_PRICE_BINS = PRICE_BIN_LABELS.length;
/** The median-price head outputs price / MEDIAN_PRICE_SCALE; its L1 loss is divided by it too. */
export const MEDIAN_PRICE_SCALE = 30_000;
/** The year classes of label spaces of version 1 (runs trained before spaces came from the data). */
export const YEAR_MIN = 1983;
export const YEAR_MAX = 2023;
export const YEAR_LABELS: readonly string[] = [
  ...Array.from({ length: YEAR_MAX - YEAR_MIN + 1 }, (_, i) => String(YEAR_MIN + i)),
  'unknown',
];
export const NUM_YEARS = YEAR_LABELS.length;
export const UNKNOWN_YEAR = NUM_YEARS - 1;
export const UNKNOWN_YEAR_LABEL = 'unknown';
export const DEFAULT_TOP_MAKE_MODELS = 512;
export const UNKNOWN_MAKE_MODEL_LABEL = 'Unknown';
export const DEFAULT_TEST_FRACTION = 0.1;

/** One usable training image with its listing's labels. */
export interface LabelRow {
  imageId: number;
  /** The image's perceptual hash (hex): the split key. */
  hash: string;
  /** Listing price in dollars; null when the listing has none (the price heads skip the row). */
  price: number | null;
  make: string | null;
  model: string | null;
  year: number | null;
  /**
   * The listing's stable key (`source:listing id`): the listing split's key, so every photo of one
   * listing falls on the same side. Absent = the row is its own listing.
   */
  listingKey?: string;
  /** The listing's source (demo, import:<name>, a scraped site); what a run records it was trained on. */
  source?: string;
}

export type SplitKind = 'listing' | 'photo';
export const SPLIT_KINDS: readonly SplitKind[] = ['listing', 'photo'];
export const DEFAULT_SPLIT: SplitKind = 'listing';

export interface MakeModelClass {
  make: string;
  model: string;
  /** Images of this pair in the dataset the space was built from. */
  count: number;
}

/**
 * Everything needed to encode labels and to name a model's outputs; JSON-serialisable and stored
 * in each run's config.json. Version 1 (runs trained before): years 1983..2023 whatever the data.
 * Version 2: years span the dataset's own range, `top` and the per-head label counts are recorded.
 */
export interface LabelSpace {
  version: 1 | 2;
  priceBounds: number[];
  priceBins: string[];
  medianPriceScale: number;
  /** Known (make, model) classes, most frequent first; class index `makeModels.length` is Unknown. */
  makeModels: MakeModelClass[];
  /** Images with a (make, model) that is not among makeModels (they get the Unknown class). */
  unknownMakeModelCount: number;
  /** Year classes in order, the last one "unknown" (never a training target in version 2). */
  years: string[];
  rows: number;
  /** Version 2: the K of top-K make/model classes. */
  top?: number;
  /** Version 2: rows that carry each head's label. */
  labelled?: { price: number; makeModel: number; year: number };
}

export interface EncodedLabels {
  priceBin: number;
  /** price / MEDIAN_PRICE_SCALE */
  median: number;
  makeModel: number;
  year: number;
  /** 1 when the row has the head's label, 0 when not (the class index is then a placeholder). */
  priceMask: number;
  makeModelMask: number;
  yearMask: number;
}

/** Price bin index: the first bin whose upper bound is >= price (a price on a bound falls below). */
export function priceBin(price: number): number {
  if (!Number.isFinite(price)) throw new Error(`price ${price} is not a finite number`);
  for (let i = 0; i < PRICE_BOUNDS.length; i++) if (price <= PRICE_BOUNDS[i]) return i;
  return PRICE_BOUNDS.length;
}

/** Year class index in the version-1 space; years outside 1983..2023, missing or non-integer years are "unknown". */
export function yearClass(year: number | null | undefined): number {
  if (year == null || !Number.isInteger(year) || year < YEAR_MIN || year > YEAR_MAX) return UNKNOWN_YEAR;
  return year - YEAR_MIN;
}

/** The year of each class of a space (null for "unknown"). */
export function yearValues(space: Pick<LabelSpace, 'years'>): (number | null)[] {
  return space.years.map((y) => (/^\d{4}$/.test(y) ? Number(y) : null));
}

/**
 * The spelling-insensitive form of a make or model: case, hyphens, underscores and runs of
 * spaces do not make another class ("1-Series" in a file name is "1 Series" in a spreadsheet).
 */
export function normaliseClassName(s: string): string {
  return s.trim().toLowerCase().replace(/[-_\s]+/g, ' ');
}

/** The (make, model) key; null when either part is missing or blank. */
export function makeModelKey(make: string | null | undefined, model: string | null | undefined): string | null {
  const a = make?.trim();
  const b = model?.trim();
  if (!a || !b) return null;
  return `${normaliseClassName(a)}\u0000${normaliseClassName(b)}`;
}

export function numMakeModelClasses(space: LabelSpace): number {
  return space.makeModels.length + 1;
}

export function makeModelLabels(space: LabelSpace): string[] {
  return [...space.makeModels.map((c) => `${c.make} ${c.model}`), UNKNOWN_MAKE_MODEL_LABEL];
}

/**
 * Builds the label space of a dataset: the `top` most frequent (make, model) pairs (ties broken by
 * make, then model, so the list is deterministic; spellings that differ only in case, hyphens or
 * spaces are one class, named by its most frequent spelling) plus Unknown, with their counts; the
 * years from the dataset's first to its last (every year between, so a year the data skips still
 * has a class) plus "unknown".
 */
export function buildLabelSpace(rows: readonly LabelRow[], opts: { top?: number } = {}): LabelSpace {
  const top = opts.top ?? DEFAULT_TOP_MAKE_MODELS;
  if (!Number.isInteger(top) || top < 1) throw new Error(`top must be a positive integer, got ${top}`);
  const classes = countMakeModels(rows);
  const kept = classes.slice(0, top);
  const dropped = classes.slice(top).reduce((s, c) => s + c.count, 0);
  const labelled = { price: 0, makeModel: 0, year: 0 };
  let minYear = Infinity;
  let maxYear = -Infinity;
  for (const r of rows) {
    if (hasPrice(r.price)) labelled.price++;
    if (makeModelKey(r.make, r.model) !== null) labelled.makeModel++;
    if (hasYear(r.year)) {
      labelled.year++;
      minYear = Math.min(minYear, r.year!);
      maxYear = Math.max(maxYear, r.year!);
    }
  }
  const years = labelled.year ? Array.from({ length: maxYear - minYear + 1 }, (_, i) => String(minYear + i)) : [];
  return {
    version: 2,
    priceBounds: [...PRICE_BOUNDS],
    priceBins: [...PRICE_BIN_LABELS],
    medianPriceScale: MEDIAN_PRICE_SCALE,
    makeModels: kept,
    unknownMakeModelCount: dropped,
    years: [...years, UNKNOWN_YEAR_LABEL],
    rows: rows.length,
    top,
    labelled,
  };
}

/** (make, model) classes by count, most frequent first, each named by its most frequent spelling. */
function countMakeModels(rows: readonly LabelRow[]): MakeModelClass[] {
  const byKey = new Map<string, { count: number; spellings: Map<string, { make: string; model: string; n: number }> }>();
  for (const r of rows) {
    const key = makeModelKey(r.make, r.model);
    if (key === null) continue;
    let c = byKey.get(key);
    if (!c) byKey.set(key, (c = { count: 0, spellings: new Map() }));
    c.count++;
    const make = r.make!.trim();
    const model = r.model!.trim();
    const sk = `${make}\u0000${model}`;
    const sp = c.spellings.get(sk);
    if (sp) sp.n++;
    else c.spellings.set(sk, { make, model, n: 1 });
  }
  const out: MakeModelClass[] = [];
  for (const c of byKey.values()) {
    const best = [...c.spellings.values()].sort((a, b) => b.n - a.n || cmp(a.make, b.make) || cmp(a.model, b.model))[0];
    out.push({ make: best.make, model: best.model, count: c.count });
  }
  return out.sort((a, b) => b.count - a.count || cmp(a.make, b.make) || cmp(a.model, b.model));
}

function hasPrice(p: number | null | undefined): p is number {
  return p != null && Number.isFinite(p);
}

function hasYear(y: number | null | undefined): y is number {
  return y != null && Number.isInteger(y);
}

/**
 * A label encoder for a space (builds the lookups once). Version 2: a row without a price, a
 * (make, model) or a year gets mask 0 for that head; a pair outside the top K is the Unknown
 * class (a real label: "another model"); a year outside the space is "unknown" with mask 0.
 * Version 1 (runs trained before) encodes as those runs were trained: missing labels are the
 * Unknown/"unknown" classes with mask 1, and every row has a price.
 */
export function labelEncoder(space: LabelSpace): (row: Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>) => EncodedLabels {
  const index = new Map<string, number>();
  space.makeModels.forEach((c, i) => {
    const k = makeModelKey(c.make, c.model)!;
    if (!index.has(k)) index.set(k, i);
  });
  const unknownMakeModel = space.makeModels.length;
  const yearIndex = new Map<number, number>();
  yearValues(space).forEach((y, i) => y !== null && yearIndex.set(y, i));
  const unknownYear = space.years.length - 1;
  const v1 = space.version === 1;
  return (row) => {
    const key = makeModelKey(row.make, row.model);
    const priced = hasPrice(row.price);
    const yi = hasYear(row.year) ? yearIndex.get(row.year) : undefined;
    return {
      priceBin: priced ? priceBin(row.price!) : 0,
      median: priced ? row.price! / space.medianPriceScale : 0,
      makeModel: key === null ? unknownMakeModel : (index.get(key) ?? unknownMakeModel),
      year: yi ?? unknownYear,
      priceMask: priced ? 1 : 0,
      makeModelMask: v1 || key !== null ? 1 : 0,
      yearMask: v1 || yi !== undefined ? 1 : 0,
    };
  };
}

/** Encodes one row (for many rows, make one labelEncoder and reuse it). */
export function encode(space: LabelSpace, row: Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>): EncodedLabels {
  return labelEncoder(space)(row);
}

/**
 * Sorts rows by image hash (then image id, for equal hashes) and puts the first
 * floor(n * testFraction) in the test split. Independent of the input order. The original's
 * per-photo split: two photos of one car can fall on both sides.
 */
export function splitByHash<R extends Pick<LabelRow, 'hash' | 'imageId'>>(
  rows: readonly R[],
  testFraction = DEFAULT_TEST_FRACTION,
): { train: R[]; test: R[] } {
  checkFraction(testFraction);
  const sorted = [...rows].sort((a, b) => cmp(a.hash.toLowerCase(), b.hash.toLowerCase()) || a.imageId - b.imageId);
  const nTest = Math.floor(sorted.length * testFraction);
  return { test: sorted.slice(0, nTest), train: sorted.slice(nTest) };
}

/**
 * The split by listing: a listing (by `listingKey`; a row without one is its own listing) is in
 * the test split when a hash of its key, read as a number in [0, 1), is below testFraction; all
 * its photos go with it. No car is on both sides, and a listing keeps its side in any workspace
 * holding it, however many listings are added. The test share is testFraction of the listings
 * on average; with 10 or more listings and none below the threshold, the lowest hash is test.
 */
export function splitByListing<R extends Pick<LabelRow, 'hash' | 'imageId' | 'listingKey'>>(
  rows: readonly R[],
  testFraction = DEFAULT_TEST_FRACTION,
): { train: R[]; test: R[] } {
  checkFraction(testFraction);
  const groups = new Map<string, R[]>();
  for (const r of rows) {
    const k = r.listingKey ?? `photo:${r.hash}:${r.imageId}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const u = new Map([...groups.keys()].map((k) => [k, listingHashFraction(k)]));
  const testKeys = new Set([...u].filter(([, x]) => x < testFraction).map(([k]) => k));
  if (testKeys.size === 0 && testFraction > 0 && groups.size >= 10) testKeys.add([...u].sort((a, b) => a[1] - b[1] || cmp(a[0], b[0]))[0][0]);
  const test: R[] = [];
  const train: R[] = [];
  for (const [k, g] of groups) (testKeys.has(k) ? test : train).push(...g);
  const byId = (a: R, b: R): number => a.imageId - b.imageId;
  return { train: train.sort(byId), test: test.sort(byId) };
}

/** The first 48 bits of sha1(key) as a fraction in [0, 1). */
export function listingHashFraction(key: string): number {
  return parseInt(createHash('sha1').update(key).digest('hex').slice(0, 12), 16) / 2 ** 48;
}

/** The split of a kind ({@link splitByListing} or {@link splitByHash}). */
export function splitRows<R extends Pick<LabelRow, 'hash' | 'imageId' | 'listingKey'>>(
  rows: readonly R[],
  kind: SplitKind,
  testFraction = DEFAULT_TEST_FRACTION,
): { train: R[]; test: R[] } {
  return kind === 'photo' ? splitByHash(rows, testFraction) : splitByListing(rows, testFraction);
}

function checkFraction(f: number): void {
  if (!(f >= 0 && f <= 1)) throw new Error(`test fraction ${f} is not in [0, 1]`);
}

/** Column-wise labels of many rows, the layout the trainer consumes; masks are 0/1 per row. */
export interface LabelColumns {
  priceBin: Int32Array;
  median: Float32Array;
  makeModel: Int32Array;
  year: Int32Array;
  priceMask: Float32Array;
  makeModelMask: Float32Array;
  yearMask: Float32Array;
}

/** Per head, how many rows of the columns carry its label. */
export function labelledCounts(c: LabelColumns): { price: number; makeModel: number; year: number } {
  const sum = (m: Float32Array): number => m.reduce((a, b) => a + b, 0);
  return { price: sum(c.priceMask), makeModel: sum(c.makeModelMask), year: sum(c.yearMask) };
}

export function encodeColumns(space: LabelSpace, rows: readonly Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>[]): LabelColumns {
  const enc = labelEncoder(space);
  const out: LabelColumns = {
    priceBin: new Int32Array(rows.length),
    median: new Float32Array(rows.length),
    makeModel: new Int32Array(rows.length),
    year: new Int32Array(rows.length),
    priceMask: new Float32Array(rows.length),
    makeModelMask: new Float32Array(rows.length),
    yearMask: new Float32Array(rows.length),
  };
  rows.forEach((r, i) => {
    const e = enc(r);
    out.priceBin[i] = e.priceBin;
    out.median[i] = e.median;
    out.makeModel[i] = e.makeModel;
    out.year[i] = e.year;
    out.priceMask[i] = e.priceMask;
    out.makeModelMask[i] = e.makeModelMask;
    out.yearMask[i] = e.yearMask;
  });
  return out;
}

/**
 * Index of the most frequent class (the majority-class baseline predicts it), over the rows whose
 * mask is 1 (all rows without a mask).
 */
export function majorityClass(labels: ArrayLike<number>, numClasses: number, mask?: ArrayLike<number>): { cls: number; fraction: number } {
  const counts = new Array<number>(numClasses).fill(0);
  let n = 0;
  for (let i = 0; i < labels.length; i++) {
    if (mask && !mask[i]) continue;
    counts[labels[i]]++;
    n++;
  }
  let cls = 0;
  for (let c = 1; c < numClasses; c++) if (counts[c] > counts[cls]) cls = c;
  return { cls, fraction: n ? counts[cls] / n : 0 };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
