import type { Command } from 'commander';
import { listRuns as listPredictRuns } from '../../engine/predict/runs.ts';
import { UserError } from '../../engine/workspace/errors.ts';
import { BACKBONE_KINDS, parseLossWeights, type BackboneKind } from '../../engine/train/model.ts';
import { deleteRun, getRun, listRuns, unfinishedRunFor } from '../../engine/train/runs.ts';
import { trainParams, type TrainParams } from '../../engine/train/train-kind.ts';
import type { Engine } from '../../engine/engine.ts';
import type { JobInfo, RunInfo } from '../../engine/api/contract/index.ts';
import type { HeadName, HeadPlan } from '../../engine/train/trainer.ts';
import { formatDuration, formatRate } from '../../engine/jobs/progress.ts';
import { DEFAULT_EXTRACTOR, EXTRACTOR_INFO, EXTRACTORS, type ExtractorName } from '../../engine/filter/features.ts';
import { intArg, numArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

interface TrainOpts {
  workspace?: string;
  mode: 'heads' | 'finetune';
  backbone?: BackboneKind;
  extractor?: ExtractorName;
  steps?: number;
  batchSize: number;
  lr?: number;
  weightDecay?: number;
  inputNorm?: 'standard' | 'none';
  lossWeights: string;
  evalEvery: number;
  checkpointEvery: number;
  hidden: number;
  name?: string;
  resume?: number;
  force?: boolean;
  newRun?: boolean;
  augment: boolean;
  split: 'listing' | 'photo';
  topMakeModels: number;
  testFraction: number;
  json?: boolean;
}

/**
 * The train job for this command: with --resume, that run; otherwise, when a stopped or
 * interrupted run has exactly these parameters, running the same command again continues it (the
 * job that trained it resumes, so the run keeps its id); else a new run, with one line naming the
 * newest unfinished run and how to continue it instead.
 */
function startOrContinue(engine: Engine, params: Partial<TrainParams>, newRun: boolean): JobInfo {
  const parsed = trainParams.safeParse(params);
  if (params.resumeRun !== undefined || !parsed.success) return engine.jobs.start('train', params);
  const { match, newest } = unfinishedRunFor(engine.ws, parsed.data);
  const ws = engine.ws.dir;
  if (match && !newRun) {
    process.stderr.write(`continuing run ${match.id} (${match.state} at step ${match.step} of ${match.steps}) with its parameters; pass --new-run to start a new run instead\n`);
    const job = match.jobId != null ? engine.jobs.get(match.jobId) : null;
    if (job?.resumable && job.kind === 'train') return engine.jobs.resume(job.id);
    return engine.jobs.start('train', { ...params, resumeRun: match.id, steps: match.steps });
  }
  if (newest) {
    process.stderr.write(
      `run ${newest.id} (${newest.name}) was ${newest.state} at step ${newest.step} of ${newest.steps}; ${match ? 'starting a new run as --new-run asks' : 'these parameters differ, so this starts a new run'} (to continue run ${newest.id}: carstudio train --resume ${newest.id} --workspace ${ws})\n`,
    );
  }
  return engine.jobs.start('train', params);
}

const pct = (x: number | undefined | null): string => (x == null ? '--' : `${(100 * x).toFixed(1)}%`);

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train the multi-task price model (price range, median price, make/model, year) on the workspace')
    .addOption(workspaceOption())
    .option('--mode <mode>', 'heads (on cached features of --extractor; fast on any CPU) or finetune (whole network; needs tfjs-node)', (v: string) => {
      if (v !== 'heads' && v !== 'finetune') throw new UserError(`--mode must be heads or finetune, got '${v}'`);
      return v;
    }, 'heads')
    .option(
      '--backbone <name>',
      "finetune: mobilenet_v2 (pretrained; the default) or tiny-cnn (a small CNN trained from scratch at 64 px: a smoke test of fine-tuning on this machine, not a price model); heads mode trains on --extractor features instead; a resumed run keeps its own",
      (v: string) => {
        if (!(BACKBONE_KINDS as readonly string[]).includes(v)) throw new UserError(`--backbone must be ${BACKBONE_KINDS.join(' or ')}, got '${v}'`);
        return v;
      },
    )
    .option(
      '--extractor <name>',
      `heads: the features the heads train on, cached per extractor under features/<name> (the missing ones are extracted first): ${EXTRACTORS.map(
        (e) => `${e}${e === DEFAULT_EXTRACTOR ? ' (default)' : ''}${EXTRACTOR_INFO[e].offline ? '' : ' (needs its weights downloaded: carstudio filter weights)'}`,
      ).join(', ')}; a resumed run keeps its own`,
      (v: string) => {
        if (!(EXTRACTORS as readonly string[]).includes(v)) throw new UserError(`--extractor must be one of ${EXTRACTORS.join(', ')}, got '${v}'`);
        return v;
      },
    )
    .option('--steps <n>', "total optimizer steps (default 2000; with --resume, the run's own total)", intArg('--steps', 1))
    .option('--batch-size <n>', 'batch size', intArg('--batch-size', 1, 4096), 64)
    .option('--lr <x>', 'learning rate (default 1e-3 heads on mobilenet_v2, 2e-2 heads on mobilenet_v2-blocks or car-v1, 1e-4 finetune of mobilenet_v2, 3e-3 tiny-cnn)', numArg('--lr', 0))
    .option('--weight-decay <x>', 'decoupled weight decay of the heads (AdamW, per unit of the learning rate)', numArg('--weight-decay', 0))
    .option('--input-norm <kind>', 'heads: none (default: the raw features) or standard (each feature standardised on the training rows, kept with the run; pair it with --lr 3e-3 --weight-decay 20)', (v: string) => {
      if (v !== 'standard' && v !== 'none') throw new UserError(`--input-norm must be standard or none, got '${v}'`);
      return v;
    })
    .option('--loss-weights <spec>', 'default, price_ce_only, or k=v,... over price, median, year, make', 'default')
    .option('--eval-every <n>', 'evaluate on the test split every N steps', intArg('--eval-every', 1), 100)
    .option('--checkpoint-every <n>', 'checkpoint every N steps', intArg('--checkpoint-every', 1), 100)
    .option('--hidden <n>', 'shared hidden ReLU layer before the heads (0 = linear heads, which cannot help each other)', intArg('--hidden', 0, 8192), 256)
    .option('--no-augment', 'finetune: no augmentation')
    .option('--split <kind>', 'listing (default: every photo of a listing on one side, so no car is in both sets) or photo (the original per-photo split)', (v: string) => {
      if (v !== 'listing' && v !== 'photo') throw new UserError(`--split must be listing or photo, got '${v}'`);
      return v;
    }, 'listing')
    .option('--test-fraction <x>', 'share of the listings held out as the test split (default 0.1; a small dataset wants more)', (v: string) => {
      const x = Number(v);
      if (!(x > 0 && x < 1)) throw new UserError(`--test-fraction must be a number between 0 and 1, got '${v}'`);
      return x;
    }, 0.1)
    .option('--top-make-models <k>', 'make/model classes: the K most frequent pairs, the rest Unknown', intArg('--top-make-models', 1, 100_000), 512)
    .option('--name <name>', 'a name for the run')
    .option('--resume <run>', 'continue this run from its last checkpoint (--steps is the new total)', intArg('--resume', 1))
    .option('--force', 'fine-tune without native TensorFlow, on the slow pure-JS cpu backend (a resumed run keeps it)')
    .option('--new-run', 'start a new run even when a stopped or interrupted run has these parameters (which running the same command again otherwise continues)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: TrainOpts) => {
      parseLossWeights(opts.lossWeights);
      if (opts.backbone === 'tiny-cnn' && opts.mode === 'heads' && opts.resume === undefined) {
        throw new UserError('--backbone tiny-cnn needs --mode finetune: the tiny CNN is trained from scratch on images, and heads mode trains on cached features of an extractor');
      }
      if (opts.extractor && opts.mode === 'finetune' && opts.resume === undefined) {
        throw new UserError(`--extractor applies to --mode heads (the heads train on cached features); finetune trains the ${opts.backbone ?? 'mobilenet_v2'} backbone on the photos themselves`);
      }
      const engine = openEngine(opts);
      try {
        // A resumed run keeps its total unless --steps names a new one.
        const steps = opts.steps ?? (opts.resume !== undefined ? getRun(engine.ws, opts.resume).steps : 2000);
        const params: Partial<TrainParams> = {
          mode: opts.mode,
          backbone: opts.backbone,
          extractor: opts.extractor,
          steps,
          batchSize: opts.batchSize,
          lr: opts.lr,
          weightDecay: opts.weightDecay,
          inputNorm: opts.inputNorm,
          lossWeights: opts.lossWeights,
          evalEvery: opts.evalEvery,
          checkpointEvery: opts.checkpointEvery,
          hidden: opts.hidden,
          augment: opts.augment,
          split: opts.split,
          topMakeModels: opts.topMakeModels,
          testFraction: opts.testFraction,
          name: opts.name,
          resumeRun: opts.resume,
          force: opts.force ?? false,
        };
        const job = startOrContinue(engine, params, opts.newRun === true);
        const render = (j: JobInfo): string =>
          `[train] ${j.step ?? ''} ${j.done}/${j.total ?? '?'}  ${formatRate(j.rate, j.step === 'train' ? ' steps/s' : '/s')}  ETA ${formatDuration(j.eta)}  ${j.message ?? ''}`;
        const { code, job: final } = await runForeground(engine, job, { render });
        if (opts.json) printJson(final.result);
        else if (final.result) {
          const r = final.result as {
            runId: number;
            state: string;
            step: number;
            resumedFrom?: number | null;
            backend?: string;
            backbone?: string;
            lastEval: { test: RunInfo['lastTrain'] } | null;
            baselinePriceAccuracy: number;
            split?: string;
            heads?: Record<HeadName, HeadPlan>;
          };
          const how = [r.resumedFrom != null ? `resumed from step ${r.resumedFrom}` : null, r.backbone, r.backend ? `${r.backend} backend` : null, r.split ? `split by ${r.split}` : null]
            .filter(Boolean)
            .join(', ');
          process.stdout.write(`run ${r.runId}: ${r.state} at step ${r.step}${how ? ` (${how})` : ''}; ${testSummary(r.lastEval?.test ?? null, r.baselinePriceAccuracy, r.heads)}\n`);
        }
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });

  const runs = program.command('runs').description('training runs with their last and best metrics');
  runs
    .command('list', { isDefault: true })
    .addOption(workspaceOption())
    .option('--json', 'print JSON')
    .action(async (opts: { workspace?: string; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const list = listRuns(engine.ws);
        if (opts.json) return printJson(list);
        if (!list.length) return void process.stdout.write('no runs yet: carstudio train --workspace DIR\n');
        process.stdout.write(formatRunsTable(list));
        const recommended = listPredictRuns(engine.ws).find((r) => r.recommended);
        if (recommended) process.stdout.write(`predict uses run ${recommended.id} ('${recommended.name}') unless told --run: the best by test price accuracy of the runs whose price head trained\n`);
      } finally {
        await engine.close();
      }
    });
  runs
    .command('delete <id>')
    .description('delete a run and its files')
    .addOption(workspaceOption())
    .action(async (id: string, opts: { workspace?: string }) => {
      const engine = openEngine(opts);
      try {
        deleteRun(engine.ws, intArg('id', 1)(id), (j) => engine.jobs.isRunning(j));
        process.stdout.write(`deleted run ${id}\n`);
      } finally {
        await engine.close();
      }
    });
}

/**
 * The `runs` listing, in the words of the Train stage's runs table: what it trained, state, steps,
 * the test figures at its best checkpoint (with that step), the price baseline, and its name (last:
 * a name may hold spaces); a head that did not train says so.
 */
export function formatRunsTable(list: RunInfo[]): string {
  const head = (r: RunInfo, h: 'price' | 'median' | 'makeModel' | 'year', value: (m: NonNullable<RunInfo['best']>) => string): string => {
    const plan = r.heads?.[h];
    if (plan && !plan.trains) return 'not trained';
    const m = r.best ?? r.lastTest;
    if (!m) return '--';
    return (h === 'median' ? m.median.n : m[h].n) === 0 ? 'no labels' : value(m);
  };
  const rows = list.map((r) => {
    const best = r.best ?? r.lastTest;
    return [
      String(r.id),
      r.mode,
      r.backbone,
      r.extractor ?? '(pixels)',
      r.lossWeights,
      r.state,
      `${r.step}/${r.steps}`,
      best ? String(best.step) : '--',
      head(r, 'price', (m) => pct(m.price.accuracy)),
      pct(r.baseline?.priceAccuracy),
      head(r, 'makeModel', (m) => pct(m.makeModel.accuracy)),
      head(r, 'year', (m) => pct(m.year.accuracy)),
      head(r, 'median', (m) => `$${Math.round(m.median.maeDollars)}`),
      r.name,
    ];
  });
  const header = ['run', 'mode', 'backbone', 'features', 'loss weights', 'state', 'step', 'best at', 'price acc', 'baseline', 'make/model acc', 'year acc', 'MAE', 'name'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line), 'figures: the test split at each run\'s best checkpoint (step "best at"); --json for the last evaluation too', ''].join('\n');
}

/** The test figures of each head that trained; the others say why not. */
function testSummary(t: RunInfo['lastTrain'], baseline: number, heads: Record<HeadName, HeadPlan> | undefined): string {
  const parts: string[] = [];
  const skip = (h: HeadName): string | null => {
    const p = heads?.[h];
    return p && !p.trains ? `${h}: not trained (${p.reason})` : null;
  };
  parts.push(
    skip('price') ?? `test price-bin accuracy ${pct(t?.price.accuracy)} (majority-class baseline ${pct(baseline)}), price CE ${t?.price.loss.toFixed(3) ?? '--'}`,
  );
  parts.push(skip('median') ?? `median-price MAE $${t ? Math.round(t.median.maeDollars) : '--'}`);
  const mm = skip('makeModel');
  if (mm || heads) parts.push(mm ?? `make/model top-1 ${pct(t?.makeModel.accuracy)}`);
  const yr = skip('year');
  if (yr || heads) parts.push(yr ?? `year top-1 ${pct(t?.year.accuracy)}`);
  return parts.join(', ');
}
