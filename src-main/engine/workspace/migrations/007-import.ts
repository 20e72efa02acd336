import type { Migration } from './index.ts';

/**
 * Imported datasets (engine/import): a listing's id in its manifest (`external_id`; scraped
 * listings have none), the manifest's other columns (`metadata`, a JSON object), and the import
 * job that first added a listing or an image (`import_job`), which lets a resumed import report
 * what it added whether or not it was killed on the way.
 */
export const migration007: Migration = {
  version: 7,
  name: 'import',
  sql: `
    ALTER TABLE listings ADD COLUMN external_id TEXT;
    ALTER TABLE listings ADD COLUMN metadata TEXT;
    ALTER TABLE listings ADD COLUMN import_job INTEGER;
    ALTER TABLE images ADD COLUMN import_job INTEGER;
    CREATE INDEX listings_source ON listings(source);
  `,
};
