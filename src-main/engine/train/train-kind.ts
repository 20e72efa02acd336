import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { BACKBONE_KINDS } from './model.ts';
import { DEFAULT_EXTRACTOR, EXTRACTORS } from '../filter/features.ts';

const trainFields = z.object({
  name: z.string().max(200).optional(),
  mode: z.enum(['heads', 'finetune']).default('heads'),
  /**
   * mobilenet_v2 (pretrained; what heads mode always uses) or tiny-cnn (finetune only: a small CNN
   * trained from scratch at 64 px, a smoke test of the fine-tuning pipeline). Unset = mobilenet_v2
   * for a new run; a resumed run keeps its own (naming another is refused).
   */
  backbone: z.enum(BACKBONE_KINDS).optional(),
  /**
   * heads: the feature extractor whose cached features the heads train on (features/<name>; the
   * missing ones are extracted first, with progress). Unset = DEFAULT_EXTRACTOR for a new run; a
   * resumed run keeps the one its config.json records (mobilenet_v2 for runs from before it was
   * recorded), and naming another is refused. Optional rather than defaulted, so that a resume
   * that names none is told from one that names another, and params of jobs queued before it
   * existed parse as they were. Finetune runs ignore it (they train the backbone on pixels).
   */
  extractor: z.enum(EXTRACTORS).optional(),
  steps: z.number().int().min(1).max(10_000_000).default(2000),
  batchSize: z.number().int().min(1).max(4096).default(64),
  /** Default: 1e-3 for heads on mobilenet_v2 (2e-2 on the L2-normalised mobilenet_v2-blocks and car-v1 rows), 1e-4 for finetune of MobileNetV2 (the original's rate), 3e-3 for tiny-cnn. */
  lr: z.number().positive().optional(),
  /** A preset (default, price_ce_only) or k=v,... over price, median, year, make. */
  lossWeights: z.string().default('default'),
  evalEvery: z.number().int().min(1).default(100),
  checkpointEvery: z.number().int().min(1).default(100),
  /** A shared hidden layer: without one, heads on frozen features cannot help each other. */
  hidden: z.number().int().min(0).max(8192).default(256),
  dropout: z.number().min(0).max(0.95).default(0),
  /** AdamW's decoupled weight decay of the heads' kernels (per unit of lr); absent: the mode's default. */
  weightDecay: z.number().min(0).max(1e4).optional(),
  /** heads: standardise each feature column on the training rows (kept with the run), or train on the raw features (none, the default). */
  inputNorm: z.enum(['standard', 'none']).optional(),
  augment: z.boolean().default(true),
  seed: z.number().int().default(1),
  /**
   * listing (default): every photo of one listing on the same side of the train/test split, so
   * no car is in both; photo: the original's per-photo split by image hash. A resumed run keeps
   * the split it was started with.
   */
  split: z.enum(['listing', 'photo']).default('listing'),
  /** Share of the listings (or photos) held out as the test split; a resumed run keeps its own. */
  testFraction: z.number().gt(0).lt(1).default(0.1),
  /** Make/model classes: the K most frequent pairs of the dataset, the rest "Unknown". */
  topMakeModels: z.number().int().min(1).max(100_000).default(512),
  /** Continue this run from its last checkpoint (steps = the new total). */
  resumeRun: z.number().int().positive().optional(),
  /**
   * Fine-tune even without a native backend: on the pure-JS cpu backend (wasm has no convolution
   * gradients). A resumed run keeps the force it was started with.
   */
  force: z.boolean().default(false),
});

export const trainParams = trainFields.superRefine((p, ctx) => {
  if (p.backbone === 'tiny-cnn' && p.mode === 'heads' && p.resumeRun === undefined) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['backbone'],
      message:
        'the tiny-cnn backbone is trained from scratch on images, so it needs mode finetune; heads mode trains on cached features of an extractor',
    });
  }
});
export type TrainParams = z.infer<typeof trainFields>;

defineJobKind<TrainParams>({
  kind: 'train',
  title: (p) =>
    p.resumeRun
      ? `Train run #${p.resumeRun}${p.name ? ` "${p.name}"` : ''} (resume)`
      : `Train ${p.mode}${p.mode === 'finetune' ? ` ${p.backbone ?? 'mobilenet_v2'}` : ` on ${p.extractor ?? DEFAULT_EXTRACTOR}`}${p.name ? ` "${p.name}"` : ''} (${p.lossWeights})`,
  params: trainParams,
  module: new URL('./train-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
