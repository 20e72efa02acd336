import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';

export const evalParams = z
  .object({
    runId: z.number().int().positive(),
    checkpoint: z.enum(['best', 'last']).default('best'),
    /** Score a manifest's rows (import's CSV / JSON Lines format) instead of the run's test split. */
    manifest: z.string().optional(),
    imagesRoot: z.string().optional(),
    /** field -> manifest column, as for import. */
    map: z.record(z.string()).default({}),
    /** Neighbours of the kNN baseline. */
    k: z.number().int().min(1).max(200).default(10),
  })
  .strict();
export type EvalParams = z.infer<typeof evalParams>;

/** What an eval job returns (and `carstudio eval --json` prints with the report). */
export interface EvalJobResult {
  runId: number;
  reportId: string;
  /** The report folder: report.json and report.html. */
  dir: string;
}

export const evalKind = defineJobKind<EvalParams>({
  kind: 'eval',
  title: (p) => `Evaluate run ${p.runId}${p.manifest ? ' on a manifest' : ''}`,
  params: evalParams,
  module: new URL('./eval-job.ts', import.meta.url).href,
  exclusive: false,
  autoResume: false,
});
