import type { Migration } from './index.ts';

/**
 * Labelling undo/redo by action: a bulk action (a selection, a whole page) logs one row per image
 * under one batch, undone and redone as one step; an undone action stays in the log (undone = 1)
 * until a new action replaces the redo history.
 */
export const migration009: Migration = {
  version: 9,
  name: 'label-batches',
  sql: `
    -- The action a log row belongs to (the id of its first row); NULL for rows logged before
    -- this migration, each its own action.
    ALTER TABLE label_log ADD COLUMN batch INTEGER;
    -- 1 once undone (redo re-applies it); a new action deletes the undone rows.
    ALTER TABLE label_log ADD COLUMN undone INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX label_log_batch ON label_log (batch);
  `,
};
