import fs from 'node:fs';
import {
  IMPORT_FIELDS,
  type ImportField,
  type ImportPreview,
  type ImportPreviewRow,
  type ImportResults,
  type RowIssue,
} from '../contract/import.ts';
import type { ParsedParams } from '../contract/index.ts';
import type { Handlers } from './types.ts';
import type { Engine } from '../../engine.ts';
import { noImageColumn, parseManifest, readFolder, renamer, type ReadRows } from '../../import/manifest.ts';
import { groupRows, imagesRootOf, imageRef, missingFileReason } from '../../import/import-job.ts';
import { importSource } from '../../import/import-kind.ts';

const MAX_PROBLEMS = 50;

// The manifest, the folder and the images root go through the engine's path policy
// (api/path-policy.ts) before anything is read; the rows are read by the importer's own reader
// (import/manifest.ts) and checked by its own rules (import/import-job.ts), so the preview says
// what the import job would do.
export const importHandlers: Handlers<keyof ImportResults> = {
  'import.preview': (p, e) => preview(p, e),
};

const isField = (name: string): name is ImportField => (IMPORT_FIELDS as readonly string[]).includes(name);

/** The field a column fills when it is not mapped: its name, lower-cased, with runs of other characters as `_` (`Listing ID` -> listing_id). */
export function suggestField(column: string): ImportField | 'metadata' {
  const n = column
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return isField(n) ? n : 'metadata';
}

async function preview(p: ParsedParams<'import.preview'>, e: Engine): Promise<ImportPreview> {
  const input = e.paths.readable((p.manifest ?? p.folder)!);
  const root = p.imagesRoot
    ? e.paths.readable(p.imagesRoot).given
    : imagesRootOf({ manifest: p.manifest && input.given, folder: input.given });
  let format: ImportPreview['format'];
  let raw: ReadRows;
  let mapped: ReadRows;
  if (p.manifest) {
    const parsed = parseManifest(input.real, {});
    format = parsed.format;
    raw = parsed;
    mapped = Object.keys(p.map).length ? parseManifest(input.real, p.map) : parsed;
  } else {
    format = 'folder';
    raw = mapped = await readFolder(input.real, { pattern: p.pattern, classAs: p.classAs });
  }
  const rename = p.manifest ? renamer(p.map) : (c: string) => c;
  const columns = raw.columns.map((name) => {
    const to = rename(name);
    return {
      name,
      field: isField(to) ? to : ('metadata' as const),
      suggested: p.manifest ? suggestField(name) : isField(name) ? name : 'metadata',
    };
  });
  const error = mapped.columns.includes('image') ? null : noImageColumn(input.given, p.map, mapped.columns);
  const { issues } = groupRows(mapped, p);
  const issueOf = new Map<string, RowIssue>(issues.map((i) => [`${i.line}\0${i.where}`, i]));
  const rows = mapped.rows.slice(0, p.rows).map((row, i): ImportPreviewRow => {
    const fields: ImportPreviewRow['fields'] = {};
    for (const [k, v] of Object.entries(row.fields)) if (isField(k)) fields[k] = v;
    const ref = (row.fields.image ?? '').trim();
    let issue = issueOf.get(`${row.line}\0${row.where}`) ?? null;
    const at = (category: string, reason: string): RowIssue => ({ line: row.line, where: row.where, category, reason });
    let image: ImportPreviewRow['image'] = { ref, resolved: null, kind: 'none', exists: null };
    if (ref) {
      const target = imageRef(root, ref);
      if (target.kind === 'url') image = { ref, resolved: ref, kind: 'url', exists: null };
      else if (target.kind === 'unsupported') {
        image = { ref, resolved: ref, kind: 'url', exists: null };
        issue ??= at('unsupported image', `image ${ref}: only file paths and http(s) URLs can be imported`);
      } else {
        const exists = readableFile(e, target.file);
        image = { ref, resolved: target.file, kind: 'file', exists };
        // a file outside the folders the studio may read looks missing here, as the path policy wants
        if (!exists) issue ??= at('missing file', `${missingFileReason(target.file)} (or is outside the folders this studio may read)`);
      }
    }
    return { line: row.line, where: row.where, cells: raw.rows[i]?.fields ?? {}, fields, image, error: issue };
  });
  // groupRows lists the rows refused while reading first
  const problems = issues.slice(0, mapped.problems.length);
  return {
    format,
    source: importSource({ manifest: p.manifest && input.given, folder: input.given }),
    input: input.given,
    imagesRoot: root,
    columns,
    rows,
    totalRows: mapped.rows.length + mapped.problems.length,
    problems: problems.slice(0, MAX_PROBLEMS),
    problemCount: problems.length,
    error,
  };
}

function readableFile(e: Engine, file: string): boolean {
  try {
    return fs.statSync(e.paths.readable(file).real).isFile();
  } catch {
    return false;
  }
}
