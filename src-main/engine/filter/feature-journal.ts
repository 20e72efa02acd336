// The write-ahead journal of a FeatureCache's buffered rows. A cache buffers rows in memory until
// it has enough for a shard (2,048 for jobs, so a big run makes few, large shards that read fast);
// without a journal a hard kill (SIGKILL, a crash, a power cut) lost everything buffered, minutes
// of extraction. Each appended batch is written to the journal at once (so a killed process loses
// only the batch in flight: what is written survives the process in the page cache) and the
// journal is fdatasynced at most every `syncEveryMs` (so a power cut loses at most those seconds).
// Once the rows are in a shard the journal is deleted. The next open of the cache turns a journal
// left by a writer that is gone into a shard (rows already in a shard are skipped), so nothing is
// extracted twice and no id is stored twice.
//
//   journal-<pid>-<hex>.rows
//   offset 0   magic "CSJRNL01" (8 bytes)
//   8          u32 LE header length H (multiple of 8)
//   12         u32 LE dim
//   16         u32 LE extractor-name byte length L
//   20         extractor name (UTF-8), zero-padded to H
//   H          records: u32 LE row count n, u32 LE 0, 8 bytes of the SHA-256 of the payload,
//              then the payload: n x int64 LE ids, n x dim float32 LE rows
//
// A torn or corrupt record (the last one, cut by the kill) ends the journal.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isDiskFull } from '../util/disk-full.ts';
import { isLittleEndian, writeAll } from '../util/binary-io.ts';
import { isAlive } from '../util/process-alive.ts';

const MAGIC = 'CSJRNL01';
export const JOURNAL_RE = /^journal-(\d+)-[0-9a-f]+\.rows$/;
/** A journal not written for this long is recovered even when its pid is alive (reused, or a thread of a live process that died). */
const STALE_MS = 10 * 60_000;

export class FeatureJournal {
  private fh: fsp.FileHandle | null = null;
  private file: string | null = null;
  private lastSync = 0;

  constructor(
    private readonly dir: string,
    private readonly extractor: string,
    private readonly dim: number,
    private readonly syncEveryMs: number,
  ) {}

  /** Appends one record (rows: ids.length x dim); creates the journal on first use. */
  async append(ids: readonly number[], rows: Float32Array): Promise<void> {
    if (ids.length === 0) return;
    if (!this.fh) await this.create();
    const payload = Buffer.alloc(ids.length * 8 + rows.byteLength);
    ids.forEach((id, i) => payload.writeBigInt64LE(BigInt(id), i * 8));
    const view = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    if (isLittleEndian()) view.copy(payload, ids.length * 8);
    else for (let i = 0; i < rows.length; i++) payload.writeFloatLE(rows[i]!, ids.length * 8 + i * 4);
    const head = Buffer.alloc(16);
    head.writeUInt32LE(ids.length, 0);
    createHash('sha256').update(payload).digest().copy(head, 8, 0, 8);
    await writeAll(this.fh!, [head, payload]);
    if (Date.now() - this.lastSync >= this.syncEveryMs) {
      await this.fh!.datasync();
      this.lastSync = Date.now();
    }
  }

  /** The rows are safely in a shard: closes and deletes the journal. */
  async discard(): Promise<void> {
    const fh = this.fh;
    const file = this.file;
    this.fh = null;
    this.file = null;
    if (fh) await fh.close().catch(() => undefined);
    if (file) await fsp.rm(file, { force: true });
  }

  private async create(): Promise<void> {
    const file = journalName(this.dir);
    const fh = await fsp.open(file, 'wx');
    try {
      await writeAll(fh, [journalHeader(this.extractor, this.dim)]);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fsp.rm(file, { force: true }).catch(() => undefined);
      throw err;
    }
    this.fh = fh;
    this.file = file;
    this.lastSync = Date.now();
  }
}

/**
 * The journals in `dir` whose writer is gone, each claimed (renamed to a name of this process, so
 * two processes opening the cache at once never both recover one, and a recovery killed half-way is
 * recovered again later) and read. `commit(ids, rows)` must store the rows durably; the journal is
 * deleted after it returns. Records that are torn or corrupt end a journal. Returns the rows read.
 */
export async function recoverJournals(
  dir: string,
  names: readonly string[],
  extractor: string,
  dim: number,
  commit: (ids: number[], rows: Float32Array) => Promise<void>,
): Promise<number> {
  let recovered = 0;
  for (const name of names) {
    const m = JOURNAL_RE.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    const st = await fsp.stat(file).catch(() => null);
    if (!st) continue;
    if (isAlive(Number(m[1])) && Date.now() - st.mtimeMs < STALE_MS) continue;
    const claimed = journalName(dir);
    try {
      await fsp.rename(file, claimed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process claimed it
      throw err;
    }
    const { ids, rows } = await readJournal(claimed, extractor, dim);
    try {
      if (ids.length > 0) await commit(ids, rows);
    } catch (err) {
      // a full disk must not stop the cache opening: the journal stays (named for this process,
      // so it is recovered once this process is gone) and its rows are extracted again meanwhile
      if (isDiskFull(err)) continue;
      throw err;
    }
    await fsp.rm(claimed, { force: true });
    recovered += ids.length;
  }
  return recovered;
}

async function readJournal(file: string, extractor: string, dim: number): Promise<{ ids: number[]; rows: Float32Array }> {
  const buf = await fsp.readFile(file);
  if (buf.length < 20 || buf.toString('latin1', 0, 8) !== MAGIC) return { ids: [], rows: new Float32Array(0) };
  const headerBytes = buf.readUInt32LE(8);
  const jDim = buf.readUInt32LE(12);
  const nameLen = buf.readUInt32LE(16);
  const jName = buf.toString('utf8', 20, 20 + nameLen);
  if (jName !== extractor || jDim !== dim) {
    throw new Error(`feature cache journal ${file} holds ${jName} (dim ${jDim}), not ${extractor} (dim ${dim})`);
  }
  const ids: number[] = [];
  const parts: Float32Array[] = [];
  let off = headerBytes;
  while (off + 16 <= buf.length) {
    const n = buf.readUInt32LE(off);
    const len = n * 8 + n * dim * 4;
    const start = off + 16;
    if (n === 0 || start + len > buf.length) break; // torn by the kill
    const payload = buf.subarray(start, start + len);
    if (!createHash('sha256').update(payload).digest().subarray(0, 8).equals(buf.subarray(off + 8, off + 16))) break;
    for (let i = 0; i < n; i++) ids.push(Number(payload.readBigInt64LE(i * 8)));
    const r = new Float32Array(n * dim);
    for (let i = 0; i < r.length; i++) r[i] = payload.readFloatLE(n * 8 + i * 4);
    parts.push(r);
    off = start + len;
  }
  const rows = new Float32Array(ids.length * dim);
  let at = 0;
  for (const p of parts) {
    rows.set(p, at);
    at += p.length;
  }
  return { ids, rows };
}

function journalName(dir: string): string {
  return path.join(dir, `journal-${process.pid}-${randomBytes(6).toString('hex')}.rows`);
}

function journalHeader(extractor: string, dim: number): Buffer {
  const name = Buffer.from(extractor, 'utf8');
  const headerBytes = Math.ceil((20 + name.length) / 8) * 8;
  const h = Buffer.alloc(headerBytes);
  h.write(MAGIC, 0, 'latin1');
  h.writeUInt32LE(headerBytes, 8);
  h.writeUInt32LE(dim, 12);
  h.writeUInt32LE(name.length, 16);
  name.copy(h, 20);
  return h;
}



/** For tests and tools: the journal files in a cache folder. */
export function listJournals(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => JOURNAL_RE.test(n));
  } catch {
    return [];
  }
}
