import fs from 'node:fs';
import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { ImageStore } from '../workspace/image-store.ts';
import { UserError } from '../workspace/errors.ts';
import { ImageRejected, ingestImage } from '../scrape/image-ingest.ts';
import { heicSupported, IMAGE_EXTENSIONS, readImageBytes, walkImages } from '../predict/decode-file.ts';

export type Label = 'good' | 'bad';

/** A file of an imported folder that was not imported, and why. */
export interface SkippedFile {
  file: string;
  reason: string;
}

export interface ImportResult {
  folder: string;
  /** Files found in the folder (recursively), images or not. */
  files: number;
  imported: number;
  /** Already in the workspace (same bytes): labelled, not stored again. */
  already: number;
  skipped: SkippedFile[];
}

const HEIC_REASON = 'unsupported type: HEIC needs an HEVC decoder that this sharp build lacks; convert the photo to JPEG';

/** Why a path that is a symbolic link cannot be read as a file, or null when it can. */
function symlinkProblem(file: string): string | null {
  const l = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!l?.isSymbolicLink()) return null;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) {
    let target = '?';
    try {
      target = fs.readlinkSync(file);
    } catch {
      /* unreadable link */
    }
    return `broken symbolic link (its target ${target} does not exist)`;
  }
  if (st.isDirectory()) return 'a symbolic link to a folder (not followed)';
  return null;
}

/** The reason a file without an image extension is passed over. */
function otherReason(file: string): string {
  const link = symlinkProblem(file);
  if (link) return link;
  const ext = path.extname(file).toLowerCase();
  return `not an image: ${ext ? `${ext} is not` : 'a name without an extension is not'} an image type (${IMAGE_EXTENSIONS.filter((e) => heicSupported() || !/^\.hei[cf]$/.test(e)).join(' ')})`;
}

/** The folder's files: the images to import and the others, each with its reason (as predict walks folders). */
async function scanFolder(folder: string): Promise<{ images: string[]; others: SkippedFile[] }> {
  const st = fs.statSync(folder, { throwIfNoEntry: false });
  if (!st) throw new UserError(`folder ${folder} does not exist`);
  if (!st.isDirectory()) throw new UserError(`${folder} is not a folder`);
  let walk: Awaited<ReturnType<typeof walkImages>>;
  try {
    walk = await walkImages(folder);
  } catch (e) {
    throw new UserError(`cannot read folder ${folder}: ${(e as Error).message}`);
  }
  return { images: walk.files, others: walk.others.map((file) => ({ file, reason: otherReason(file) })) };
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
 * Imports a folder of images as labelled examples (recursively; symbolic links to files are
 * followed): each file is stored once (keyed by its content) and labelled; importing again changes
 * nothing. Every file that is not imported is reported with its reason (not an image type, HEIC
 * without a decoder, broken symbolic link, unreadable, not a decodable image).
 */
export async function importLabelled(ws: Workspace, folder: string, label: Label, onFile?: (done: number, total: number) => void): Promise<ImportResult> {
  const { images, others } = await scanFolder(folder);
  const byUrl = ws.db.prepare(`SELECT id FROM images WHERE url = ?`).pluck();
  const insert = ws.db.prepare(
    `INSERT INTO images (key, url, state, width, height, bytes, exact_hash, phash, thumb, hash_error, tries, updated_at)
     VALUES (?, ?, 'stored', ?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING id`,
  );
  let imported = 0;
  let already = 0;
  const skipped: SkippedFile[] = [...others];
  const heic = heicSupported();
  for (const [i, file] of images.entries()) {
    onFile?.(i, images.length);
    const link = symlinkProblem(file);
    if (link) {
      skipped.push({ file, reason: link });
      continue;
    }
    if (/\.hei[cf]$/i.test(file) && !heic) {
      skipped.push({ file, reason: HEIC_REASON });
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await readImageBytes(file);
    } catch (e) {
      const m = (e as Error).message;
      skipped.push({ file, reason: m.startsWith('cannot read: ') ? `unreadable: ${m.slice('cannot read: '.length)}` : m });
      continue;
    }
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
          skipped.push({ file, reason: e.message });
          continue;
        }
        throw e;
      }
    } else already++;
    setLabel(ws, id, label, 'import');
  }
  onFile?.(images.length, images.length);
  skipped.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { folder, files: images.length + others.length, imported, already, skipped };
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
