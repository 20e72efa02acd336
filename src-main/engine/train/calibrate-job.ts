import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { calibrateRun, type CalibrationReport } from './calibrate.ts';
import type { CalibrateParams } from './calibrate-kind.ts';

/** The calibrate job: calibration.json of the run's checkpoint; cancelled = nothing written. */
export default async function calibrateJob(ctx: JobContext<CalibrateParams>): Promise<CalibrationReport | { runId: number; cancelled: true }> {
  const { runId, checkpoint } = ctx.params;
  if (!ctx.workspace.db.prepare(`SELECT 1 FROM runs WHERE id = ?`).get(runId)) throw new UserError(`no run ${runId} (carstudio runs lists them)`);
  const report = await calibrateRun(ctx.workspace, runId, checkpoint, {
    signal: ctx.signal,
    progress: (step, done, total, message) => ctx.progress({ step, done, total, message }),
    log: (l, m) => ctx.log(l, m),
  });
  if (!report) {
    ctx.log('info', 'calibration cancelled; nothing was written');
    return { runId, cancelled: true };
  }
  return report;
}
