// onnxruntime-node, an optional dependency: reached only through a dynamic import (CarStudio runs
// without it), with the part of its API that CarStudio uses declared here so that the typecheck
// does not depend on whether it is installed.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';

export interface OrtTensor {
  data: Float32Array;
  dims: readonly number[];
}
export interface OrtValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}
export interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** onnxruntime-node 1.22 and later. */
  inputMetadata?: readonly OrtValueMetadata[];
  outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}
export interface OrtSessionOptions {
  executionProviders?: string[];
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  /** Session configuration entries (onnxruntime_session_options_config_keys.h), e.g. { session: { intra_op: { allow_spinning: '0' } } }. */
  extra?: Record<string, unknown>;
}
export interface OrtModule {
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(model: string | Uint8Array, opts?: OrtSessionOptions): Promise<OrtSession> };
  env?: { logLevel?: 'verbose' | 'info' | 'warning' | 'error' | 'fatal' };
}

/** onnxruntime-node is not installed (as opposed to installed but failing to load). */
export class OrtNotInstalled extends Error {}

/** Imports onnxruntime-node; OrtNotInstalled when it is absent, the load error otherwise. */
export async function loadOrt(): Promise<OrtModule> {
  const name = 'onnxruntime-node';
  let mod: OrtModule & { default?: OrtModule };
  try {
    mod = (await import(name)) as OrtModule & { default?: OrtModule };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new OrtNotInstalled((e as Error).message);
    throw e;
  }
  const ort = mod.InferenceSession ? mod : mod.default!;
  // ONNX Runtime's own log prints a line of its own (in red, with its source file) for every
  // session whose CUDA provider fails to load, beside the error it throws, which CarStudio
  // reports in one line (createOrtSession). Without the CUDA provider library that line says
  // nothing more, so only fatal messages are kept; with it, errors are kept too, for the CUDA
  // runtime's own reasons. Applied when the first session of the process is created.
  if (ort.env && (ort.env.logLevel === undefined || ort.env.logLevel === 'warning')) ort.env.logLevel = ortHasCuda() ? 'error' : 'fatal';
  return ort;
}

/** How to install onnxruntime-node, online or offline (one sentence per step). */
export const ORT_INSTALL_STEPS =
  'Install it in the CarStudio folder with `ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install` ' +
  '(the variable keeps its install script from downloading CUDA libraries, which fails without internet and makes npm leave the package out; ' +
  'offline: `npm install /path/to/onnxruntime-node-<version>.tgz` from a tarball made elsewhere with `npm pack onnxruntime-node@<version>`)';

/**
 * Whether onnxruntime-node can be found, without loading it (the engine process stays free of
 * native modules it does not need).
 */
export function ortAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether onnxruntime-node has its CUDA execution provider. The npm package bundles the CPU build
 * only; its install script, which package.json's allowScripts keeps npm from running, downloads
 * the CUDA provider from NuGet (run by hand: `node node_modules/onnxruntime-node/script/install`).
 * Without it, device auto does not try CUDA (createOrtSession).
 */
export function ortHasCuda(): boolean {
  const bin = ortBinDir();
  if (!bin) return false;
  try {
    return fs.readdirSync(bin).some((f) => /onnxruntime_providers_cuda\.(so|dll)$/.test(f));
  } catch {
    return false;
  }
}

/** Where ONNX Runtime sessions run: CUDA when its provider library is installed (auto), CUDA whatever happens (cuda: tried, with one line saying why it failed), or the CPU. */
export const ORT_DEVICES = ['auto', 'cuda', 'cpu'] as const;
export type OrtDevice = (typeof ORT_DEVICES)[number];
/** The environment variable that sets the device of every ONNX Runtime session (what `--device` sets). */
export const ORT_DEVICE_ENV = 'CARSTUDIO_ORT_DEVICE';

/** `asked` when given, else $CARSTUDIO_ORT_DEVICE, else 'auto'; an unknown value of the variable is an error. */
export function ortDevice(asked?: OrtDevice): OrtDevice {
  if (asked) return asked;
  const env = process.env[ORT_DEVICE_ENV]?.trim().toLowerCase();
  if (!env) return 'auto';
  if (!(ORT_DEVICES as readonly string[]).includes(env)) throw new UserError(`${ORT_DEVICE_ENV} must be one of ${ORT_DEVICES.join(', ')}, got '${process.env[ORT_DEVICE_ENV]}'`);
  return env as OrtDevice;
}

/** ONNX Runtime's CPU threads when the caller names none: os.availableParallelism(). */
export function defaultOrtThreads(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

export interface OrtSessionRequest<S> {
  /** Default: ortDevice() ($CARSTUDIO_ORT_DEVICE, else auto). */
  device?: OrtDevice;
  /** CPU threads for one run (default defaultOrtThreads()). */
  threads?: number;
  /** Where the line saying that CUDA failed goes (default: stderr, as a warning). */
  log?(level: 'info' | 'warn', message: string): void;
  /**
   * Runs on each new session before it is handed out (a first run, a check of its outputs);
   * throwing rejects it: on CUDA the CPU is tried next, on the CPU the error is thrown.
   */
  check?(session: S): Promise<void>;
}

export interface OpenedOrtSession<S> {
  session: S;
  provider: 'cuda' | 'cpu';
  threads: number;
  /** 'onnxruntime cuda' or e.g. 'onnxruntime cpu (2 threads)'. */
  backend: string;
}

interface SessionFactory<S> {
  InferenceSession: { create(model: string | Uint8Array, opts?: OrtSessionOptions): Promise<S> };
}

/** Why the CUDA provider failed to load, once per module instance (a job's worker thread): later sessions go to the CPU without trying again or saying it again. */
let cudaLoadFailure: string | null = null;

/** Why CUDA failed, in words a user can act on. */
function cudaReason(e: unknown): string {
  const msg = firstLine(e);
  if (ortHasCuda()) return msg;
  return `onnxruntime-node has no CUDA provider library (libonnxruntime_providers_cuda) in ${ortBinDir() ?? 'its bin folder'}; its npm package is CPU-only, run \`node node_modules/onnxruntime-node/script/install\` to add it (ONNX Runtime: ${msg})`;
}

function ortBinDir(): string | null {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node'); // <pkg>/dist/index.js
    return path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}

/**
 * Every ONNX Runtime session in CarStudio is created here, so that every model runs on the device
 * asked for the same way. Options: `threads` intra-op threads, one inter-op thread, all graph
 * optimisations, and no spin-waiting between ops (image decoding and reading the next batch run
 * beside every run, and spinning threads take the cores they need: measured 1.2-2x the images/s
 * on a busy 2-core machine). Device: 'cpu' the CPU; 'auto' CUDA first when its provider library is
 * installed (ortHasCuda); 'cuda' CUDA first whatever is installed. When CUDA fails (the provider
 * cannot load, or the session fails `check` on it), one line says why ("CUDA execution provider
 * could not load: <reason>; running on CPU (N threads)") and the CPU session is returned.
 */
export async function createOrtSession<S extends { release?(): Promise<void> }>(
  ort: SessionFactory<S>,
  model: string | Uint8Array,
  req: OrtSessionRequest<S> = {},
): Promise<OpenedOrtSession<S>> {
  const device = ortDevice(req.device);
  const threads = Math.max(1, Math.floor(req.threads ?? defaultOrtThreads()));
  const log = req.log ?? ((_l: 'info' | 'warn', m: string) => process.stderr.write(`warning: ${m}\n`));
  const common: OrtSessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
  const cpuText = `${threads} thread${threads === 1 ? '' : 's'}`;
  if ((device === 'cuda' || (device === 'auto' && ortHasCuda())) && cudaLoadFailure === null) {
    let session: S | null = null;
    try {
      session = await ort.InferenceSession.create(model, { ...common, executionProviders: ['cuda', 'cpu'] });
    } catch (e) {
      const reason = cudaReason(e);
      // the provider itself (not this model) failed: the next sessions would fail the same way
      if (!ortHasCuda() || /ExecutionProvider/i.test(String((e as Error)?.message))) cudaLoadFailure = reason;
      log('warn', `CUDA execution provider could not load: ${reason}; running on CPU (${cpuText})`);
    }
    if (session) {
      try {
        await req.check?.(session);
        return { session, provider: 'cuda', threads, backend: 'onnxruntime cuda' };
      } catch (e) {
        await session.release?.().catch(() => undefined);
        log('warn', `CUDA execution provider could not run the model: ${firstLine(e)}; running on CPU (${cpuText})`);
      }
    }
  }
  const session = await ort.InferenceSession.create(model, { ...common, executionProviders: ['cpu'] });
  try {
    await req.check?.(session);
  } catch (e) {
    await session.release?.().catch(() => undefined);
    throw e;
  }
  return { session, provider: 'cpu', threads, backend: `onnxruntime cpu (${cpuText})` };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}
