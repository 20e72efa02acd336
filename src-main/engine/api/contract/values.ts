import { z } from 'zod';

// ---- Value ranges: the sanity ranges of a listing's price, year and odometer ----
// (plain data; the renderer imports this file, so no Node imports here)

export const VALUE_FIELDS = ['price', 'year', 'odometer'] as const;
export type ValueField = (typeof VALUE_FIELDS)[number];

/** Inclusive bounds: price in dollars, year as a model year, odometer in miles. */
export interface ValueRange {
  min: number;
  max: number;
}
export type ValueRanges = Record<ValueField, ValueRange>;

/**
 * Why a scraped value was stored as NULL. Stored with the listing (`listings.warnings`, a JSON
 * array of these) and counted in stats.
 */
export interface ValueWarning {
  field: ValueField;
  /** The value as the page had it (JSON text, cut to 80 characters). */
  value: string;
  problem: 'out of range' | 'unparsable';
  message: string;
}

export interface ValueRangesInfo {
  /** The ranges in effect: the workspace's saved ranges, defaults for the rest. */
  ranges: ValueRanges;
  defaults: ValueRanges;
  /** Which fields have a saved range (meta key `value_ranges`). */
  saved: ValueField[];
}

export interface ValueStats {
  ranges: ValueRanges;
  /** Listings stored with at least one value warning. */
  listingsWithWarnings: number;
  /** Values stored as NULL by the sanity check, per field. */
  nulled: Record<ValueField, number>;
  /** Stored values outside the ranges in effect now (older databases, or ranges narrowed since). */
  outOfRange: Record<ValueField, number>;
}

// ---- Requests ----

const range = z.object({ min: z.number().finite(), max: z.number().finite() });

export const valuesMethods = {
  'values.ranges': z.object({}),
  /** Saves ranges for the fields named; `null` restores a field's default. Others stay as they are. */
  'values.setRanges': z.object({
    price: range.nullable().optional(),
    year: range.nullable().optional(),
    odometer: range.nullable().optional(),
  }),
} as const;

export interface ValuesResults {
  'values.ranges': ValueRangesInfo;
  'values.setRanges': ValueRangesInfo;
}
