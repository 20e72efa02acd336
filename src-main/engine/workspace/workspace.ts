import fs from 'node:fs';
import path from 'node:path';
import { openDb, openNote, type Db } from './db.ts';
import { ImageStore } from './image-store.ts';
import { WorkspaceError } from './errors.ts';
import { diskFullError, freeBytes, isDiskFull } from '../util/disk-full.ts';

export interface OpenWorkspaceOptions {
  /** Create the folder and database when missing (default false: a missing workspace is an error). */
  create?: boolean;
  readonly?: boolean;
  /** Run the quick integrity check on open (default true; see openDb). */
  check?: boolean;
}

/**
 * A workspace folder: studio.db (SQLite) and images/ (the sharded image store), plus folders
 * that later stages own (features/, runs/, models/).
 */
export class Workspace {
  private constructor(
    readonly dir: string,
    readonly db: Db,
    readonly store: ImageStore,
    readonly readonly: boolean,
  ) {}

  /** What the user should be told about how it was opened (quick check skipped, read-only on a full disk). */
  readonly notes: string[] = [];

  static dbFile(dir: string): string {
    return path.join(dir, 'studio.db');
  }

  static exists(dir: string): boolean {
    return fs.existsSync(Workspace.dbFile(dir));
  }

  static open(dirIn: string, opts: OpenWorkspaceOptions = {}): Workspace {
    // path.resolve('') is the current folder: an empty path is a mistake, not a workspace
    if (dirIn.trim() === '') throw new WorkspaceError('the workspace path is empty; name a workspace folder');
    const dir = path.resolve(dirIn);
    const dbFile = Workspace.dbFile(dir);
    if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
      throw new WorkspaceError(`workspace ${dir} is not a folder`);
    }
    if (!fs.existsSync(dbFile)) {
      if (!opts.create) {
        throw new WorkspaceError(
          fs.existsSync(dir)
            ? `${dir} is not a CarStudio workspace (no studio.db); pass a workspace folder or create one with 'carstudio init --workspace ${dir}'`
            : `workspace ${dir} does not exist; create it with 'carstudio init --workspace ${dir}'`,
        );
      }
      try {
        fs.mkdirSync(dir, { recursive: true });
      } catch (e) {
        throw new WorkspaceError(`cannot create workspace ${dir}: ${(e as Error).message}`);
      }
    }
    if (!opts.readonly) {
      try {
        fs.accessSync(dir, fs.constants.W_OK);
        if (fs.existsSync(dbFile)) fs.accessSync(dbFile, fs.constants.W_OK);
      } catch {
        throw new WorkspaceError(`workspace ${dir} is not writable (check its permissions)`);
      }
    }
    let db: Db;
    let fullDisk: string | null = null;
    try {
      db = openDb(dbFile, { readonly: opts.readonly, check: opts.check });
    } catch (e) {
      // A full disk cannot even size SQLite's -shm file: open for reading only, and say so.
      if (opts.readonly || !(isDiskFull(e) || (freeBytes(dir) ?? Infinity) < 1024 * 1024)) throw e;
      db = openDb(dbFile, { fullDisk: true, check: opts.check });
      fullDisk = `${diskFullError(dir).message}; until then the workspace is open read-only (start again after freeing space to write)`;
    }
    const readonly = (opts.readonly ?? false) || fullDisk !== null;
    const store = new ImageStore(path.join(dir, 'images'));
    if (!readonly) {
      try {
        store.ensure();
        store.sweepTemporaries();
      } catch (e) {
        db.close();
        throw new WorkspaceError(`image store ${store.root} is not usable: ${(e as Error).message}`);
      }
    }
    const ws = new Workspace(dir, db, store, readonly);
    for (const note of [openNote(db), fullDisk]) if (note) ws.notes.push(note);
    return ws;
  }

  subdir(name: string): string {
    const p = path.join(this.dir, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
