import { z } from 'zod';

// ---- Import: a manifest (CSV / JSON Lines) or a labelled folder previewed before the `import` job ----
// (plain data; the renderer imports this file, so no Node imports here)

/** The fields an import row can fill; every other column is kept as the listing's metadata. */
export const IMPORT_FIELDS = ['image', 'listing_id', 'price', 'make', 'model', 'year', 'odometer', 'title', 'url'] as const;
export type ImportField = (typeof IMPORT_FIELDS)[number];

/** A row that was not imported (skipped) or imported with a value set to NULL (warning). */
export interface RowIssue {
  /** Manifest line (0 for a folder's files). */
  line: number;
  where: string;
  /** Short category, counted in the summary: `missing file`, `not an image`, `duplicate row`, ... */
  category: string;
  reason: string;
}

/** The `import` job's result. */
export interface ImportSummary {
  source: string;
  rowsRead: number;
  rowsImported: number;
  rowsSkipped: number;
  skippedByReason: Record<string, number>;
  /** Listings of this source in the workspace after the import, and those this import added. */
  listings: number;
  listingsAdded: number;
  /** Images the import stored (new content) and the images its listings hold in all. */
  imagesAdded: number;
  images: number;
  errors: RowIssue[];
  warnings: RowIssue[];
}

/** One previewed row: its raw cells, the fields the importer would read from it, and its image. */
export interface ImportPreviewRow {
  line: number;
  where: string;
  /** The row's cells by the manifest's own column names (before the map). */
  cells: Record<string, string>;
  /** The row's import fields after the map (metadata columns left out). */
  fields: Partial<Record<ImportField, string>>;
  image: {
    /** The image cell as written (empty when the row has none). */
    ref: string;
    /** The file it resolves to (against the images root), or the URL; null when the row has no image. */
    resolved: string | null;
    kind: 'file' | 'url' | 'none';
    /** Whether the file is there (and readable by this studio); null for a URL or no image. */
    exists: boolean | null;
  };
  /** Why the importer would skip the row, as its summary would say; null when it would import it. */
  error: RowIssue | null;
}

export interface ImportPreview {
  format: 'csv' | 'jsonl' | 'folder';
  /** The source the imported listings get: `import:<manifest or folder name>`. */
  source: string;
  /** The manifest or folder, resolved. */
  input: string;
  /** Where relative image paths resolve (the images root, else the manifest's folder, or the folder). */
  imagesRoot: string;
  /** Each column of the manifest, in order, and the field it fills under the map (`metadata` for none). */
  columns: Array<{ name: string; field: ImportField | 'metadata'; suggested: ImportField | 'metadata' }>;
  /** The first rows, in manifest order. */
  rows: ImportPreviewRow[];
  /** Rows the importer would read in all (records of a manifest, files of a folder); what its summary calls rows read. */
  totalRows: number;
  /** Rows refused while reading (malformed lines, files without labels), in order; the first 50. */
  problems: RowIssue[];
  problemCount: number;
  /** Set when the import would be refused as a whole (no image column under this map); else null. */
  error: string | null;
}

// ---- Requests ----

export const importMethods = {
  'import.preview': z
    .object({
      manifest: z.string().min(1).optional(),
      folder: z.string().min(1).optional(),
      pattern: z.string().min(1).optional(),
      classAs: z.array(z.enum(['make', 'model', 'year'])).optional(),
      imagesRoot: z.string().min(1).optional(),
      /** field -> manifest column, as the import job's `map`. */
      map: z.record(z.string()).default({}),
      rows: z.number().int().positive().max(500).default(10),
    })
    .refine((p) => (p.manifest ? !p.folder : !!p.folder), 'name either a manifest or a folder')
    .refine((p) => !p.folder || !!p.pattern !== !!p.classAs, 'a folder import needs either a pattern or class folders'),
} as const;

export interface ImportResults {
  'import.preview': ImportPreview;
}
