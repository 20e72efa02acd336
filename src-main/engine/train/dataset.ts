import type { Db } from '../workspace/db.ts';
import type { ValueRange } from '../api/contract/values.ts';
import { formatRange, readValueRanges } from '../workspace/value-ranges.ts';
import type { LabelRow } from './labels.ts';

/** Listings whose stored price is outside the price range: their price is not used (their photos still train the other heads). */
export interface PriceOutliers {
  listings: number;
  /** Training images that have no other listing with a usable price. */
  images: number;
  range: ValueRange;
  /** "ignored the price of 3 listings (5 images) outside $100..$5,000,000", or null when none. */
  message: string | null;
}

/**
 * The training set: images of the `training_images` view (stored, decodable, not excluded by
 * dedup, kept by the applied filter) with their listing's labels, one row per image. Labels may
 * be partial: a listing without a price (an import of labelled photos) still labels make/model
 * and year. A price outside the workspace's price range (workspace/value-ranges.ts; stored before
 * scrapes checked values, or kept by a wider range since) is not used, and counted. An image in
 * several listings takes the labels of the first listing with a usable price (else the first).
 * Rows without any label are left out.
 */
/**
 * The name a run records for a listing's source: its source column (an import's import:<name>, a
 * scraped site's kbb), except that KBB-format listings scraped from a site on this machine (the
 * bundled demo site, `--base-url demo` or `carstudio demo-site`) are `demo`: generated cars.
 */
const SOURCE_NAME = `CASE WHEN l.source = 'kbb' AND (l.url LIKE 'http://127.0.0.1:%' OR l.url LIKE 'http://localhost:%') THEN 'demo' ELSE l.source END`;

export function trainingSet(db: Db): { rows: LabelRow[]; outliers: PriceOutliers } {
  const range = readValueRanges(db).ranges.price;
  const usable = `typeof(l.price) IN ('integer','real') AND l.price BETWEEN @min AND @max`;
  const rows = db
    .prepare(
      `SELECT imageId, hash, price, make, model, year, listingKey, source FROM (
         SELECT t.id AS imageId, COALESCE(t.exact_hash, t.key) AS hash,
                CASE WHEN ${usable} THEN l.price END AS price, l.make, l.model, l.year,
                l.source || ':' || COALESCE(l.external_id, CAST(l.listing_id AS TEXT)) AS listingKey, ${SOURCE_NAME} AS source,
                ROW_NUMBER() OVER (PARTITION BY t.id ORDER BY (CASE WHEN ${usable} THEN 0 ELSE 1 END), l.id) AS rk
         FROM training_images t
         JOIN listing_images li ON li.image_id = t.id
         JOIN listings l ON l.id = li.listing_rowid)
       WHERE rk = 1 AND (price IS NOT NULL OR (NULLIF(TRIM(make), '') IS NOT NULL AND NULLIF(TRIM(model), '') IS NOT NULL) OR year IS NOT NULL)
       ORDER BY imageId`,
    )
    .all({ min: range.min, max: range.max }) as LabelRow[];
  // Listings with a price outside the range, and their images that no usable price labels.
  const outside = db
    .prepare(
      `SELECT l.id AS listing, t.id AS image
       FROM training_images t
       JOIN listing_images li ON li.image_id = t.id
       JOIN listings l ON l.id = li.listing_rowid
       WHERE l.price IS NOT NULL AND NOT (${usable})`,
    )
    .all({ min: range.min, max: range.max }) as Array<{ listing: number; image: number }>;
  const priced = new Set(rows.filter((r) => r.price !== null).map((r) => r.imageId));
  const listings = new Set(outside.map((o) => o.listing)).size;
  const images = new Set(outside.filter((o) => !priced.has(o.image)).map((o) => o.image)).size;
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
  const message =
    listings === 0 ? null : `ignored the price of ${plural(listings, 'listing')} (${plural(images, 'image')}) outside ${formatRange('price', range)}`;
  return { rows, outliers: { listings, images, range, message } };
}

/** The rows of {@link trainingSet}. */
export function trainingRows(db: Db): LabelRow[] {
  return trainingSet(db).rows;
}
