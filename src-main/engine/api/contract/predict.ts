import { z } from 'zod';

// ---- The Predict stage: a trained run on a folder of photos, crop panning, interventions ----
// (plain data; the renderer imports this file, so no Node imports here)

export interface Prob {
  label: string;
  p: number;
}

export interface MakeModelProb extends Prob {
  make: string;
  model: string;
}

/**
 * Where the car is in a photo, as the COCO car detector saw it (car-v1 runs: from the photo's
 * feature row; other runs: the detector run beside the model).
 */
export interface PredictCar {
  /** The main car's score (0 when no vehicle was found). */
  score: number;
  /** Its box in [0, 1] of the photo's (EXIF-oriented) width and height; null when no vehicle was found. */
  box: { x1: number; y1: number; x2: number; y2: number } | null;
  /** False when no vehicle is sure enough: the prediction is then of a photo without a car, and unreliable. */
  hasCar: boolean;
  /** Vehicles in view. */
  vehicles: number;
  /** Share of the photo the box covers. */
  areaShare: number;
}

/** A head of the price model (train/trainer.ts HeadName). */
export type PredictHead = 'price' | 'median' | 'makeModel' | 'year';

/**
 * The price the ten bins say, read off their cumulative distribution with the probability spread
 * evenly inside each bin ($0-10k from $0, the open $60k+ bin as $60k-100k): the median and the
 * 80% interval (10th to 90th percentile), in dollars.
 */
export interface BinPrice {
  median: number;
  low: number;
  high: number;
}

/** One thing a prediction is not sure of, in the user's words. */
export interface PredictionWarning {
  /**
   * junk: the junk filter scores the photo below its threshold (not a whole-car photo);
   * far: the photo's features are far from every training photo's;
   * no-car: the car detector found no vehicle;
   * untrained: a head of the run never trained (its output is meaningless);
   * clipped: a run trained before the non-negative median head predicted a negative median, shown as $0.
   */
  code: 'junk' | 'far' | 'no-car' | 'untrained' | 'clipped';
  message: string;
}

/** What a prediction knows of its own reliability (predict/trust.ts). */
export interface PredictionTrust {
  /** The workspace's junk filter on this photo; null when no filter is fitted (or it cannot score here). */
  filter: { modelId: number; extractor: string; score: number; threshold: number; junk: boolean } | null;
  /**
   * Distance from the photo's features to the nearest training photo's (1 - cosine similarity),
   * against the run's threshold (the 99th percentile of the test split's nearest distances); null
   * where it cannot be measured (a finetune run, no cached training features).
   */
  ood: { distance: number; threshold: number; far: boolean } | null;
  /** Heads of the run that never trained (loss weight 0 or no labels): their outputs mean nothing. */
  untrained: PredictHead[];
  warnings: PredictionWarning[];
}

/** What a run's model says about one image. */
export interface Prediction {
  /** The ten price bins, in bin order; the probabilities sum to 1 (calibrated when `calibrated`). */
  priceBins: Prob[];
  /**
   * The median-price regression head, in dollars; never negative (runs trained before the head
   * predicted log-price are clipped at $0 with a `clipped` warning).
   */
  medianPrice: number;
  /** The bins' own median and 80% interval; absent in predictions stored before it was recorded. */
  binPrice?: BinPrice;
  /** The classification heads' probabilities are temperature-scaled (the run was calibrated); absent = false. */
  calibrated?: boolean;
  /** Filter score, distance to the training data, untrained heads, warnings; absent in predictions stored before, and for crops. */
  trust?: PredictionTrust;
  /** The five most probable make/model classes (Unknown included when it ranks). */
  makeModels: MakeModelProb[];
  /** The full year distribution (1983..2023, unknown); sums to 1. */
  years: Prob[];
  /** The three most probable years. */
  topYears: Prob[];
  /**
   * Where the car is in the photo; null where it is not known (predictions stored before it was
   * recorded, a crop of a photo, or the detector could not be loaded).
   */
  car: PredictCar | null;
}

/** One file of a predicted folder: its prediction or why it has none. */
export interface PredictRecord {
  /** Absolute path of the file. */
  path: string;
  /** Path relative to the input folder. */
  rel: string;
  bytes: number;
  /** The file's modification time when predicted (a changed file is predicted again). */
  mtimeMs?: number;
  /** Oriented (EXIF-rotated) size; absent when the file did not decode. */
  width?: number;
  height?: number;
  prediction?: Prediction;
  error?: string;
  /** Set when the record was copied from an earlier job of the same run and checkpoint. */
  reusedFrom?: number;
}

export interface PredictRunInfo {
  /** The run's id in the training stage's runs table (the name of its folder). */
  id: string;
  /** The run's name as given when training it. */
  name: string;
  dir: string;
  mode: 'heads' | 'finetune';
  backbone: string;
  createdAt: string;
  /** Checkpoint names present in the run folder (best, last, ...). */
  checkpoints: string[];
  /** The checkpoint prediction uses by default: best when present, else last. */
  defaultCheckpoint: string | null;
  best: { step: number; loss: number } | null;
  steps: number;
  makeModels: number;
  /**
   * What the run was trained on: photos per source (e.g. demo, an imported folder's name), train
   * and test photos; null for runs from before it was recorded.
   */
  data: { sources: Array<{ source: string; images: number }>; trainImages: number; testImages: number } | null;
  /** Per head: whether it trained, and why not. */
  heads: Array<{ head: PredictHead; trains: boolean; reason: string | null }>;
  /** The best checkpoint's test metrics (null before its first evaluation). */
  test: { priceAccuracy: number; medianMaeDollars: number; makeModelAccuracy: number | null; yearAccuracy: number | null } | null;
  /** The run's calibration (carstudio calibrate), or null when not calibrated. */
  calibration: { temperatures: Record<'price' | 'makeModel' | 'year', number>; priceEce: { before: number; after: number } } | null;
  /** The run prediction uses unless told otherwise: the best by test price accuracy. */
  recommended: boolean;
}

export interface PredictSetInfo {
  jobId: number;
  runId: string;
  checkpoint: string;
  input: string;
  records: number;
  predicted: number;
  errors: number;
}

export interface PredictPage {
  jobId: number;
  runId: string;
  checkpoint: string;
  input: string;
  /** Records in the set, before filtering. */
  count: number;
  predicted: number;
  errors: number;
  /** Records matching the filter. */
  total: number;
  items: Array<PredictRecord & { index: number }>;
  /** Top-1 makes among the predicted records, most frequent first (for the filter). */
  makes: Array<{ make: string; count: number }>;
}

export interface CropStep {
  position: number;
  crop: { left: number; top: number; size: number };
  medianPrice: number;
  /** Probability of each tracked make/model at this position, in `tracked` order. */
  tracked: number[];
  top: MakeModelProb;
}

export interface CropPan {
  path: string;
  width: number;
  height: number;
  /** Labels of the make/models followed along the pan (the most probable over all crops). */
  tracked: string[];
  steps: CropStep[];
  /** A small JPEG of the whole image (data URL), for drawing the crops on. */
  image: string;
}

export interface CompareItem {
  path: string;
  prediction: Prediction | null;
  error: string | null;
  /** Differences against the first item (null for the first, or when either failed). */
  diff: {
    medianPrice: number;
    /** Total variation distance between the price-bin distributions (0..1). */
    priceBinsTv: number;
    topMakeModelChanged: boolean;
    topYearChanged: boolean;
  } | null;
}

export const PREDICT_UPLOAD_MAX_BYTES = 5 * 1024 * 1024;
export const PREDICT_SORTS = ['path', 'price', 'makeConfidence'] as const;

const runChoice = {
  /** Run id (as in the runs table: `carstudio runs`); default: the recommended run (best test price accuracy). */
  runId: z.string().min(1).optional(),
  /** best (default), last, or another checkpoint name in the run folder. */
  checkpoint: z.string().min(1).optional(),
};

export const predictMethods = {
  'predict.runs': z.object({}),
  'predict.start': z.object({ ...runChoice, input: z.string().min(1), reuse: z.boolean().default(true) }),
  'predict.sets': z.object({}),
  'predict.results': z.object({
    jobId: z.number().int().positive(),
    offset: z.number().int().min(0).default(0),
    limit: z.number().int().positive().max(500).default(48),
    sort: z.enum(PREDICT_SORTS).default('path'),
    order: z.enum(['asc', 'desc']).default('asc'),
    /** Only records whose top make/model has this make. */
    make: z.string().optional(),
    /** Only records whose top make/model probability is at least this. */
    minConfidence: z.number().min(0).max(1).optional(),
    /** all (default), ok (predicted only) or errors (failed only). */
    show: z.enum(['all', 'ok', 'errors']).default('all'),
    /** all (default), with (records whose photo carries a warning: junk, far, no car) or without. */
    warnings: z.enum(['all', 'with', 'without']).default('all'),
  }),
  'predict.result': z.object({ jobId: z.number().int().positive(), index: z.number().int().min(0) }),
  'predict.thumbnail': z.object({ path: z.string().min(1), size: z.number().int().min(16).max(1024).default(240) }),
  'predict.image': z.object({
    ...runChoice,
    /** A file on the engine's machine... */
    path: z.string().min(1).optional(),
    /** ...or the file's bytes, base64 (at most PREDICT_UPLOAD_MAX_BYTES decoded). */
    data: z.string().max(Math.ceil((PREDICT_UPLOAD_MAX_BYTES * 4) / 3) + 8).optional(),
    name: z.string().max(500).optional(),
  }),
  'predict.cropPan': z.object({ ...runChoice, path: z.string().min(1), steps: z.number().int().min(2).max(40).default(9) }),
  'predict.compare': z.object({ ...runChoice, paths: z.array(z.string().min(1)).min(2).max(12) }),
  'predict.export': z.object({ jobId: z.number().int().positive(), format: z.enum(['csv', 'json']) }),
} as const;

export interface PredictResults {
  'predict.runs': PredictRunInfo[];
  'predict.start': import('./core.ts').JobInfo;
  'predict.sets': PredictSetInfo[];
  'predict.results': PredictPage;
  'predict.result': PredictRecord & { index: number };
  'predict.thumbnail': { dataUrl: string; width: number; height: number };
  'predict.image': PredictRecord & { runId: string; checkpoint: string };
  'predict.cropPan': CropPan & { runId: string; checkpoint: string };
  'predict.compare': { runId: string; checkpoint: string; items: CompareItem[] };
  'predict.export': { filename: string; mime: string; content: string };
}
