import type { Workspace } from '../workspace/workspace.ts';
import { SvmClassifier } from './svm.ts';
import { thresholdTable, chooseThreshold, type ThresholdRow } from './threshold.ts';

export interface FilterModelRow {
  id: number;
  extractor: string;
  threshold: number;
  maxFnr: number;
  labelledGood: number;
  labelledBad: number;
  createdAt: number;
  /** Out-of-fold scores; fits since the margin option also record it (`fnrMargin`, absent = 0). */
  cv: { imageIds: number[]; labels: number[]; scores: number[]; fnrMargin?: number };
}

/** The newest fitted filter, if any. */
export function currentModel(ws: Workspace): FilterModelRow | null {
  const r = ws.db.prepare(`SELECT * FROM filter_models ORDER BY id DESC LIMIT 1`).get() as
    | {
        id: number;
        extractor: string;
        threshold: number;
        max_fnr: number;
        labelled_good: number;
        labelled_bad: number;
        created_at: number;
        cv: string;
      }
    | undefined;
  if (!r) return null;
  return {
    id: r.id,
    extractor: r.extractor,
    threshold: r.threshold,
    maxFnr: r.max_fnr,
    labelledGood: r.labelled_good,
    labelledBad: r.labelled_bad,
    createdAt: r.created_at,
    cv: JSON.parse(r.cv),
  };
}

export function loadClassifier(ws: Workspace, id: number): SvmClassifier {
  const s = ws.db.prepare(`SELECT model FROM filter_models WHERE id = ?`).pluck().get(id) as string;
  return SvmClassifier.deserialize(s);
}

export function cvTable(m: FilterModelRow): ThresholdRow[] {
  return thresholdTable(m.cv.scores, m.cv.labels);
}

/** The largest threshold whose cross-validated FNR (with the fit's margin: its upper bound) is at most maxFnr. */
export function thresholdForFnr(m: FilterModelRow, maxFnr: number): ThresholdRow {
  return chooseThreshold(cvTable(m), maxFnr, { margin: m.cv.fnrMargin ?? 0 });
}

export interface Meter {
  threshold: number;
  falseNegativeRate: number;
  badRemoved: number;
  accuracy: number;
  /** Share of all scored images kept at this threshold (null before `filter apply`). */
  keptShare: number | null;
  scored: number;
}

/** FNR, bad removed and accuracy from the CV scores; the kept share from the applied scores. */
export function meterAt(ws: Workspace, m: FilterModelRow, threshold: number): Meter {
  let good = 0;
  let bad = 0;
  let goodLost = 0;
  let badGone = 0;
  m.cv.scores.forEach((s, i) => {
    if (m.cv.labels[i] === 1) {
      good++;
      if (s < threshold) goodLost++;
    } else {
      bad++;
      if (s < threshold) badGone++;
    }
  });
  const scored = ws.db.prepare(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ?`).pluck().get(m.id) as number;
  const kept = ws.db.prepare(`SELECT COUNT(*) FROM filter_scores WHERE model_id = ? AND score >= ?`).pluck().get(m.id, threshold) as number;
  return {
    threshold,
    falseNegativeRate: good ? goodLost / good : 0,
    badRemoved: bad ? badGone / bad : 0,
    accuracy: good + bad ? (good - goodLost + badGone) / (good + bad) : 0,
    keptShare: scored ? kept / scored : null,
    scored,
  };
}

export function setThreshold(ws: Workspace, modelId: number, threshold: number): void {
  ws.db.prepare(`UPDATE filter_models SET threshold = ? WHERE id = ?`).run(threshold, modelId);
}
