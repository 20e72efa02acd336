import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';

export const trainParams = z.object({
  name: z.string().max(200).optional(),
  mode: z.enum(['heads', 'finetune']).default('heads'),
  steps: z.number().int().min(1).max(10_000_000).default(2000),
  batchSize: z.number().int().min(1).max(4096).default(64),
  /** Default: 1e-3 for heads, 1e-4 for finetune (the original's MobileNetV2 rate). */
  lr: z.number().positive().optional(),
  /** A preset (default, price_ce_only) or k=v,... over price, median, year, make. */
  lossWeights: z.string().default('default'),
  evalEvery: z.number().int().min(1).default(100),
  checkpointEvery: z.number().int().min(1).default(100),
  /** A shared hidden layer: without one, heads on frozen features cannot help each other. */
  hidden: z.number().int().min(0).max(8192).default(256),
  dropout: z.number().min(0).max(0.95).default(0),
  augment: z.boolean().default(true),
  seed: z.number().int().default(1),
  /** Continue this run from its last checkpoint (steps = the new total). */
  resumeRun: z.number().int().positive().optional(),
  /** Fine-tune even on the pure-JS backend (tests, tiny experiments). */
  force: z.boolean().default(false),
});
export type TrainParams = z.infer<typeof trainParams>;

defineJobKind<TrainParams>({
  kind: 'train',
  title: (p) => (p.resumeRun ? `Train run #${p.resumeRun} (resume)` : `Train ${p.mode}${p.name ? ` "${p.name}"` : ''} (${p.lossWeights})`),
  params: trainParams,
  module: new URL('./train-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
