import type { Db } from '../workspace/db.ts';
import type { LabelRow } from './labels.ts';

/**
 * The training set: images of the `training_images` view (stored, decodable, not excluded by
 * dedup, kept by the applied filter) whose listing has a price; one row per image.
 */
export function trainingRows(db: Db): LabelRow[] {
  return db
    .prepare(
      `SELECT t.id AS imageId, COALESCE(t.exact_hash, t.key) AS hash, l.price, l.make, l.model, l.year
       FROM training_images t
       JOIN listing_images li ON li.image_id = t.id
       JOIN listings l ON l.id = li.listing_rowid
       WHERE l.price IS NOT NULL AND l.price > 0
       GROUP BY t.id ORDER BY t.id`,
    )
    .all() as LabelRow[];
}
