import { z } from 'zod';
import type { ExtractorName } from '../../filter/features.ts';

/** Where the car-v1 detector found the car in a photo (from its cached car-v1 feature row). */
export interface FilterCar {
  /** The main car's detector score (0 when no vehicle was found). */
  score: number;
  /** Its box in [0, 1] of the photo's width and height (as displayed, EXIF rotation applied); null when no vehicle was found. */
  box: { x1: number; y1: number; x2: number; y2: number } | null;
  /** False when no vehicle scores NO_CAR_SCORE or more: the photo has no car in it. */
  hasCar: boolean;
}

export interface LabelQueueItem {
  imageId: number;
  key: string;
  label: 'good' | 'bad' | null;
  /** Filter score when a filter exists. */
  score: number | null;
  /** The detected car, when the image has car-v1 features cached; null otherwise. */
  car: FilterCar | null;
}

export interface FilterMeter {
  threshold: number;
  /** Out-of-fold (10-fold CV) share of good labels scoring below the threshold. */
  falseNegativeRate: number;
  /** The 90% Wilson interval of that FNR, with its counts (good thrown away of good labels). */
  fnrInterval: { lower: number; upper: number; goodRemoved: number; good: number };
  badRemoved: number;
  accuracy: number;
  /** Share of the scored (applied) images kept; null before the filter is applied. */
  keptShare: number | null;
  scored: number;
  /** Why the figures may look more certain than they are (too few labels of a class, unbalanced); empty when none. */
  warnings: string[];
}

/** `filter.chooseThreshold`: the meter at the threshold picked, and why it was picked. */
export interface ChosenThreshold extends FilterMeter {
  explanation: string;
}

/** A label given so far (`filter.labels`). */
export interface LabelledItem extends LabelQueueItem {
  label: 'good' | 'bad';
  source: 'ui' | 'import';
  /** When it was given (ms since the epoch). */
  at: number;
}

/** What each image's label is after an undo or redo, and what is left to undo/redo. */
export interface LabelHistoryResult {
  /** The first image touched (null when there was nothing to undo/redo); kept for older callers. */
  imageId: number | null;
  label: 'good' | 'bad' | null;
  /** Every image the step touched, with its label now (a bulk action is one step). */
  items: Array<{ imageId: number; label: 'good' | 'bad' | null }>;
  counts: { good: number; bad: number };
  canUndo: boolean;
  canRedo: boolean;
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
    /** Labels changed (relabelled or cleared) and added since the fit; null when the fit is on the current labels. */
    stale: { changed: number; added: number } | null;
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
  name: ExtractorName;
  dim: number;
  /** What it is and what it is good for, with the figures measured on the shared photos. */
  summary: string;
  /** The extractor the filter uses unless told otherwise (DEFAULT_EXTRACTOR). */
  default: boolean;
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

/** How many labelled and usable images already have an extractor's features cached (`features.coverage`). */
export interface FeatureCoverage {
  extractor: ExtractorName;
  labelled: number;
  labelledCached: number;
  usable: number;
  usableCached: number;
  /** Images per second of this extractor's last feature extraction in this workspace; null when it never ran here. */
  imagesPerSecond: number | null;
  /** Other extractors with features cached in this workspace (they stay, and keep working for the filters fitted on them). */
  otherCached: Array<{ extractor: ExtractorName; images: number }>;
}

export const filterMethods = {
  'features.extractors': z.object({}),
  'features.coverage': z.object({ extractor: z.string().min(1) }),
  'filter.state': z.object({}),
  'filter.queue': z.object({ limit: z.number().int().min(1).max(500).default(60), order: z.enum(['auto', 'random', 'uncertain']).default('auto'), seed: z.number().int().default(1) }),
  'filter.setLabel': z.object({ imageId: z.number().int().positive(), label: z.enum(['good', 'bad']).nullable() }),
  'filter.setLabels': z.object({
    imageIds: z.array(z.number().int().positive()).min(1, 'choose at least one image to label').max(5000, 'label at most 5000 images at once'),
    label: z.enum(['good', 'bad']).nullable(),
  }),
  'filter.undo': z.object({}),
  'filter.redo': z.object({}),
  'filter.labels': z.object({
    filter: z.enum(['all', 'good', 'bad', 'imported', 'ui']).default('all'),
    limit: z.number().int().min(1).max(500).default(60),
    offset: z.number().int().min(0).default(0),
  }),
  'filter.curve': z.object({ points: z.number().int().min(2).max(500).default(100) }),
  'filter.meter': z.object({ threshold: z.number() }),
  'filter.near': z.object({ threshold: z.number(), n: z.number().int().min(1).max(50).default(8) }),
  'filter.chooseThreshold': z.object({ maxFnr: z.number().min(0).max(1) }),
  'filter.setThreshold': z.object({ threshold: z.number() }),
} as const;

export interface FilterResults {
  'features.extractors': ExtractorInfo[];
  'features.coverage': FeatureCoverage;
  'filter.state': FilterState;
  'filter.queue': LabelQueueItem[];
  'filter.setLabel': { counts: { good: number; bad: number } };
  'filter.setLabels': { counts: { good: number; bad: number }; changed: number; canUndo: boolean; canRedo: boolean };
  'filter.undo': LabelHistoryResult;
  'filter.redo': LabelHistoryResult;
  'filter.labels': { total: number; items: LabelledItem[] };
  'filter.curve': ThresholdCurvePoint[];
  'filter.meter': FilterMeter;
  'filter.near': { above: LabelQueueItem[]; below: LabelQueueItem[] };
  'filter.chooseThreshold': ChosenThreshold;
  'filter.setThreshold': FilterMeter;
}
