import path from 'node:path';
import fs from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../../engine/workspace/errors.ts';
import { parseMap } from '../../engine/import/manifest.ts';
import { readReport } from '../../engine/eval/report-html.ts';
import { calibrationLines, headline } from '../../engine/eval/eval-job.ts';
import type { EvalJobResult, EvalParams } from '../../engine/eval/eval-kind.ts';
import { listRuns } from '../../engine/train/runs.ts';
import { intArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

interface EvalOpts {
  workspace?: string;
  run?: number;
  checkpoint: 'best' | 'last';
  manifest?: string;
  testSplit?: boolean;
  imagesRoot?: string;
  map?: string;
  k: number;
  json?: boolean;
  report?: string;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      "score a training run on photos it never saw: its test split (by listing: no car of the training set) or a manifest's rows; per head the model beside the majority-class and kNN baselines, calibration (ECE, reliability) of the raw probabilities and, when the run is calibrated, of the calibrated ones predict gives, confused classes",
    )
    .addOption(workspaceOption())
    .option('--run <id>', 'the run (default: the newest run that finished)', intArg('--run', 1))
    .option('--checkpoint <which>', 'best (lowest test loss, default) or last', (v: string) => {
      if (v !== 'best' && v !== 'last') throw new UserError(`--checkpoint must be best or last, got '${v}'`);
      return v;
    }, 'best')
    .option('--test-split', "score the run's own test split (the default when no --manifest is given)")
    .option('--manifest <file>', 'score these rows instead (CSV or JSON Lines, the import format: image, price, make, model, year)')
    .option('--images-root <dir>', "with --manifest: relative image paths resolve against this folder (default: the manifest's folder)")
    .option('--map <field=column,...>', 'with --manifest: take a field from a differently named column')
    .option('--k <n>', 'neighbours of the kNN baseline', intArg('--k', 1, 200), 10)
    .option('--json', 'print the whole report as JSON')
    .option('--report <dir>', 'also copy report.html (a self-contained page with its plots) and report.json into this folder')
    .action(async (opts: EvalOpts) => {
      if (opts.manifest && opts.testSplit) throw new UserError('name either --manifest or --test-split, not both');
      const engine = openEngine(opts);
      try {
        const runId = opts.run ?? newestEvaluableRun(engine, opts.checkpoint);
        const params: EvalParams = {
          runId,
          checkpoint: opts.checkpoint,
          manifest: opts.manifest ? path.resolve(opts.manifest) : undefined,
          imagesRoot: opts.imagesRoot ? path.resolve(opts.imagesRoot) : undefined,
          map: parseMap(opts.map),
          k: opts.k,
        };
        const job = engine.jobs.start('eval', params);
        const { code, job: final } = await runForeground(engine, job);
        process.exitCode = code;
        if (final.state !== 'done') {
          if (opts.json) printJson({ jobId: final.id, state: final.state, error: final.error ?? null });
          return;
        }
        const r = final.result as EvalJobResult;
        const { report } = readReport(r.dir);
        if (opts.report) {
          const out = path.resolve(opts.report);
          fs.mkdirSync(out, { recursive: true });
          for (const f of ['report.html', 'report.json']) fs.copyFileSync(path.join(r.dir, f), path.join(out, f));
        }
        if (opts.json) printJson({ jobId: final.id, reportId: r.reportId, dir: r.dir, report });
        else {
          process.stdout.write(`run ${report.runId} (${report.runName}), ${report.checkpoint} checkpoint at step ${report.step}: ${headline(report)}\n`);
          for (const u of report.untrained) process.stdout.write(`  ${u.head}: not trained (${u.reason})\n`);
          for (const l of calibrationLines(report)) process.stdout.write(`${l}\n`);
          process.stdout.write(`report: ${path.join(opts.report ? path.resolve(opts.report) : r.dir, 'report.html')}\n`);
        }
      } finally {
        await engine.close();
      }
    });
}

/** The newest done or stopped run that has the checkpoint asked for. */
function newestEvaluableRun(engine: ReturnType<typeof openEngine>, checkpoint: 'best' | 'last'): number {
  const runs = listRuns(engine.ws).filter((r) => (r.state === 'done' || r.state === 'stopped') && fs.existsSync(path.join(r.dir, `${checkpoint}.ckpt`)));
  if (!runs.length)
    throw new UserError(`no finished training run with a ${checkpoint} checkpoint to evaluate (carstudio train makes one; --run names another${checkpoint === 'best' ? ', --checkpoint last takes a run stopped before its first evaluation' : ''})`);
  return runs[0].id;
}
