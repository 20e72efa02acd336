import type { Db } from '../workspace/db.ts';
import type { ValueRange } from '../api/contract/values.ts';
import { formatRange, readValueRanges } from '../workspace/value-ranges.ts';
import type { LabelRow } from './labels.ts';

/** Listings left out of training because their stored price is outside the price range. */
export interface PriceOutliers {
  listings: number;
  /** Training images that have no other listing with a usable price. */
  images: number;
  range: ValueRange;
  /** "dropped 3 listings (5 images) with a price outside $100..$5,000,000", or null when none. */
  message: string | null;
}

/**
 * The training set: images of the `training_images` view (stored, decodable, not excluded by
 * dedup, kept by the applied filter) whose listing has a price inside the workspace's price
 * range (workspace/value-ranges.ts); one row per image. A price outside it (stored before
 * scrapes checked values, or kept by a wider range since) is dropped and counted.
 */
export function trainingSet(db: Db): { rows: LabelRow[]; outliers: PriceOutliers } {
  const range = readValueRanges(db).ranges.price;
  const usable = `typeof(l.price) IN ('integer','real') AND l.price BETWEEN @min AND @max`;
  const rows = db
    .prepare(
      `SELECT t.id AS imageId, COALESCE(t.exact_hash, t.key) AS hash, l.price, l.make, l.model, l.year
       FROM training_images t
       JOIN listing_images li ON li.image_id = t.id
       JOIN listings l ON l.id = li.listing_rowid
       WHERE ${usable}
       GROUP BY t.id ORDER BY t.id`,
    )
    .all({ min: range.min, max: range.max }) as LabelRow[];
  // Listings with a price outside the range, and their images that no usable listing labels.
  const outside = db
    .prepare(
      `SELECT l.id AS listing, t.id AS image
       FROM training_images t
       JOIN listing_images li ON li.image_id = t.id
       JOIN listings l ON l.id = li.listing_rowid
       WHERE l.price IS NOT NULL AND NOT (${usable})`,
    )
    .all({ min: range.min, max: range.max }) as Array<{ listing: number; image: number }>;
  const kept = new Set(rows.map((r) => r.imageId));
  const listings = new Set(outside.map((o) => o.listing)).size;
  const images = new Set(outside.filter((o) => !kept.has(o.image)).map((o) => o.image)).size;
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
  const message = listings === 0 ? null : `dropped ${plural(listings, 'listing')} (${plural(images, 'image')}) with a price outside ${formatRange('price', range)}`;
  return { rows, outliers: { listings, images, range, message } };
}

/** The rows of {@link trainingSet}. */
export function trainingRows(db: Db): LabelRow[] {
  return trainingSet(db).rows;
}
