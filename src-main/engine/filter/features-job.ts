import type { JobContext } from '../jobs/types.ts';
import { ensureFeatures, featureSetName } from './features.ts';
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
  const set = featureSetName(ctx.params.extractor, ctx.params.crops);
  const r = await ensureFeatures(
    {
      ws: ctx.workspace,
      signal: ctx.signal,
      progress: (done, total, message) => ctx.progress({ step: 'features', done, total, message }),
      log: (l, m) => ctx.log(l, m),
    },
    ids,
    set,
    { runtime: ctx.params.runtime },
  );
  await r.cache.close();
  if (r.backend === null) ctx.log('info', `all ${ids.length} images already have ${set} features`);
  return {
    extractor: ctx.params.extractor,
    crops: ctx.params.crops,
    featureSet: set,
    backend: r.backend,
    images: ids.length,
    extracted: r.extracted,
    failed: r.failed,
    failures: r.failures,
    cached: r.cache.size,
    imagesPerSecond: r.imagesPerSecond,
  };
}
