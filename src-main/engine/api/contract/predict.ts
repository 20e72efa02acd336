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

/** What a run's model says about one image. */
export interface Prediction {
  /** The ten price bins, in bin order; the probabilities sum to 1. */
  priceBins: Prob[];
  /** The median-price head, in dollars. */
  medianPrice: number;
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
  /** Run id (as in the runs table: `carstudio runs`); default: the newest run that has a checkpoint. */
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
