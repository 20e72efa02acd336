import type { Command } from 'commander';
import { findResumable, openEngine, runForeground, workspaceOption } from '../common.ts';
import { resolveRun } from '../../engine/predict/runs.ts';
import { readRecords } from '../../engine/predict/store.ts';
import type { PredictParams } from '../../engine/predict/predict-kind.ts';

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('run a trained model on a folder of photos (recursive); one record per image, counts on stderr; run again to resume')
    .addOption(workspaceOption())
    .option('--run <id>', 'run id, as `carstudio runs` lists them (default: the newest run with a checkpoint)')
    .option('--checkpoint <name>', 'checkpoint of the run: best (default), last, ...')
    .requiredOption('--input <folder>', 'folder of photos (JPEG, PNG, WebP, GIF, TIFF, AVIF; walked recursively)')
    .option('--fresh', 'predict every file again, even when this run already predicted it')
    .option('--json', 'print one JSON record per image (JSON Lines)')
    .action(async (opts: { workspace?: string; run?: string; checkpoint?: string; input: string; fresh?: boolean; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const r = resolveRun(engine.ws, opts.run, opts.checkpoint);
        const path = await import('node:path');
        const params: PredictParams = {
          runId: r.run.id,
          checkpoint: r.checkpoint,
          input: path.resolve(opts.input),
          reuse: !opts.fresh,
          batchSize: 16,
          maxPixels: 120_000_000,
        };
        const same = (p: unknown): boolean => {
          const q = p as Partial<PredictParams>;
          return q.runId === params.runId && q.checkpoint === params.checkpoint && q.input === params.input && q.reuse === params.reuse;
        };
        const prev = findResumable(engine, 'predict', same);
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('predict', params);
        const { code, job: final } = await runForeground(engine, job);
        const records = readRecords(engine.ws.dir, final.id);
        for (const rec of records) {
          if (opts.json) {
            const p = rec.prediction;
            process.stdout.write(
              JSON.stringify(
                p
                  ? {
                      path: rec.path,
                      run: r.run.id,
                      checkpoint: r.checkpoint,
                      width: rec.width,
                      height: rec.height,
                      priceBins: p.priceBins,
                      medianPrice: p.medianPrice,
                      makeModels: p.makeModels,
                      year: p.topYears[0]?.label ?? null,
                      topYears: p.topYears,
                    }
                  : { path: rec.path, run: r.run.id, checkpoint: r.checkpoint, error: rec.error },
              ) + '\n',
            );
          } else if (rec.prediction) {
            const p = rec.prediction;
            const top = p.makeModels[0];
            process.stdout.write(
              `${rec.rel}\t$${Math.round(p.medianPrice).toLocaleString('en-US')}\t${top.label} ${(100 * top.p).toFixed(0)}%\t${p.topYears[0].label}\n`,
            );
          } else process.stdout.write(`${rec.rel}\terror: ${rec.error}\n`);
        }
        const predicted = records.filter((x) => x.prediction).length;
        const errors = records.length - predicted;
        process.stderr.write(`predicted ${predicted}, errors ${errors}, total ${records.length}${final.state !== 'done' ? ` (job ${final.state})` : ''}\n`);
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });
}
