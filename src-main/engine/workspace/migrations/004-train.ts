import type { Migration } from './index.ts';

/** Training runs; each run's files (config, metrics, checkpoints) live in <workspace>/runs/<id>/. */
export const migration004: Migration = {
  version: 4,
  name: 'train',
  sql: `
    CREATE TABLE runs (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      mode TEXT NOT NULL CHECK (mode IN ('heads','finetune')),
      params TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('preparing','running','stopped','done','failed')),
      job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
      step INTEGER NOT NULL DEFAULT 0,
      steps INTEGER NOT NULL,
      last_train TEXT,
      last_test TEXT,
      best TEXT,
      baseline TEXT,
      error TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
  `,
};
