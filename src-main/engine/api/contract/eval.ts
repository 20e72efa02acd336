// The evaluation report of a training run (`carstudio eval`, the Evaluate panel): per head the
// model's metrics beside two baselines computed on the same rows (the training set's class
// frequencies, and k-nearest-neighbours on the same backbone features), calibration, and the
// classes it confuses. JSON-serialisable: report.json holds exactly this; report.html renders it.
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

export interface HeadScores<Extra = object> {
  model: ClassificationScores & Extra;
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
