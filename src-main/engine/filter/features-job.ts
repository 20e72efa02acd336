import type { JobContext } from '../jobs/types.ts';
import { ensureFeatures, featureSetName, openCache } from './features.ts';
import type { FeaturesParams } from './filter-kinds.ts';

const int = (n: number) => n.toLocaleString('en-US');

/** "about 40 s" / "about 3 min" left at a rate measured since the first batch. */
function about(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  return seconds < 90 ? `about ${Math.max(1, Math.round(seconds))} s left` : `about ${Math.round(seconds / 60)} min left`;
}

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
  // Each extractor has its own cache: choosing another one extracts its features once, and the
  // features of the others stay (the filters fitted on them keep scoring with them). Say so, and
  // how many images this run has to do, before the model loads.
  const peek = await openCache(ctx.workspace, set, 0);
  const missing = ids.filter((id) => !peek.has(id)).length;
  await peek.close();
  const what = `${set} features for ${int(missing)} ${ctx.params.scope} image${missing === 1 ? '' : 's'} not cached yet`;
  if (missing > 0) {
    ctx.log('info', `extracting ${what} (${int(ids.length - missing)} already cached); features cached for other extractors stay and keep working`);
    ctx.progress({ step: 'features', done: 0, total: missing, message: `loading the ${ctx.params.extractor} model to extract ${what}` });
  }
  let first: { at: number; done: number } | null = null;
  const r = await ensureFeatures(
    {
      ws: ctx.workspace,
      signal: ctx.signal,
      progress: (done, total, message) => {
        const now = Date.now();
        first ??= { at: now, done };
        const rate = now > first.at ? (done - first.done) / ((now - first.at) / 1000) : 0;
        const left = rate > 0 ? about((total - done) / rate) : '';
        ctx.progress({ step: 'features', done, total, message: `extracting ${set} features for ${int(total)} images${left ? ` — ${left}` : ''} (${message})` });
      },
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
