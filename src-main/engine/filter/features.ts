import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { loadClipExtractor, CLIP_DIM } from './clip.ts';
import { FeatureCache } from './feature-cache.ts';
import { extractFeatures, mobilenetExtractor, type FeatureExtractor, type FeatureRuntime } from './extract.ts';
import { MOBILENET_BLOCKS_DIM, MOBILENET_FEATURE_DIM } from '../ml/mobilenet.ts';
import { CAR_V1_DIM, carV1Extractor } from './car-features.ts';
import { CROP_COUNTS, type CropCount } from '../ml/decode.ts';
import { UserError } from '../workspace/errors.ts';

export const EXTRACTORS = ['car-v1', 'mobilenet_v2-blocks', 'mobilenet_v2', 'clip-vit-b16'] as const;
export type ExtractorName = (typeof EXTRACTORS)[number];
/** The best extractor measured on ../shared/data (README, "Features"): the filter's default. */
export const DEFAULT_EXTRACTOR: ExtractorName = 'car-v1';

/** What each extractor is and what it is good for, with the figures measured on ../shared/data (bench filter). */
export const EXTRACTOR_INFO: Record<ExtractorName, { dim: number; summary: string; offline: boolean }> = {
  'car-v1': {
    dim: CAR_V1_DIM,
    offline: true,
    summary: 'MobileNetV2 blocks 10/13/16 (mean+max) + a COCO car detector (box, score, area, edges). Junk filter: best offline (about 77% of bad photos removed at 1% of good lost); draws the car box.',
  },
  'mobilenet_v2-blocks': {
    dim: MOBILENET_BLOCKS_DIM,
    offline: true,
    summary: 'MobileNetV2 blocks 10/13/16 pooled by mean and max, without the detector. Nearly as good a filter as car-v1; make/model a little better than mobilenet_v2.',
  },
  mobilenet_v2: {
    dim: MOBILENET_FEATURE_DIM,
    offline: true,
    summary: 'The bundled MobileNetV2 cut at flatten_1 (upper blocks tuned to another task). The original feature set; about 60% of bad photos removed at 1% of good lost.',
  },
  'clip-vit-b16': {
    dim: CLIP_DIM,
    offline: false,
    summary: "The original's CLIP ViT-B/16 image features: the recommended download where there is internet (filter weights job).",
  },
};

/** Extractors that read each photo whole and have no 3-crop feature set. */
export const WHOLE_PHOTO_EXTRACTORS: readonly ExtractorName[] = ['car-v1'];
export { CROP_COUNTS, type CropCount };

/**
 * A cached feature set: an extractor's 1-crop features (named as the extractor) or its 3-crop
 * averaged ones (`<extractor>.crops3`), each in its own cache folder under its own id.
 */
export type FeatureSetName = ExtractorName | `${ExtractorName}.crops3`;

export function featureSetName(extractor: ExtractorName, crops: CropCount = 1): FeatureSetName {
  return crops === 1 ? extractor : `${extractor}.crops3`;
}

/** The extractor and crop count of a feature set name (what filter_models.extractor holds). */
export function parseFeatureSet(name: string): { extractor: ExtractorName; crops: CropCount } {
  const m = /^(.*?)(?:\.crops(\d+))?$/.exec(name)!;
  const crops = m[2] === undefined ? 1 : Number(m[2]);
  if (!(EXTRACTORS as readonly string[]).includes(m[1]) || !(CROP_COUNTS as readonly number[]).includes(crops)) {
    throw new UserError(`unknown feature set '${name}': expected one of ${EXTRACTORS.join(', ')}, optionally with .crops3`);
  }
  if (crops !== 1 && WHOLE_PHOTO_EXTRACTORS.includes(m[1] as ExtractorName)) throw new UserError(`${m[1]} reads each photo whole and has no 3-crop features; use --crops 1`);
  return { extractor: m[1] as ExtractorName, crops: crops as CropCount };
}

/** The cache folder of a feature set: features/<extractor> or features/<extractor>.crops3. */
export function featureDir(ws: Workspace, set: FeatureSetName): string {
  const { extractor, crops } = parseFeatureSet(set);
  return path.join(ws.dir, 'features', featureSetName(extractor, crops));
}

export function openCache(ws: Workspace, set: FeatureSetName, bufferRows = 2048): Promise<FeatureCache> {
  const { extractor, crops } = parseFeatureSet(set);
  const name = featureSetName(extractor, crops);
  return FeatureCache.open(featureDir(ws, name), name, dimOf(extractor), { bufferRows });
}

/** Values per feature row of an extractor. */
export function dimOf(extractor: ExtractorName): number {
  return EXTRACTOR_INFO[extractor].dim;
}

/**
 * The extractor's model on the best backend (or the runtime asked for; the MobileNetV2-based
 * ones), and that backend's name (shown to the user).
 */
export async function loadExtractor(
  extractor: ExtractorName,
  workspaceDir: string,
  opts: { runtime?: FeatureRuntime; log?(level: 'info' | 'warn', message: string): void } = {},
): Promise<FeatureExtractor & { backend: string }> {
  if (extractor === 'clip-vit-b16') return loadClipExtractor(workspaceDir);
  if (extractor === 'mobilenet_v2') return mobilenetExtractor({ runtime: opts.runtime ?? 'auto', log: opts.log });
  const blocks = await mobilenetExtractor({ runtime: opts.runtime ?? 'auto', log: opts.log, variant: 'blocks' });
  if (extractor === 'mobilenet_v2-blocks') return Object.assign(Object.create(blocks) as typeof blocks, { name: 'mobilenet_v2-blocks' });
  return carV1Extractor(blocks, { runtime: opts.runtime ?? 'auto', log: opts.log });
}

export interface EnsureFeaturesContext {
  ws: Workspace;
  signal: AbortSignal;
  progress(done: number, total: number, message: string): void;
  log(level: 'info' | 'warn', message: string): void;
}

export interface EnsureFeaturesOptions {
  /** Where mobilenet_v2 runs (default 'auto'). */
  runtime?: FeatureRuntime;
  /** 3: the 3-crop feature set (as `<extractor>.crops3` names it). Default: the set's own count. */
  crops?: CropCount;
}

export interface EnsureFeaturesResult {
  cache: FeatureCache;
  extracted: number;
  failed: number;
  /** The first 100 images that could not be decoded, and why. */
  failures: Array<{ imageId: number; error: string }>;
  imagesPerSecond: number | null;
  /** The extractor's backend, null when nothing had to be extracted. */
  backend: string | null;
}

/**
 * Makes sure the cache holds features of every image in `imageIds` (extracting the missing
 * ones, decode overlapped with inference). Undecodable images are reported and skipped. `set` is
 * an extractor or feature set name (`mobilenet_v2.crops3`); `opts.crops` 3 picks the 3-crop set of
 * an extractor. The 4th argument may also be just the runtime.
 */
export async function ensureFeatures(
  c: EnsureFeaturesContext,
  imageIds: readonly number[],
  set: FeatureSetName,
  opts: FeatureRuntime | EnsureFeaturesOptions = {},
): Promise<EnsureFeaturesResult> {
  const o: EnsureFeaturesOptions = typeof opts === 'string' ? { runtime: opts } : opts;
  const parsed = parseFeatureSet(set);
  if (o.crops !== undefined && parsed.crops !== 1 && o.crops !== parsed.crops) throw new Error(`feature set ${set} with crops ${o.crops}`);
  const extractor = parsed.extractor;
  const crops = o.crops ?? parsed.crops;
  const runtime = o.runtime ?? 'auto';
  const name = featureSetName(extractor, crops);
  const cache = await openCache(c.ws, name);
  const missing = imageIds.filter((id) => !cache.has(id));
  if (missing.length === 0) return { cache, extracted: 0, failed: 0, failures: [], imagesPerSecond: null, backend: null };
  const keyOf = c.ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
  let ex: FeatureExtractor & { backend: string };
  try {
    ex = await loadExtractor(extractor, c.ws.dir, { runtime, log: (l, m) => c.log(l, m) });
  } catch (e) {
    await cache.close();
    throw e;
  }
  c.log('info', `extracting ${name} features of ${missing.length} images on ${ex.backend}`);
  let failed = 0;
  const failures: Array<{ imageId: number; error: string }> = [];
  const inputs = missing.map((id) => ({ id, data: c.ws.store.pathFor(keyOf.get(id) as string) }));
  let res: Awaited<ReturnType<typeof extractFeatures>>;
  try {
    res = await extractFeatures(
      inputs,
      {
        batchSize: 16,
        crops,
        signal: c.signal,
        collect: false,
        onBatch: async (batch, p) => {
          if (batch.ids.length) await cache.append(batch.ids, batch.features);
          c.progress(p.done + p.failed, missing.length, `${p.imagesPerSecond.toFixed(1)} images/s on ${ex.backend}`);
        },
        onError: (f) => {
          failed++;
          if (failures.length < 100) failures.push({ imageId: f.id, error: f.error });
          c.log('warn', `image ${f.id} skipped: ${f.error}`);
        },
      },
      ex,
    );
  } catch (e) {
    // cancelled or failed: keep what was embedded (buffered rows become a shard) for the next run
    await cache.flush().catch(() => undefined);
    await cache.close().catch(() => undefined);
    throw e;
  }
  await cache.flush();
  c.log('info', `${res.stats.done} images embedded, ${failed} skipped, ${res.stats.imagesPerSecond.toFixed(1)} images/s on ${ex.backend}`);
  return { cache, extracted: res.stats.done, failed, failures, imagesPerSecond: res.stats.imagesPerSecond, backend: ex.backend };
}
