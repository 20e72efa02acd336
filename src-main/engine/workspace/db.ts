import Database from 'better-sqlite3';
import { migrations, type Migration } from './migrations/index.ts';
import { WorkspaceError } from './errors.ts';

export type Db = Database.Database;

export interface OpenDbOptions {
  readonly?: boolean;
  /** Apply pending migrations (default true for writers). */
  migrate?: boolean;
  list?: readonly Migration[];
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
    db = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (e) {
    throw new WorkspaceError(`cannot open database ${file}: ${(e as Error).message}`);
  }
  try {
    db.pragma('busy_timeout = 10000');
    if (!opts.readonly) {
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
      if (opts.readonly) throw new WorkspaceError(`${file} needs migrating to version ${latest} but was opened read-only`);
      migrate(db, list, current);
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof WorkspaceError) throw e;
    throw new WorkspaceError(`cannot use database ${file}: ${(e as Error).message}`);
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
