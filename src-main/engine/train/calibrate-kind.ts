import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';

export const calibrateParams = z
  .object({
    runId: z.number().int().positive(),
    checkpoint: z.enum(['best', 'last']).default('best'),
  })
  .strict();
export type CalibrateParams = z.infer<typeof calibrateParams>;

/** Temperature scaling of a run's checkpoint on its test split (train/calibrate.ts); also the end of every train run that finishes. */
export const calibrateKind = defineJobKind<CalibrateParams>({
  kind: 'calibrate',
  title: (p) => `Calibrate run ${p.runId} (${p.checkpoint} checkpoint)`,
  params: calibrateParams,
  module: new URL('./calibrate-job.ts', import.meta.url).href,
  exclusive: false,
  autoResume: false,
});
