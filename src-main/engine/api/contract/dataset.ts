import { z } from 'zod';

// ---- The Dataset stage: browsing scraped listings, facets, plots and the scrape's error log ----
// (plain data; the renderer imports this file, so no Node imports here)

export const LISTING_SORTS = ['id', 'price', 'year', 'scraped_at'] as const;
export type ListingSort = (typeof LISTING_SORTS)[number];

/** One row of the listing browser. `id` is the workspace's listing row id, `listingId` the site's id. */
export interface ListingRow {
  id: number;
  listingId: number;
  source: string;
  url: string;
  title: string | null;
  price: number | null;
  make: string | null;
  model: string | null;
  year: number | null;
  odometer: number | null;
  scrapedAt: number;
  imageCount: number;
  /** Store key of the listing's first stored image, or null when none is stored. */
  thumbKey: string | null;
}

export interface ListingPage {
  /** Listings matching the filters (all pages). */
  total: number;
  rows: ListingRow[];
}

export interface ListingOwner {
  id: string | null;
  name: string | null;
  website: string | null;
}

export interface ListingImage {
  position: number;
  key: string;
  url: string;
  state: 'pending' | 'stored' | 'failed';
  width: number | null;
  height: number | null;
  failReason: string | null;
}

export interface ListingDetail extends ListingRow {
  engine: string | null;
  exteriorColor: string | null;
  interiorColor: string | null;
  driveType: string | null;
  fuelType: string | null;
  fuelEconomy: string[];
  vin: string | null;
  stockNumber: string | null;
  description: string | null;
  owners: ListingOwner[];
  /** In the listing's order, primary image first. */
  images: ListingImage[];
}

export interface DatasetFacets {
  total: number;
  makes: Array<{ make: string; count: number }>;
  /** Models of each make, most listed first. */
  models: Record<string, Array<{ model: string; count: number }>>;
  year: { min: number | null; max: number | null };
  price: { min: number | null; max: number | null };
  /** Where listings came from (a scraped site's source, `import:<name>`), most listed first. */
  sources: Array<{ source: string; count: number }>;
}

export type TimeBucket = 'minute' | 'hour' | 'day';

export interface DatasetPlots {
  /** $5k bins from $0 to $100k, then one overflow bin with `hi: null`. Listings without a price are left out. */
  priceHistogram: Array<{ lo: number; hi: number | null; count: number }>;
  /** Shares of the priced listings above $50k and $70k (the original write-up reported both). */
  priceShares: { over50k: number; over70k: number };
  /** The 20 most listed make/models; share is of all listings with a make. */
  topMakeModels: Array<{ make: string; model: string; count: number; share: number }>;
  yearHistogram: Array<{ year: number; count: number }>;
  /** Listings by scraped_at; `t` is the bucket's start (ms), empty buckets included. */
  overTime: Array<{ t: number; count: number }>;
  overTimeBucket: TimeBucket;
  totals: { listings: number; priced: number; withYear: number; withMake: number; medianPrice: number | null };
}

export interface ScrapeErrors {
  /** The time window the errors were taken from (a job's run), or null for all time. */
  window: { from: number; to: number | null } | null;
  failedAttempts: Array<{ source: string; listingId: number; httpStatus: number | null; reason: string | null; tries: number; at: number }>;
  failedImages: Array<{ url: string; reason: string | null; tries: number; at: number }>;
  /** Totals over the same window (the lists are cut at `limit`). */
  totalFailedAttempts: number;
  totalFailedImages: number;
}

// ---- Requests ----

const optNum = z.number().finite().optional();

export const datasetMethods = {
  'listings.query': z.object({
    /** Only listings of this source (`import:cars.csv`, a scraped site's source). */
    source: z.string().min(1).optional(),
    make: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    yearMin: z.number().int().optional(),
    yearMax: z.number().int().optional(),
    priceMin: optNum,
    priceMax: optNum,
    /** Case-insensitive substring of the title. */
    q: z.string().max(200).optional(),
    sort: z.enum(LISTING_SORTS).default('id'),
    dir: z.enum(['asc', 'desc']).default('asc'),
    offset: z.number().int().nonnegative().default(0),
    limit: z.number().int().positive().max(200).default(50),
  }),
  'listings.get': z.object({ id: z.number().int().positive() }),
  'dataset.facets': z.object({}),
  'dataset.plots': z.object({}),
  'scrape.errors': z.object({
    /** Only errors recorded while this job ran; all when absent. */
    jobId: z.number().int().positive().optional(),
    limit: z.number().int().positive().max(1000).default(50),
  }),
} as const;

export interface DatasetResults {
  'listings.query': ListingPage;
  'listings.get': ListingDetail;
  'dataset.facets': DatasetFacets;
  'dataset.plots': DatasetPlots;
  'scrape.errors': ScrapeErrors;
}
