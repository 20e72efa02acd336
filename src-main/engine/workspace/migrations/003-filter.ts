import type { Migration } from './index.ts';

/** Label & Filter: hand labels, fitted junk filters, their scores, and the training-input view. */
export const migration003: Migration = {
  version: 3,
  name: 'filter',
  sql: `
    CREATE TABLE labels (
      image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
      label TEXT NOT NULL CHECK (label IN ('good','bad')),
      source TEXT NOT NULL CHECK (source IN ('ui','import')),
      at INTEGER NOT NULL
    );
    -- Every labelling action, so the UI can undo (prev = the label before, NULL = none).
    CREATE TABLE label_log (
      id INTEGER PRIMARY KEY,
      image_id INTEGER NOT NULL,
      label TEXT,
      prev TEXT,
      at INTEGER NOT NULL
    );

    CREATE TABLE filter_models (
      id INTEGER PRIMARY KEY,
      extractor TEXT NOT NULL,
      model TEXT NOT NULL,
      threshold REAL NOT NULL,
      max_fnr REAL NOT NULL,
      labelled_good INTEGER NOT NULL,
      labelled_bad INTEGER NOT NULL,
      -- JSON: { imageIds, labels, scores } out-of-fold decision values of the labelled images
      cv TEXT NOT NULL,
      created_at INTEGER NOT NULL
    );

    CREATE TABLE filter_scores (
      image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
      model_id INTEGER NOT NULL REFERENCES filter_models(id) ON DELETE CASCADE,
      score REAL NOT NULL
    );
    CREATE INDEX filter_scores_score ON filter_scores(model_id, score);

    -- What training reads: usable images (migration 002) that the applied filter keeps; all
    -- usable images while no filter has been applied (meta 'filter.applied_model').
    CREATE VIEW training_images AS
      SELECT u.* FROM usable_images u
      WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'filter.applied_model')
         OR EXISTS (
           SELECT 1 FROM filter_scores s JOIN filter_models f ON f.id = s.model_id
           WHERE s.image_id = u.id
             AND f.id = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'filter.applied_model')
             AND s.score >= f.threshold);
  `,
};
