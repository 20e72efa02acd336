import type { Db } from '../workspace/db.ts';
import type { ScrapedListing } from './source.ts';
import type { StoredHashes } from './image-ingest.ts';
import type { ValueWarning } from '../api/contract/values.ts';
import { checkValues, readValueRanges } from '../workspace/value-ranges.ts';

export type ImageOutcome =
  | { key: string; url: string; state: 'stored'; width: number; height: number; bytes: number; hashes?: StoredHashes }
  | { key: string; url: string; state: 'reused' }
  | { key: string; url: string; state: 'failed'; reason: string };

export interface Ledger {
  /** True when the id has an ok or gone record (never asked for again). */
  isFinal(id: number): boolean;
  countFinalInRange(min: number, max: number): number;
  recordAttempt(id: number, outcome: 'ok' | 'gone' | 'failed', status: number | null, reason: string | null, tries: number): void;
  imageState(key: string): 'pending' | 'stored' | 'failed' | null;
  /**
   * Listing + its image rows + its ok attempt, in one transaction. Price, year and odometer
   * outside the workspace's value ranges (read when the ledger is opened), or unparsable, are
   * stored as NULL; the warnings are stored with the listing and returned.
   */
  commitListing(id: number, listing: ScrapedListing, images: ImageOutcome[], tries: number): ValueWarning[];
  updateImage(outcome: ImageOutcome): void;
  imagesToRetry(maxRuns: number): Array<{ key: string; url: string }>;
}

/** The scrape's SQL: one source's ledger of attempts, its listings and their images. */
export function openLedger(db: Db, source: string): Ledger {
  const { ranges } = readValueRanges(db);
  const final = db.prepare(`SELECT 1 FROM attempts WHERE source = ? AND listing_id = ? AND outcome != 'failed'`).pluck();
  const countFinal = db.prepare(`SELECT COUNT(*) FROM attempts WHERE source = ? AND listing_id BETWEEN ? AND ? AND outcome != 'failed'`).pluck();
  const upsertAttempt = db.prepare(
    `INSERT INTO attempts (source, listing_id, outcome, http_status, reason, tries, at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (source, listing_id) DO UPDATE SET outcome = excluded.outcome, http_status = excluded.http_status,
       reason = excluded.reason, tries = excluded.tries, at = excluded.at`,
  );
  const imgState = db.prepare(`SELECT state FROM images WHERE key = ?`).pluck();
  const upsertListing = db.prepare(
    `INSERT INTO listings (source, listing_id, url, title, price, make, model, year, odometer, engine, exterior_color,
       interior_color, drive_type, fuel_type, fuel_economy, vin, stock_number, description, owners, scraped_at, warnings)
     VALUES (@source, @listingId, @url, @title, @price, @make, @model, @year, @odometer, @engine, @exteriorColor,
       @interiorColor, @driveType, @fuelType, @fuelEconomy, @vin, @stockNumber, @description, @owners, @scrapedAt, @warnings)
     ON CONFLICT (source, listing_id) DO UPDATE SET url = excluded.url, title = excluded.title, price = excluded.price,
       make = excluded.make, model = excluded.model, year = excluded.year, odometer = excluded.odometer, engine = excluded.engine,
       exterior_color = excluded.exterior_color, interior_color = excluded.interior_color, drive_type = excluded.drive_type,
       fuel_type = excluded.fuel_type, fuel_economy = excluded.fuel_economy, vin = excluded.vin, stock_number = excluded.stock_number,
       description = excluded.description, owners = excluded.owners, scraped_at = excluded.scraped_at, warnings = excluded.warnings
     RETURNING id`,
  );
  // A stored image is never downgraded by a later failure of the same URL.
  const upsertImage = db.prepare(
    `INSERT INTO images (key, url, state, width, height, bytes, fail_reason, tries, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
     ON CONFLICT (key) DO UPDATE SET
       state = CASE WHEN images.state = 'stored' THEN 'stored' ELSE excluded.state END,
       width = CASE WHEN images.state = 'stored' THEN images.width ELSE excluded.width END,
       height = CASE WHEN images.state = 'stored' THEN images.height ELSE excluded.height END,
       bytes = CASE WHEN images.state = 'stored' THEN images.bytes ELSE excluded.bytes END,
       fail_reason = CASE WHEN images.state = 'stored' THEN NULL ELSE excluded.fail_reason END,
       tries = images.tries + 1,
       updated_at = excluded.updated_at
     RETURNING id`,
  );
  const imageId = db.prepare(`SELECT id FROM images WHERE key = ?`).pluck();
  // Dedup hashes of the stored file, written with the image row (a newly stored file replaces them).
  const setHashes = db.prepare(`UPDATE images SET exact_hash = ?, phash = ?, thumb = ?, hash_error = ? WHERE id = ?`);
  const clearListingImages = db.prepare(`DELETE FROM listing_images WHERE listing_rowid = ?`);
  const addListingImage = db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, ?, ?)`);
  const retry = db.prepare(
    `SELECT key, url FROM images WHERE state IN ('failed','pending') AND tries < ?
       AND EXISTS (SELECT 1 FROM listing_images li WHERE li.image_id = images.id) ORDER BY id`,
  );

  const writeImage = (o: ImageOutcome, now: number): number => {
    if (o.state === 'reused') return imageId.get(o.key) as number;
    if (o.state === 'stored') {
      const id = (upsertImage.get(o.key, o.url, 'stored', o.width, o.height, o.bytes, null, now) as { id: number }).id;
      const h = o.hashes;
      if (h) {
        if ('error' in h) setHashes.run(null, null, null, h.error, id);
        else setHashes.run(h.exact, h.phash, h.thumb, null, id);
      }
      return id;
    }
    return (upsertImage.get(o.key, o.url, 'failed', null, null, null, o.reason, now) as { id: number }).id;
  };

  const commit = db.transaction((id: number, l: ScrapedListing, images: ImageOutcome[], tries: number): ValueWarning[] => {
    const now = Date.now();
    const { values, warnings } = checkValues({ price: l.price, year: l.year, odometer: l.odometer }, l.rawValues, ranges);
    const row = upsertListing.get({
      source,
      listingId: id,
      url: l.url,
      title: l.title,
      price: values.price,
      make: l.make,
      model: l.model,
      year: values.year,
      odometer: values.odometer,
      engine: l.engine,
      exteriorColor: l.exteriorColor,
      interiorColor: l.interiorColor,
      driveType: l.driveType,
      fuelType: l.fuelType,
      fuelEconomy: JSON.stringify(l.fuelEconomy ?? []),
      vin: l.vin,
      stockNumber: l.stockNumber,
      description: l.description,
      owners: JSON.stringify(l.owners ?? []),
      scrapedAt: now,
      warnings: warnings.length ? JSON.stringify(warnings) : null,
    }) as { id: number };
    clearListingImages.run(row.id);
    images.forEach((o, pos) => addListingImage.run(row.id, pos, writeImage(o, now)));
    upsertAttempt.run(source, id, 'ok', 200, null, tries, now);
    return warnings;
  });

  return {
    isFinal: (id) => final.get(source, id) !== undefined,
    countFinalInRange: (min, max) => countFinal.get(source, min, max) as number,
    recordAttempt: (id, outcome, status, reason, tries) => void upsertAttempt.run(source, id, outcome, status, reason, tries, Date.now()),
    imageState: (key) => (imgState.get(key) as 'pending' | 'stored' | 'failed' | undefined) ?? null,
    commitListing: (id, listing, images, tries) => commit(id, listing, images, tries),
    updateImage: (o) => void writeImage(o, Date.now()),
    imagesToRetry: (maxRuns) => retry.all(maxRuns) as Array<{ key: string; url: string }>,
  };
}
