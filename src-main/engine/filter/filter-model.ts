import type { Workspace } from '../workspace/workspace.ts';
import { SvmClassifier } from './svm.ts';
import { thresholdTable, chooseThreshold, fnrInterval, wilsonInterval, CI90_Z, type ThresholdRow } from './threshold.ts';

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

/** Fewer labels of a class than this and a 1% FNR (or bad-removed share) is a handful of images: the meter warns. */
export const FEW_LABELS = 100;
/** One class this many times the other: the meter warns that the fit is unbalanced. */
export const UNBALANCED_RATIO = 10;

export interface Meter {
  threshold: number;
  falseNegativeRate: number;
  /** The 90% Wilson interval of the CV FNR, with its counts (good thrown away of good labels). */
  fnrInterval: { lower: number; upper: number; goodRemoved: number; good: number };
  badRemoved: number;
  accuracy: number;
  /** Share of all scored images kept at this threshold (null before `filter apply`). */
  keptShare: number | null;
  scored: number;
  /** Why the figures above may look more certain than they are (too few labels, unbalanced); empty when none. */
  warnings: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Why the CV figures of a fit on `good` and `bad` labels are less certain than they look. */
export function meterWarnings(good: number, bad: number, interval: { lower: number; upper: number }): string[] {
  const out: string[] = [];
  if (good < FEW_LABELS)
    out.push(
      `only ${good} good labels: 1% of them is ${(good / 100).toFixed(good < 100 ? 1 : 0)} images, so the CV FNR is uncertain (90% interval ${pct(interval.lower)}–${pct(interval.upper)}); label at least ${FEW_LABELS} good images to trust a 1% FNR`,
    );
  if (bad < FEW_LABELS) {
    const w = wilsonInterval(0, bad, CI90_Z);
    out.push(`only ${bad} bad labels: the share of bad images removed is measured on few examples (one bad image is ${pct(bad ? 1 / bad : 1)}; even none missed leaves up to ${pct(w.upper)} unseen); label at least ${FEW_LABELS} bad images`);
  }
  if (good > 0 && bad > 0 && Math.max(good / bad, bad / good) >= UNBALANCED_RATIO)
    out.push(`unbalanced labels (${good} good, ${bad} bad): the accuracy mostly reflects the larger class; label more ${good > bad ? 'bad' : 'good'} images`);
  return out;
}

/** FNR (with its interval), bad removed and accuracy from the CV scores; the kept share from the applied scores. */
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
  const ci = wilsonInterval(goodLost, good, CI90_Z);
  return {
    threshold,
    falseNegativeRate: good ? goodLost / good : 0,
    fnrInterval: { lower: ci.lower, upper: ci.upper, goodRemoved: goodLost, good },
    badRemoved: bad ? badGone / bad : 0,
    accuracy: good + bad ? (good - goodLost + badGone) / (good + bad) : 0,
    keptShare: scored ? kept / scored : null,
    scored,
    warnings: meterWarnings(good, bad, ci),
  };
}

/** How the labels differ from the ones a fit was trained on: changed (relabelled or cleared) and added since. */
export interface Staleness {
  changed: number;
  added: number;
}

/** Labels changed since the fit (null when the labels are the ones it was fitted on). */
export function staleness(ws: Workspace, m: FilterModelRow): Staleness | null {
  const now = new Map(
    (ws.db.prepare(`SELECT l.image_id id, l.label FROM labels l JOIN images i ON i.id = l.image_id WHERE i.state = 'stored'`).all() as Array<{ id: number; label: string }>).map((r) => [
      r.id,
      r.label === 'good' ? 1 : 0,
    ]),
  );
  let changed = 0;
  m.cv.imageIds.forEach((id, i) => {
    const l = now.get(id);
    if (l !== m.cv.labels[i]) changed++;
    now.delete(id);
  });
  const added = now.size;
  return changed || added ? { changed, added } : null;
}

/** Why "choose" picked a threshold: the rule, the figures at that threshold, and the fallback when nothing met the budget. */
export function explainChoice(m: FilterModelRow, maxFnr: number, row: ThresholdRow): string {
  const margin = m.cv.fnrMargin ?? 0;
  const ci = fnrInterval(row);
  const at = `at ${row.threshold.toFixed(3)} the CV FNR is ${pct(row.falseNegativeRate)} (${row.goodRemovedCount} of ${row.goodCount} good labels thrown away; 90% interval ${pct(ci.lower)}–${pct(ci.upper)}) and ${pct(row.badRemoved)} of the bad labels are removed`;
  if (margin > 0) {
    const upper = wilsonInterval(row.goodRemovedCount, row.goodCount, margin).upper;
    if (upper > maxFnr) return `No threshold keeps the FNR's upper bound (margin z=${margin.toFixed(2)}) within ${pct(maxFnr)} with ${row.goodCount} good labels, so the lowest one, which keeps every image, was picked: ${at}. Label more good images.`;
    return `Picked the largest threshold whose FNR upper bound (margin z=${margin.toFixed(2)}, the fit's setting) stays within ${pct(maxFnr)}: ${at}; its upper bound is ${pct(upper)}. A larger threshold would remove more bad images but its bound passes ${pct(maxFnr)}.`;
  }
  return `Picked the largest threshold whose CV FNR stays within ${pct(maxFnr)}: ${at}. A larger threshold would remove more bad images but throw away more than ${pct(maxFnr)} of the good ones.`;
}

export function setThreshold(ws: Workspace, modelId: number, threshold: number): void {
  ws.db.prepare(`UPDATE filter_models SET threshold = ? WHERE id = ?`).run(threshold, modelId);
}
