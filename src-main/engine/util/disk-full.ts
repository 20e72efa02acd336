import fs from 'node:fs';
import { UserError } from '../workspace/errors.ts';

/**
 * What a full disk looks like, wherever it is met (a file write, SQLite), and the one message the
 * user gets for it: how much is free where, and roughly how much more is needed.
 */

const MB = 1024 * 1024;
/** Headroom asked for when the failed write's own size is unknown (SQLite's WAL and checkpoints). */
const DEFAULT_NEED_BYTES = 16 * MB;

export class DiskFullError extends UserError {
  override name = 'DiskFullError';
}

/** True for ENOSPC/EDQUOT, SQLite's SQLITE_FULL, and errors that wrap one (cause or message). */
export function isDiskFull(e: unknown, depth = 0): boolean {
  if (!(e instanceof Error) || depth > 4) return false;
  if (e instanceof DiskFullError) return true;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
  if (/\bENOSPC\b|no space left on device|database or disk is full/i.test(e.message)) return true;
  return isDiskFull(e.cause, depth + 1);
}

/** Free bytes for an unprivileged writer on the file system holding `dir` (null if unknown). */
export function freeBytes(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

function mb(n: number): string {
  return n >= 10 * MB ? `${Math.round(n / MB)} MB` : `${(n / MB).toFixed(1)} MB`;
}

/** "disk full: N MB free in DIR, need about M more; ..." as a UserError. */
export function diskFullError(dir: string, needBytes?: number): DiskFullError {
  const free = freeBytes(dir);
  const need = Math.max(needBytes ?? 0, DEFAULT_NEED_BYTES);
  return new DiskFullError(
    `disk full: ${free == null ? 'unknown space' : mb(free)} free in ${dir}, need about ${mb(need)} more; ` +
      'free some space and run the same command again (it continues where it stopped)',
  );
}

/**
 * Test hook (the only one): while the file named by $CARSTUDIO_TEST_ENOSPC_FLAG exists, the
 * engine's file writers (atomic files, the image store, feature shards) fail as a full disk
 * does, with an ENOSPC-coded error after the temporary was opened. Deleting the file "frees
 * space". Unset (always, outside tests) it costs one environment lookup per write.
 */
export function injectedEnospc(file: string): void {
  const flag = process.env.CARSTUDIO_TEST_ENOSPC_FLAG;
  if (!flag || !fs.existsSync(flag)) return;
  const err: NodeJS.ErrnoException = new Error(`ENOSPC: no space left on device, write '${file}'`);
  err.code = 'ENOSPC';
  err.errno = -28;
  err.syscall = 'write';
  err.path = file;
  throw err;
}
