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
import type { CalibrationReport } from '../api/contract/train.ts';

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
