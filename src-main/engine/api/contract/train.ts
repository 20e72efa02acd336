import { z } from 'zod';
import type { ReliabilityBin } from './eval.ts';

interface Head {
  loss: number;
  accuracy: number;
  /** Rows that had this head's label (0: no labels, the loss and accuracy mean nothing); absent in runs from before partial labels. */
  n?: number;
}

/** Metrics of a training step or an evaluation (train/model.ts Metrics). */
export interface TrainMetrics {
  loss: number;
  price: Head;
  median: { loss: number; maeDollars: number; n?: number };
  makeModel: Head;
  year: Head;
  samples: number;
}

export interface RunMetricPoint extends TrainMetrics {
  split: 'train' | 'test';
  step: number;
  samplesPerSec?: number;
  best?: boolean;
}

export interface RunInfo {
  id: number;
  name: string;
  mode: 'heads' | 'finetune';
  /**
   * mobilenet_v2 (pretrained; heads runs train on its features) or tiny-cnn (a small CNN trained
   * from scratch at 64 px: a smoke test of fine-tuning, not a price model).
   */
  backbone: 'mobilenet_v2' | 'tiny-cnn';
  /**
   * heads: the feature extractor whose cached features the run trained on (and which evaluation
   * and prediction read): one of EXTRACTORS in filter/features.ts, mobilenet_v2 for runs from
   * before it was recorded. null for a finetune run (it trains the backbone on pixels).
   */
  extractor: string | null;
  lossWeights: string;
  /**
   * Per head (price, median, makeModel, year): whether it trained, and why not ("loss weight 0",
   * "no labels"); null for runs from before the plan was recorded and before a run's config exists.
   */
  heads: Record<'price' | 'median' | 'makeModel' | 'year', { trains: boolean; reason: string | null }> | null;
  params: unknown;
  /**
   * `interrupted`: the process training it died (killed, crashed) mid-run; it continues from its
   * last checkpoint when resumed (`train --resume RUN`, the Resume button, or `serve` on start).
   */
  state: 'preparing' | 'running' | 'stopped' | 'interrupted' | 'done' | 'failed';
  jobId: number | null;
  step: number;
  steps: number;
  lastTrain: TrainMetrics | null;
  lastTest: (TrainMetrics & { step: number }) | null;
  best: (TrainMetrics & { step: number }) | null;
  baseline: { priceAccuracy: number; priceClass: string; trainImages: number; testImages: number } | null;
  error: string | null;
  /** The run folder: config.json (with the label space), metrics.jsonl, last/best checkpoints. */
  dir: string;
  createdAt: number;
  updatedAt: number;
}

export interface TrainDatasetSummary {
  images: number;
  testImages: number;
  backend: { name: string; note: string; canFinetune: boolean; fastFinetune: boolean };
  priceBins: Array<{ label: string; count: number }>;
  makeModels: Array<{ make: string; model: string; count: number }>;
  unknownMakeModels: number;
  years: Array<{ label: string; count: number }>;
  /** How the default split assigns rows: by listing (no car in both sets) or by photo. */
  split: 'listing' | 'photo';
  /** Per head, the training and test rows that carry its label (a head trains only on those). */
  labelCounts: Record<'price' | 'makeModel' | 'year', { train: number; test: number }>;
  /** The year classes span the dataset's own years: [first, last], or null when no row has a year. */
  yearRange: [number, number] | null;
}

export interface TrainMetricsEvent {
  runId: number;
  step: number;
  split: 'train' | 'test';
  metrics: TrainMetrics;
  samplesPerSec?: number;
  best?: boolean;
}


/** The classification heads a calibration scales (the median head is a regression). */
export const CALIBRATED_HEADS = ['price', 'makeModel', 'year'] as const;
export type CalibratedHead = (typeof CALIBRATED_HEADS)[number];

/** ECE, mean negative log-likelihood and the reliability bins of one head's probabilities on some rows. */
export interface CalibrationFit {
  ece: number;
  nll: number;
  reliability: ReliabilityBin[];
}

/** One classification head's temperature and what it changed on the run's test split. */
export interface HeadCalibration {
  /** Logits are divided by it (1 = unchanged; above 1 softens over-confident probabilities). */
  temperature: number;
  /** Labelled test rows it was fitted on. */
  n: number;
  /** In-sample: on all labelled test rows, with T = 1 and with the stored temperature. */
  before: CalibrationFit;
  after: CalibrationFit;
  /**
   * Held out (2-fold cross-fit): each half's temperature fitted on the other half, ECE and NLL
   * measured on the half it did not see, pooled over both halves; null with fewer than 10 rows.
   */
  heldOut: { ece: { before: number; after: number }; nll: { before: number; after: number }; temperatures: [number, number] } | null;
}

/** runs/<id>/calibration.json: temperature scaling of a checkpoint's classification heads. */
export interface CalibrationReport {
  version: 1;
  runId: number;
  /** The checkpoint's name (best, last) and a stamp of its file: a calibration applies only to that file. */
  checkpoint: string;
  stamp: { size: number; sha256: string };
  step: number;
  createdAt: string;
  split: 'listing' | 'photo';
  testFraction: number;
  /** Test rows scored. */
  rows: number;
  /** Per head; 1 where the head is not calibrated (it never trained or has no test labels). */
  temperatures: Record<CalibratedHead, number>;
  /** Per head: the fit, or why it was left at T = 1. */
  heads: Record<CalibratedHead, HeadCalibration | { skipped: string }>;
  seconds: number;
}

export const trainMethods = {
  'train.dataset': z.object({}),
  'runs.list': z.object({}),
  'runs.get': z.object({ id: z.number().int().positive() }),
  'runs.metrics': z.object({ id: z.number().int().positive(), maxTrainPoints: z.number().int().min(10).max(100_000).default(2000) }),
  'runs.delete': z.object({ id: z.number().int().positive() }),
  /** The run's stored calibration (runs/<id>/calibration.json), or null when it has none. */
  'runs.calibration': z.object({ id: z.number().int().positive() }),
} as const;

export interface TrainResults {
  'train.dataset': TrainDatasetSummary;
  'runs.list': RunInfo[];
  'runs.get': RunInfo;
  'runs.metrics': RunMetricPoint[];
  'runs.delete': { deleted: number };
  'runs.calibration': CalibrationReport | null;
}

export interface TrainEvents {
  'train.metrics': TrainMetricsEvent;
}
