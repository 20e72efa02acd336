import { z } from 'zod';
import type { Prediction } from './predict.ts';

// ---- Intervention studies on one photo (Predict stage): occlusion map, region edit, background swap ----
// (plain data; the renderer imports this file, so no Node imports here). Crop pan and compare are
// predict.cropPan and predict.compare.

/** A rectangle in fractions of the photo's (EXIF-oriented) width and height, 0 <= x1 < x2 <= 1. */
export interface FracRect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** What a study reads off one prediction: the regression median, the bins' median, and two tracked classes' probabilities. */
export interface StudyReading {
  medianPrice: number;
  /** The price bins' own median (Prediction.binPrice), null where the predictor does not give it. */
  binMedian: number | null;
  /** Probability of the unedited photo's top make/model. */
  makeModelP: number;
  /** Probability of the unedited photo's top year. */
  yearP: number;
}

export interface OcclusionCell extends StudyReading {
  row: number;
  col: number;
  /** The grey square, in fractions of the photo. */
  rect: FracRect;
  /** Against the unoccluded photo: price change (dollars), bins' median change, probability drops (positive = the square lowered it). */
  dPrice: number;
  dBinMedian: number | null;
  dropMakeModel: number;
  dropYear: number;
}

/** What an occlusion heat map shows: the price change, or the drop of the top make/model's or top year's probability. */
export const HEAT_TARGETS = ['price', 'makeModel', 'year'] as const;
export type HeatTarget = (typeof HEAT_TARGETS)[number];

export interface OcclusionStudy {
  runId: string;
  checkpoint: string;
  path: string;
  width: number;
  height: number;
  /** The square's side and the stride, in fractions of the photo's shorter side. */
  size: number;
  stride: number;
  rows: number;
  cols: number;
  /** The unoccluded photo's prediction (same preprocessing as the cells) and the tracked classes. */
  base: StudyReading & { makeModel: string; year: string };
  cells: OcclusionCell[];
  /** A JPEG of the photo (data URL) to draw the heat map on. */
  image: string;
  /** The heat map of `pngTarget` over the photo, PNG base64; with `png` only. */
  png?: string;
  pngTarget?: HeatTarget;
}

export interface StudyDiff {
  medianPrice: number;
  binMedian: number | null;
  /** Total variation distance between the price-bin distributions (0..1). */
  priceBinsTv: number;
  topMakeModelChanged: boolean;
  topYearChanged: boolean;
}

export const EDIT_FILLS = ['blur', 'grey', 'patch'] as const;
export type EditFill = (typeof EDIT_FILLS)[number];

export interface EditStudy {
  runId: string;
  checkpoint: string;
  path: string;
  width: number;
  height: number;
  rect: FracRect;
  fill: EditFill;
  /** The photo the patch came from (fill 'patch'). */
  patchPath: string | null;
  before: Prediction;
  after: Prediction;
  diff: StudyDiff;
  /** JPEG data URLs of the photo before and after the edit. */
  beforeImage: string;
  afterImage: string;
  /** The edited photo, PNG base64; with `png` only. */
  png?: string;
}

export interface SwapItem {
  /** The background photo. */
  path: string;
  prediction: Prediction | null;
  error: string | null;
  diff: StudyDiff | null;
  /** The composite, a small JPEG data URL. */
  image: string | null;
}

export interface SwapStudy {
  runId: string;
  checkpoint: string;
  path: string;
  width: number;
  height: number;
  /** The car's box kept from the photo, and where it came from. */
  box: FracRect;
  boxSource: 'detector' | 'given';
  /** The photo as the model sees it through the same pipeline. */
  original: Prediction;
  items: SwapItem[];
  /** Backgrounds in the folder, and a note when some were left out (more than the limit). */
  backgrounds: number;
  note: string | null;
  /** The composites as a contact sheet with their prices, PNG base64; with `png` only. */
  png?: string;
}

export const SWAP_MAX_BACKGROUNDS = 24;

const runChoice = {
  runId: z.string().min(1).optional(),
  checkpoint: z.string().min(1).optional(),
};

const frac = z.number().min(0).max(1);
export const fracRect = z
  .object({ x1: frac, y1: frac, x2: frac, y2: frac })
  .refine((r) => r.x2 > r.x1 && r.y2 > r.y1, { message: 'the rectangle must have x1 < x2 and y1 < y2, in fractions (0 to 1) of the photo' });

export const studyMethods = {
  'study.occlusion': z.object({
    ...runChoice,
    path: z.string().min(1),
    /** The grey square's side, a fraction of the shorter side (default 1/6). */
    size: z.number().min(0.02).max(0.5).default(1 / 6),
    /** Its step, a fraction of the shorter side (default half the size). */
    stride: z.number().min(0.01).max(0.5).optional(),
    png: z.boolean().default(false),
    /** What the PNG's heat map shows (default the price change). */
    target: z.enum(HEAT_TARGETS).default('price'),
  }),
  'study.edit': z.object({
    ...runChoice,
    path: z.string().min(1),
    rect: fracRect,
    fill: z.enum(EDIT_FILLS).default('grey'),
    /** For fill 'patch': the photo whose same relative region (the photo scaled to this one's size) fills the rectangle. */
    patchPath: z.string().min(1).optional(),
    png: z.boolean().default(false),
  }),
  'study.swap': z.object({
    ...runChoice,
    path: z.string().min(1),
    /** A folder of background photos (its images, by name; at most SWAP_MAX_BACKGROUNDS). */
    backgrounds: z.string().min(1),
    /** The car's box; default: where the car detector finds it. */
    box: fracRect.optional(),
    png: z.boolean().default(false),
  }),
} as const;

export interface StudyResults {
  'study.occlusion': OcclusionStudy;
  'study.edit': EditStudy;
  'study.swap': SwapStudy;
}
