// The evaluation's calibrated figures: the run's temperature scaling (runs/<id>/calibration.json,
// calibrate.ts) applied to the raw probabilities the evaluation scored, exactly as the predictor
// applies it (only when the calibration stamps the very checkpoint file scored), with whether the
// scored rows are the ones the temperatures were fitted on (in-sample: optimistic figures).
import fs from 'node:fs';
import path from 'node:path';
import type { CalibratedScores, EvalCalibration, EvalReport } from '../api/contract/eval.ts';
import {
  checkpointStamp,
  crossFitScores,
  HELD_OUT_MIN,
  readCalibration,
  scaleProbs,
  type CalibratedHead,
  type CalibrationReport,
} from '../train/calibrate.ts';
import { classificationScores, makeTop1, type Matrix } from './metrics.ts';

/** The run's calibration for the checkpoint scored: the temperatures when it applies, else why not. */
export interface CalibrationFor {
  cal: CalibrationReport | null;
  temperatures: Record<CalibratedHead, number> | null;
  reason: string | null;
}

/**
 * The calibration the predictor would apply to `checkpoint` of the run in `runDir`: the same rule
 * as predict (calibration.json of that checkpoint name, whose stamp is the file's size and sha256).
 */
export function calibrationFor(runDir: string, runId: number, checkpoint: 'best' | 'last'): CalibrationFor {
  const cal = readCalibration(runDir);
  if (!cal) {
    return {
      cal: null,
      temperatures: null,
      reason: `this run has no calibration (a run from before calibration, or its calibration failed); carstudio calibrate --run ${runId} makes one`,
    };
  }
  if (cal.checkpoint !== checkpoint) {
    return {
      cal,
      temperatures: null,
      reason: `the run's calibration is of its ${cal.checkpoint} checkpoint, not of the ${checkpoint} one scored here`,
    };
  }
  const stamp = checkpointStamp(path.join(runDir, `${checkpoint}.ckpt`));
  if (stamp.size !== cal.stamp.size || stamp.sha256 !== cal.stamp.sha256) {
    return {
      cal,
      temperatures: null,
      reason: `the run's calibration was fitted on an earlier ${checkpoint} checkpoint (the file was written again since); carstudio calibrate --run ${runId} fits it again`,
    };
  }
  return { cal, temperatures: { ...cal.temperatures }, reason: null };
}

/** Whether a head's calibration was skipped (left at T = 1), and why. */
export function skippedReason(cal: CalibrationReport, head: CalibratedHead): string | null {
  const h = cal.heads[head];
  return h && 'skipped' in h ? h.skipped : null;
}

/**
 * One head's calibrated figures: `probs` (raw, n x C) scaled by temperature T, scored on `labels`
 * (-1: not scored); with the make-only top-1 when `makeOfClass` is given, and the 2-fold cross-fit
 * estimate when `heldOut` (and at least HELD_OUT_MIN labelled rows).
 */
export function calibratedScores(
  probs: Matrix,
  labels: Int32Array,
  C: number,
  T: number,
  opts: { heldOut: boolean; makeOfClass?: readonly string[] },
): CalibratedScores {
  const scaled = scaleProbs(probs, C, T);
  const s = classificationScores(scaled, labels, C);
  const rows: number[] = [];
  labels.forEach((y, i) => y >= 0 && rows.push(i));
  return {
    temperature: T,
    n: s.n,
    ce: s.ce,
    ece: s.ece,
    reliability: s.reliability,
    ...(opts.makeOfClass ? { makeTop1: makeTop1(scaled, labels, C, opts.makeOfClass) } : {}),
    heldOut: opts.heldOut && rows.length >= HELD_OUT_MIN ? crossFitScores(probs, labels, C, rows) : null,
  };
}

/**
 * The report's calibration record: applied or why not, and what the calibrated figures mean for
 * these rows. `inSampleRows`: scored rows the temperatures were fitted on (every row of a
 * test-split evaluation; manifest photos that are files of the run's test split).
 */
export function evalCalibration(
  source: EvalReport['source'],
  rows: number,
  inSampleRows: number,
  c: CalibrationFor,
  testSplitRows: number,
): EvalCalibration {
  const cal = c.cal;
  const fitted = cal ? { checkpoint: cal.checkpoint, step: cal.step, createdAt: cal.createdAt, rows: cal.rows, split: cal.split } : null;
  const skipped: EvalCalibration['skipped'] = {};
  if (cal && c.temperatures) {
    for (const h of ['price', 'makeModel', 'year'] as const) {
      const why = skippedReason(cal, h);
      if (why) skipped[h] = why;
    }
  }
  if (!c.temperatures) {
    return {
      applied: false,
      reason: c.reason,
      fitted,
      temperatures: null,
      skipped,
      inSample: false,
      inSampleRows: 0,
      note: `Not calibrated: ${c.reason}. The figures are those of the raw probabilities, which are also what predictions from this checkpoint give.`,
    };
  }
  const inSample = inSampleRows > 0;
  let note: string;
  if (source.kind === 'test-split') {
    const changed =
      cal && cal.rows !== testSplitRows
        ? ` (it was fitted on ${cal.rows} test photos; the test split has ${testSplitRows} now, since the workspace changed)`
        : '';
    note =
      `The temperatures were fitted on this very test split${changed}, so the calibrated cross-entropy and ECE are optimistic. ` +
      'The held-out figure (each half of the rows scaled by a temperature fitted on the other half) is the fairer estimate; a manifest of other photos gives a fully held-out one.';
  } else if (inSample) {
    note =
      `${inSampleRows} of the ${rows} photos are files of the run's test split, on which the temperatures were fitted; ` +
      'on those the calibrated figures are optimistic. The other photos are held out.';
  } else {
    note =
      "The temperatures were fitted on the run's test split, and no photo of this manifest is a file of it, so the calibrated figures measure the calibration on photos it has not seen.";
  }
  return { applied: true, reason: null, fitted, temperatures: c.temperatures, skipped, inSample, inSampleRows, note };
}

/** The workspace image id of each file by its content (images.key is the sha256 of the file's bytes), or null. */
export function sameFileIds(
  files: readonly string[],
  lookup: (key: string) => number | undefined,
  keyOf: (bytes: Buffer) => string,
): (number | null)[] {
  return files.map((f) => {
    try {
      return lookup(keyOf(fs.readFileSync(f))) ?? null;
    } catch {
      return null;
    }
  });
}
