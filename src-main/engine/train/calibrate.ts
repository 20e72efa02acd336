// Temperature scaling of a run's classification heads (the original's recalibrate.py): one
// temperature per head (price bins, make/model, year), fitted on the run's test split by
// minimising the negative log-likelihood of the labelled rows over log T (golden-section search
// on [-3, 3], deterministic), and stored beside the checkpoint in runs/<id>/calibration.json with
// a stamp of the checkpoint file (size + sha256). The predictor divides the logits by T when the
// stamp matches the checkpoint it loads. The report says, per head, ECE and NLL before and after:
// in-sample (T fitted on all test rows: the stored one) and held out (2-fold cross-fit: each half
// scored with the temperature fitted on the other half).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CALIBRATED_HEADS, type CalibratedHead, type CalibrationFit, type CalibrationReport, type HeadCalibration } from '../api/contract/train.ts';
import { classificationScores } from '../eval/metrics.ts';
import { maskedLabels, testSplitOutputs } from '../eval/eval-job.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import type { Workspace } from '../workspace/workspace.ts';
import { numMakeModelClasses } from './labels.ts';
import { runSplit, runTestFraction } from './trainer.ts';

export type { CalibrationReport, CalibratedHead, HeadCalibration, CalibrationFit } from '../api/contract/train.ts';
export { CALIBRATED_HEADS } from '../api/contract/train.ts';

export const CALIBRATION_FILE = 'calibration.json';

/** The stored calibration of a run folder, or null when it has none (or it cannot be read). */
export function readCalibration(runDir: string): CalibrationReport | null {
  const file = path.join(runDir, CALIBRATION_FILE);
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as CalibrationReport;
    return r && r.version === 1 && r.temperatures ? r : null;
  } catch {
    return null;
  }
}

/** Size and sha256 of a checkpoint file: a calibration applies to exactly that file. */
export function checkpointStamp(file: string): CalibrationReport['stamp'] {
  const data = fs.readFileSync(file);
  return { size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') };
}

// ---------- fitting ----------

/** The search range of ln T (T from 0.05 to 20) and the golden-section iterations over it (width 6 * 0.618^60). */
export const LOG_T_RANGE = [-3, 3] as const;
const GOLDEN_ITERATIONS = 60;
/** Below this many labelled rows a head is not calibrated; below HELD_OUT_MIN the cross-fit is not reported. */
export const MIN_ROWS = 2;
export const HELD_OUT_MIN = 10;
/** Probabilities are floored here before the log that turns them back into logits. */
const LOG_FLOOR = 1e-12;

/**
 * Temperature-scaled probabilities: softmax(ln p / T) per row, i.e. p^(1/T) renormalised (the
 * same as dividing the logits by T, since ln p is the logits up to a per-row constant).
 */
export function scaleProbs(probs: Float32Array, C: number, T: number): Float32Array {
  const n = probs.length / C;
  const out = new Float32Array(probs.length);
  const z = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) {
      z[c] = Math.log(Math.max(probs[i * C + c], LOG_FLOOR)) / T;
      if (z[c] > max) max = z[c];
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += z[c] = Math.exp(z[c] - max);
    for (let c = 0; c < C; c++) out[i * C + c] = z[c] / sum;
  }
  return out;
}

/** Mean negative log-likelihood of the labelled rows (`rows`: their indices) at temperature T. */
export function nllAt(probs: Float32Array, labels: Int32Array, C: number, rows: readonly number[], T: number): number {
  let s = 0;
  const z = new Float64Array(C);
  for (const i of rows) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) {
      z[c] = Math.log(Math.max(probs[i * C + c], LOG_FLOOR)) / T;
      if (z[c] > max) max = z[c];
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(z[c] - max);
    s -= z[labels[i]] - max - Math.log(sum);
  }
  return rows.length ? s / rows.length : 0;
}

/** The temperature minimising the NLL of `rows`: golden-section search over ln T in LOG_T_RANGE (deterministic). */
export function fitTemperature(probs: Float32Array, labels: Int32Array, C: number, rows: readonly number[]): number {
  const phi = (Math.sqrt(5) - 1) / 2;
  let [a, b] = LOG_T_RANGE as readonly [number, number];
  const f = (u: number): number => nllAt(probs, labels, C, rows, Math.exp(u));
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let k = 0; k < GOLDEN_ITERATIONS; k++) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/** One head's calibration from its probabilities (n x C) and labels (-1: no label), or why not. */
export function calibrateHead(probs: Float32Array, labels: Int32Array, C: number): HeadCalibration | { skipped: string } {
  const rows: number[] = [];
  labels.forEach((y, i) => y >= 0 && rows.push(i));
  if (C < 2) return { skipped: 'it has one class only' };
  if (rows.length < MIN_ROWS) return { skipped: `${rows.length} labelled test row${rows.length === 1 ? '' : 's'} (at least ${MIN_ROWS} needed)` };
  const fit = (p: Float32Array): CalibrationFit => {
    const s = classificationScores(p, labels, C);
    return { ece: s.ece, nll: s.ce, reliability: s.reliability };
  };
  const temperature = fitTemperature(probs, labels, C, rows);
  const before = fit(probs);
  const after = fit(scaleProbs(probs, C, temperature));
  return { temperature, n: rows.length, before, after, heldOut: rows.length >= HELD_OUT_MIN ? crossFit(probs, labels, C, rows, before) : null };
}

/**
 * The 2-fold cross-fit: labelled rows alternate between halves A and B (in row order, so the split
 * is deterministic); A is scored with the temperature fitted on B and B with A's, pooled.
 */
function crossFit(probs: Float32Array, labels: Int32Array, C: number, rows: number[], before: CalibrationFit): NonNullable<HeadCalibration['heldOut']> {
  const s = crossFitScores(probs, labels, C, rows);
  return { ece: { before: before.ece, after: s.ece }, nll: { before: before.nll, after: s.ce }, temperatures: s.temperatures };
}

/** The cross-fit's pooled CE and ECE and its two temperatures (also the eval report's held-out estimate). */
export function crossFitScores(probs: Float32Array, labels: Int32Array, C: number, rows: number[]): { ce: number; ece: number; temperatures: [number, number] } {
  const a = rows.filter((_, k) => k % 2 === 0);
  const b = rows.filter((_, k) => k % 2 === 1);
  const ta = fitTemperature(probs, labels, C, a);
  const tb = fitTemperature(probs, labels, C, b);
  const byA = scaleProbs(probs, C, ta);
  const byB = scaleProbs(probs, C, tb);
  const pooled = new Float32Array(probs.length);
  for (const i of a) pooled.set(byB.subarray(i * C, (i + 1) * C), i * C);
  for (const i of b) pooled.set(byA.subarray(i * C, (i + 1) * C), i * C);
  const s = classificationScores(pooled, labels, C);
  return { ce: s.ce, ece: s.ece, temperatures: [ta, tb] };
}

// ---------- a run ----------

export interface CalibrateOptions {
  signal: AbortSignal;
  progress: (step: string, done: number, total: number | null, message?: string) => void;
  log: (level: 'info' | 'warn', m: string) => void;
}

/**
 * Calibrates a run's checkpoint on its test split and writes runs/<id>/calibration.json (atomically);
 * null when cancelled (nothing is written).
 */
export async function calibrateRun(ws: Workspace, runId: number, checkpoint: 'best' | 'last', opts: CalibrateOptions): Promise<CalibrationReport | null> {
  const t0 = performance.now();
  const dir = path.join(ws.dir, 'runs', String(runId));
  const ckptFile = path.join(dir, `${checkpoint}.ckpt`);
  // The stamp of the file about to be scored (a checkpoint written meanwhile makes it stale, not wrong).
  const stamp = fs.existsSync(ckptFile) ? checkpointStamp(ckptFile) : null;
  const out = await testSplitOutputs(ws, runId, checkpoint, opts);
  if (!out || !stamp) return null;
  const { run, labels, model } = out;
  const C = { price: run.cfg.space.priceBins.length, makeModel: numMakeModelClasses(run.cfg.space), year: run.cfg.space.years.length };
  const head = (h: CalibratedHead, probs: Float32Array, y: Int32Array, m: Float32Array): HeadCalibration | { skipped: string } => {
    const plan = run.cfg.heads?.[h];
    if (plan && !plan.trains) return { skipped: `not trained (${plan.reason ?? 'no labels'})` };
    if (!plan && run.cfg.config.lossWeights[h] === 0) return { skipped: 'not trained (loss weight 0)' };
    return calibrateHead(probs, maskedLabels(y, m), C[h]);
  };
  opts.progress('calibrate', 0, 3, 'fitting temperatures');
  const heads: CalibrationReport['heads'] = {
    price: head('price', model.price, labels.priceBin, labels.priceMask),
    makeModel: head('makeModel', model.makeModel, labels.makeModel, labels.makeModelMask),
    year: head('year', model.year, labels.year, labels.yearMask),
  };
  opts.progress('calibrate', 3, 3, 'temperatures fitted');
  const tOf = (h: CalibratedHead): number => ('temperature' in heads[h] ? (heads[h] as HeadCalibration).temperature : 1);
  const report: CalibrationReport = {
    version: 1,
    runId,
    checkpoint,
    stamp,
    step: run.step,
    createdAt: new Date().toISOString(),
    split: runSplit(run.cfg),
    testFraction: runTestFraction(run.cfg),
    rows: out.rows.length,
    temperatures: { price: tOf('price'), makeModel: tOf('makeModel'), year: tOf('year') },
    heads,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  await writeFileAtomic(path.join(dir, CALIBRATION_FILE), JSON.stringify(report, null, 2));
  for (const h of CALIBRATED_HEADS) opts.log('info', describeHead(h, heads[h]));
  return report;
}

const HEAD_TITLES: Record<CalibratedHead, string> = { price: 'price bins', makeModel: 'make/model', year: 'year' };

/** "price bins: T = 1.532, ECE 0.120 -> 0.045 (held out 0.131 -> 0.060), 88 test rows" or why it was left. */
export function describeHead(h: CalibratedHead, c: HeadCalibration | { skipped: string }): string {
  if ('skipped' in c) return `${HEAD_TITLES[h]}: not calibrated (${c.skipped})`;
  const f = (x: number): string => x.toFixed(3);
  const held = c.heldOut ? ` (held out ${f(c.heldOut.ece.before)} -> ${f(c.heldOut.ece.after)})` : ' (too few rows for a held-out figure)';
  return `${HEAD_TITLES[h]}: T = ${f(c.temperature)}, ECE ${f(c.before.ece)} -> ${f(c.after.ece)}${held}, NLL ${f(c.before.nll)} -> ${f(c.after.nll)}, ${c.n} test rows`;
}
