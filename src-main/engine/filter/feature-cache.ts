// A binary, append-only cache of feature rows in a folder. Each append writes one shard file,
// atomically (temporary file, fsync, then a hard link to its final name that never overwrites,
// so two writers cannot clobber each other), laid out as:
//
//   offset 0   magic "CSFEAT01" (8 bytes)
//   8          u32 LE header length H (multiple of 8)
//   12         u32 LE dim
//   16         u32 LE row count N
//   20         u32 LE extractor-name byte length L
//   24         extractor name (UTF-8), zero-padded to H
//   H          N x int64 LE ids (the shard's id list, parallel to the rows)
//   H + 8N     N x dim float32 LE rows
//
// A shard is either complete or absent; leftover temporary files are removed on open.
// `exportNpy` writes features.npy / ids.npy (NumPy format v1.0) and ids.txt.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { syncDir, writeAtomicWith } from '../util/atomic-file.ts';
import { FeatureJournal, JOURNAL_RE, recoverJournals } from './feature-journal.ts';
import { isLittleEndian, writeAll } from '../util/binary-io.ts';
import { injectedEnospc } from '../util/disk-full.ts';

const MAGIC = 'CSFEAT01';
const SHARD_RE = /^shard-(\d{8})\.f32$/;
const TMP_RE = /\.tmp-[0-9a-f]+$/;

export interface FeatureCacheOptions {
  /**
   * Rows to hold in memory before writing a shard (default 0: every append writes a shard).
   * Jobs appending small batches set e.g. 4096 so a big run makes few files; `flush()`/`close()`
   * write the remainder. Buffered rows are also written to a journal as they come
   * (feature-journal.ts), which the next open turns into a shard: a hard kill loses only the
   * batch in flight, a power cut at most `syncEveryMs` of rows.
   */
  bufferRows?: number;
  /** How often the journal of buffered rows is fdatasynced (default 2000 ms). */
  syncEveryMs?: number;
}

/** Random access to a list of cached rows (see FeatureCache.rows). */
export interface FeatureRows {
  /** The ids found, in the order asked; row i of the list is ids[i]. */
  ids: number[];
  dim: number;
  /** Reads rows idx[0], idx[1], ... of the list into out (idx.length * dim floats). */
  gather(idx: ArrayLike<number>, out: Float32Array): void;
  close(): void;
}

interface ShardHeader {
  file: string;
  seq: number;
  headerBytes: number;
  dim: number;
  count: number;
  extractor: string;
}

export class FeatureCache {
  readonly dir: string;
  readonly extractor: string;
  readonly dim: number;
  private readonly bufferRows: number;
  private readonly idSet = new Set<number>();
  /** Where each stored id's row is: shard seq * 2^32 + row within the shard. */
  private readonly location = new Map<number, number>();
  private readonly bySeq = new Map<number, ShardHeader>();
  private shards: ShardHeader[] = [];
  private nextSeq = 1;
  private pendingIds: number[] = [];
  private pendingRows: Float32Array[] = [];
  private pendingCount = 0;
  private writing: Promise<void> = Promise.resolve();
  /** The buffered rows' journal (null when every append writes a shard). */
  private readonly journal: FeatureJournal | null;

  private constructor(dir: string, extractor: string, dim: number, opts: FeatureCacheOptions) {
    this.dir = dir;
    this.extractor = extractor;
    this.dim = dim;
    this.bufferRows = Math.max(0, Math.floor(opts.bufferRows ?? 0));
    this.journal = this.bufferRows > 0 ? new FeatureJournal(dir, extractor, dim, opts.syncEveryMs ?? 2000) : null;
  }

  /** Opens (creating if needed) a cache folder; refuses shards from another extractor or dim. */
  static async open(dir: string, extractor: string, dim: number, opts: FeatureCacheOptions = {}): Promise<FeatureCache> {
    if (!Number.isInteger(dim) || dim <= 0) throw new Error(`bad feature dim ${dim}`);
    await fsp.mkdir(dir, { recursive: true });
    const cache = new FeatureCache(dir, extractor, dim, opts);
    const names = (await fsp.readdir(dir)).sort();
    const journals: string[] = [];
    for (const name of names) {
      if (JOURNAL_RE.test(name)) {
        journals.push(name);
        continue;
      }
      if (TMP_RE.test(name)) {
        // A crashed writer's leftover; a young one may belong to a live writer in another process.
        const st = await fsp.stat(path.join(dir, name)).catch(() => null);
        if (st && Date.now() - st.mtimeMs > 10 * 60_000) await fsp.rm(path.join(dir, name), { force: true });
        continue;
      }
      const m = SHARD_RE.exec(name);
      if (!m) continue;
      const file = path.join(dir, name);
      const { header, ids } = await readShardHead(file);
      if (header.extractor !== extractor || header.dim !== dim) {
        throw new Error(`feature cache ${dir} holds ${header.extractor} (dim ${header.dim}) in ${name}, not ${extractor} (dim ${dim})`);
      }
      header.seq = Number(m[1]);
      cache.addShard(header, ids);
    }
    await cache.recover(journals);
    return cache;
  }

  /** Number of distinct ids stored or buffered. */
  get size(): number {
    return this.idSet.size;
  }

  has(id: number): boolean {
    return this.idSet.has(id);
  }

  /**
   * Appends rows (matrix: ids.length x dim, row-major). Ids already in the cache, and repeats
   * within the call, are skipped (features are deterministic per image). Returns rows accepted.
   */
  async append(ids: ArrayLike<number>, matrix: Float32Array): Promise<number> {
    if (matrix.length !== ids.length * this.dim) {
      throw new Error(`append: ${ids.length} ids need ${ids.length * this.dim} floats, got ${matrix.length}`);
    }
    const keepIds: number[] = [];
    const keepIdx: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isSafeInteger(id)) throw new Error(`append: id ${id} is not an integer`);
      if (this.idSet.has(id)) continue;
      this.idSet.add(id);
      keepIds.push(id);
      keepIdx.push(i);
    }
    if (keepIds.length === 0) return 0;
    const rows = keepIds.length === ids.length ? matrix.slice() : new Float32Array(keepIds.length * this.dim);
    if (keepIds.length !== ids.length) {
      keepIdx.forEach((src, dst) => rows.set(matrix.subarray(src * this.dim, (src + 1) * this.dim), dst * this.dim));
    }
    pushAll(this.pendingIds, keepIds);
    this.pendingRows.push(rows);
    this.pendingCount += keepIds.length;
    if (this.pendingCount >= this.bufferRows) await this.flush();
    else if (this.journal) await this.journalled(keepIds, rows);
    return keepIds.length;
  }

  /** Writes any buffered rows as one shard. */
  async flush(): Promise<void> {
    const run = this.writing.then(async () => {
      if (this.pendingCount === 0) return;
      const ids = this.pendingIds;
      const rows = this.pendingRows;
      this.pendingIds = [];
      this.pendingRows = [];
      this.pendingCount = 0;
      try {
        await this.writeShard(ids, rows);
      } catch (err) {
        for (const id of ids) this.idSet.delete(id);
        // the rows are dropped (re-extracted later): so is their journal, which frees its space
        await this.journal?.discard().catch(() => undefined);
        throw err;
      }
      await this.journal?.discard(); // the rows are in a shard now
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.flush();
  }

  /** Writes buffered rows to the journal, in order with shard writes. */
  private journalled(ids: number[], rows: Float32Array): Promise<void> {
    const run = this.writing.then(() => this.journal!.append(ids, rows));
    this.writing = run.catch(() => undefined);
    return run;
  }

  /** Turns journals left by writers that are gone into a shard, skipping rows already stored. */
  private async recover(journals: readonly string[]): Promise<void> {
    if (journals.length === 0) return;
    await recoverJournals(this.dir, journals, this.extractor, this.dim, async (ids, rows) => {
      const keep: number[] = [];
      const seen = new Set<number>();
      ids.forEach((id, i) => {
        if (!this.idSet.has(id) && !seen.has(id)) {
          seen.add(id);
          keep.push(i);
        }
      });
      if (keep.length === 0) return;
      const out = new Float32Array(keep.length * this.dim);
      keep.forEach((src, dst) => out.set(rows.subarray(src * this.dim, (src + 1) * this.dim), dst * this.dim));
      await this.writeShard(
        keep.map((i) => ids[i]!),
        [out],
      );
    });
  }

  private async writeShard(ids: number[], rows: Float32Array[]): Promise<void> {
    const nameBytes = Buffer.from(this.extractor, 'utf8');
    const headerBytes = align8(24 + nameBytes.length);
    const header = Buffer.alloc(headerBytes);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(headerBytes, 8);
    header.writeUInt32LE(this.dim, 12);
    header.writeUInt32LE(ids.length, 16);
    header.writeUInt32LE(nameBytes.length, 20);
    nameBytes.copy(header, 24);
    const idBuf = Buffer.alloc(ids.length * 8);
    ids.forEach((id, i) => idBuf.writeBigInt64LE(BigInt(id), i * 8));
    const parts: Buffer[] = [header, idBuf, ...rows.map((r) => float32LE(r))];

    const tmp = path.join(this.dir, `.shard.tmp-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx');
    try {
      try {
        await writeAll(fh, parts);
        injectedEnospc(tmp);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      // A failed write (a full disk) removes its temporary now, not at the 10-minute sweep.
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
    try {
      for (;;) {
        const seq = this.nextSeq++;
        const name = `shard-${String(seq).padStart(8, '0')}.f32`;
        try {
          await fsp.link(tmp, path.join(this.dir, name)); // fails rather than overwrite
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
          throw err;
        }
        this.addShard({ file: path.join(this.dir, name), seq, headerBytes, dim: this.dim, count: ids.length, extractor: this.extractor }, ids);
        break;
      }
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    syncDir(this.dir);
  }

  /**
   * Every stored row in shard order (buffered rows are flushed first). Also picks up shards
   * another process added since open.
   */
  async readAll(): Promise<{ ids: number[]; data: Float32Array }> {
    await this.flush();
    await this.rescan();
    const total = this.shards.reduce((a, s) => a + s.count, 0);
    const ids: number[] = [];
    const data = new Float32Array(total * this.dim);
    let row = 0;
    for (const s of this.shards) {
      const { ids: sIds, rows } = await readShard(s);
      pushAll(ids, sIds);
      data.set(rows, row * this.dim);
      row += s.count;
    }
    return { ids, data };
  }

  /**
   * Rows for the given ids (missing ids are skipped), in the order asked. Reads only those rows
   * from their shards, so a batch costs what it holds, not what the cache holds.
   */
  async read(wanted: ArrayLike<number>): Promise<{ ids: number[]; data: Float32Array }> {
    const rows = await this.rows(wanted);
    try {
      const data = new Float32Array(rows.ids.length * this.dim);
      rows.gather(Int32Array.from({ length: rows.ids.length }, (_, i) => i), data);
      return { ids: rows.ids, data };
    } finally {
      rows.close();
    }
  }

  /**
   * Random access to the rows of the given ids (missing ids are skipped; order as asked) without
   * loading them: `gather(idx, out)` reads rows idx[0], idx[1], ... of that list into `out`. For
   * training on more features than fit in memory (or in one typed array: a few hundred thousand
   * 1280-d rows). Close it to release the shard files.
   */
  async rows(wanted: ArrayLike<number>): Promise<FeatureRows> {
    await this.flush();
    await this.rescan();
    const ids: number[] = [];
    const locs: number[] = [];
    for (let i = 0; i < wanted.length; i++) {
      const loc = this.location.get(wanted[i]);
      if (loc === undefined) continue;
      ids.push(wanted[i]);
      locs.push(loc);
    }
    const fds = new Map<number, number>();
    const fd = new Int32Array(ids.length);
    const offset = new Float64Array(ids.length);
    const rowBytes = this.dim * 4;
    try {
      locs.forEach((loc, i) => {
        const seq = Math.floor(loc / 2 ** 32);
        const s = this.bySeq.get(seq)!;
        let f = fds.get(seq);
        if (f === undefined) fds.set(seq, (f = fs.openSync(s.file, 'r')));
        fd[i] = f;
        offset[i] = s.headerBytes + s.count * 8 + (loc % 2 ** 32) * rowBytes;
      });
    } catch (err) {
      for (const f of fds.values()) fs.closeSync(f);
      throw err;
    }
    const dim = this.dim;
    let closed = false;
    return {
      ids,
      dim,
      gather(idx: ArrayLike<number>, out: Float32Array): void {
        if (closed) throw new Error('feature rows are closed');
        if (out.length < idx.length * dim) throw new Error(`gather: ${idx.length} rows need ${idx.length * dim} floats`);
        const little = isLittleEndian();
        const scratch = little ? null : Buffer.alloc(rowBytes);
        for (let j = 0; j < idx.length; j++) {
          const r = idx[j];
          if (!(r >= 0 && r < ids.length)) throw new Error(`gather: row ${r} of ${ids.length}`);
          const target = scratch ?? Buffer.from(out.buffer, out.byteOffset + j * rowBytes, rowBytes);
          const got = fs.readSync(fd[r], target, 0, rowBytes, offset[r]);
          if (got !== rowBytes) throw new Error(`feature shard ended early (row of id ${ids[r]})`);
          if (scratch) for (let k = 0; k < dim; k++) out[j * dim + k] = scratch.readFloatLE(k * 4);
        }
      },
      close(): void {
        if (closed) return;
        closed = true;
        for (const f of fds.values()) fs.closeSync(f);
      },
    };
  }

  /**
   * Writes features.npy (float32, shape [N, dim]), ids.npy (int64, shape [N]) and ids.txt (one
   * id a line) into outDir, each atomically, streaming shard by shard.
   */
  async exportNpy(outDir: string): Promise<{ rows: number; files: string[] }> {
    await this.flush();
    await this.rescan();
    await fsp.mkdir(outDir, { recursive: true });
    const n = this.shards.reduce((a, s) => a + s.count, 0);
    const featPath = path.join(outDir, 'features.npy');
    const idsPath = path.join(outDir, 'ids.npy');
    const txtPath = path.join(outDir, 'ids.txt');
    const allIds: number[] = [];
    await writeAtomicWith(featPath, async (fh) => {
      await writeAll(fh, [npyHeader('<f4', [n, this.dim])]);
      for (const s of this.shards) {
        const { ids, rows } = await readShard(s);
        pushAll(allIds, ids);
        await writeAll(fh, [float32LE(rows)]);
      }
    });
    await writeAtomicWith(idsPath, async (fh) => {
      const body = Buffer.alloc(allIds.length * 8);
      allIds.forEach((id, i) => body.writeBigInt64LE(BigInt(id), i * 8));
      await writeAll(fh, [npyHeader('<i8', [n]), body]);
    });
    await writeAtomicWith(txtPath, async (fh) => {
      await writeAll(fh, [Buffer.from(allIds.length ? `${allIds.join('\n')}\n` : '', 'utf8')]);
    });
    return { rows: n, files: [featPath, idsPath, txtPath] };
  }

  private async rescan(): Promise<void> {
    const known = new Set(this.shards.map((s) => path.basename(s.file)));
    const names = (await fsp.readdir(this.dir)).filter((n) => SHARD_RE.test(n) && !known.has(n));
    for (const name of names) {
      const file = path.join(this.dir, name);
      const { header, ids } = await readShardHead(file);
      if (header.extractor !== this.extractor || header.dim !== this.dim) {
        throw new Error(`feature cache ${this.dir}: ${name} holds ${header.extractor} (dim ${header.dim})`);
      }
      header.seq = Number(SHARD_RE.exec(name)![1]);
      this.addShard(header, ids);
    }
    this.shards.sort((a, b) => a.seq - b.seq);
  }

  private addShard(header: ShardHeader, ids: readonly number[]): void {
    this.shards.push(header);
    this.bySeq.set(header.seq, header);
    ids.forEach((id, row) => {
      this.idSet.add(id);
      // an id in two shards (two writers racing) keeps its first row; both are the same features
      if (!this.location.has(id)) this.location.set(id, header.seq * 2 ** 32 + row);
    });
    this.nextSeq = Math.max(this.nextSeq, header.seq + 1);
  }
}

/** Same as FeatureCache.open. */
export function openFeatureCache(dir: string, extractor: string, dim: number, opts?: FeatureCacheOptions): Promise<FeatureCache> {
  return FeatureCache.open(dir, extractor, dim, opts);
}

/**
 * A NumPy .npy v1.0 header for a little-endian C-order array: magic, version 1.0, u16 header
 * length, then the dict padded with spaces and a newline so the data starts on a 64-byte boundary.
 */
export function npyHeader(descr: '<f4' | '<f8' | '<i8' | '<i4' | '<u4', shape: readonly number[]): Buffer {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pre = 10; // magic(6) + version(2) + header length(2)
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const padded = dict + ' '.repeat(total - pre - dict.length - 1) + '\n';
  if (padded.length > 0xffff) throw new Error('npy header too long for v1.0');
  const buf = Buffer.alloc(total);
  buf.write('\x93NUMPY', 0, 'latin1');
  buf[6] = 1;
  buf[7] = 0;
  buf.writeUInt16LE(padded.length, 8);
  buf.write(padded, pre, 'latin1');
  return buf;
}

async function readShardHead(file: string): Promise<{ header: ShardHeader; ids: number[] }> {
  const fh = await fsp.open(file, 'r');
  try {
    const fixed = Buffer.alloc(24);
    await fh.read(fixed, 0, 24, 0);
    if (fixed.toString('latin1', 0, 8) !== MAGIC) throw new Error(`${file} is not a feature shard`);
    const headerBytes = fixed.readUInt32LE(8);
    const dim = fixed.readUInt32LE(12);
    const count = fixed.readUInt32LE(16);
    const nameLen = fixed.readUInt32LE(20);
    const rest = Buffer.alloc(headerBytes - 24 + count * 8);
    await fh.read(rest, 0, rest.length, 24);
    const extractor = rest.toString('utf8', 0, nameLen);
    const ids: number[] = new Array<number>(count);
    for (let i = 0; i < count; i++) ids[i] = Number(rest.readBigInt64LE(headerBytes - 24 + i * 8));
    const { size } = await fh.stat();
    if (size !== headerBytes + count * 8 + count * dim * 4) throw new Error(`${file} has the wrong size`);
    return { header: { file, seq: 0, headerBytes, dim, count, extractor }, ids };
  } finally {
    await fh.close();
  }
}

async function readShard(s: ShardHeader): Promise<{ ids: number[]; rows: Float32Array }> {
  const buf = await fsp.readFile(s.file);
  const ids: number[] = new Array<number>(s.count);
  for (let i = 0; i < s.count; i++) ids[i] = Number(buf.readBigInt64LE(s.headerBytes + i * 8));
  const off = s.headerBytes + s.count * 8;
  const n = s.count * s.dim;
  let rows: Float32Array;
  if (isLittleEndian() && (buf.byteOffset + off) % 4 === 0) {
    rows = new Float32Array(buf.buffer, buf.byteOffset + off, n);
  } else {
    rows = new Float32Array(n);
    for (let i = 0; i < n; i++) rows[i] = buf.readFloatLE(off + i * 4);
  }
  return { ids, rows };
}

function float32LE(a: Float32Array): Buffer {
  if (isLittleEndian()) return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const b = Buffer.alloc(a.length * 4);
  for (let i = 0; i < a.length; i++) b.writeFloatLE(a[i], i * 4);
  return b;
}


function pushAll(target: number[], src: readonly number[]): void {
  for (const v of src) target.push(v);
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

