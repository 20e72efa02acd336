import fs from 'node:fs';
import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { ImageStore } from '../workspace/image-store.ts';
import { UserError } from '../workspace/errors.ts';
import { ImageRejected, ingestImage } from '../scrape/image-ingest.ts';

export type Label = 'good' | 'bad';
const IMAGE_EXT = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

export function listImageFiles(folder: string): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(folder);
  } catch {
    throw new UserError(`folder ${folder} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`${folder} is not a folder`);
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && IMAGE_EXT.test(e.name)) out.push(p);
    }
  };
  walk(folder);
  return out.sort();
}

/** Sets (or clears, with null) the label of an image, logging the change for undo. */
export function setLabel(ws: Workspace, imageId: number, label: Label | null, source: 'ui' | 'import' = 'ui'): void {
  const db = ws.db;
  db.transaction(() => {
    const prev = (db.prepare(`SELECT label FROM labels WHERE image_id = ?`).pluck().get(imageId) as string | undefined) ?? null;
    if (label === null) db.prepare(`DELETE FROM labels WHERE image_id = ?`).run(imageId);
    else
      db.prepare(
        `INSERT INTO labels (image_id, label, source, at) VALUES (?, ?, ?, ?)
         ON CONFLICT (image_id) DO UPDATE SET label = excluded.label, source = excluded.source, at = excluded.at`,
      ).run(imageId, label, source, Date.now());
    if (source === 'ui') db.prepare(`INSERT INTO label_log (image_id, label, prev, at) VALUES (?, ?, ?, ?)`).run(imageId, label, prev, Date.now());
  })();
}

/** Reverts the last labelling action made in the UI; returns the image it touched. */
export function undoLabel(ws: Workspace): { imageId: number; label: Label | null } | null {
  const db = ws.db;
  return db.transaction(() => {
    const last = db.prepare(`SELECT id, image_id, prev FROM label_log ORDER BY id DESC LIMIT 1`).get() as { id: number; image_id: number; prev: Label | null } | undefined;
    if (!last) return null;
    if (last.prev === null) db.prepare(`DELETE FROM labels WHERE image_id = ?`).run(last.image_id);
    else db.prepare(`UPDATE labels SET label = ?, at = ? WHERE image_id = ?`).run(last.prev, Date.now(), last.image_id);
    db.prepare(`DELETE FROM label_log WHERE id = ?`).run(last.id);
    return { imageId: last.image_id, label: last.prev };
  })();
}

export function labelCounts(ws: Workspace): { good: number; bad: number } {
  const rows = ws.db.prepare(`SELECT label, COUNT(*) n FROM labels GROUP BY label`).all() as Array<{ label: Label; n: number }>;
  return { good: rows.find((r) => r.label === 'good')?.n ?? 0, bad: rows.find((r) => r.label === 'bad')?.n ?? 0 };
}

/**
 * Imports a folder of images as labelled examples: each file is stored once (keyed by its
 * content) and labelled; importing again changes nothing. Unreadable files are reported.
 */
export async function importLabelled(
  ws: Workspace,
  folder: string,
  label: Label,
  onFile?: (done: number, total: number) => void,
): Promise<{ imported: number; already: number; failed: Array<{ file: string; reason: string }> }> {
  const files = listImageFiles(folder);
  const byUrl = ws.db.prepare(`SELECT id FROM images WHERE url = ?`).pluck();
  const insert = ws.db.prepare(
    `INSERT INTO images (key, url, state, width, height, bytes, exact_hash, phash, thumb, hash_error, tries, updated_at)
     VALUES (?, ?, 'stored', ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id`,
  );
  let imported = 0;
  let already = 0;
  const failed: Array<{ file: string; reason: string }> = [];
  for (const [i, file] of files.entries()) {
    const bytes = fs.readFileSync(file);
    const key = ImageStore.keyFor(bytes);
    const url = `file:${key}`;
    let id = byUrl.get(url) as number | undefined;
    if (id === undefined) {
      try {
        const info = await ingestImage(ws.store, key, bytes, 256);
        const h = info.hashes;
        const ok = h && 'exact' in h ? h : null;
        id = (
          insert.get(key, url, info.width, info.height, info.bytes, ok?.exact ?? null, ok?.phash ?? null, ok?.thumb ?? null, h && 'error' in h ? h.error : null, Date.now()) as {
            id: number;
          }
        ).id;
        imported++;
      } catch (e) {
        if (e instanceof ImageRejected) {
          failed.push({ file, reason: e.message });
          continue;
        }
        throw e;
      }
    } else already++;
    setLabel(ws, id, label, 'import');
    onFile?.(i + 1, files.length);
  }
  return { imported, already, failed };
}

export interface LabelRecord {
  key: string;
  url: string;
  label: Label;
  source: string;
  at: string;
}

export function exportLabels(ws: Workspace): LabelRecord[] {
  return (
    ws.db.prepare(`SELECT i.key, i.url, l.label, l.source, l.at FROM labels l JOIN images i ON i.id = l.image_id ORDER BY l.at`).all() as Array<
      Omit<LabelRecord, 'at'> & { at: number }
    >
  ).map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
}
