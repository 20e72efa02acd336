import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { UserError } from '../../engine/workspace/errors.ts';
import { importParams, type ImportParams } from '../../engine/import/import-kind.ts';
import type { ImportSummary } from '../../engine/import/import-job.ts';
import { parseAs, parseMap, patternRegex } from '../../engine/import/manifest.ts';
import { findResumable, intArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

interface ImportOpts {
  workspace?: string;
  manifest?: string;
  imagesRoot?: string;
  map?: string;
  folder?: string;
  pattern?: string;
  classFrom?: 'folder';
  as?: string;
  resize: number;
  allowPrivateHosts?: boolean;
  json?: boolean;
}

function existing(what: string, p: string, dir: boolean): string {
  const abs = path.resolve(p);
  const st = fs.statSync(abs, { throwIfNoEntry: false });
  if (!st) throw new UserError(`${what} ${abs} does not exist`);
  if (dir !== st.isDirectory()) throw new UserError(`${what} ${abs} is ${dir ? 'not a folder' : 'a folder, not a file'}`);
  return abs;
}

/** The job's parameters from the options, every path absolute; a wrong combination is a UserError. */
function toParams(o: ImportOpts): ImportParams {
  if (!!o.manifest === !!o.folder)
    throw new UserError('name what to import: --manifest FILE (CSV or JSON Lines) or --folder DIR (with --pattern or --class-from folder)');
  const raw: Record<string, unknown> = { resize: o.resize, allowPrivateHosts: o.allowPrivateHosts ?? false };
  if (o.manifest) {
    if (o.pattern || o.classFrom || o.as) throw new UserError('--pattern, --class-from and --as go with --folder, not --manifest');
    raw.manifest = existing('manifest', o.manifest, false);
    if (o.imagesRoot) raw.imagesRoot = existing('--images-root', o.imagesRoot, true);
    raw.map = parseMap(o.map);
  } else {
    if (o.map || o.imagesRoot) throw new UserError('--map and --images-root go with --manifest, not --folder');
    raw.folder = existing('folder', o.folder!, true);
    if (!!o.pattern === !!o.classFrom)
      throw new UserError(
        "with --folder, give either --pattern '{make}_{model}_{year}_*' (labels in the file names) or --class-from folder --as make_model (one sub-folder per class)",
      );
    if (o.pattern) {
      patternRegex(o.pattern);
      raw.pattern = o.pattern;
    } else raw.classAs = parseAs(o.as ?? 'make_model');
  }
  const parsed = importParams.safeParse(raw);
  if (!parsed.success) throw new UserError(parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

function printSummary(s: ImportSummary): void {
  const skipped = Object.entries(s.skippedByReason)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const lines = [
    `${s.source}: ${s.rowsRead} rows read, ${s.rowsImported} imported, ${s.rowsSkipped} skipped${skipped ? ` (${skipped})` : ''}`,
    `listings: ${s.listingsAdded} added (${s.listings} from this source in all); images: ${s.imagesAdded} added (${s.images} in its listings)`,
    ...s.errors.map((e) => `  skipped ${e.where}: ${e.reason}`),
    ...s.warnings.map((w) => `  warning ${w.where}: ${w.reason}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description(
      'import your own dataset: a CSV or JSON Lines manifest (one row per image) or a labelled folder; run the same command again to resume, or to add only what is new',
    )
    .addOption(workspaceOption())
    .option(
      '--manifest <file>',
      'CSV with a header row, or JSON Lines: image (path or http(s) URL), optional listing_id, price, make, model, year, odometer, title; other columns are kept as metadata',
    )
    .option('--images-root <dir>', "relative image paths resolve against this folder (default: the manifest's folder)")
    .option('--map <field=column,...>', 'take a field from a differently named column, e.g. --map image=file,price=Price_USD')
    .option('--folder <dir>', 'a folder of labelled images instead of a manifest')
    .option('--pattern <pattern>', "with --folder: labels in each file name, e.g. '{make}_{model}_{year}_*' (* matches anything)")
    .addOption(new Option('--class-from <where>', 'with --folder: each class is a sub-folder').choices(['folder']))
    .option(
      '--as <fields>',
      'with --class-from folder: what the sub-folder name holds, fields joined by _: make_model (the default), make, model, year, make_model_year',
    )
    .option('--resize <px>', 'downsample images so the short side is at most this', intArg('--resize', 16, 4096), 256)
    .option('--allow-private-hosts', 'allow image URLs on loopback or private addresses (refused by default)')
    .option('--json', 'print the summary (every skipped row with its line and reason) as JSON')
    .action(async (opts: ImportOpts) => {
      const params = toParams(opts);
      const engine = openEngine(opts);
      try {
        const prev = findResumable(engine, 'import', (p) => JSON.stringify(p) === JSON.stringify(params));
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('import', params);
        const { code, job: final } = await runForeground(engine, job);
        if (final.state === 'done') {
          const s = final.result as ImportSummary;
          if (opts.json) printJson({ jobId: final.id, ...s });
          else printSummary(s);
        } else if (opts.json) printJson({ jobId: final.id, state: final.state, error: final.error ?? null });
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });
}
