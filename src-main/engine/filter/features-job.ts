import type { JobContext } from '../jobs/types.ts';
import { ensureFeatures } from './features.ts';
import type { FeaturesParams } from './filter-kinds.ts';

/** Extracts features of the usable (or only the labelled) images missing from the cache. Resumable: the cache is the state. */
export default async function featuresJob(ctx: JobContext<FeaturesParams>): Promise<unknown> {
  const db = ctx.workspace.db;
  const ids = (
    ctx.params.scope === 'labelled'
      ? db.prepare(`SELECT l.image_id FROM labels l JOIN images i ON i.id = l.image_id WHERE i.state = 'stored' ORDER BY l.image_id`)
      : db.prepare(`SELECT id FROM usable_images ORDER BY id`)
  )
    .pluck()
    .all() as number[];
  const r = await ensureFeatures(
    {
      ws: ctx.workspace,
      signal: ctx.signal,
      progress: (done, total, message) => ctx.progress({ step: 'features', done, total, message }),
      log: (l, m) => ctx.log(l, m),
    },
    ids,
    ctx.params.extractor,
    ctx.params.runtime,
  );
  await r.cache.close();
  if (r.backend === null) ctx.log('info', `all ${ids.length} images already have ${ctx.params.extractor} features`);
  return {
    extractor: ctx.params.extractor,
    backend: r.backend,
    images: ids.length,
    extracted: r.extracted,
    failed: r.failed,
    failures: r.failures,
    cached: r.cache.size,
    imagesPerSecond: r.imagesPerSecond,
  };
}
