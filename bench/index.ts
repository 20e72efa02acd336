import { storeBench } from './store.bench.ts';
import { scrapeBench } from './scrape.bench.ts';
import { dedupBench } from './dedup.bench.ts';
import { predictBench } from './predict.bench.ts';
import { filterBench } from './filter.bench.ts';
import { featuresBench } from './features.bench.ts';
import { trainBench } from './train.bench.ts';

export interface Benchmark {
  name: string;
  description: string;
  run(): Promise<Record<string, unknown>>;
}

/** Every benchmark, in pipeline order; each stage adds its own. */
export const benchmarks: Benchmark[] = [storeBench, scrapeBench, dedupBench, featuresBench, filterBench, trainBench, predictBench];
