import path from 'node:path';
import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { addStats } from '../stats.ts';

export const importParams = z
  .object({
    /** Absolute path of a CSV (header row) or JSON Lines manifest. */
    manifest: z.string().optional(),
    /** Relative image paths resolve against this folder (default: the manifest's folder). */
    imagesRoot: z.string().optional(),
    /** field -> manifest column (`--map image=file`). */
    map: z.record(z.string()).default({}),
    /** A labelled folder instead of a manifest. */
    folder: z.string().optional(),
    /** `{make}_{model}_{year}_*`: the labels in each file's name. */
    pattern: z.string().optional(),
    /** One sub-folder per class, its name holding these fields (`['make','model']`). */
    classAs: z.array(z.enum(['make', 'model', 'year'])).optional(),
    resize: z.number().int().min(16).max(4096).default(256),
    /** http(s) images on loopback/private addresses are refused unless this is set. */
    allowPrivateHosts: z.boolean().default(false),
  })
  .refine((p) => (p.manifest ? !p.folder : !!p.folder), 'name either a manifest or a folder')
  .refine((p) => !p.folder || !!p.pattern !== !!p.classAs, 'a folder import needs either a pattern or class folders');
export type ImportParams = z.infer<typeof importParams>;

/** The source name an import's listings carry: `import:<manifest or folder name>`. */
export function importSource(p: Pick<ImportParams, 'manifest' | 'folder'>): string {
  return `import:${path.basename(p.manifest ?? p.folder ?? '')}`;
}

export const importKind = defineJobKind<ImportParams>({
  kind: 'import',
  title: (p) => `Import ${path.basename(p.manifest ?? p.folder ?? '')}`,
  params: importParams,
  module: new URL('./import-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});

// `stats`: listings per source (scraped sites and each import).
addStats('sources', (db) => {
  const rows = db.prepare(`SELECT source, COUNT(*) n FROM listings GROUP BY source ORDER BY source`).all() as Array<{
    source: string;
    n: number;
  }>;
  return Object.fromEntries(rows.map((r) => [r.source, r.n]));
});
