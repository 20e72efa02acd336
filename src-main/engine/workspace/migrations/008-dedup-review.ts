import type { Migration } from './index.ts';

/**
 * Dedup review: each group's representative (the copy the default policy keeps, its best copy)
 * and the user's keep/drop decision on single photos (see docs/ARCHITECTURE.md, "Dedup").
 */
export const migration008: Migration = {
  version: 8,
  name: 'dedup-review',
  sql: `
    -- The group's best copy (largest, then most bytes); NULL for groups written before this
    -- migration, read as the lowest-id member until the next dedup run.
    ALTER TABLE dup_groups ADD COLUMN representative INTEGER;

    -- The user's decision on one photo, kept across re-runs and applied while the photo is in a
    -- duplicate group: keep = not excluded, drop = excluded. Wins over the group's override.
    CREATE TABLE dup_decisions (
      image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
      action TEXT NOT NULL CHECK (action IN ('keep','drop')),
      at INTEGER NOT NULL
    );
  `,
};
