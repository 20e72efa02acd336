// The label spaces of the price model (pipeline.md section 4): ten price bins, the median-price
// regression target, the dataset's 512 most frequent (make, model) pairs plus "Unknown", and the
// model years 1983..2023 plus "unknown". Also the deterministic train/test split by image hash.
// Pure functions over plain rows: the dataset view of a workspace feeds them.

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
export const YEAR_MIN = 1983;
export const YEAR_MAX = 2023;
export const YEAR_LABELS: readonly string[] = [
  ...Array.from({ length: YEAR_MAX - YEAR_MIN + 1 }, (_, i) => String(YEAR_MIN + i)),
  'unknown',
];
export const NUM_YEARS = YEAR_LABELS.length;
export const UNKNOWN_YEAR = NUM_YEARS - 1;
export const DEFAULT_TOP_MAKE_MODELS = 512;
export const UNKNOWN_MAKE_MODEL_LABEL = 'Unknown';
export const DEFAULT_TEST_FRACTION = 0.1;

/** One usable training image with its listing's labels. */
export interface LabelRow {
  imageId: number;
  /** The image's perceptual hash (hex): the split key. */
  hash: string;
  /** Listing price in dollars. */
  price: number;
  make: string | null;
  model: string | null;
  year: number | null;
}

export interface MakeModelClass {
  make: string;
  model: string;
  /** Images of this pair in the dataset the space was built from. */
  count: number;
}

/** Everything needed to encode labels and to name a model's outputs; JSON-serialisable. */
export interface LabelSpace {
  version: 1;
  priceBounds: number[];
  priceBins: string[];
  medianPriceScale: number;
  /** Known (make, model) classes, most frequent first; class index `makeModels.length` is Unknown. */
  makeModels: MakeModelClass[];
  /** Images whose pair is not among makeModels (they get the Unknown class). */
  unknownMakeModelCount: number;
  years: string[];
  rows: number;
}

export interface EncodedLabels {
  priceBin: number;
  /** price / MEDIAN_PRICE_SCALE */
  median: number;
  makeModel: number;
  year: number;
}

/** Price bin index: the first bin whose upper bound is >= price (a price on a bound falls below). */
export function priceBin(price: number): number {
  if (!Number.isFinite(price)) throw new Error(`price ${price} is not a finite number`);
  for (let i = 0; i < PRICE_BOUNDS.length; i++) if (price <= PRICE_BOUNDS[i]) return i;
  return PRICE_BOUNDS.length;
}

/** Year class index; years outside 1983..2023, missing or non-integer years are "unknown". */
export function yearClass(year: number | null | undefined): number {
  if (year == null || !Number.isInteger(year) || year < YEAR_MIN || year > YEAR_MAX) return UNKNOWN_YEAR;
  return year - YEAR_MIN;
}

/** The (make, model) key; null when either part is missing or blank. */
export function makeModelKey(make: string | null | undefined, model: string | null | undefined): string | null {
  const a = make?.trim();
  const b = model?.trim();
  if (!a || !b) return null;
  return `${a}\u0000${b}`;
}

export function numMakeModelClasses(space: LabelSpace): number {
  return space.makeModels.length + 1;
}

export function makeModelLabels(space: LabelSpace): string[] {
  return [...space.makeModels.map((c) => `${c.make} ${c.model}`), UNKNOWN_MAKE_MODEL_LABEL];
}

/**
 * Builds the label space of a dataset: the `top` most frequent (make, model) pairs (ties broken by
 * make, then model, so the list is deterministic) plus Unknown, with their counts.
 */
export function buildLabelSpace(rows: readonly LabelRow[], opts: { top?: number } = {}): LabelSpace {
  const top = opts.top ?? DEFAULT_TOP_MAKE_MODELS;
  const counts = new Map<string, MakeModelClass>();
  let missing = 0;
  for (const r of rows) {
    const key = makeModelKey(r.make, r.model);
    if (key === null) {
      missing++;
      continue;
    }
    const c = counts.get(key);
    if (c) c.count++;
    else counts.set(key, { make: r.make!.trim(), model: r.model!.trim(), count: 1 });
  }
  const sorted = [...counts.values()].sort((a, b) => b.count - a.count || cmp(a.make, b.make) || cmp(a.model, b.model));
  const kept = sorted.slice(0, top);
  const dropped = sorted.slice(top).reduce((s, c) => s + c.count, 0);
  return {
    version: 1,
    priceBounds: [...PRICE_BOUNDS],
    priceBins: [...PRICE_BIN_LABELS],
    medianPriceScale: MEDIAN_PRICE_SCALE,
    makeModels: kept,
    unknownMakeModelCount: missing + dropped,
    years: [...YEAR_LABELS],
    rows: rows.length,
  };
}

/** A label encoder for a space (builds the pair lookup once). */
export function labelEncoder(space: LabelSpace): (row: Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>) => EncodedLabels {
  const index = new Map<string, number>();
  space.makeModels.forEach((c, i) => index.set(makeModelKey(c.make, c.model)!, i));
  const unknown = space.makeModels.length;
  return (row) => {
    const key = makeModelKey(row.make, row.model);
    return {
      priceBin: priceBin(row.price),
      median: row.price / space.medianPriceScale,
      makeModel: key === null ? unknown : (index.get(key) ?? unknown),
      year: yearClass(row.year),
    };
  };
}

/** Encodes one row (for many rows, make one labelEncoder and reuse it). */
export function encode(space: LabelSpace, row: Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>): EncodedLabels {
  return labelEncoder(space)(row);
}

/**
 * Sorts rows by image hash (then image id, for equal hashes) and puts the first
 * floor(n * testFraction) in the test split. Independent of the input order.
 */
export function splitByHash<R extends Pick<LabelRow, 'hash' | 'imageId'>>(
  rows: readonly R[],
  testFraction = DEFAULT_TEST_FRACTION,
): { train: R[]; test: R[] } {
  if (!(testFraction >= 0 && testFraction <= 1)) throw new Error(`test fraction ${testFraction} is not in [0, 1]`);
  const sorted = [...rows].sort((a, b) => cmp(a.hash.toLowerCase(), b.hash.toLowerCase()) || a.imageId - b.imageId);
  const nTest = Math.floor(sorted.length * testFraction);
  return { test: sorted.slice(0, nTest), train: sorted.slice(nTest) };
}

/** Column-wise labels of many rows, the layout the trainer consumes. */
export interface LabelColumns {
  priceBin: Int32Array;
  median: Float32Array;
  makeModel: Int32Array;
  year: Int32Array;
}

export function encodeColumns(space: LabelSpace, rows: readonly Pick<LabelRow, 'price' | 'make' | 'model' | 'year'>[]): LabelColumns {
  const enc = labelEncoder(space);
  const out: LabelColumns = {
    priceBin: new Int32Array(rows.length),
    median: new Float32Array(rows.length),
    makeModel: new Int32Array(rows.length),
    year: new Int32Array(rows.length),
  };
  rows.forEach((r, i) => {
    const e = enc(r);
    out.priceBin[i] = e.priceBin;
    out.median[i] = e.median;
    out.makeModel[i] = e.makeModel;
    out.year[i] = e.year;
  });
  return out;
}

/** Index of the most frequent class (the majority-class baseline predicts it). */
export function majorityClass(labels: ArrayLike<number>, numClasses: number): { cls: number; fraction: number } {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  let cls = 0;
  for (let c = 1; c < numClasses; c++) if (counts[c] > counts[cls]) cls = c;
  return { cls, fraction: labels.length ? counts[cls] / labels.length : 0 };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
