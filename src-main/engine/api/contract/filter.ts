import { z } from 'zod';

export interface LabelQueueItem {
  imageId: number;
  key: string;
  label: 'good' | 'bad' | null;
  /** Filter score when a filter exists. */
  score: number | null;
}

export interface FilterMeter {
  threshold: number;
  falseNegativeRate: number;
  badRemoved: number;
  accuracy: number;
  keptShare: number | null;
  scored: number;
}

export interface FilterState {
  counts: { good: number; bad: number };
  usable: number;
  model: null | {
    id: number;
    extractor: string;
    threshold: number;
    maxFnr: number;
    labelledGood: number;
    labelledBad: number;
    createdAt: number;
    applied: boolean;
    /** Out-of-fold decision values range. */
    minScore: number;
    maxScore: number;
  };
}

export interface ThresholdCurvePoint {
  threshold: number;
  falseNegativeRate: number;
  badRemoved: number;
  accuracy: number;
}

/** A feature extractor and whether it can run here (`features.extractors`). */
export interface ExtractorInfo {
  name: 'mobilenet_v2' | 'clip-vit-b16';
  dim: number;
  /** Whether its weights are in place (mobilenet_v2's ship with CarStudio). */
  installed: boolean;
  weightsPath: string;
  /** The runtime it needs (tfjs, onnxruntime-node) and whether it is installed. */
  runtime: string;
  runtimeAvailable: boolean;
  ready: boolean;
  /** What to do when it is not ready, else null. */
  help: string | null;
  /** Where the `weights` job downloads from by default (null: nothing to download). */
  defaultUrl: string | null;
}

export const filterMethods = {
  'features.extractors': z.object({}),
  'filter.state': z.object({}),
  'filter.queue': z.object({ limit: z.number().int().min(1).max(500).default(60), order: z.enum(['auto', 'random', 'uncertain']).default('auto'), seed: z.number().int().default(1) }),
  'filter.setLabel': z.object({ imageId: z.number().int().positive(), label: z.enum(['good', 'bad']).nullable() }),
  'filter.undo': z.object({}),
  'filter.curve': z.object({ points: z.number().int().min(2).max(500).default(100) }),
  'filter.meter': z.object({ threshold: z.number() }),
  'filter.near': z.object({ threshold: z.number(), n: z.number().int().min(1).max(50).default(8) }),
  'filter.chooseThreshold': z.object({ maxFnr: z.number().min(0).max(1) }),
  'filter.setThreshold': z.object({ threshold: z.number() }),
} as const;

export interface FilterResults {
  'features.extractors': ExtractorInfo[];
  'filter.state': FilterState;
  'filter.queue': LabelQueueItem[];
  'filter.setLabel': { counts: { good: number; bad: number } };
  'filter.undo': { imageId: number | null; label: 'good' | 'bad' | null; counts: { good: number; bad: number } };
  'filter.curve': ThresholdCurvePoint[];
  'filter.meter': FilterMeter;
  'filter.near': { above: LabelQueueItem[]; below: LabelQueueItem[] };
  'filter.chooseThreshold': FilterMeter;
  'filter.setThreshold': FilterMeter;
}
