import { DEFAULT_C_GRID } from '../../engine/filter/svm.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../engine/workspace/errors.ts';
import { CROP_COUNTS, DEFAULT_EXTRACTOR, EXTRACTOR_INFO, EXTRACTORS, featureSetName, openCache, type CropCount, type ExtractorName } from '../../engine/filter/features.ts';
import type { FilterFitResult } from '../../engine/filter/fit-job.ts';
import { exportLabels, importLabelled, type ImportResult, type Label } from '../../engine/filter/labels.ts';
import { currentModel, cvTable, explainChoice, meterAt, staleness, thresholdForFnr } from '../../engine/filter/filter-model.ts';
import { CLIP_DEFAULT_URL } from '../../engine/filter/clip.ts';
import { FEATURE_RUNTIMES, type FeatureRuntime } from '../../engine/filter/extract.ts';
import type { WeightsResult } from '../../engine/filter/weights-job.ts';
import { createOption, findResumable, numArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';
import type { Engine } from '../../engine/engine.ts';
import { applyDevice, deviceOption } from '../device-option.ts';
import type { OrtDevice } from '../../engine/ml/ort.ts';

function extractorArg(v: string): ExtractorName {
  if (!(EXTRACTORS as readonly string[]).includes(v)) throw new UserError(`--extractor must be one of ${EXTRACTORS.join(', ')}, got '${v}'`);
  return v as ExtractorName;
}

/** The --extractor help: every extractor with what it is good for. */
const EXTRACTOR_HELP = `the image features, one of:\n${EXTRACTORS.map((n) => `  ${n}: ${EXTRACTOR_INFO[n].summary}`).join('\n')}\n`;

/** --c-grid: positive numbers separated by commas, e.g. 1,4. */
function cGridArg(v: string): number[] {
  const parts = v.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new UserError(`--c-grid must be positive numbers separated by commas (e.g. 1,4), got '${v}'`);
  const cs = parts.map(Number);
  const bad = parts.find((p, i) => !Number.isFinite(cs[i]) || !(cs[i] > 0));
  if (bad !== undefined) throw new UserError(`--c-grid values must be positive numbers, got '${bad}' in '${v}'`);
  if (cs.length > 10) throw new UserError(`--c-grid takes at most 10 values (each costs a round of inner fits), got ${cs.length}`);
  return [...new Set(cs)].sort((a, b) => a - b);
}

function innerFoldsArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 2 || n > 10) throw new UserError(`--inner-folds must be a whole number from 2 to 10, got '${v}'`);
  return n;
}

function cropsArg(v: string): CropCount {
  if (!/^\d+$/.test(v) || !(CROP_COUNTS as readonly number[]).includes(Number(v))) throw new UserError(`--crops must be one of ${CROP_COUNTS.join(', ')}, got '${v}'`);
  return Number(v) as CropCount;
}

const CROPS_HELP = '1: the centre crop; 3: the mean of three square crops along the long side (cached as a feature set of its own, <extractor>.crops3)';

function runtimeArg(v: string): FeatureRuntime {
  if (!(FEATURE_RUNTIMES as readonly string[]).includes(v)) throw new UserError(`--runtime must be one of ${FEATURE_RUNTIMES.join(', ')}, got '${v}'`);
  return v as FeatureRuntime;
}

async function runJob(engine: Engine, kind: string, params: Record<string, unknown>): Promise<{ code: number; result: unknown }> {
  const prev = findResumable(engine, kind, (p) => JSON.stringify(p) === JSON.stringify({ ...(p as object), ...params }));
  const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start(kind, params);
  const { code, job: final } = await runForeground(engine, job);
  return { code, result: final.result };
}

/** Imports the --good and --bad folders; prints a summary per label and every skipped file with its reason (stderr). */
async function importLabelFolders(engine: Engine, folders: Partial<Record<Label, string>>, json: boolean): Promise<Partial<Record<Label, ImportResult>>> {
  const results: Partial<Record<Label, ImportResult>> = {};
  for (const lab of ['good', 'bad'] as const) {
    const folder = folders[lab];
    if (!folder) continue;
    const r = await importLabelled(engine.ws, folder, lab, (d, t) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${lab}: ${d}/${t}`);
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    results[lab] = r;
    const line = `${lab}: ${r.imported} imported, ${r.already} already in the workspace, ${r.skipped.length} skipped (${r.files} files in ${folder})`;
    // with --json, stdout carries only the JSON
    process[json ? 'stderr' : 'stdout'].write(line + '\n');
    for (const f of r.skipped) process.stderr.write(`  skipped ${f.file}: ${f.reason}\n`);
  }
  return results;
}

export function registerFilter(program: Command): void {
  const label = program
    .command('label')
    .description('import hand labels from folders of good and bad images (or export them); every file not imported is listed with its reason')
    .addOption(workspaceOption())
    .addOption(createOption())
    .option('--good <folder>', 'folder of good images (whole cars)')
    .option('--bad <folder>', 'folder of bad images (interiors, wheels, details, placeholders)')
    .option('--json', 'print the result as JSON: per label, the counts and every skipped file with its reason')
    .action(async (opts: { workspace?: string; create?: boolean; good?: string; bad?: string; json?: boolean }) => {
      if (!opts.good && !opts.bad) throw new UserError('give --good FOLDER and/or --bad FOLDER');
      const engine = openEngine(opts, {}, true);
      try {
        const results = await importLabelFolders(engine, { good: opts.good, bad: opts.bad }, opts.json === true);
        if (opts.json) printJson(results);
        // nothing usable at all (no file imported or already there): the folders hold no image
        // this build can read, which is an error, not a quiet "0 imported"
        const found = Object.values(results).reduce((n, r) => n + r.files, 0);
        if (Object.values(results).every((r) => r.imported + r.already === 0)) {
          throw new UserError(
            found === 0
              ? `nothing imported: ${Object.values(results).map((r) => r.folder).join(' and ')} hold no files`
              : `nothing imported: none of the ${found} files was an image that could be read (each is listed above with its reason)`,
          );
        }
      } finally {
        await engine.close();
      }
    });
  label
    .command('export')
    .description('write every label (image key, url, label, source, time) as JSON or CSV')
    .addOption(workspaceOption())
    .requiredOption('--out <file>', 'output file (.json or .csv)')
    .action(async (_o: unknown, cmd: Command) => {
      // --workspace may have been taken by the parent command: read both
      const opts = cmd.optsWithGlobals<{ workspace?: string; out: string }>();
      const engine = openEngine(opts);
      try {
        const rows = exportLabels(engine.ws);
        const text = opts.out.endsWith('.csv')
          ? ['key,url,label,source,at', ...rows.map((r) => [r.key, JSON.stringify(r.url), r.label, r.source, r.at].join(','))].join('\n') + '\n'
          : JSON.stringify(rows, null, 2) + '\n';
        fs.writeFileSync(opts.out, text);
        process.stdout.write(`${rows.length} labels written to ${opts.out}\n`);
      } finally {
        await engine.close();
      }
    });

  const features = program
    .command('features')
    .description('extract image features of the usable images into the workspace cache (resumable)')
    .addOption(workspaceOption())
    .option('--extractor <name>', EXTRACTOR_HELP, extractorArg, DEFAULT_EXTRACTOR)
    .option('--labelled-only', 'only the labelled images')
    .option(
      '--runtime <runtime>',
      'where mobilenet_v2 runs: onnx (ONNX Runtime, needs onnxruntime-node), tfjs, or auto (ONNX Runtime when it loads, else tfjs); both give the same features',
      runtimeArg,
      'auto' as FeatureRuntime,
    )
    .option('--crops <n>', CROPS_HELP, cropsArg, 1 as CropCount)
    .addOption(deviceOption())
    .action(async (opts: { workspace?: string; extractor: ExtractorName; labelledOnly?: boolean; runtime: FeatureRuntime; crops: CropCount; device?: OrtDevice }) => {
      applyDevice(opts.device);
      const engine = openEngine(opts);
      try {
        // the runtime is part of the match: a plain `features` does not resume a failed --runtime onnx job
        const r = await runJob(engine, 'features', { extractor: opts.extractor, scope: opts.labelledOnly ? 'labelled' : 'usable', runtime: opts.runtime, crops: opts.crops });
        if (r.result) process.stdout.write(`${JSON.stringify(r.result)}\n`);
        process.exitCode = r.code;
      } finally {
        await engine.close();
      }
    });
  features
    .command('export')
    .description('write the feature matrix (features.npy, float32 [N, dim]) and its image ids (ids.npy, ids.txt) for numpy')
    .addOption(workspaceOption())
    .option('--extractor <name>', EXTRACTOR_HELP, extractorArg, DEFAULT_EXTRACTOR)
    .option('--crops <n>', 'export the 1-crop or the 3-crop feature set', cropsArg, 1 as CropCount)
    .option('--format <fmt>', 'npy', 'npy')
    .requiredOption('--out <dir>', 'output folder')
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{ workspace?: string; extractor: ExtractorName; crops: CropCount; format: string; out: string }>();
      if (opts.format !== 'npy') throw new UserError(`--format must be npy, got '${opts.format}'`);
      const engine = openEngine(opts);
      try {
        const cache = await openCache(engine.ws, featureSetName(opts.extractor, opts.crops));
        fs.mkdirSync(opts.out, { recursive: true });
        const r = await cache.exportNpy(path.resolve(opts.out));
        process.stdout.write(`${r.rows} rows: ${r.files.join(', ')}\n`);
      } finally {
        await engine.close();
      }
    });

  features
    .command('weights')
    .argument('[extractor]', 'clip-vit-b16 (mobilenet_v2 ships with CarStudio)', 'clip-vit-b16')
    .description(`install an extractor's weights into the workspace: download them (progress, resumable) or copy a file you have (--from)`)
    .addOption(workspaceOption())
    .option('--from <path>', 'a vision_model.onnx already on this machine, or a folder holding one (e.g. a copy of the Hugging Face repository: onnx/vision_model.onnx) (offline)')
    .option('--url <url>', 'download from here instead', CLIP_DEFAULT_URL)
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{ workspace?: string; from?: string; url: string }>();
      if (extractorArg(name) !== 'clip-vit-b16') {
        process.stdout.write(`${name} needs no download: its weights ship with CarStudio (nsfwjs)\n`);
        return;
      }
      const engine = openEngine(opts);
      try {
        // the `weights` job (the one the studio starts): a stopped download continues its .part file
        const r = await runJob(engine, 'weights', opts.from ? { extractor: 'clip-vit-b16', from: path.resolve(opts.from) } : { extractor: 'clip-vit-b16', url: opts.url });
        process.exitCode = r.code;
        const w = r.result as WeightsResult | null;
        if (r.code !== 0 || !w) return;
        if (w.copied) process.stdout.write(`copied ${w.source} to ${w.path}\n`);
        else process.stdout.write(`${w.path}: ${w.bytes} bytes${w.resumedFrom ? ` (${w.resumedFrom} from an earlier download)` : ''}\n`);
      } finally {
        await engine.close();
      }
    });

  const filter = program.command('filter').description('the junk filter: fit an SVM on labelled features, apply it, read scores');
  filter
    .command('fit')
    .description(
      'fit the standardised RBF SVM with 10-fold cross-validation (with a --c-grid of several values, nested: C chosen by an inner cross-validation inside each fold) and choose the largest threshold with FNR under --max-fnr (with --fnr-margin: its upper confidence bound)',
    )
    .addOption(workspaceOption())
    .option('--extractor <name>', EXTRACTOR_HELP, extractorArg, DEFAULT_EXTRACTOR)
    .option('--crops <n>', `${CROPS_HELP}; filter apply then scores with the same feature set`, cropsArg, 1 as CropCount)
    .option('--max-fnr <x>', 'largest false-negative rate allowed (good images thrown away)', numArg('--max-fnr', 0, 1), 0.01)
    .option('--c-grid <list>', 'values of the SVM C to choose from, comma-separated (e.g. 1,4: a nested search, ~7x the fit time); one value skips the inner search', cGridArg, [...DEFAULT_C_GRID])
    .option('--inner-folds <n>', 'folds of the inner cross-validation that chooses C (2-10)', innerFoldsArg, 3)
    .option(
      '--fnr-margin <z>',
      'safety margin for the uncertainty of the CV estimate: choose the largest threshold whose one-sided Wilson upper bound on the FNR at z standard deviations is within --max-fnr (0: the measured FNR; 1.645: 95% one-sided)',
      numArg('--fnr-margin', 0, 5),
      0,
    )
    .option('--json', 'print JSON')
    .action(async (opts: { workspace?: string; extractor: ExtractorName; crops: CropCount; maxFnr: number; cGrid: number[]; innerFolds: number; fnrMargin: number; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const job = engine.jobs.start('filter-fit', {
          extractor: opts.extractor,
          crops: opts.crops,
          maxFnr: opts.maxFnr,
          cGrid: opts.cGrid,
          innerFolds: opts.innerFolds,
          fnrMargin: opts.fnrMargin,
        });
        const { code, job: final } = await runForeground(engine, job);
        process.exitCode = code;
        if (final.state !== 'done') return;
        const m = currentModel(engine.ws)!;
        const table = cvTable(m);
        // a condensed table: 20 rows spread over the thresholds, plus the chosen one
        const step = Math.max(1, Math.floor(table.length / 20));
        const rows = table.filter((_, i) => i % step === 0 || table[i]!.threshold === m.threshold);
        if (opts.json) return printJson({ ...(final.result as object), table: rows });
        process.stdout.write('threshold   accuracy   FNR      bad removed\n');
        for (const r of rows) {
          process.stdout.write(
            `${r.threshold.toFixed(4).padStart(9)}   ${(100 * r.accuracy).toFixed(1).padStart(6)}%   ${(100 * r.falseNegativeRate).toFixed(2).padStart(5)}%   ${(100 * r.badRemoved).toFixed(1).padStart(6)}%${r.threshold === m.threshold ? '   <- chosen' : ''}\n`,
          );
        }
        const res = final.result as FilterFitResult;
        const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
        process.stdout.write(
          `chosen threshold ${m.threshold} (largest with cross-validated FNR ${opts.fnrMargin > 0 ? `upper bound (z=${opts.fnrMargin}) ` : ''}<= ${(100 * opts.maxFnr).toFixed(1)}%)\n`,
        );
        if (res?.cvFnrInterval) {
          const ci = res.cvFnrInterval;
          process.stdout.write(
            `CV FNR ${pct(res.cvFalseNegativeRate)} (90% CI ${pct(ci.lower)}-${pct(ci.upper)}) from ${ci.good} good labels; bad removed ${pct(res.cvBadRemoved)}\n`,
          );
          process.stdout.write(
            res.cGrid.length > 1
              ? `C=${res.C} (chosen from ${res.cGrid.join(', ')} by ${res.innerFolds}-fold inner cross-validation; per outer fold: ${res.foldC.join(', ')})\n`
              : `C=${res.C} (the one value of --c-grid: no inner search)\n`,
          );
        }
      } finally {
        await engine.close();
      }
    });
  filter
    .command('apply')
    .description('score every usable image with the current filter (on the feature set it was fitted on, e.g. 3-crop); training then uses the kept ones')
    .addOption(workspaceOption())
    .option('--json', 'print JSON')
    .action(async (opts: { workspace?: string; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const r = await runJob(engine, 'filter-apply', {});
        if (r.result) process.stdout.write(opts.json ? JSON.stringify(r.result, null, 2) + '\n' : `${JSON.stringify(r.result)}\n`);
        process.exitCode = r.code;
      } finally {
        await engine.close();
      }
    });
  filter
    .command('meter')
    .description(
      "the filter's figures at a threshold (the saved one unless --threshold, or the one --max-fnr chooses, with why): the CV FNR with its 90% interval, bad removed, accuracy, the kept share, warnings when the labels are too few or unbalanced to trust them, and whether labels changed since the fit",
    )
    .addOption(workspaceOption())
    .option('--threshold <t>', 'the threshold to read the meter at (default: the saved one)', numArg('--threshold'))
    .option('--max-fnr <x>', 'choose the largest threshold with a CV FNR within this (as the Choose button does) and say why', numArg('--max-fnr', 0, 1))
    .option('--json', 'print JSON')
    .action(async (opts: { workspace?: string; threshold?: number; maxFnr?: number; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        // 1. the fit, and the threshold to read it at
        const m = currentModel(engine.ws);
        if (!m) throw new UserError('no filter has been fitted yet: label some images, then run `carstudio filter fit`');
        if (opts.threshold !== undefined && opts.maxFnr !== undefined) throw new UserError('give --threshold or --max-fnr, not both');
        const chosen = opts.maxFnr !== undefined ? thresholdForFnr(m, opts.maxFnr) : null;
        const threshold = chosen?.threshold ?? opts.threshold ?? m.threshold;
        // 2. the meter, why the threshold was chosen, and whether the labels moved on since the fit
        const meter = meterAt(engine.ws, m, threshold);
        const explanation = chosen ? explainChoice(m, opts.maxFnr!, chosen) : null;
        const stale = staleness(engine.ws, m);
        if (opts.json) return printJson({ modelId: m.id, ...meter, explanation, stale });
        const pct = (v: number, d = 1) => `${(100 * v).toFixed(d)}%`;
        const ci = meter.fnrInterval;
        process.stdout.write(
          `threshold ${threshold.toFixed(4)}: CV FNR ${pct(meter.falseNegativeRate, 2)} (90% CI ${pct(ci.lower)}-${pct(ci.upper)}, ${ci.goodRemoved} of ${ci.good} good), bad removed ${pct(meter.badRemoved)}, accuracy ${pct(meter.accuracy)}, kept ${meter.keptShare === null ? '- (run `carstudio filter apply`)' : `${pct(meter.keptShare)} of ${meter.scored} scored`}\n`,
        );
        if (explanation) process.stdout.write(`${explanation}\n`);
        for (const w of meter.warnings) process.stdout.write(`warning: ${w}\n`);
        if (stale) process.stdout.write(`stale: ${stale.changed} labels changed or cleared and ${stale.added} added since this fit; run \`carstudio filter fit\` again\n`);
      } finally {
        await engine.close();
      }
    });
  filter
    .command('score')
    .description('the decision value of every scored image (positive = more like the good examples)')
    .addOption(workspaceOption())
    .option('--json', 'print JSON')
    .action(async (opts: { workspace?: string; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const m = currentModel(engine.ws);
        if (!m) throw new UserError('no filter has been fitted yet');
        const rows = engine.ws.db
          .prepare(`SELECT i.id imageId, i.key, i.url, s.score FROM filter_scores s JOIN images i ON i.id = s.image_id WHERE s.model_id = ? ORDER BY i.id`)
          .all(m.id) as Array<{ imageId: number; key: string; url: string; score: number }>;
        const out = rows.map((r) => ({ ...r, kept: r.score >= m.threshold }));
        if (opts.json) printJson({ modelId: m.id, threshold: m.threshold, images: out });
        else for (const r of out) process.stdout.write(`${r.imageId}\t${r.score.toFixed(5)}\t${r.kept ? 'kept' : 'removed'}\t${r.url}\n`);
      } finally {
        await engine.close();
      }
    });
}
