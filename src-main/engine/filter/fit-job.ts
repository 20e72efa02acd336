import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { ensureFeatures, featureSetName } from './features.ts';
import { DEFAULT_C_GRID, tuneSvm } from './svm.ts';
import { CI90_Z, chooseThreshold, fnrInterval, thresholdTable, wilsonInterval } from './threshold.ts';
import type { FilterFitParams } from './filter-kinds.ts';

/** What a filter fit returns (the job's result). */
export interface FilterFitResult {
  modelId: number;
  featureSet: string;
  labelledGood: number;
  labelledBad: number;
  threshold: number;
  cvFalseNegativeRate: number;
  cvBadRemoved: number;
  cvAccuracy: number;
  /** The final model's C, chosen by inner cross-validation on all labels. */
  C: number;
  /** The C chosen inside each outer fold (its held-out scores came from a model with it). */
  foldC: number[];
  cGrid: number[];
  innerFolds: number;
  fnrMargin: number;
  /** The 90% Wilson interval of the CV FNR at the chosen threshold, from goodRemoved of good. */
  cvFnrInterval: { lower: number; upper: number; z: number; goodRemoved: number; good: number };
}

/**
 * Fits the standardised RBF SVM on the labelled images: nested cross-validation (C chosen inside
 * each outer fold, so the held-out decision values stay honest), the threshold for the FNR cap
 * (with the margin asked for), and the final model with C chosen on all labels.
 */
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
  // params of jobs queued before the C search carry none of these: the schema's defaults
  const cGrid = [...new Set(ctx.params.cGrid ?? DEFAULT_C_GRID)].sort((a, b) => a - b);
  const innerFolds = ctx.params.innerFolds ?? 3;
  const fnrMargin = ctx.params.fnrMargin ?? 0;
  const { folds, maxFnr } = ctx.params;
  const innerFits = cGrid.length > 1 ? cGrid.length * innerFolds : 0;
  ctx.progress({ step: 'cross-validation', done: 0, total: folds * (innerFits + 1) + innerFits + 1, message: `${folds} folds, C from ${cGrid.join(', ')}` });
  if (ctx.signal.aborted) return null;
  const tuned = await tuneSvm(X, y, {
    folds,
    seed: 0,
    cGrid,
    innerFolds,
    maxFnr,
    signal: ctx.signal,
    onProgress: (p) => ctx.progress({ step: 'cross-validation', done: p.done, total: p.total, message: p.message }),
  });
  if (ctx.signal.aborted) return null;
  const cv = tuned.scores;
  const model = tuned.model;
  const table = thresholdTable(cv, y);
  const chosen = chooseThreshold(table, maxFnr, { margin: fnrMargin });
  if (fnrMargin > 0 && wilsonInterval(0, good, fnrMargin).upper > maxFnr) {
    ctx.log('warn', `with ${good} good labels no threshold has an FNR upper bound (margin ${fnrMargin}) within ${(100 * maxFnr).toFixed(1)}%: the filter keeps every image; label more good images or lower --fnr-margin`);
  }
  const ci = fnrInterval(chosen, CI90_Z);
  const foldC = tuned.foldChoices.map((c) => c.C);
  const cvJson = {
    imageIds: ids,
    labels: y,
    scores: Array.from(cv),
    C: tuned.finalChoice.C,
    foldC,
    cGrid,
    innerFolds,
    folds,
    fnrMargin,
    standardized: model.scaler !== null,
    /** inner cross-validated bad removed at the FNR cap per C of the grid, for the final model and per outer fold */
    cBadRemoved: tuned.finalChoice.badRemoved,
    foldCBadRemoved: tuned.foldChoices.map((c) => c.badRemoved),
    fnrInterval: ci,
  };
  const info = ws.db
    .prepare(
      `INSERT INTO filter_models (extractor, model, threshold, max_fnr, labelled_good, labelled_bad, cv, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    )
    .get(set, model.serialize(), chosen.threshold, maxFnr, good, bad, JSON.stringify(cvJson), Date.now()) as {
    id: number;
  };
  const pct = (v: number, d: number) => (100 * v).toFixed(d);
  ctx.log(
    'info',
    `threshold ${chosen.threshold.toFixed(4)} (C=${tuned.finalChoice.C}; per fold ${foldC.join(',')}): CV FNR ${pct(chosen.falseNegativeRate, 2)}% (90% CI ${pct(ci.lower, 1)}-${pct(ci.upper, 1)}% from ${ci.good} good labels), bad removed ${pct(chosen.badRemoved, 1)}%`,
  );
  const result: FilterFitResult = {
    modelId: info.id,
    featureSet: set,
    labelledGood: good,
    labelledBad: bad,
    threshold: chosen.threshold,
    cvFalseNegativeRate: chosen.falseNegativeRate,
    cvBadRemoved: chosen.badRemoved,
    cvAccuracy: chosen.accuracy,
    C: tuned.finalChoice.C,
    foldC,
    cGrid,
    innerFolds,
    fnrMargin,
    cvFnrInterval: ci,
  };
  return result;
}
