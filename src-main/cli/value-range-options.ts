import { Option } from 'commander';
import type { Db } from '../engine/workspace/db.ts';
import { defaultValueRanges, formatRange, rangeArg, readValueRanges, saveValueRanges } from '../engine/workspace/value-ranges.ts';
import { VALUE_FIELDS, type ValueField, type ValueRange, type ValueRangesInfo } from '../engine/api/contract/values.ts';

/** A parsed range option; 'default' restores the default (commander turns a null from a parser into ''). */
export interface RangeOpts {
  priceRange?: ValueRange | 'default';
  yearRange?: ValueRange | 'default';
  odometerRange?: ValueRange | 'default';
}

const OPT: Record<ValueField, keyof RangeOpts> = { price: 'priceRange', year: 'yearRange', odometer: 'odometerRange' };
const UNIT: Record<ValueField, string> = { price: 'dollars', year: 'model years', odometer: 'miles' };

/** --price-range, --year-range or --odometer-range: MIN-MAX or 'default'; saved in the workspace. */
export function rangeOption(f: ValueField): Option {
  return new Option(
    `--${f}-range <min-max>`,
    `believable ${f}s in ${UNIT[f]} (default ${formatRange(f, defaultValueRanges()[f])}; 'default' restores it), saved in the workspace for later scrapes and training; others are stored as NULL with a warning`,
  ).argParser((text: string): ValueRange | 'default' => rangeArg(f)(text) ?? 'default');
}

/** Saves the ranges given on the command line (if any) and says on stderr which are in effect. */
export function applyRangeOptions(db: Db, opts: RangeOpts): ValueRangesInfo {
  const changes: Partial<Record<ValueField, ValueRange | null>> = {};
  for (const f of VALUE_FIELDS) {
    const v = opts[OPT[f]];
    if (v !== undefined) changes[f] = v === 'default' ? null : v;
  }
  if (Object.keys(changes).length === 0) return readValueRanges(db);
  const info = saveValueRanges(db, changes);
  process.stderr.write(`value ranges saved in the workspace: ${describeRanges(info)}\n`);
  return info;
}

export function describeRanges(info: ValueRangesInfo): string {
  return VALUE_FIELDS.map((f) => `${f} ${formatRange(f, info.ranges[f])}${info.saved.includes(f) ? '' : ' (default)'}`).join(', ');
}
