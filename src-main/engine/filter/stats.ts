import { addStats } from '../stats.ts';

addStats('filter', (db) => {
  const one = (sql: string, ...p: unknown[]): number => (db.prepare(sql).pluck().get(...p) as number | undefined) ?? 0;
  const model = db.prepare(`SELECT id, threshold FROM filter_models ORDER BY id DESC LIMIT 1`).get() as { id: number; threshold: number } | undefined;
  const scored = model ? one(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ?`, model.id) : 0;
  const kept = model ? one(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ? AND score >= ?`, model.id, model.threshold) : 0;
  return {
    labelled_good: one(`SELECT COUNT(*) FROM labels WHERE label = 'good'`),
    labelled_bad: one(`SELECT COUNT(*) FROM labels WHERE label = 'bad'`),
    threshold: model?.threshold ?? null,
    scored,
    kept,
    removed: scored - kept,
  };
});
