import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { injectedEnospc } from './disk-full.ts';

/** The temporary a writer of `file` uses: hidden, next to it, named by pid (see sweepTemporaries). */
function tempFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes `file` through `body` into a unique temporary next to it, fsyncs, and renames it over
 * `file` (then fsyncs the folder): readers see the old file or the whole new one, never a part.
 */
export async function writeAtomicWith(file: string, body: (fh: fsp.FileHandle) => Promise<void>): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = tempFor(file);
  const fh = await fsp.open(tmp, 'wx');
  try {
    try {
      await body(fh);
      injectedEnospc(tmp);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    // A failed write (a full disk above all) leaves no temporary behind to eat more space.
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  syncDir(path.dirname(file));
}

/** writeAtomicWith for bytes or text already in memory. */
export function writeFileAtomic(file: string, parts: readonly Uint8Array[] | string): Promise<void> {
  return writeAtomicWith(file, async (fh) => {
    const list = typeof parts === 'string' ? [Buffer.from(parts, 'utf8')] : parts;
    for (const p of list) {
      let off = 0;
      while (off < p.byteLength) off += (await fh.write(p, off, p.byteLength - off)).bytesWritten;
    }
  });
}

/** fsync a folder so a rename in it survives a power loss; a no-op where unsupported. */
export function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Directory fsync is not available everywhere (e.g. Windows); the rename is atomic regardless.
  }
}

/** Removes temporaries (hidden *.tmp files) that a crashed writer left in `dir`. */
export async function sweepTemporaries(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith('.') && n.endsWith('.tmp')).map((n) => fsp.rm(path.join(dir, n), { force: true })));
}
