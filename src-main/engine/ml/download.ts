// Resumable download of model weights into the workspace: bytes go to `<dest>.part`, a later call
// continues it with an HTTP Range request (a server that ignores Range restarts it from zero), and
// the finished file is fsynced and renamed into place, so `<dest>` is never partial.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import { kindOf } from './onnx-file.ts';

export interface DownloadProgress {
  /** Bytes on disk so far (including those a previous, interrupted call wrote). */
  bytes: number;
  /** Total size when the server says it, else null. */
  total: number | null;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  /** Bytes that an earlier call had already written and this one kept. */
  resumedFrom: number;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Download even when `dest` exists (it is replaced only by a complete, validated file). */
  replace?: boolean;
  /** Refuse a file larger than this (the server's length, or the bytes received). */
  maxBytes?: number;
  /**
   * Called on the complete `.part` before it is renamed into place; when it throws, the `.part`
   * (complete, but not what was wanted: continuing it would only fail again) is deleted.
   */
  validate?: (file: string) => Promise<void>;
}

/** The size of `file` if it is a regular file, 0 if it does not exist; anything else is refused (opening a FIFO would block). */
function regularSize(file: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return 0;
  }
  if (!st.isFile()) throw new UserError(`${file} is ${kindOf(st)}, not a regular file: remove it and run the download again`);
  return st.size;
}

/**
 * Downloads `url` to `dest` unless `dest` exists (or `replace`). Progress is reported at most
 * every 64 KiB. Cancelling (signal) keeps the `.part` file for the next call.
 */
export async function downloadResumable(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  if (!opts.replace && fs.existsSync(dest)) {
    const bytes = fs.statSync(dest).size;
    return { path: dest, bytes, resumedFrom: bytes };
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = regularSize(part);
  const max = opts.maxBytes ?? Infinity;
  const tooBig = (n: number): Error => {
    fs.rmSync(part, { force: true });
    return new UserError(`${url} is ${(n / 2 ** 20).toFixed(0)} MB or more, more than the ${(max / 2 ** 20).toFixed(0)} MB the weights can be; check the URL`);
  };
  const finish = async (): Promise<void> => {
    if (opts.validate) {
      try {
        await opts.validate(part);
      } catch (e) {
        fs.rmSync(part, { force: true });
        throw e;
      }
    }
    fs.renameSync(part, dest);
  };
  const res = await fetch(url, { headers: have > 0 ? { range: `bytes=${have}-` } : {}, signal: opts.signal, redirect: 'follow' });
  if (res.status === 416 && have > 0) {
    // the part file already holds everything the server has
    await res.body?.cancel();
  } else if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`);
  } else {
    if (res.status !== 206) have = 0; // the server sent the whole file: start over
    const resumedFrom = have;
    const length = Number(res.headers.get('content-length'));
    const total = Number.isFinite(length) && length > 0 ? have + length : null;
    if (total !== null && total > max) {
      await res.body?.cancel();
      throw tooBig(total);
    }
    const fd = fs.openSync(part, have > 0 ? 'a' : 'w');
    try {
      let bytes = have;
      let lastReport = -Infinity;
      if (!res.body) throw new Error(`download of ${url}: empty response`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (bytes + chunk.length > max) throw tooBig(bytes + chunk.length);
        fs.writeSync(fd, chunk);
        bytes += chunk.length;
        if (bytes - lastReport >= 65536) {
          lastReport = bytes;
          opts.onProgress?.({ bytes, total });
        }
      }
      fs.fsyncSync(fd);
      opts.onProgress?.({ bytes, total });
      if (total !== null && bytes !== total)
        throw new Error(`download of ${url} ended at ${bytes} of ${total} bytes; run it again to continue`);
    } finally {
      fs.closeSync(fd);
    }
    await finish();
    return { path: dest, bytes: fs.statSync(dest).size, resumedFrom };
  }
  await finish();
  const bytes = fs.statSync(dest).size;
  return { path: dest, bytes, resumedFrom: bytes };
}
