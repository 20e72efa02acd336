import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './tests/helpers/sequencer.ts';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // expect.poll waits for the UI or an engine to catch up: 1 s (vitest's default) is too short
    // on a loaded 2-core machine, where a stage's first fetch can take several seconds
    expect: { poll: { timeout: 30_000 } },
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
    sequence: { sequencer: SlowFirstSequencer },
  },
});
