import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { EXTRACTORS } from './features.ts';

const extractor = z.enum(EXTRACTORS).default('mobilenet_v2');

export const featuresParams = z.object({ extractor, scope: z.enum(['usable', 'labelled']).default('usable') });
export type FeaturesParams = z.infer<typeof featuresParams>;
export const filterFitParams = z.object({ extractor, maxFnr: z.number().min(0).max(1).default(0.01), folds: z.number().int().min(2).max(50).default(10) });
export type FilterFitParams = z.infer<typeof filterFitParams>;
export const filterApplyParams = z.object({});
export type FilterApplyParams = z.infer<typeof filterApplyParams>;

defineJobKind<FeaturesParams>({
  kind: 'features',
  title: (p) => `Features (${p.extractor}, ${p.scope} images)`,
  params: featuresParams,
  module: new URL('./features-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
defineJobKind<FilterFitParams>({
  kind: 'filter-fit',
  title: (p) => `Fit junk filter (FNR <= ${(100 * p.maxFnr).toFixed(1)}%)`,
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
import './stats.ts';
