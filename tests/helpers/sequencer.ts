import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The slowest test files, slowest first (seconds measured in a fresh-clone CI run on 2 cores with
 * a CPU hog beside it). On a fresh clone vitest has no timings and starts the largest files first,
 * so a small but slow file (train-job.test.ts) ran last, alone on one core, for over 4 minutes.
 * Starting these first lets the short files fill in beside them.
 */
const SLOW_FIRST = [
  'train-job.test.ts', // 264 s
  'scrape-job.test.ts', // 154 s
  'filter-job.test.ts', // 138 s
  'e2e-train.test.ts', // 112 s
  'e2e-filter-train.test.ts', // 106 s
  'cli-hardening.test.ts', // 97 s
  'train-finetune-kill.test.ts', // 95 s
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
