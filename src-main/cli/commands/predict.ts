import type { Command } from 'commander';
import { findResumable, openEngine, runForeground, workspaceOption } from '../common.ts';
import { FEATURE_RUNTIMES, type FeatureRuntime } from '../../engine/filter/extract.ts';
import type { PredictJobResult } from '../../engine/predict/predict-job.ts';
import { UserError } from '../../engine/workspace/errors.ts';
import { resolveRun } from '../../engine/predict/runs.ts';
import { readRecords } from '../../engine/predict/store.ts';
import { warningSummary } from '../../engine/predict/trust.ts';
import type { PredictParams } from '../../engine/predict/predict-kind.ts';
import { applyDevice, deviceOption } from '../device-option.ts';
import type { OrtDevice } from '../../engine/ml/ort.ts';

function runtimeArg(v: string): FeatureRuntime {
  if (!(FEATURE_RUNTIMES as readonly string[]).includes(v)) throw new UserError(`--runtime must be one of ${FEATURE_RUNTIMES.join(', ')}, got '${v}'`);
  return v as FeatureRuntime;
}

/** A car box (fractions of the photo) as percentages: x1-x2 across, y1-y2 down. */
function boxText(b: { x1: number; y1: number; x2: number; y2: number }): string {
  const pc = (v: number) => `${Math.round(100 * v)}%`;
  return `x ${pc(b.x1)}-${pc(b.x2)}, y ${pc(b.y1)}-${pc(b.y2)}`;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('run a trained model on a folder of photos (recursive); one record per image, counts on stderr; run again to resume')
    .addOption(workspaceOption())
    .option('--run <id>', 'run id, as `carstudio runs` lists them (default: the recommended run, the best by test price accuracy)')
    .option('--checkpoint <name>', 'checkpoint of the run: best (default), last, ...')
    .requiredOption('--input <folder>', 'folder of photos (JPEG, PNG, WebP, GIF, TIFF, AVIF; walked recursively)')
    .option('--fresh', 'predict every file again, even when this run already predicted it')
    .option('--json', 'print one JSON record per image (JSON Lines)')
    .option(
      '--runtime <runtime>',
      "where a heads run's mobilenet_v2 runs: onnx (ONNX Runtime, needs onnxruntime-node), tfjs, or auto (ONNX Runtime when it loads, else tfjs); both give the same predictions. A fine-tuned run runs on tfjs",
      runtimeArg,
      'auto',
    )
    .addOption(deviceOption())
    .action(async (opts: { workspace?: string; run?: string; checkpoint?: string; input: string; fresh?: boolean; json?: boolean; runtime: FeatureRuntime; device?: OrtDevice }) => {
      applyDevice(opts.device);
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
          runtime: opts.runtime,
        };
        // the runtime is part of the match: a plain `predict` does not resume a failed --runtime onnx job
        const same = (p: unknown): boolean => {
          const q = p as Partial<PredictParams>;
          return (
            q.runId === params.runId && q.checkpoint === params.checkpoint && q.input === params.input && q.reuse === params.reuse && (q.runtime ?? 'auto') === params.runtime
          );
        };
        const prev = findResumable(engine, 'predict', same);
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('predict', params);
        const { code, job: final } = await runForeground(engine, job);
        const records = readRecords(engine.ws.dir, final.id);
        // what this job predicted with (unknown when an earlier attempt of it predicted every file)
        const result = final.result as Partial<PredictJobResult> | null;
        const backend = result?.backend && result.backend !== 'none' ? result.backend : undefined;
        const runtime = result?.runtime ?? undefined;
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
                      binPrice: p.binPrice ?? null,
                      calibrated: p.calibrated ?? false,
                      trust: p.trust ?? null,
                      makeModels: p.makeModels,
                      year: p.topYears[0]?.label ?? null,
                      topYears: p.topYears,
                      car: p.car,
                      ...(rec.reusedFrom ? { reusedFrom: rec.reusedFrom } : { backend, runtime }),
                    }
                  : { path: rec.path, run: r.run.id, checkpoint: r.checkpoint, error: rec.error },
              ) + '\n',
            );
          } else if (rec.prediction) {
            const p = rec.prediction;
            const top = p.makeModels[0];
            const car = p.car;
            // one line per image: where the car is, or the warning that there is none
            const where = !car ? '' : car.hasCar && car.box ? `\tcar ${(100 * car.score).toFixed(0)}% at ${boxText(car.box)}` : '';
            const dollars = (v: number) => `$${Math.round(v).toLocaleString('en-US')}`;
            const bins = p.binPrice ? `\tbins ${dollars(p.binPrice.median)} (80%: ${dollars(p.binPrice.low)}-${dollars(p.binPrice.high)})` : '';
            // the photo's own warnings (junk, far, no car); the run's untrained heads are said once below
            const warnings = (p.trust?.warnings ?? []).filter((w) => w.code !== 'untrained').map((w) => `\twarning: ${w.message}`).join('');
            process.stdout.write(
              `${rec.rel}\t${dollars(p.medianPrice)}${bins}\t${top.label} ${(100 * top.p).toFixed(0)}%\t${p.topYears[0].label}${where}${warnings}\n`,
            );
          } else process.stdout.write(`${rec.rel}\terror: ${rec.error}\n`);
        }
        const predicted = records.filter((x) => x.prediction).length;
        const errors = records.length - predicted;
        const noCar = records.filter((x) => x.prediction?.car && !x.prediction.car.hasCar).length;
        process.stderr.write(
          `predicted ${predicted}, errors ${errors}, total ${records.length}${backend ? ` on ${backend}` : ''}${final.state !== 'done' ? ` (job ${final.state})` : ''}${noCar ? `; no car found in ${noCar} photo${noCar === 1 ? '' : 's'}` : ''}\n`,
        );
        if (!opts.json) {
          const untrained = r.run.heads.filter((h) => !h.trains);
          if (untrained.length) process.stderr.write(`run ${r.run.id}: not trained: ${untrained.map((h) => `${h.head} (${h.reason ?? 'not trained'})`).join(', ')}; those outputs mean nothing\n`);
        }
        process.stderr.write(`${warningSummary(records.map((x) => x.prediction))}\n`);
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });
}
