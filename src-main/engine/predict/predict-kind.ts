import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { FEATURE_RUNTIMES } from '../filter/extract.ts';
import { DEFAULT_MAX_PIXELS } from './decode-file.ts';

export const predictParams = z.object({
  /** Run id (folder under <workspace>/runs). */
  runId: z.string().min(1),
  /** Checkpoint name in the run folder: best, last, ... */
  checkpoint: z.string().min(1).default('best'),
  /** Folder of photos, walked recursively. */
  input: z.string().min(1),
  /** Copy unchanged files' predictions from earlier jobs of the same run and checkpoint. */
  reuse: z.boolean().default(true),
  batchSize: z.number().int().min(1).max(64).default(16),
  maxPixels: z.number().int().positive().default(DEFAULT_MAX_PIXELS),
  /** Where a heads run's MobileNetV2 runs: auto (ONNX Runtime when it loads, else tfjs), onnx, tfjs. */
  runtime: z.enum(FEATURE_RUNTIMES).default('auto'),
});
export type PredictParams = z.infer<typeof predictParams>;

export const predictKind = defineJobKind<PredictParams>({
  kind: 'predict',
  title: (p) => `Predict ${p.input} with ${p.runId}/${p.checkpoint}`,
  params: predictParams,
  module: new URL('./predict-job.ts', import.meta.url).href,
  exclusive: false,
  autoResume: true,
});
