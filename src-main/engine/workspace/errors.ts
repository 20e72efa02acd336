import path from 'node:path';

/** An error whose message is meant for the user as it is (bad input, bad workspace, ...). */
export class UserError extends Error {
  override name = 'UserError';
}

export class WorkspaceError extends UserError {
  override name = 'WorkspaceError';
}

/** studio.db failed SQLite's integrity check (or SQLite found a damaged page). */
export class CorruptDatabaseError extends WorkspaceError {
  override name = 'CorruptDatabaseError';
}

/** SQLITE_CORRUPT (and its extended codes), as better-sqlite3 reports it (SQLITE_NOTADB is openDb's). */
export function isCorruptDb(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof CorruptDatabaseError || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'));
}

/** The message for a damaged studio.db: which file, what the check said, and how to recover. */
export function corruptDatabaseError(fileIn: string | null, detail: string): CorruptDatabaseError {
  const file = fileIn ?? '<workspace>/studio.db';
  const recovered = path.join(path.dirname(file), 'recovered.db');
  return new CorruptDatabaseError(
    `database ${file} is damaged (${detail}); CarStudio will not write to it. ` +
      `Restore studio.db from your last backup of the workspace, or recover what is readable with the sqlite3 tool: ` +
      `sqlite3 "${file}" ".recover" | sqlite3 "${recovered}" and then move recovered.db over studio.db`,
  );
}
