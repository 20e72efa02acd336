// Resumable download of model weights into the workspace: bytes go to `<dest>.part`, a later call
// continues it with an HTTP Range request (a server that ignores Range restarts it from zero), and
// the finished file is fsynced and renamed into place, so `<dest>` is never partial.
import fs from 'node:fs';
import path from 'node:path';

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

/**
 * Downloads `url` to `dest` unless `dest` exists. Progress is reported at most every 64 KiB.
 * Cancelling (signal) keeps the `.part` file for the next call.
 */
export async function downloadResumable(
  url: string,
  dest: string,
  opts: { signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void } = {},
): Promise<DownloadResult> {
  if (fs.existsSync(dest)) {
    const bytes = fs.statSync(dest).size;
    return { path: dest, bytes, resumedFrom: bytes };
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = fs.existsSync(part) ? fs.statSync(part).size : 0;
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
    const fd = fs.openSync(part, have > 0 ? 'a' : 'w');
    try {
      let bytes = have;
      let lastReport = -Infinity;
      if (!res.body) throw new Error(`download of ${url}: empty response`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
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
    fs.renameSync(part, dest);
    return { path: dest, bytes: fs.statSync(dest).size, resumedFrom };
  }
  fs.renameSync(part, dest);
  const bytes = fs.statSync(dest).size;
  return { path: dest, bytes, resumedFrom: bytes };
}
