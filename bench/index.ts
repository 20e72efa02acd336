import { storeBench } from './store.bench.ts';

export interface Benchmark {
  name: string;
  description: string;
  run(): Promise<Record<string, unknown>>;
}

/** Every benchmark, in pipeline order; each stage adds its own. */
export const benchmarks: Benchmark[] = [storeBench];
