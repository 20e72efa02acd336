import { DEFAULT_C_GRID } from './svm.ts';
import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { DEFAULT_EXTRACTOR, EXTRACTORS } from './features.ts';
import { CLIP_DEFAULT_URL } from './clip.ts';
import { FEATURE_RUNTIMES } from './extract.ts';

const extractor = z.enum(EXTRACTORS).default(DEFAULT_EXTRACTOR);
/** 1: the centre crop; 3: the mean of three crops along the long side (a feature set of its own). */
const crops = z.union([z.literal(1), z.literal(3)]).default(1);

export const featuresParams = z.object({
  extractor,
  scope: z.enum(['usable', 'labelled']).default('usable'),
  /** Where mobilenet_v2 runs: ONNX Runtime, tfjs, or ONNX Runtime when it loads (the cache is the same). */
  runtime: z.enum(FEATURE_RUNTIMES).default('auto'),
  crops,
});
export type FeaturesParams = z.infer<typeof featuresParams>;
export const filterFitParams = z.object({
  extractor,
  crops,
  maxFnr: z.number().min(0).max(1).default(0.01),
  folds: z.number().int().min(2).max(50).default(10),
  /** The values of C the nested cross-validation chooses from; one value skips the inner search. Jobs queued before had none: the default grid. */
  cGrid: z.array(z.number().positive().finite()).min(1).max(10).default([...DEFAULT_C_GRID]),
  /** Folds of the inner cross-validation that chooses C in each outer fold. */
  innerFolds: z.number().int().min(2).max(10).default(3),
  /** z of the one-sided Wilson upper bound on the CV FNR that must stay within maxFnr (0: the measured FNR itself). */
  fnrMargin: z.number().min(0).max(5).default(0),
});
export type FilterFitParams = z.infer<typeof filterFitParams>;
export const filterApplyParams = z.object({});
export type FilterApplyParams = z.infer<typeof filterApplyParams>;
/** Installs an extractor's weights: a copy of `from` (a file or folder on the engine's machine) or a resumable download of `url`. */
export const weightsParams = z.object({
  extractor: z.enum(['clip-vit-b16']).default('clip-vit-b16'),
  url: z.string().url().default(CLIP_DEFAULT_URL),
  from: z.string().min(1).optional(),
});
export type WeightsParams = z.infer<typeof weightsParams>;

defineJobKind<FeaturesParams>({
  kind: 'features',
  title: (p) => `Features (${p.extractor}${p.crops === 3 ? ', 3 crops' : ''}, ${p.scope} images)`,
  params: featuresParams,
  module: new URL('./features-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
defineJobKind<FilterFitParams>({
  kind: 'filter-fit',
  title: (p) => `Fit junk filter (${p.crops === 3 ? '3-crop features, ' : ''}FNR <= ${(100 * p.maxFnr).toFixed(1)}%)`,
  params: filterFitParams,
  module: new URL('./fit-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: false,
});
defineJobKind<FilterApplyParams>({
  kind: 'filter-apply',
  title: () => 'Apply junk filter',
  params: filterApplyParams,
  module: new URL('./apply-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
defineJobKind<WeightsParams>({
  kind: 'weights',
  title: (p) => (p.from ? `Install ${p.extractor} weights from ${p.from}` : `Download ${p.extractor} weights`),
  params: weightsParams,
  module: new URL('./weights-job.ts', import.meta.url).href,
  // two downloads into one .part file would interleave; a killed download continues on restart
  exclusive: true,
  autoResume: true,
});
import './stats.ts';
