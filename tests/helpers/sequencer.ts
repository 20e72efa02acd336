import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest test files, slowest first (seconds measured in a fresh-clone CI run on 2 cores with
 * a CPU hog beside it). On a fresh clone vitest has no timings and starts the largest files first,
 * so a small but slow file (train-job.test.ts) ran last, alone on one core, for over 4 minutes.
 * Starting these first lets the short files fill in beside them.
 */
const SLOW_FIRST = [
  // durations of a fresh-clone CI run with other work on the machine
  'filter-quality.test.ts', // ~260 s: car-v1 features and the SVM on 1,318 real photos
  'e2e-everywhere.test.ts', // ~150-220 s: the demo's real first start (scrape, features, training) under the banner test
  'predict-ood-worker.test.ts', // ~60-200 s: distance references of a 6000-row car-v1 cache, in the worker and on the thread
  'predict-trust.test.ts', // ~50-120 s: a car-v1 filter and run on real photos
  'calibrate.test.ts', // ~50-110 s
  'studies.test.ts', // ~45-90 s
  'dedup-demo.test.ts', // ~50-70 s: the real 600-id demo
  'train-job.test.ts', // 181 s
  'scrape-job.test.ts', // 171 s
  'e2e-train.test.ts', // 127 s
  'train-finetune-kill.test.ts', // 115 s
  'train-extractor.test.ts', // ~100 s on a loaded machine
  'predict.test.ts', // 114 s
  'cli-hardening.test.ts', // 102 s
  'eval.test.ts', // 97 s
  'jobs.test.ts', // 93 s
  'e2e-filter-train.test.ts', // 86 s
  'predict-car.test.ts', // ~60 s
  'predict-hardening.test.ts', // 80 s
  'e2e-evaluate-ui.test.ts', // 69 s
  'filter-job.test.ts', // 66 s
];

export default class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification): number => {
      const i = SLOW_FIRST.indexOf(path.basename(f.moduleId));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    return sorted.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}
