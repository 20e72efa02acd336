import type { Migration } from './index.ts';

/** Jobs, the scrape ledger, listings and the image table: the tables every stage stands on. */
export const migration001: Migration = {
  version: 1,
  name: 'foundation',
  sql: `
    CREATE TABLE meta (
      key TEXT PRIMARY KEY,
      value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE jobs (
      id INTEGER PRIMARY KEY,
      kind TEXT NOT NULL,
      params TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('queued','running','cancelling','cancelled','done','failed','interrupted')),
      step TEXT,
      done INTEGER NOT NULL DEFAULT 0,
      total INTEGER,
      rate REAL,
      eta_s REAL,
      message TEXT,
      error_name TEXT,
      error_message TEXT,
      checkpoint TEXT,
      result TEXT,
      owner_pid INTEGER,
      heartbeat_at INTEGER,
      resumed_count INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      started_at INTEGER,
      finished_at INTEGER
    );
    CREATE INDEX jobs_state ON jobs(state);

    CREATE TABLE job_log (
      id INTEGER PRIMARY KEY,
      job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
      at INTEGER NOT NULL,
      level TEXT NOT NULL CHECK (level IN ('info','warn','error')),
      message TEXT NOT NULL
    );
    CREATE INDEX job_log_job ON job_log(job_id, id);

    -- The scrape ledger: exactly one row per attempted id, whatever its outcome.
    CREATE TABLE attempts (
      source TEXT NOT NULL,
      listing_id INTEGER NOT NULL,
      outcome TEXT NOT NULL CHECK (outcome IN ('ok','gone','failed')),
      http_status INTEGER,
      reason TEXT,
      tries INTEGER NOT NULL,
      at INTEGER NOT NULL,
      PRIMARY KEY (source, listing_id)
    ) WITHOUT ROWID;
    CREATE INDEX attempts_outcome ON attempts(outcome);

    CREATE TABLE listings (
      id INTEGER PRIMARY KEY,
      source TEXT NOT NULL,
      listing_id INTEGER NOT NULL,
      url TEXT NOT NULL,
      title TEXT,
      price REAL,
      make TEXT,
      model TEXT,
      year INTEGER,
      odometer INTEGER,
      engine TEXT,
      exterior_color TEXT,
      interior_color TEXT,
      drive_type TEXT,
      fuel_type TEXT,
      fuel_economy TEXT,
      vin TEXT,
      stock_number TEXT,
      description TEXT,
      owners TEXT,
      scraped_at INTEGER NOT NULL,
      UNIQUE (source, listing_id)
    );
    CREATE INDEX listings_make_model ON listings(make, model);
    CREATE INDEX listings_year ON listings(year);
    CREATE INDEX listings_price ON listings(price);

    -- One row per distinct image: a scraped URL or an imported file. key names the stored file.
    CREATE TABLE images (
      id INTEGER PRIMARY KEY,
      key TEXT NOT NULL UNIQUE,
      url TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL CHECK (state IN ('pending','stored','failed')),
      width INTEGER,
      height INTEGER,
      bytes INTEGER,
      fail_reason TEXT,
      tries INTEGER NOT NULL DEFAULT 0,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX images_state ON images(state);

    CREATE TABLE listing_images (
      listing_rowid INTEGER NOT NULL REFERENCES listings(id) ON DELETE CASCADE,
      position INTEGER NOT NULL,
      image_id INTEGER NOT NULL REFERENCES images(id),
      PRIMARY KEY (listing_rowid, position)
    ) WITHOUT ROWID;
    CREATE INDEX listing_images_image ON listing_images(image_id);
  `,
};
