import fs from 'node:fs';
import sharp from 'sharp';
import type { JobContext } from '../jobs/types.ts';
import { integrityCheck } from '../workspace/db.ts';
import { Workspace } from '../workspace/workspace.ts';
import type { VerifyStoreParams } from './verify-kind.ts';

const BATCH = 200;

/** What the job's progress says while it checks the database, then the photos: in the user's words. */
const VERIFY_MESSAGES = {
  database: 'checking the database for damage',
  images: 'checking that every stored photo is there and opens',
  done: (checked: number, bad: number) => `no damage found in the database; ${checked} ${checked === 1 ? 'photo' : 'photos'} checked, ${bad} broken`,
};

/**
 * Checks every stored image: the file exists, decodes, and has the size on record. Images that
 * fail are marked failed with the reason (so the next scrape fetches them again). Resumable: the
 * checkpoint is the last image id checked.
 */
export default async function verifyStore(ctx: JobContext<VerifyStoreParams>): Promise<unknown> {
  const { db, store } = ctx.workspace;
  // The database first: the full check (quick_check on open skips index contents and big files).
  ctx.progress({ step: 'integrity', done: 0, total: 1, message: VERIFY_MESSAGES.database });
  integrityCheck(db, Workspace.dbFile(ctx.workspace.dir));
  const cp = (ctx.checkpoint as { lastId: number; bad: number; checked: number } | undefined) ?? { lastId: 0, bad: 0, checked: 0 };
  const total = (db.prepare(`SELECT COUNT(*) n FROM images WHERE state = 'stored'`).get() as { n: number }).n;
  const page = db.prepare(`SELECT id, key, width, height FROM images WHERE state = 'stored' AND id > ? ORDER BY id LIMIT ?`);
  const markBad = db.prepare(`UPDATE images SET state = 'failed', fail_reason = ?, updated_at = ? WHERE id = ?`);
  let { lastId, bad, checked } = cp;
  if (ctx.resumed && checked > 0) ctx.log('info', `continuing after image ${lastId} (${checked} already checked)`);
  for (;;) {
    if (ctx.signal.aborted) break;
    const rows = page.all(lastId, BATCH) as Array<{ id: number; key: string; width: number | null; height: number | null }>;
    if (rows.length === 0) break;
    const failures: Array<{ id: number; reason: string }> = [];
    for (const r of rows) {
      if (ctx.signal.aborted) break;
      const file = store.pathFor(r.key);
      let reason: string | null = null;
      if (!fs.existsSync(file)) reason = 'file missing from the image store';
      else {
        try {
          const img = sharp(file);
          const { width, height } = await img.metadata();
          await img.raw().toBuffer();
          if (params(ctx).checkSize && r.width != null && (width !== r.width || height !== r.height)) {
            reason = `size ${width}x${height} differs from the recorded ${r.width}x${r.height}`;
          }
        } catch (e) {
          reason = `does not decode: ${(e as Error).message}`;
        }
      }
      if (reason) failures.push({ id: r.id, reason });
      lastId = r.id;
      checked++;
      ctx.progress({ step: 'verify', done: checked, total, message: VERIFY_MESSAGES.images });
    }
    if (params(ctx).repair && failures.length) {
      const now = Date.now();
      db.transaction(() => failures.forEach((f) => markBad.run(f.reason, now, f.id)))();
    }
    for (const f of failures) ctx.log('warn', `image ${f.id}: ${f.reason}`);
    bad += failures.length;
    ctx.saveCheckpoint({ lastId, bad, checked });
  }
  if (!ctx.signal.aborted) ctx.progress({ step: 'verify', done: checked, total, message: VERIFY_MESSAGES.done(checked, bad) });
  return { checked, bad };
}

function params(ctx: JobContext<VerifyStoreParams>): VerifyStoreParams {
  return ctx.params;
}
