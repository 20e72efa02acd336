import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import { downloadResumable } from '../ml/download.ts';
import { isAlive } from '../util/process-alive.ts';
import { ONNX_MAX_BYTES, onnxFileProblem, onnxStructureProblem, openRegularFile } from '../ml/onnx-file.ts';
import { checkClipWeights, clipWeightsHelp, clipWeightsPath, clipWeightsSource, ortAvailable, recordClipVerdict } from './clip.ts';
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
const TMP_RE = /\.(\d+)\.\d+\.tmp$/;

/**
 * Installs an extractor's weights into the workspace: copies a file the user has (atomically: a
 * temporary file renamed into place) or downloads them resumably (a cancelled job keeps the
 * `.part` file; running it again continues it with a Range request). Only a regular file of a
 * plausible size that ONNX Runtime loads and that has the CLIP image encoder's interface is
 * installed (checked here, in the job's worker, never in the engine's thread); anything else is
 * refused with the reason and leaves no temporary behind.
 */
export default async function weightsJob(ctx: JobContext<WeightsParams>): Promise<WeightsResult> {
  const dest = clipWeightsPath(ctx.workspace.dir);
  sweepTemporaries(ctx, dest);
  const { result, byOrt } = ctx.params.from ? await installFromFile(ctx, ctx.params.from, dest) : await installByDownload(ctx, dest);
  // features.extractors (which never loads ONNX Runtime) reports it ready from this record
  if (byOrt) recordClipVerdict(ctx.workspace.dir, null);
  return result;
}

interface Installed {
  result: WeightsResult;
  /** Whether ONNX Runtime checked the installed file. */
  byOrt: boolean;
}

/** Copies of a killed job (its process gone) are deleted; a live job's are not. */
function sweepTemporaries(ctx: JobContext<WeightsParams>, dest: string): void {
  const dir = path.dirname(dest);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TMP_RE.exec(name);
    if (!m || !name.startsWith(`${path.basename(dest)}.`) || isAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    ctx.log('info', `removed ${name}, left by a stopped copy`);
  }
}


/**
 * Why a file is not the CLIP ViT-B/16 image encoder (null: it is): the checks that need no ONNX
 * Runtime, then, where onnxruntime-node is installed, ONNX Runtime's load and a test run (`byOrt`).
 */
async function weightsProblem(ctx: JobContext<WeightsParams>, file: string): Promise<{ reason: string | null; byOrt: boolean }> {
  const structural = onnxFileProblem(file);
  if (structural) return { reason: structural, byOrt: false };
  if (!ortAvailable()) {
    ctx.log('warn', `onnxruntime-node is not installed, so only the file's ONNX structure was checked; ONNX Runtime checks it when the extractor first loads it`);
    return { reason: null, byOrt: false };
  }
  ctx.progress({ step: 'check', done: 0, total: null, message: 'loading the model with ONNX Runtime to check it' });
  return { reason: await checkClipWeights(file), byOrt: true };
}

function invalid(ctx: JobContext<WeightsParams>, source: string, reason: string): UserError {
  return new UserError(`${source} is not the CLIP ViT-B/16 image encoder: invalid weights: ${reason}. Nothing was installed. ${clipWeightsHelp(ctx.workspace.dir)}`);
}

/** Throws (a UserError with the reason) unless `file` passes weightsProblem; returns whether ONNX Runtime checked it. */
async function refuseInvalid(ctx: JobContext<WeightsParams>, file: string, source: string): Promise<boolean> {
  const { reason, byOrt } = await weightsProblem(ctx, file);
  if (reason) throw invalid(ctx, source, reason);
  if (byOrt) ctx.log('info', `${source}: ONNX Runtime loaded it and it has the CLIP image encoder's interface`);
  return byOrt;
}

/** The --from path: a regular file (or a folder holding one), copied with streams that the job's cancel stops. */
async function installFromFile(ctx: JobContext<WeightsParams>, from: string, dest: string): Promise<Installed> {
  const src = clipWeightsSource(from);
  const { fd, size } = openRegularFile(src, 'the weights file');
  const tmp = `${dest}.${process.pid}.${ctx.jobId}.tmp`;
  let byOrt = false;
  try {
    try {
      const problem = onnxStructureProblem(fd, size);
      if (problem) throw invalid(ctx, src, problem);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      await copyCancellable(ctx, fd, size, tmp);
    } finally {
      fs.closeSync(fd);
    }
    byOrt = await refuseInvalid(ctx, tmp, src);
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof UserError || ctx.signal.aborted) throw e;
    throw new UserError(`could not copy ${src} to ${dest}: ${(e as Error).message}`);
  }
  ctx.progress({ step: 'copy', done: size, total: size, message: `${mb(size)} / ${mb(size)} MB` });
  ctx.log('info', `copied ${src} to ${dest}`);
  return { result: { extractor: ctx.params.extractor, path: dest, bytes: size, source: src, copied: true, resumedFrom: 0 }, byOrt };
}

async function copyCancellable(ctx: JobContext<WeightsParams>, fd: number, size: number, tmp: string): Promise<void> {
  ctx.progress({ step: 'copy', done: 0, total: size, message: `${mb(0)} / ${mb(size)} MB` });
  let done = 0;
  let reported = 0;
  const input = fs.createReadStream('', { fd, autoClose: false, start: 0 });
  input.on('data', (chunk) => {
    done += chunk.length;
    if (done - reported >= 1 << 20) {
      reported = done;
      ctx.progress({ step: 'copy', done, total: size, message: `${mb(done)} / ${mb(size)} MB` });
    }
  });
  await pipeline(input, fs.createWriteStream(tmp, { flags: 'wx' }), { signal: ctx.signal });
  const out = fs.openSync(tmp, 'r');
  try {
    fs.fsyncSync(out);
  } finally {
    fs.closeSync(out);
  }
}

/** The URL: a resumable download, checked before it replaces anything. */
async function installByDownload(ctx: JobContext<WeightsParams>, dest: string): Promise<Installed> {
  const dir = ctx.workspace.dir;
  const p = ctx.params;
  let replace = false;
  let byOrt = false;
  if (fs.existsSync(dest)) {
    const existing = await weightsProblem(ctx, dest);
    byOrt = existing.byOrt;
    if (existing.reason === null) ctx.log('info', `${dest} is already installed; nothing to download`);
    else {
      replace = true; // replaced only by a download that passes the check
      ctx.log('warn', `${dest} cannot be used (invalid weights: ${existing.reason}); downloading it again`);
    }
  } else if (fs.existsSync(`${dest}.part`)) ctx.log('info', `continuing the download in ${dest}.part (${mb(fs.statSync(`${dest}.part`).size)} MB so far)`);
  try {
    const r = await downloadResumable(p.url, dest, {
      signal: ctx.signal,
      replace,
      maxBytes: ONNX_MAX_BYTES,
      validate: async (file) => {
        byOrt = await refuseInvalid(ctx, file, p.url);
      },
      onProgress: ({ bytes, total }) =>
        ctx.progress({ step: 'download', done: bytes, total, message: total ? `${mb(bytes)} / ${mb(total)} MB` : `${mb(bytes)} MB` }),
    });
    ctx.progress({ step: 'download', done: r.bytes, total: r.bytes, message: `${mb(r.bytes)} / ${mb(r.bytes)} MB` });
    ctx.log('info', `${dest}: ${r.bytes} bytes from ${p.url}${r.resumedFrom ? ` (${r.resumedFrom} from an earlier download)` : ''}`);
    return { result: { extractor: p.extractor, path: dest, bytes: r.bytes, source: p.url, copied: false, resumedFrom: r.resumedFrom }, byOrt };
  } catch (e) {
    if (ctx.signal.aborted) throw e; // cancelled: the .part file stays for the next run
    if (e instanceof UserError) throw e; // refused (invalid, too big, not a regular file): says why
    const err = e as Error & { cause?: { message?: string } };
    const cause = err.cause ? ` (${err.cause.message ?? String(err.cause)})` : '';
    throw new UserError(`${err.message}${cause}; the part downloaded so far is kept and the next run continues it. Without network access: ${clipWeightsHelp(dir)}`);
  }
}
