// The per-user cache of converted models (ONNX files made from the npm packages' TensorFlow.js
// weights on first use). Each model is a `<base>.onnx` file beside a small `<base>.json` record
// of the source weights' sha256, the converter's version, and the file's size and sha256. A file
// that does not match its record (a partial copy, a disk error, an edit), or that ONNX Runtime
// cannot load, is converted again; the model is written first and its record second, so a crash
// in between leaves a model without a record, which is rebuilt.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.ts';

export type OnnxLog = (level: 'info' | 'warn', message: string) => void;

/** Where converted models are cached: $CARSTUDIO_MODEL_CACHE, else the platform's per-user cache folder. */
export function modelCacheDir(): string {
  if (process.env.CARSTUDIO_MODEL_CACHE) return path.resolve(process.env.CARSTUDIO_MODEL_CACHE);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'CarStudio');
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'CarStudio', 'Cache');
  return path.join(process.env.XDG_CACHE_HOME || path.join(home, '.cache'), 'carstudio');
}

export function defaultModelLog(level: 'info' | 'warn', message: string): void {
  process.stderr.write(`${level === 'warn' ? 'warning: ' : ''}${message}\n`);
}

interface CachedModelMeta {
  source: string;
  converter: number;
  opset?: number;
  size: number;
  sha256: string;
}

const sha256 = (data: Uint8Array): string => crypto.createHash('sha256').update(data).digest('hex');

/** Why the cached `file` does not match its record `metaFile`, or null when it does. */
function cachedProblem(file: string, metaFile: string, source: string, converter: number): string | null {
  let meta: CachedModelMeta;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as CachedModelMeta;
  } catch (e) {
    return `its record ${path.basename(metaFile)} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (meta.source !== source || meta.converter !== converter) return 'its record is for other weights or another converter';
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    return `it cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  if (!st.isFile()) return 'it is not a regular file';
  if (st.size !== meta.size) return `it is ${st.size} bytes, ${meta.size} were written`;
  if (sha256(fs.readFileSync(file)) !== meta.sha256) return 'its sha256 differs from the one recorded when it was written';
  return null;
}

export interface ModelFileRequest {
  /** File name without extension: name, source hash and converter version. */
  base: string;
  /** sha256 of the source weights. */
  source: string;
  converter: number;
  opset?: number;
  /** For messages: the cached file ('ONNX MobileNetV2') and what it is converted from ('the nsfwjs MobileNetV2'). */
  what: string;
  from: string;
  /** Converts the source into the ONNX bytes (called only when the cache has no usable file). */
  build(): Uint8Array;
  /** The cache folder (default modelCacheDir()). */
  dir?: string;
  log?: OnnxLog;
  /** Convert again whatever the cache holds, saying why. */
  rebuild?: string;
}

export interface ModelFile {
  file: string;
  /** Whether this call converted the model (first use, or the cached file was bad). */
  built: boolean;
}

/** The converted model in the cache, converted and written atomically when missing or not matching its record. */
export async function ensureModelFile(r: ModelFileRequest): Promise<ModelFile> {
  const dir = r.dir ?? modelCacheDir();
  const log = r.log ?? defaultModelLog;
  const file = path.join(dir, `${r.base}.onnx`);
  const metaFile = path.join(dir, `${r.base}.json`);
  let why = r.rebuild ?? null;
  if (!why && fs.existsSync(file)) {
    const problem = cachedProblem(file, metaFile, r.source, r.converter);
    if (!problem) return { file, built: false };
    why = problem;
  }
  if (why) log('warn', `the cached ${r.what} ${file} is not usable (${why}): rebuilding it`);
  else log('info', `converting ${r.from} to ONNX (first use): ${file}`);
  const bytes = r.build();
  const meta: CachedModelMeta = { source: r.source, converter: r.converter, ...(r.opset ? { opset: r.opset } : {}), size: bytes.byteLength, sha256: sha256(bytes) };
  await writeFileAtomic(file, [bytes]);
  await writeFileAtomic(metaFile, JSON.stringify(meta, null, 2) + '\n');
  return { file, built: true };
}

/**
 * ensureModelFile, then `open` it; a cached file that ONNX Runtime cannot load or run is
 * converted again once (a file this call converted that fails is an error).
 */
export async function ensureCachedModel<S>(r: Omit<ModelFileRequest, 'rebuild'> & { open(file: string, log: OnnxLog): Promise<S> }): Promise<S & ModelFile> {
  const log = r.log ?? defaultModelLog;
  let model = await ensureModelFile(r);
  try {
    return { ...(await r.open(model.file, log)), ...model };
  } catch (e) {
    if (model.built) throw e;
    model = await ensureModelFile({ ...r, rebuild: `ONNX Runtime cannot load or run it: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300)}` });
    return { ...(await r.open(model.file, log)), ...model };
  }
}
