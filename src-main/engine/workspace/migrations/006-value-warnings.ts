import type { Migration } from './index.ts';

/**
 * Why a listing's price, year or odometer was stored as NULL: a JSON array of value warnings
 * (field, the value as the page had it, out of range or unparsable, message), NULL when none.
 * See workspace/value-ranges.ts. Listings scraped before this column have none; training checks
 * their stored prices against the ranges as it reads them.
 */
export const migration006: Migration = {
  version: 6,
  name: 'value-warnings',
  sql: `
    ALTER TABLE listings ADD COLUMN warnings TEXT;
    CREATE INDEX listings_with_warnings ON listings(id) WHERE warnings IS NOT NULL;
  `,
};
