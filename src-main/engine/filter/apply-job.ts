import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { ensureFeatures, type ExtractorName } from './features.ts';
import { currentModel, loadClassifier } from './filter-model.ts';
import type { FilterApplyParams } from './filter-kinds.ts';

const BATCH = 4096;

/** Scores every usable image with the current filter and makes it the one training uses. Resumable: scored images are skipped. */
export default async function applyJob(ctx: JobContext<FilterApplyParams>): Promise<unknown> {
  const ws = ctx.workspace;
  const m = currentModel(ws);
  if (!m) throw new UserError('no filter has been fitted yet: label some images and run `carstudio filter fit`');
  const clf = loadClassifier(ws, m.id);
  const all = ws.db.prepare(`SELECT id FROM usable_images ORDER BY id`).pluck().all() as number[];
  const done = new Set(ws.db.prepare(`SELECT image_id FROM filter_scores WHERE model_id = ?`).pluck().all(m.id) as number[]);
  const todo = all.filter((id) => !done.has(id));
  const { cache } = await ensureFeatures(
    { ws, signal: ctx.signal, progress: (d, t, msg) => ctx.progress({ step: 'features', done: d, total: t, message: msg }), log: (l, msg) => ctx.log(l, msg) },
    todo,
    m.extractor as ExtractorName,
  );
  const put = ws.db.prepare(`INSERT INTO filter_scores (image_id, model_id, score) VALUES (?, ?, ?) ON CONFLICT (image_id) DO UPDATE SET model_id = excluded.model_id, score = excluded.score`);
  let scored = 0;
  const scorer = todo.length ? await clf.scorer({ onFallback: (why, level) => ctx.log(level, `SVM scoring falls back to JS: ${why}`) }) : null;
  try {
    if (scorer) ctx.log('info', `scoring ${todo.length} images with ${scorer.backend}`);
    for (let i = 0; i < todo.length && !ctx.signal.aborted; i += BATCH) {
      const { ids, data } = await cache.read(todo.slice(i, i + BATCH));
      const scores = await scorer!.score(data, ids.length);
      ws.db.transaction(() => ids.forEach((id, k) => put.run(id, m.id, scores[k])))();
      scored += ids.length;
      ctx.progress({ step: 'score', done: scored, total: todo.length });
    }
  } finally {
    await scorer?.close();
    await cache.close();
  }
  if (ctx.signal.aborted) return null;
  ws.db.prepare(`INSERT INTO meta (key, value) VALUES ('filter.applied_model', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(String(m.id));
  const kept = ws.db.prepare(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ? AND score >= ?`).pluck().get(m.id, m.threshold) as number;
  const total = ws.db.prepare(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ?`).pluck().get(m.id) as number;
  return { modelId: m.id, threshold: m.threshold, scored: total, kept, removed: total - kept };
}
