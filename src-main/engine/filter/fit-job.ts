import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { ensureFeatures, featureSetName } from './features.ts';
import { SvmClassifier, crossValDecision } from './svm.ts';
import { chooseThreshold, thresholdTable } from './threshold.ts';
import type { FilterFitParams } from './filter-kinds.ts';

/** Fits the RBF SVM on the labelled images, with 10-fold cross-validated decision values and the threshold for the FNR cap. */
export default async function fitJob(ctx: JobContext<FilterFitParams>): Promise<unknown> {
  const ws = ctx.workspace;
  const rows = ws.db.prepare(`SELECT l.image_id id, l.label FROM labels l JOIN images i ON i.id = l.image_id WHERE i.state = 'stored' ORDER BY l.image_id`).all() as Array<{
    id: number;
    label: 'good' | 'bad';
  }>;
  const good = rows.filter((r) => r.label === 'good').length;
  const bad = rows.length - good;
  if (good < 5 || bad < 5) throw new UserError(`need at least 5 good and 5 bad labels to fit the filter (have ${good} good, ${bad} bad)`);
  // the model records its feature set (e.g. mobilenet_v2.crops3), so apply scores with the same features
  const set = featureSetName(ctx.params.extractor, ctx.params.crops);
  const { cache } = await ensureFeatures(
    { ws, signal: ctx.signal, progress: (d, t, m) => ctx.progress({ step: 'features', done: d, total: t, message: m }), log: (l, m) => ctx.log(l, m) },
    rows.map((r) => r.id),
    set,
  );
  const { ids, data } = await cache.read(rows.map((r) => r.id));
  await cache.close();
  const labelOf = new Map(rows.map((r) => [r.id, r.label === 'good' ? 1 : 0]));
  const y = ids.map((id) => labelOf.get(id)!);
  const X = { data, rows: ids.length, cols: cache.dim };
  ctx.progress({ step: 'cross-validation', done: 0, total: ctx.params.folds });
  const cv = await crossValDecision(X, y, ctx.params.folds, 0, { onFold: (f, n) => ctx.progress({ step: 'cross-validation', done: f, total: n }) });
  if (ctx.signal.aborted) return null;
  ctx.progress({ step: 'fit', done: 0, total: 1 });
  const model = await SvmClassifier.fit(X, y);
  const table = thresholdTable(cv, y);
  const chosen = chooseThreshold(table, ctx.params.maxFnr);
  const info = ws.db
    .prepare(
      `INSERT INTO filter_models (extractor, model, threshold, max_fnr, labelled_good, labelled_bad, cv, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    )
    .get(set, model.serialize(), chosen.threshold, ctx.params.maxFnr, good, bad, JSON.stringify({ imageIds: ids, labels: y, scores: Array.from(cv) }), Date.now()) as {
    id: number;
  };
  ctx.log('info', `threshold ${chosen.threshold.toFixed(4)}: CV FNR ${(100 * chosen.falseNegativeRate).toFixed(2)}%, bad removed ${(100 * chosen.badRemoved).toFixed(1)}%`);
  ctx.progress({ step: 'fit', done: 1, total: 1 });
  return { modelId: info.id, featureSet: set, labelledGood: good, labelledBad: bad, threshold: chosen.threshold, cvFalseNegativeRate: chosen.falseNegativeRate, cvBadRemoved: chosen.badRemoved, cvAccuracy: chosen.accuracy };
}
