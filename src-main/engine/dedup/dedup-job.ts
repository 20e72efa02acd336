import { availableParallelism } from 'node:os';
import sharp from 'sharp';
import type { JobContext } from '../jobs/types.ts';
import type { DedupParams } from './dedup-kind.ts';
import { hashRow } from './hash-row.ts';
import { rebuildGroups } from './groups.ts';

const PAGE = 256;

interface Checkpoint {
  hashed: number;
  errors: number;
}

/**
 * Hashes every stored image that has no hashes yet (the backlog: images stored before dedup
 * existed, or whose ingest-time hashing was skipped), then rebuilds the duplicate groups for the
 * chosen method and applies the policy and the user's overrides.
 *
 * Hashing uses every core: libvips decodes and resizes on the libuv thread pool while the pHash
 * DCT runs here, with enough images in flight to keep both busy (sharp's own per-image threading
 * is turned off: many small images parallelise better than one image over several threads).
 * Resumable without a cursor: each page of hashes is committed as it completes and the backlog
 * query only returns images still unhashed. An image that cannot be read or decoded gets its
 * error recorded (hash_error) and is skipped from then on; the job completes.
 */
export default async function dedupJob(ctx: JobContext<DedupParams>): Promise<unknown> {
  const { db, store } = ctx.workspace;
  const p = ctx.params;
  const cp = (ctx.checkpoint as Checkpoint | undefined) ?? { hashed: 0, errors: 0 };
  let { hashed, errors } = cp;
  sharp.concurrency(1);
  const inFlight = Math.max(4, availableParallelism() * 4);

  const backlog = db.prepare(`SELECT COUNT(*) FROM images WHERE state = 'stored' AND exact_hash IS NULL AND hash_error IS NULL`).pluck();
  const page = db.prepare(`SELECT id, key FROM images WHERE state = 'stored' AND exact_hash IS NULL AND hash_error IS NULL AND id > ? ORDER BY id LIMIT ?`);
  const setOk = db.prepare(`UPDATE images SET exact_hash = ?, phash = ?, thumb = ?, hash_error = NULL WHERE id = ?`);
  const setErr = db.prepare(`UPDATE images SET hash_error = ? WHERE id = ?`);
  const total = hashed + errors + (backlog.get() as number);
  if (ctx.resumed && hashed + errors > 0) ctx.log('info', `continuing: ${hashed + errors} images hashed before, ${total - hashed - errors} to go`);
  else ctx.log('info', `${total} stored images to hash`);

  let lastId = 0;
  while (!ctx.signal.aborted) {
    const rows = page.all(lastId, PAGE) as Array<{ id: number; key: string }>;
    if (rows.length === 0) break;
    const results: Array<{ id: number; ok?: { exact: string; phash: string; thumb: Buffer }; error?: string }> = new Array(rows.length);
    let next = 0;
    const worker = async () => {
      for (;;) {
        if (ctx.signal.aborted) return;
        const i = next++;
        if (i >= rows.length) return;
        const r = rows[i]!;
        try {
          const h = await hashRow(store.pathFor(r.key));
          results[i] = { id: r.id, ok: { exact: h.exact, phash: h.phash, thumb: h.thumb } };
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          results[i] = { id: r.id, error: err.code === 'ENOENT' || /no such file|Input file is missing/i.test(err.message) ? 'file missing from the image store' : err.message.split('\n')[0]! };
        }
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const bad: Array<{ id: number; error: string }> = [];
    db.transaction(() => {
      for (const r of results) {
        if (!r) continue;
        if (r.ok) {
          setOk.run(r.ok.exact, r.ok.phash, r.ok.thumb, r.id);
          hashed++;
        } else {
          setErr.run(r.error!, r.id);
          bad.push({ id: r.id, error: r.error! });
          errors++;
        }
      }
    })();
    for (const b of bad) ctx.log('warn', `image ${b.id} skipped: ${b.error}`);
    lastId = rows[rows.length - 1]!.id;
    ctx.saveCheckpoint({ hashed, errors } satisfies Checkpoint);
    ctx.progress({ step: 'hash', done: hashed + errors, total, message: errors ? `${errors} unreadable` : undefined });
  }
  if (ctx.signal.aborted) return { hashed, errors };

  ctx.progress({ step: 'group', done: 0, total: 1, message: `grouping (${p.method})` });
  const g = rebuildGroups(db, { method: p.method, maxDistance: p.maxDistance, policy: p.policy });
  ctx.progress({ step: 'group', done: 1, total: 1, message: `${g.groups} groups, ${g.excluded} excluded` });
  ctx.log(
    'info',
    `${g.groups} ${p.method} groups holding ${g.imagesInGroups} images; ${g.excluded} excluded (${p.policy} policy` +
      `${g.overridesApplied ? `, ${g.overridesApplied} overrides` : ''}${g.decisionsApplied ? `, ${g.decisionsApplied} photo decisions` : ''}); near pairs: ${g.candidatePairs} candidates, ${g.verifiedPairs} verified`,
  );
  if (g.chained.worst) {
    const w = g.chained.worst;
    ctx.log(
      'warn',
      `${g.chained.groups} near group${g.chained.groups === 1 ? '' : 's'} joined photos through chains of similar ones rather than copies of one picture; ` +
        `the largest, group ${w.groupId}, has ${w.size} photos from ${w.listings} listings, some ${w.spread} bits from its representative (more than --max-distance ${p.maxDistance}). ` +
        `Look at it in the Dedup stage: a lower --max-distance, or keep/drop overrides, splits it.`,
    );
  }
  return {
    chainedGroups: g.chained.groups,
    hashed: g.hashed,
    hashedThisRun: hashed,
    errors,
    groups: g.groups,
    imagesInGroups: g.imagesInGroups,
    excluded: g.excluded,
    candidatePairs: g.candidatePairs,
    verifiedPairs: g.verifiedPairs,
    overridesApplied: g.overridesApplied,
    decisionsApplied: g.decisionsApplied,
  };
}
