import type { Command } from 'commander';
import { UserError } from '../../engine/workspace/errors.ts';
import { CALIBRATED_HEADS, describeHead, type CalibrationReport } from '../../engine/train/calibrate.ts';
import type { CalibrateParams } from '../../engine/train/calibrate-kind.ts';
import { intArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

interface CalibrateOpts {
  workspace?: string;
  run: number;
  checkpoint: 'best' | 'last';
  json?: boolean;
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description(
      "fit one temperature per classification head (price bins, make/model, year) on a run's test split, so its probabilities mean what they say; stored beside the checkpoint (calibration.json) and applied by predict. Prints ECE before -> after per head, in-sample and held out (2-fold cross-fit)",
    )
    .addOption(workspaceOption())
    .requiredOption('--run <id>', 'the run (carstudio runs lists them)', intArg('--run', 1))
    .option('--checkpoint <which>', 'best (lowest test loss, default) or last', (v: string) => {
      if (v !== 'best' && v !== 'last') throw new UserError(`--checkpoint must be best or last, got '${v}'`);
      return v;
    }, 'best')
    .option('--json', 'print the calibration report as JSON')
    .action(async (opts: CalibrateOpts) => {
      const engine = openEngine(opts);
      try {
        const params: CalibrateParams = { runId: opts.run, checkpoint: opts.checkpoint };
        const job = engine.jobs.start('calibrate', params);
        const { code, job: final } = await runForeground(engine, job);
        process.exitCode = code;
        if (final.state !== 'done') {
          if (opts.json) printJson({ jobId: final.id, state: final.state, error: final.error ?? null });
          return;
        }
        const r = final.result as CalibrationReport;
        if (opts.json) printJson({ jobId: final.id, ...r });
        else {
          process.stdout.write(`run ${r.runId}, ${r.checkpoint} checkpoint at step ${r.step}: ${r.rows} test rows (split by ${r.split})\n`);
          for (const h of CALIBRATED_HEADS) process.stdout.write(`  ${describeHead(h, r.heads[h])}\n`);
        }
      } finally {
        await engine.close();
      }
    });
}
