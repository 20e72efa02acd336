import type { Migration } from './index.ts';

/**
 * Dedup: hashes stored with each image, the current duplicate groups, the user's overrides and
 * the images excluded from training (see docs/ARCHITECTURE.md, "Dedup").
 */
export const migration002: Migration = {
  version: 2,
  name: 'dedup',
  sql: `
    -- exact_hash: the original pipeline's hash (64 hex); phash: 64-bit DCT pHash (16 hex);
    -- thumb: 8x8 RGB colour thumbnail (192 bytes) that verifies near pairs; hash_error: why the
    -- stored file could not be hashed (then the other three are NULL and dedup skips it).
    ALTER TABLE images ADD COLUMN exact_hash TEXT;
    ALTER TABLE images ADD COLUMN phash TEXT;
    ALTER TABLE images ADD COLUMN thumb BLOB;
    ALTER TABLE images ADD COLUMN hash_error TEXT;
    CREATE INDEX images_exact_hash ON images(exact_hash) WHERE exact_hash IS NOT NULL;
    CREATE INDEX images_phash ON images(phash) WHERE phash IS NOT NULL;
    -- the backlog the dedup job hashes
    CREATE INDEX images_unhashed ON images(id) WHERE state = 'stored' AND exact_hash IS NULL AND hash_error IS NULL;

    -- The current grouping (replaced by every dedup run). key: the group's identity across runs
    -- (the exact hash of its lowest-id member), which is what an override is attached to.
    CREATE TABLE dup_groups (
      id INTEGER PRIMARY KEY,
      method TEXT NOT NULL CHECK (method IN ('exact','near')),
      key TEXT NOT NULL UNIQUE,
      size INTEGER NOT NULL,
      listings INTEGER NOT NULL,
      max_distance INTEGER NOT NULL
    );
    CREATE INDEX dup_groups_size ON dup_groups(size DESC, id);

    -- distance: pHash distance to the group's lowest-id member (0 for exact groups).
    CREATE TABLE dup_members (
      group_id INTEGER NOT NULL REFERENCES dup_groups(id) ON DELETE CASCADE,
      image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
      distance INTEGER NOT NULL,
      PRIMARY KEY (image_id)
    ) WITHOUT ROWID;
    CREATE INDEX dup_members_group ON dup_members(group_id, image_id);

    -- Verified near-duplicate pairs (a < b) up to the run's max distance: the slider counts
    -- components per distance from these without touching the hashes again.
    CREATE TABLE dup_pairs (
      a INTEGER NOT NULL,
      b INTEGER NOT NULL,
      distance INTEGER NOT NULL,
      PRIMARY KEY (a, b)
    ) WITHOUT ROWID;

    -- The user's decision on a group, kept across re-runs: keep = none of its images excluded,
    -- drop = all of them excluded.
    CREATE TABLE dup_overrides (
      key TEXT PRIMARY KEY,
      action TEXT NOT NULL CHECK (action IN ('keep','drop')),
      at INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Images the policy (and overrides) exclude from training; rewritten by every dedup run.
    CREATE TABLE dup_excluded (
      image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
      group_id INTEGER REFERENCES dup_groups(id) ON DELETE SET NULL,
      reason TEXT NOT NULL
    );

    -- What training reads: stored, decodable images that dedup did not exclude.
    CREATE VIEW usable_images AS
      SELECT i.* FROM images i
      WHERE i.state = 'stored' AND i.hash_error IS NULL
        AND NOT EXISTS (SELECT 1 FROM dup_excluded x WHERE x.image_id = i.id);
  `,
};
