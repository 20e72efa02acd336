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
  setLabels(ws, [imageId], label, source);
}

/** One image's label as an undo or redo step left it. */
export interface LabelChange {
  imageId: number;
  label: Label | null;
}

/**
 * Sets (or clears) the label of many images in one transaction. From the UI the change is one
 * action in the log: undo reverts all of it, redo re-applies all of it, and it replaces any redo
 * history. Unknown image ids are refused before anything changes. Returns how many labels changed.
 */
export function setLabels(ws: Workspace, imageIds: readonly number[], label: Label | null, source: 'ui' | 'import' = 'ui'): number {
  const db = ws.db;
  const ids = [...new Set(imageIds)];
  return db.transaction(() => {
    // 1. refuse ids that are not images, naming a few
    const known = db.prepare(`SELECT 1 FROM images WHERE id = ?`).pluck();
    const missing = ids.filter((id) => known.get(id) === undefined);
    if (missing.length) throw new UserError(`no image with id ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''}: nothing was labelled`);
    // 2. a new action from the UI ends the redo history
    if (source === 'ui') db.prepare(`DELETE FROM label_log WHERE undone = 1`).run();
    const prevOf = db.prepare(`SELECT label FROM labels WHERE image_id = ?`).pluck();
    const del = db.prepare(`DELETE FROM labels WHERE image_id = ?`);
    const upsert = db.prepare(
      `INSERT INTO labels (image_id, label, source, at) VALUES (?, ?, ?, ?)
       ON CONFLICT (image_id) DO UPDATE SET label = excluded.label, source = excluded.source, at = excluded.at`,
    );
    const log = db.prepare(`INSERT INTO label_log (image_id, label, prev, at, batch) VALUES (?, ?, ?, ?, ?) RETURNING id`).pluck();
    const setBatch = db.prepare(`UPDATE label_log SET batch = ? WHERE id = ?`);
    const now = Date.now();
    let batch: number | null = null;
    let changed = 0;
    // 3. each image: write the label, log it under the action's batch (its first row's id)
    for (const id of ids) {
      const prev = (prevOf.get(id) as Label | undefined) ?? null;
      if (prev !== label) changed++;
      if (label === null) del.run(id);
      else upsert.run(id, label, source, now);
      if (source !== 'ui') continue;
      const row = log.get(id, label, prev, now, batch) as number;
      if (batch === null) {
        batch = row;
        setBatch.run(batch, row);
      }
    }
    return changed;
  })();
}

/** Writes the labels of a log action's rows: their prev (undo, newest row first) or their label (redo). */
function replay(ws: Workspace, rows: Array<{ image_id: number; label: Label | null; prev: Label | null }>, field: 'label' | 'prev'): LabelChange[] {
  const db = ws.db;
  const del = db.prepare(`DELETE FROM labels WHERE image_id = ?`);
  const upsert = db.prepare(
    `INSERT INTO labels (image_id, label, source, at) VALUES (?, ?, 'ui', ?)
     ON CONFLICT (image_id) DO UPDATE SET label = excluded.label, source = 'ui', at = excluded.at`,
  );
  const now = Date.now();
  return rows.map((r) => {
    const l = r[field];
    if (l === null) del.run(r.image_id);
    else upsert.run(r.image_id, l, now);
    return { imageId: r.image_id, label: l };
  });
}

const ACTION = `COALESCE(batch, id)`;

/** Reverts the last labelling action made in the UI (every image of a bulk action); returns what each image is now, empty when there is nothing to undo. */
export function undoLabels(ws: Workspace): LabelChange[] {
  const db = ws.db;
  return db.transaction(() => {
    const last = db.prepare(`SELECT MAX(${ACTION}) FROM label_log WHERE undone = 0`).pluck().get() as number | null;
    if (last === null) return [];
    const rows = db.prepare(`SELECT id, image_id, label, prev FROM label_log WHERE ${ACTION} = ? AND undone = 0 ORDER BY id DESC`).all(last) as Array<{
      id: number;
      image_id: number;
      label: Label | null;
      prev: Label | null;
    }>;
    db.prepare(`UPDATE label_log SET undone = 1 WHERE ${ACTION} = ?`).run(last);
    // the images in log order again, each once (the action's first row holds its label before)
    return dedupeChanges(replay(ws, rows, 'prev').reverse(), 'first');
  })();
}

/** Re-applies the action undone last; returns what each image is now, empty when there is nothing to redo. */
export function redoLabels(ws: Workspace): LabelChange[] {
  const db = ws.db;
  return db.transaction(() => {
    const next = db.prepare(`SELECT MIN(${ACTION}) FROM label_log WHERE undone = 1`).pluck().get() as number | null;
    if (next === null) return [];
    const rows = db.prepare(`SELECT image_id, label, prev FROM label_log WHERE ${ACTION} = ? ORDER BY id`).all(next) as Array<{ image_id: number; label: Label | null; prev: Label | null }>;
    db.prepare(`UPDATE label_log SET undone = 0 WHERE ${ACTION} = ?`).run(next);
    return dedupeChanges(replay(ws, rows, 'label'), 'last');
  })();
}

/** One change per image: the state the replay left (which row wrote it last). */
function dedupeChanges(changes: LabelChange[], keep: 'first' | 'last'): LabelChange[] {
  const byId = new Map<number, LabelChange>();
  for (const c of changes) if (keep === 'last' || !byId.has(c.imageId)) byId.set(c.imageId, c);
  return [...byId.values()];
}

/** Whether an undo and a redo are available. */
export function labelHistory(ws: Workspace): { canUndo: boolean; canRedo: boolean } {
  const q = (undone: number) => ws.db.prepare(`SELECT EXISTS (SELECT 1 FROM label_log WHERE undone = ?)`).pluck().get(undone) === 1;
  return { canUndo: q(0), canRedo: q(1) };
}

/** Reverts the last labelling action made in the UI; returns the image it touched (the first, for a bulk action). */
export function undoLabel(ws: Workspace): { imageId: number; label: Label | null } | null {
  return undoLabels(ws)[0] ?? null;
}

export type LabelFilter = 'all' | 'good' | 'bad' | 'imported' | 'ui';

/** The labels given so far, newest first, filtered by label or by source; with the total that match. */
export function listLabels(
  ws: Workspace,
  filter: LabelFilter,
  limit: number,
  offset: number,
): { total: number; rows: Array<{ imageId: number; key: string; label: Label; source: 'ui' | 'import'; at: number }> } {
  const where = filter === 'good' || filter === 'bad' ? `l.label = '${filter}'` : filter === 'imported' ? `l.source = 'import'` : filter === 'ui' ? `l.source = 'ui'` : '1';
  const total = ws.db.prepare(`SELECT COUNT(*) FROM labels l JOIN images i ON i.id = l.image_id WHERE ${where}`).pluck().get() as number;
  const rows = ws.db
    .prepare(`SELECT l.image_id imageId, i.key, l.label, l.source, l.at FROM labels l JOIN images i ON i.id = l.image_id WHERE ${where} ORDER BY l.at DESC, l.image_id DESC LIMIT ? OFFSET ?`)
    .all(limit, offset) as Array<{ imageId: number; key: string; label: Label; source: 'ui' | 'import'; at: number }>;
  return { total, rows };
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
