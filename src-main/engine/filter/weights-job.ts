import fs from 'node:fs';
import path from 'node:path';
import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { downloadResumable } from '../ml/download.ts';
import { clipWeightsHelp, clipWeightsPath, clipWeightsSource } from './clip.ts';
import type { WeightsParams } from './filter-kinds.ts';

export interface WeightsResult {
  extractor: string;
  /** Where the weights now are. */
  path: string;
  bytes: number;
  /** The file copied (from), or the URL downloaded. */
  source: string;
  copied: boolean;
  /** Bytes an earlier, stopped download had written and this one kept. */
  resumedFrom: number;
}

const mb = (b: number): string => (b / 1048576).toFixed(1);

/**
 * Installs an extractor's weights into the workspace: copies a file the user has (atomically: a
 * temporary file renamed into place) or downloads them resumably (a cancelled job keeps the
 * `.part` file; running it again continues it with a Range request).
 */
export default async function weightsJob(ctx: JobContext<WeightsParams>): Promise<WeightsResult> {
  const dir = ctx.workspace.dir;
  const dest = clipWeightsPath(dir);
  const p = ctx.params;
  if (p.from) {
    const src = clipWeightsSource(p.from);
    const size = fs.statSync(src).size;
    ctx.progress({ step: 'copy', done: 0, total: size, message: `${mb(0)} / ${mb(size)} MB` });
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const tmp = `${dest}.${process.pid}.${ctx.jobId}.tmp`;
    try {
      fs.copyFileSync(src, tmp);
      fs.renameSync(tmp, dest);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw new UserError(`could not copy ${src} to ${dest}: ${(e as Error).message}`);
    }
    ctx.progress({ step: 'copy', done: size, total: size, message: `${mb(size)} / ${mb(size)} MB` });
    ctx.log('info', `copied ${src} to ${dest}`);
    return { extractor: p.extractor, path: dest, bytes: size, source: src, copied: true, resumedFrom: 0 };
  }
  if (fs.existsSync(dest)) ctx.log('info', `${dest} is already installed; nothing to download`);
  else if (fs.existsSync(`${dest}.part`)) ctx.log('info', `continuing the download in ${dest}.part (${mb(fs.statSync(`${dest}.part`).size)} MB so far)`);
  try {
    const r = await downloadResumable(p.url, dest, {
      signal: ctx.signal,
      onProgress: ({ bytes, total }) =>
        ctx.progress({ step: 'download', done: bytes, total, message: total ? `${mb(bytes)} / ${mb(total)} MB` : `${mb(bytes)} MB` }),
    });
    ctx.log('info', `${dest}: ${r.bytes} bytes from ${p.url}${r.resumedFrom ? ` (${r.resumedFrom} from an earlier download)` : ''}`);
    return { extractor: p.extractor, path: dest, bytes: r.bytes, source: p.url, copied: false, resumedFrom: r.resumedFrom };
  } catch (e) {
    if (ctx.signal.aborted) throw e; // cancelled: the .part file stays for the next run
    const err = e as Error & { cause?: { message?: string } };
    const cause = err.cause ? ` (${err.cause.message ?? String(err.cause)})` : '';
    throw new UserError(`${err.message}${cause}; the part downloaded so far is kept and the next run continues it. Without network access: ${clipWeightsHelp(dir)}`);
  }
}
