/**
 * Sanity ranges of a listing's price, year and odometer: the one place that says which values
 * are believable. The scrape stores a value outside its range (or one it cannot read) as NULL
 * with a warning on the listing; training drops listings whose stored price is outside the range
 * (older databases hold unchecked values). Defaults below; a workspace may save its own ranges
 * (meta key `value_ranges`, set with `carstudio ranges --price-range MIN-MAX` etc. or the API's
 * `values.setRanges`), which every later scrape and training run uses.
 */
import type { Db } from './db.ts';
import { UserError } from './errors.ts';
import { VALUE_FIELDS, type ValueField, type ValueRange, type ValueRanges, type ValueRangesInfo, type ValueStats, type ValueWarning } from '../api/contract/values.ts';

export const VALUE_RANGES_META_KEY = 'value_ranges';

/** The first car (Benz, 1886) to next year's models; prices and mileages no real listing exceeds. */
export function defaultValueRanges(now: Date = new Date()): ValueRanges {
  return {
    price: { min: 100, max: 5_000_000 },
    year: { min: 1886, max: now.getFullYear() + 1 },
    odometer: { min: 0, max: 2_000_000 },
  };
}

const FLAG: Record<ValueField, string> = { price: '--price-range', year: '--year-range', odometer: '--odometer-range' };

const int = (n: number): string => n.toLocaleString('en-US');

/** "$100..$5,000,000", "1886..2027", "0..2,000,000 miles". */
export function formatRange(field: ValueField, r: ValueRange): string {
  if (field === 'price') return `$${int(r.min)}..$${int(r.max)}`;
  if (field === 'odometer') return `${int(r.min)}..${int(r.max)} miles`;
  return `${r.min}..${r.max}`;
}

/** Throws a UserError unless r is a usable range for the field. */
export function validateRange(field: ValueField, r: ValueRange, what = `the ${field} range`): ValueRange {
  if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) throw new UserError(`${what} must have finite bounds, got ${r.min}..${r.max}`);
  if (r.min > r.max) throw new UserError(`${what}: the minimum ${r.min} is greater than the maximum ${r.max}`);
  if (field !== 'year' && r.min < 0) throw new UserError(`${what} cannot start below 0 (got ${r.min}): a negative ${field} is never real`);
  if (field === 'year' && (!Number.isInteger(r.min) || !Number.isInteger(r.max))) throw new UserError(`${what} must be whole years, got ${r.min}..${r.max}`);
  return { min: r.min, max: r.max };
}

function savedRanges(db: Db): Partial<ValueRanges> {
  const text = db.prepare(`SELECT value FROM meta WHERE key = ?`).pluck().get(VALUE_RANGES_META_KEY) as string | undefined;
  if (text === undefined) return {};
  const bad = (why: string): UserError =>
    new UserError(`the workspace's saved value ranges (meta '${VALUE_RANGES_META_KEY}') are unusable: ${why}. Save them again, e.g. --price-range default`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('not a JSON object');
  const out: Partial<ValueRanges> = {};
  for (const f of VALUE_FIELDS) {
    const r = (parsed as Record<string, unknown>)[f];
    if (r === undefined) continue;
    const o = r as Partial<ValueRange> | null;
    if (typeof o !== 'object' || o === null || typeof o.min !== 'number' || typeof o.max !== 'number') throw bad(`${f} is not {min, max}`);
    try {
      out[f] = validateRange(f, { min: o.min, max: o.max });
    } catch (e) {
      throw bad((e as Error).message);
    }
  }
  return out;
}

/** The ranges in effect in a workspace: its saved ones, defaults for the rest. */
export function readValueRanges(db: Db): ValueRangesInfo {
  const saved = savedRanges(db);
  const defaults = defaultValueRanges();
  return { ranges: { ...defaults, ...saved }, defaults, saved: VALUE_FIELDS.filter((f) => saved[f] !== undefined) };
}

/** Saves ranges for the fields named (null: back to the default); the others are kept. */
export function saveValueRanges(db: Db, changes: Partial<Record<ValueField, ValueRange | null>>): ValueRangesInfo {
  const write = db.transaction(() => {
    let saved: Partial<ValueRanges>;
    try {
      saved = savedRanges(db);
    } catch {
      saved = {}; // unusable: replaced by what is saved now
    }
    for (const f of VALUE_FIELDS) {
      const c = changes[f];
      if (c === undefined) continue;
      if (c === null) delete saved[f];
      else saved[f] = validateRange(f, c);
    }
    if (Object.keys(saved).length === 0) db.prepare(`DELETE FROM meta WHERE key = ?`).run(VALUE_RANGES_META_KEY);
    else
      db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
        VALUE_RANGES_META_KEY,
        JSON.stringify(saved),
      );
  });
  write.immediate();
  return readValueRanges(db);
}

/**
 * A commander parser for `--price-range MIN-MAX` (also MIN..MAX; `$` and `,` allowed) or
 * `default`, which restores the default (null).
 */
export function rangeArg(field: ValueField): (text: string) => ValueRange | null {
  return (text: string): ValueRange | null => {
    const t = text.trim();
    if (t.toLowerCase() === 'default') return null;
    const m = /^(-?[$\d,_.]+?)\s*(?:\.\.|-)\s*(-?[$\d,_.]+)$/.exec(t);
    const num = (s: string): number => (/\d/.test(s) ? Number(s.replace(/[$,_]/g, '')) : NaN);
    const r = m ? { min: num(m[1]!), max: num(m[2]!) } : null;
    if (!r || !Number.isFinite(r.min) || !Number.isFinite(r.max)) {
      throw new UserError(`${FLAG[field]} must be MIN-MAX (e.g. ${FLAG[field]} ${formatExample(field)}) or 'default', got '${text}'`);
    }
    return validateRange(field, r, FLAG[field]);
  };
}

function formatExample(field: ValueField): string {
  const d = defaultValueRanges()[field];
  return `${d.min}-${d.max}`;
}

export function inRange(value: number, r: ValueRange): boolean {
  return Number.isFinite(value) && value >= r.min && value <= r.max;
}

export type CheckedValues = Record<ValueField, number | null>;

/**
 * Checks parsed values against the ranges. `raw` holds the values as the source had them: a raw
 * value that is present but parsed to null was unparsable. Out-of-range and unparsable values
 * become null, each with a warning.
 */
export function checkValues(parsed: CheckedValues, raw: Partial<Record<ValueField, unknown>> | undefined, ranges: ValueRanges): { values: CheckedValues; warnings: ValueWarning[] } {
  const values: CheckedValues = { ...parsed };
  const warnings: ValueWarning[] = [];
  for (const f of VALUE_FIELDS) {
    const v = parsed[f];
    const r = raw?.[f];
    const shown = present(r) ? show(r) : v == null ? '' : String(v);
    if (v === null || v === undefined) {
      values[f] = null;
      if (present(r)) warnings.push({ field: f, value: shown, problem: 'unparsable', message: `${f} ${shown} is not a valid ${f}; stored as NULL` });
      continue;
    }
    if (!inRange(v, ranges[f])) {
      values[f] = null;
      warnings.push({ field: f, value: shown, problem: 'out of range', message: `${f} ${shown} is outside ${formatRange(f, ranges[f])}; stored as NULL` });
    }
  }
  return { values, warnings };
}

function present(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') return v.trim() !== '';
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Counts for stats: values the check stored as NULL, and stored values outside the ranges now. */
export function valueStats(db: Db): ValueStats {
  const { ranges } = readValueRanges(db);
  const nulled: Record<ValueField, number> = { price: 0, year: 0, odometer: 0 };
  const byField = db
    .prepare(
      `SELECT json_extract(w.value, '$.field') AS field, COUNT(*) AS n
         FROM listings l, json_each(l.warnings) w WHERE l.warnings IS NOT NULL GROUP BY field`,
    )
    .all() as Array<{ field: string; n: number }>;
  for (const r of byField) if ((VALUE_FIELDS as readonly string[]).includes(r.field)) nulled[r.field as ValueField] = r.n;
  const col: Record<ValueField, string> = { price: 'price', year: 'year', odometer: 'odometer' };
  const outOfRange = Object.fromEntries(
    VALUE_FIELDS.map((f) => [
      f,
      db.prepare(`SELECT COUNT(*) FROM listings WHERE ${col[f]} IS NOT NULL AND NOT (typeof(${col[f]}) IN ('integer','real') AND ${col[f]} BETWEEN ? AND ?)`)
        .pluck()
        .get(ranges[f].min, ranges[f].max) as number,
    ]),
  ) as Record<ValueField, number>;
  return {
    ranges,
    listingsWithWarnings: db.prepare(`SELECT COUNT(*) FROM listings WHERE warnings IS NOT NULL`).pluck().get() as number,
    nulled,
    outOfRange,
  };
}
