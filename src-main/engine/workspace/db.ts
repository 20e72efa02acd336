import fs from 'node:fs';
import Database from 'better-sqlite3';
import { migrations, type Migration } from './migrations/index.ts';
import { WorkspaceError, corruptDatabaseError, isCorruptDb } from './errors.ts';

export type Db = Database.Database;

export interface OpenDbOptions {
  readonly?: boolean;
  /** Apply pending migrations (default true for writers). */
  migrate?: boolean;
  list?: readonly Migration[];
  /**
   * Run `PRAGMA quick_check` before anything else (default true), time-boxed by size: skipped
   * (and said so, see openNote) for a database over quickCheckMaxBytes(). A failed check refuses
   * the database before any write. Job workers pass false: the engine that started them checked.
   */
  check?: boolean;
  /**
   * Open for reading on a full disk: exclusive locking keeps the WAL index in memory (no -shm to
   * size, which fails on a full disk) and query_only refuses every write. Other processes cannot
   * use the database while it is open this way.
   */
  fullDisk?: boolean;
}

/** Databases larger than this (bytes, with the WAL) skip the quick_check on open; $CARSTUDIO_QUICK_CHECK_MAX_MB. */
export function quickCheckMaxBytes(): number {
  const mb = Number(process.env.CARSTUDIO_QUICK_CHECK_MAX_MB);
  return (Number.isFinite(mb) && mb >= 0 ? mb : 512) * 1024 * 1024;
}

const notes = new WeakMap<Db, string>();

/** What openDb wants the user told about this database (e.g. that the quick_check was skipped). */
export function openNote(db: Db): string | null {
  return notes.get(db) ?? null;
}

/** The schema version this build of CarStudio writes. */
export function latestVersion(list: readonly Migration[] = migrations): number {
  return list.length === 0 ? 0 : list[list.length - 1]!.version;
}

/**
 * Opens studio.db with WAL and foreign keys on, then brings its schema up to date: all pending
 * migrations run in one transaction, and a database written by a newer CarStudio is refused.
 */
export function openDb(file: string, opts: OpenDbOptions = {}): Db {
  const list = opts.list ?? migrations;
  let db: Db;
  try {
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: (opts.readonly || opts.fullDisk) ?? false });
  } catch (e) {
    throw new WorkspaceError(`cannot open database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('busy_timeout = 10000');
    if (opts.fullDisk) {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('query_only = 1');
    }
    if (opts.check !== false) quickCheck(db, file);
    if (!opts.readonly && !opts.fullDisk) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    db.pragma('foreign_keys = ON');
    const current = db.pragma('user_version', { simple: true }) as number;
    const latest = latestVersion(list);
    if (current > latest) {
      throw new WorkspaceError(
        `${file} has schema version ${current}, newer than this CarStudio understands (${latest}); ` +
          'upgrade CarStudio to open it (nothing was changed)',
      );
    }
    if (current < latest && opts.migrate !== false) {
      if (opts.readonly || opts.fullDisk) throw new WorkspaceError(`${file} needs migrating to version ${latest} but was opened read-only`);
      migrate(db, list, current);
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof WorkspaceError) throw e;
    if ((e as { code?: unknown }).code === 'SQLITE_NOTADB') {
      // a file that is not SQLite at all, or whose header (page 1) is destroyed: nothing to .recover
      throw new WorkspaceError(`cannot use database ${file}: ${(e as Error).message} (not a SQLite database, or its first page is damaged: restore studio.db from your last backup; nothing was written to it)`, { cause: e });
    }
    if (isCorruptDb(e)) throw corruptDatabaseError(file, (e as Error).message);
    throw new WorkspaceError(`cannot use database ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * SQLite's quick_check (b-tree structure, record formats; not index contents, which the verify
 * job's integrity_check covers). Throws CorruptDatabaseError; skipped for very large files.
 */
function quickCheck(db: Db, file: string): void {
  const size = sizeOf(file) + sizeOf(`${file}-wal`);
  if (size === 0) return; // a new database
  if (size > quickCheckMaxBytes()) {
    notes.set(db, `the quick check of ${file} on open was skipped (${(size / 1048576).toFixed(1)} MB, over ${(quickCheckMaxBytes() / 1048576).toFixed(1)} MB); 'carstudio verify' runs the full integrity check`);
    return;
  }
  let problems: string[];
  try {
    problems = (db.pragma('quick_check(5)') as Array<{ quick_check: string }>).map((r) => r.quick_check).filter((m) => m !== 'ok');
  } catch (e) {
    if (isCorruptDb(e)) throw corruptDatabaseError(file, `PRAGMA quick_check: ${(e as Error).message}`);
    throw e;
  }
  if (problems.length > 0) throw corruptDatabaseError(file, `PRAGMA quick_check: ${problems.join('; ')}`);
}

/** Runs a read of `file`; SQLite meeting a damaged page becomes the CorruptDatabaseError message. */
export function readingDamaged<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isCorruptDb(e) && !(e instanceof WorkspaceError)) throw corruptDatabaseError(file, (e as Error).message);
    throw e;
  }
}

/** The full `PRAGMA integrity_check` (index contents too); throws CorruptDatabaseError. Slow on big files. */
export function integrityCheck(db: Db, file: string): void {
  let problems: string[];
  try {
    problems = (db.pragma('integrity_check(20)') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).filter((m) => m !== 'ok');
  } catch (e) {
    if (isCorruptDb(e)) throw corruptDatabaseError(file, `PRAGMA integrity_check: ${(e as Error).message}`);
    throw e;
  }
  if (problems.length > 0) throw corruptDatabaseError(file, `PRAGMA integrity_check: ${problems.join('; ')}`);
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function migrate(db: Db, list: readonly Migration[], from: number): void {
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is not numbered 1..n at ${m.name}`);
  });
  const pending = list.filter((m) => m.version > from);
  const run = db.transaction(() => {
    // Another process may have migrated between our read and the write lock: re-check inside.
    const now = db.pragma('user_version', { simple: true }) as number;
    for (const m of pending) {
      if (m.version <= now) continue;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  });
  run.immediate();
}
