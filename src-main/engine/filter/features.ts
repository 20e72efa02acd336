import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { loadClipExtractor, CLIP_DIM } from './clip.ts';
import { FeatureCache } from './feature-cache.ts';
import { extractFeatures, mobilenetExtractor, type FeatureExtractor, type FeatureRuntime } from './extract.ts';
import { MOBILENET_FEATURE_DIM } from '../ml/mobilenet.ts';

export const EXTRACTORS = ['mobilenet_v2', 'clip-vit-b16'] as const;
export type ExtractorName = (typeof EXTRACTORS)[number];

export function featureDir(ws: Workspace, extractor: ExtractorName): string {
  return path.join(ws.dir, 'features', extractor);
}

export function openCache(ws: Workspace, extractor: ExtractorName, bufferRows = 2048): Promise<FeatureCache> {
  return FeatureCache.open(featureDir(ws, extractor), extractor, dimOf(extractor), { bufferRows });
}

function dimOf(extractor: ExtractorName): number {
  return extractor === 'mobilenet_v2' ? MOBILENET_FEATURE_DIM : CLIP_DIM;
}

/**
 * The extractor's model on the best backend (or the runtime asked for, mobilenet_v2 only), and
 * that backend's name (shown to the user).
 */
export async function loadExtractor(
  extractor: ExtractorName,
  workspaceDir: string,
  opts: { runtime?: FeatureRuntime; log?(level: 'info' | 'warn', message: string): void } = {},
): Promise<FeatureExtractor & { backend: string }> {
  if (extractor === 'clip-vit-b16') return loadClipExtractor(workspaceDir);
  return mobilenetExtractor({ runtime: opts.runtime ?? 'auto', log: opts.log });
}

export interface EnsureFeaturesContext {
  ws: Workspace;
  signal: AbortSignal;
  progress(done: number, total: number, message: string): void;
  log(level: 'info' | 'warn', message: string): void;
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
 * ones, decode overlapped with inference). Undecodable images are reported and skipped.
 */
export async function ensureFeatures(
  c: EnsureFeaturesContext,
  imageIds: readonly number[],
  extractor: ExtractorName,
  runtime: FeatureRuntime = 'auto',
): Promise<EnsureFeaturesResult> {
  const cache = await openCache(c.ws, extractor);
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
  c.log('info', `extracting ${extractor} features of ${missing.length} images on ${ex.backend}`);
  let failed = 0;
  const failures: Array<{ imageId: number; error: string }> = [];
  const inputs = missing.map((id) => ({ id, data: c.ws.store.pathFor(keyOf.get(id) as string) }));
  let res: Awaited<ReturnType<typeof extractFeatures>>;
  try {
    res = await extractFeatures(
      inputs,
      {
        batchSize: 16,
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
