import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { UserError } from '../workspace/errors.ts';
import { FeatureCache } from './feature-cache.ts';
import { extractFeatures, defaultExtractor, type FeatureExtractor } from './extract.ts';
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
  return extractor === 'mobilenet_v2' ? MOBILENET_FEATURE_DIM : 512;
}

/** The extractor's model on the best backend; CLIP needs what cannot ship offline. */
export async function loadExtractor(extractor: ExtractorName): Promise<FeatureExtractor & { backend?: string }> {
  if (extractor === 'mobilenet_v2') return defaultExtractor();
  throw new UserError(
    'the clip-vit-b16 extractor needs onnxruntime-node (npm install onnxruntime-node, with ONNXRUNTIME_NODE_INSTALL_CUDA=skip) ' +
      'and the CLIP ViT-B/16 image-encoder ONNX weights in <workspace>/models/clip-vit-b16/ (e.g. exported with ' +
      '@huggingface/transformers); neither is installed on this machine. Use --extractor mobilenet_v2, which works offline.',
  );
}

export interface EnsureFeaturesContext {
  ws: Workspace;
  signal: AbortSignal;
  progress(done: number, total: number, message: string): void;
  log(level: 'info' | 'warn', message: string): void;
}

/**
 * Makes sure the cache holds features of every image in `imageIds` (extracting the missing
 * ones, decode overlapped with inference). Undecodable images are reported and skipped.
 */
export async function ensureFeatures(
  c: EnsureFeaturesContext,
  imageIds: readonly number[],
  extractor: ExtractorName,
): Promise<{ cache: FeatureCache; extracted: number; failed: number; imagesPerSecond: number | null }> {
  const cache = await openCache(c.ws, extractor);
  const missing = imageIds.filter((id) => !cache.has(id));
  if (missing.length === 0) return { cache, extracted: 0, failed: 0, imagesPerSecond: null };
  const keyOf = c.ws.db.prepare(`SELECT key FROM images WHERE id = ?`).pluck();
  const ex = await loadExtractor(extractor);
  c.log('info', `extracting ${extractor} features of ${missing.length} images`);
  let failed = 0;
  const inputs = missing.map((id) => ({ id, data: c.ws.store.pathFor(keyOf.get(id) as string) }));
  const res = await extractFeatures(
    inputs,
    {
      batchSize: 16,
      signal: c.signal,
      collect: false,
      onBatch: async (batch, p) => {
        if (batch.ids.length) await cache.append(batch.ids, batch.features);
        c.progress(p.done + p.failed, missing.length, `${p.imagesPerSecond.toFixed(1)} images/s`);
      },
      onError: (f) => {
        failed++;
        c.log('warn', `image ${f.id}: ${f.error}`);
      },
    },
    ex,
  );
  await cache.flush();
  return { cache, extracted: res.stats.done, failed, imagesPerSecond: res.stats.imagesPerSecond };
}
