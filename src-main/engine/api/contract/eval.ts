// The evaluation report of a training run (`carstudio eval`, the Evaluate panel): per head the
// model's metrics beside two baselines computed on the same rows (the training set's class
// frequencies, and k-nearest-neighbours on the same backbone features), calibration (of the raw
// probabilities, and after the run's temperature scaling when it has one), and the classes it
// confuses. JSON-serialisable: report.json holds exactly this; report.html renders it.
import { z } from 'zod';

/** One reliability-diagram bin: predictions whose top-1 confidence fell in [lo, hi). */
export interface ReliabilityBin {
  lo: number;
  hi: number;
  /** Predictions in the bin. */
  count: number;
  /** Mean top-1 confidence of those predictions (0 when count is 0). */
  confidence: number;
  /** Share of them whose top-1 was right (0 when count is 0). */
  accuracy: number;
}

/** Metrics of one classification head (or a baseline of it) on the labelled rows. */
export interface ClassificationScores {
  /** Rows that had this head's label (the rest are not scored). */
  n: number;
  top1: number;
  /** Top-5 accuracy (equal to top-1 when the head has <= 5 classes... it is still computed). */
  top5: number;
  /** Mean cross-entropy (natural log) of the true class; probabilities are clamped at 1e-7. */
  ce: number;
  /** Expected calibration error over `reliability` (weighted mean |accuracy - confidence|). */
  ece: number;
  reliability: ReliabilityBin[];
}

/**
 * The model's figures after the run's calibration (temperature scaling, runs/<id>/calibration.json):
 * the raw probabilities with the head's temperature applied, i.e. the probabilities `predict`
 * gives. Top-1, top-5 and the other argmax figures (within ±2 years, the MAEs) do not change under
 * temperature scaling and are not repeated; the make-only top-1 sums probabilities over a make's
 * models and can change, so it is given for the make/model head.
 */
export interface CalibratedScores {
  /** The head's temperature (logits divided by it). */
  temperature: number;
  /** Rows scored (the same as the model's). */
  n: number;
  /** Mean cross-entropy of the calibrated probabilities. */
  ce: number;
  ece: number;
  reliability: ReliabilityBin[];
  /** Make/model head only: the make-only top-1 of the calibrated probabilities. */
  makeTop1?: number;
  /**
   * Only when the calibration was fitted on these rows (EvalCalibration.inSample on the test
   * split) and at least 10 are labelled: an honest estimate by 2-fold cross-fit on the scored
   * rows (each half scaled by a temperature fitted on the other half), null otherwise.
   */
  heldOut: { ce: number; ece: number; temperatures: [number, number] } | null;
}

/** Whether the run's calibration applies to the scored checkpoint, and how far to trust the calibrated figures. */
export interface EvalCalibration {
  /** true: the run's calibration.json calibrates this very checkpoint file and the heads carry `calibrated` figures. */
  applied: boolean;
  /** Why it is not applied, in words (null when applied). */
  reason: string | null;
  /** The run's calibration as fitted (null: the run has none). */
  fitted: { checkpoint: string; step: number; createdAt: string; rows: number; split: 'listing' | 'photo' } | null;
  /** The temperatures applied (null when not applied); 1 for a head left uncalibrated. */
  temperatures: { price: number; makeModel: number; year: number } | null;
  /** Heads the calibration left at T = 1, with why (they have no calibrated figures). */
  skipped: Partial<Record<'price' | 'makeModel' | 'year', string>>;
  /**
   * true when scored rows are rows the temperatures were fitted on: every row of an evaluation
   * on the run's test split (the calibration is fitted on that split), or manifest photos that
   * are the very files of test-split photos. The calibrated CE/ECE are then in-sample, so
   * optimistic. false for a manifest of other photos: held out.
   */
  inSample: boolean;
  /** How many scored rows are such rows (all of them on the test split). */
  inSampleRows: number;
  /** What the calibrated figures mean for this report, in words (the caveat the report and the panel show). */
  note: string;
}

export interface HeadScores<Extra = object> {
  model: ClassificationScores & Extra;
  /**
   * The model after the run's calibration; null when the report's calibration is not applied or
   * left this head uncalibrated (EvalCalibration says why). Absent in reports from before it was
   * recorded.
   */
  calibrated?: CalibratedScores | null;
  /** Predicts the training set's class frequencies for every row (top-1 = the majority class). */
  majority: ClassificationScores & Extra;
  /** k nearest training rows by cosine on the backbone features; null when features are unavailable. */
  knn: (ClassificationScores & Extra) | null;
}

export interface PerClassScore {
  label: string;
  /** Test rows of this class. */
  n: number;
  /** Share of them the model's top-1 named. */
  accuracy: number;
}

export interface ConfusedPair {
  /** The true class. */
  truth: string;
  /** What the model said (top-1). */
  predicted: string;
  count: number;
}

export interface EvalReport {
  version: 1;
  runId: number;
  runName: string;
  checkpoint: 'best' | 'last';
  /** The checkpoint's step. */
  step: number;
  /** What was scored: the run's own test split, or a manifest's rows. */
  source: { kind: 'test-split'; split: 'listing' | 'photo' } | { kind: 'manifest'; manifest: string; rowsSkipped: number };
  rows: number;
  /** Training rows the baselines were fitted on. */
  trainRows: number;
  knnK: number;
  /**
   * The feature extractor whose features the kNN baseline (and a heads run's model) read: the
   * run's own (config.json `extractor`; mobilenet_v2 for runs from before it was recorded, and the
   * kNN features of a finetune run), with its row width. Absent in reports from before it was
   * recorded (they read mobilenet_v2).
   */
  features?: { extractor: string; dim: number };
  /** Seconds the evaluation took. */
  seconds: number;
  createdAt: string;
  heads: {
    /** Price bins; `maeDollars` is the median-price head's mean absolute error. null: no row had a price. */
    price: HeadScores<{ maeDollars: number }> | null;
    /** `makeTop1`: the make alone (probabilities summed over each make's models). */
    makeModel:
      | (HeadScores<{ makeTop1: number }> & {
          /** The 30 largest classes among the scored rows, largest first. */
          perClass: PerClassScore[];
          /** The most frequent (truth, predicted) pairs with truth != predicted, at most 20. */
          confused: ConfusedPair[];
        })
      | null;
    /** `within2`: |predicted year - true year| <= 2; `maeYears` on the top-1 year. */
    year: HeadScores<{ within2: number; maeYears: number }> | null;
  };
  /**
   * The run's calibration against the rows scored: applied or why not, the temperatures, and
   * whether the calibrated figures are in-sample. Absent in reports from before it was recorded
   * (they show the raw probabilities only).
   */
  calibration?: EvalCalibration;
  /** Heads the run did not train (loss weight 0 or no labels), with the reason. */
  untrained: Array<{ head: 'price' | 'median' | 'makeModel' | 'year'; reason: string }>;
}

/** A stored report, as listed for a run. */
export interface EvalReportEntry {
  id: string;
  runId: number;
  createdAt: string;
  source: EvalReport['source'];
  rows: number;
  /** Headline figures for the list: model top-1 per head (null when the head was not scored). */
  headline: { priceTop1: number | null; makeModelTop1: number | null; makeTop1: number | null; yearWithin2: number | null };
}

export interface EvalResults {
  /** Reports of a run, newest first. */
  'eval.list': EvalReportEntry[];
  /** One report with its self-contained HTML page. */
  'eval.get': { entry: EvalReportEntry; report: EvalReport; html: string };
}

export const evalMethods = {
  'eval.list': z.object({ runId: z.number().int().positive() }),
  'eval.get': z.object({ runId: z.number().int().positive(), id: z.string().regex(/^[0-9A-Za-z_-]{1,64}$/) }),
} as const;
