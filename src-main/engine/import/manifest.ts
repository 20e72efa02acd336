import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import { walkImages } from '../predict/decode-file.ts';

/** One row of a dataset to import: one image, with the values of its listing. */
export interface ImportRow {
  /** Line of the manifest the row starts on (1 = the header of a CSV); 0 for a folder's files. */
  line: number;
  /** Where the row came from, for messages: `line 7` or the file's path in the folder. */
  where: string;
  fields: Record<string, string>;
}

/** A row that cannot be imported, found while reading (a JSON Lines line that is not an object, ...). */
export interface ReadProblem {
  line: number;
  where: string;
  reason: string;
}

export interface ReadRows {
  rows: ImportRow[];
  problems: ReadProblem[];
  /** Columns of the manifest (after --map), in order of first appearance. */
  columns: string[];
}

/**
 * A small RFC 4180 reader (no CSV package is installed, and this is all a manifest needs): fields
 * separated by commas, optionally quoted with `"` (a quote inside written `""`, commas and line
 * breaks allowed inside quotes), lines ended by LF or CRLF, a leading BOM ignored. Returns each
 * record with the line it starts on. An unterminated quote is an error naming its line.
 */
export function parseCsv(text: string): Array<{ line: number; cells: string[] }> {
  const out: Array<{ line: number; cells: string[] }> = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let cells: string[] = [];
  let cell = '';
  let start = 1;
  let quoted = false;
  let quoteLine = 0;
  let any = false; // the record has content (a blank line is no record)
  const endRecord = (): void => {
    cells.push(cell);
    if (any || cells.length > 1) out.push({ line: start, cells });
    cells = [];
    cell = '';
    any = false;
  };
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        cell += c;
      }
      continue;
    }
    if (!any && cells.length === 0 && cell === '') start = line;
    if (c === '"') {
      quoted = true;
      quoteLine = line;
      any = true;
    } else if (c === ',') {
      cells.push(cell);
      cell = '';
      any = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
    } else {
      cell += c;
      any = true;
    }
  }
  if (quoted)
    throw new UserError(
      `the CSV has a quote opened on line ${quoteLine} that is never closed; close it (a quote inside a quoted field is written "")`,
    );
  if (any || cells.length > 0 || cell !== '') endRecord();
  return out;
}

/** `--map image=file,price=Price_USD`: field <- column. */
export function parseMap(text: string | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  if (!text) return map;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const m = /^\s*([A-Za-z_][\w]*)\s*=\s*(.+?)\s*$/.exec(part);
    if (!m) throw new UserError(`--map entry '${part}' is not field=column (e.g. --map image=file,price=Price_USD)`);
    map[m[1]!] = m[2]!;
  }
  return map;
}

/** Column name -> field name: the --map renames, other columns keep their (trimmed) names. */
export function renamer(map: Record<string, string>): (column: string) => string {
  const byColumn = new Map(Object.entries(map).map(([field, column]) => [column, field]));
  return (column) => byColumn.get(column.trim()) ?? byColumn.get(column) ?? column.trim();
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Reads a CSV (header row) or JSON Lines manifest (`.jsonl`/`.ndjson`, or content starting with `{`). */
export function readManifest(file: string, map: Record<string, string>): ReadRows {
  const read = parseManifest(file, map);
  if (!read.columns.includes('image')) throw new UserError(noImageColumn(file, map, read.columns));
  return { rows: read.rows, problems: read.problems, columns: read.columns };
}

/** Why a manifest whose columns (after the map) have no `image` cannot be imported. */
export function noImageColumn(file: string, map: Record<string, string>, columns: string[]): string {
  const mapped = map.image ? ` (--map image=${map.image} names a column the manifest lacks)` : '';
  return `manifest ${file} has no 'image' column${mapped}; its columns are: ${columns.join(', ') || 'none'}. Name the image column with --map image=<column>`;
}

/**
 * The rows of a manifest as readManifest reads them, without requiring an `image` column (the
 * Import panel's preview shows a manifest before its columns are mapped), and which format it is.
 */
export function parseManifest(file: string, map: Record<string, string>): ReadRows & { format: 'csv' | 'jsonl' } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `manifest ${file} does not exist` : `cannot read manifest ${file}: ${(e as Error).message}`);
  }
  const rename = renamer(map);
  const jsonl = /\.(jsonl|ndjson)$/i.test(file) || /^\uFEFF?\s*\{/.test(text);
  const rows: ImportRow[] = [];
  const problems: ReadProblem[] = [];
  const columns: string[] = [];
  const seen = new Set<string>();
  const addColumn = (c: string): void => {
    if (!seen.has(c)) {
      seen.add(c);
      columns.push(c);
    }
  };
  if (jsonl) {
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = i + 1;
      if (raw.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch (e) {
        problems.push({ line, where: `line ${line}`, reason: `not valid JSON: ${(e as Error).message}` });
        return;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        problems.push({
          line,
          where: `line ${line}`,
          reason: 'not a JSON object (each line must be one object, e.g. {"image": "a.jpg", "price": 12000})',
        });
        return;
      }
      const fields: Record<string, string> = {};
      for (const [k, val] of Object.entries(v)) {
        const f = rename(k);
        addColumn(f);
        fields[f] = cellText(val);
      }
      rows.push({ line, where: `line ${line}`, fields });
    });
  } else {
    const records = parseCsv(text);
    if (records.length === 0)
      throw new UserError(`manifest ${file} is empty; it needs a header row (e.g. image,price,make,model,year) and one row per image`);
    const header = records[0]!.cells.map(rename);
    header.forEach(addColumn);
    for (const r of records.slice(1)) {
      if (r.cells.length > header.length) {
        problems.push({
          line: r.line,
          where: `line ${r.line}`,
          reason: `${r.cells.length} fields but the header has ${header.length} (a comma inside a value needs quotes)`,
        });
        continue;
      }
      const fields: Record<string, string> = {};
      header.forEach((h, i) => (fields[h] = r.cells[i] ?? ''));
      rows.push({ line: r.line, where: `line ${r.line}`, fields });
    }
  }
  return { rows, problems, columns, format: jsonl ? 'jsonl' : 'csv' };
}

/** The fields a class folder's name carries with --as (make_model: `Audi_A3`). */
export const CLASS_FIELDS = ['make', 'model', 'year'] as const;

export function parseAs(text: string): string[] {
  const fields = text.split(/[_,+]/).filter(Boolean);
  for (const f of fields)
    if (!(CLASS_FIELDS as readonly string[]).includes(f))
      throw new UserError(
        `--as ${text}: '${f}' is not one of ${CLASS_FIELDS.join(', ')} (e.g. --as make_model, --as make, --as make_model_year)`,
      );
  if (fields.length === 0 || new Set(fields).size !== fields.length)
    throw new UserError(`--as ${text}: name each of ${CLASS_FIELDS.join(', ')} at most once, joined by _ (e.g. make_model)`);
  return fields;
}

/**
 * `{make}_{model}_{year}_*` as a regular expression over a file's name without its extension:
 * `{field}` matches as few characters as it can, possibly none (an empty label is no label; `{year}` is four digits), `*` anything.
 */
export function patternRegex(pattern: string): { re: RegExp; fields: string[] } {
  const fields: string[] = [];
  let src = '';
  const re = /\{([A-Za-z_]\w*)\}|\*|[^{*]+|\{/g;
  for (const m of pattern.matchAll(re)) {
    if (m[1]) {
      if (fields.includes(m[1])) throw new UserError(`--pattern ${pattern} names {${m[1]}} twice`);
      fields.push(m[1]);
      src += m[1] === 'year' ? '(\\d{4})' : '(.*?)';
    } else if (m[0] === '*') src += '.*';
    else src += m[0].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  if (fields.length === 0) throw new UserError(`--pattern ${pattern} names no field; write e.g. '{make}_{model}_{year}_*'`);
  return { re: new RegExp(`^${src}$`), fields };
}

/** The rows of a labelled folder: by file-name pattern, or one sub-folder per class. */
export async function readFolder(folder: string, opts: { pattern?: string; classAs?: string[] }): Promise<ReadRows> {
  const st = fs.statSync(folder, { throwIfNoEntry: false });
  if (!st) throw new UserError(`folder ${folder} does not exist`);
  if (!st.isDirectory()) throw new UserError(`${folder} is not a folder`);
  const walk = await walkImages(folder);
  const rows: ImportRow[] = [];
  const problems: ReadProblem[] = [];
  const rel = (f: string): string => path.relative(folder, f).split(path.sep).join('/');
  for (const f of walk.others) problems.push({ line: 0, where: rel(f), reason: 'not an image type (by its extension)' });
  const pat = opts.pattern ? patternRegex(opts.pattern) : null;
  for (const file of walk.files) {
    const r = rel(file);
    const fields: Record<string, string> = { image: r };
    if (pat) {
      const m = pat.re.exec(path.basename(file, path.extname(file)));
      if (!m) {
        problems.push({ line: 0, where: r, reason: `file name does not match --pattern ${opts.pattern}` });
        continue;
      }
      pat.fields.forEach((f, i) => (fields[f] = m[i + 1]!));
    } else if (opts.classAs) {
      const parts = r.split('/');
      if (parts.length < 2) {
        problems.push({
          line: 0,
          where: r,
          reason: 'not in a class sub-folder (with --class-from folder each class is a sub-folder of --folder)',
        });
        continue;
      }
      Object.assign(fields, classFields(parts[0]!, opts.classAs));
    }
    rows.push({ line: 0, where: r, fields });
  }
  rows.sort((a, b) => (a.where < b.where ? -1 : a.where > b.where ? 1 : 0));
  return { rows, problems, columns: ['image', ...(pat?.fields ?? opts.classAs ?? [])] };
}

/**
 * A class folder's name split into the --as fields at `_` (or spaces when it has no `_`): one part
 * per field, and the model takes whatever is left over (`Land Rover_Range Rover Sport` as
 * make_model). With one field the whole name is that field.
 */
export function classFields(name: string, fields: string[]): Record<string, string> {
  if (fields.length === 1) return { [fields[0]!]: name };
  const sep = name.includes('_') ? '_' : ' ';
  const parts = name.split(sep);
  const out: Record<string, string> = {};
  const extra = Math.max(0, parts.length - fields.length);
  const wide = fields.includes('model') ? 'model' : fields[fields.length - 1]!;
  let i = 0;
  for (const f of fields) {
    const n = f === wide ? 1 + extra : 1;
    out[f] = parts.slice(i, i + n).join(sep);
    i += n;
  }
  return out;
}
