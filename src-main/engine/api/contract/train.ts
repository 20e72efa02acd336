import { z } from 'zod';

interface Head {
  loss: number;
  accuracy: number;
}

/** Metrics of a training step or an evaluation (train/model.ts Metrics). */
export interface TrainMetrics {
  loss: number;
  price: Head;
  median: { loss: number; maeDollars: number };
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
  lossWeights: string;
  params: unknown;
  state: 'preparing' | 'running' | 'stopped' | 'done' | 'failed';
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
}

export interface TrainMetricsEvent {
  runId: number;
  step: number;
  split: 'train' | 'test';
  metrics: TrainMetrics;
  samplesPerSec?: number;
  best?: boolean;
}

export const trainMethods = {
  'train.dataset': z.object({}),
  'runs.list': z.object({}),
  'runs.get': z.object({ id: z.number().int().positive() }),
  'runs.metrics': z.object({ id: z.number().int().positive(), maxTrainPoints: z.number().int().min(10).max(100_000).default(2000) }),
  'runs.delete': z.object({ id: z.number().int().positive() }),
} as const;

export interface TrainResults {
  'train.dataset': TrainDatasetSummary;
  'runs.list': RunInfo[];
  'runs.get': RunInfo;
  'runs.metrics': RunMetricPoint[];
  'runs.delete': { deleted: number };
}

export interface TrainEvents {
  'train.metrics': TrainMetricsEvent;
}
