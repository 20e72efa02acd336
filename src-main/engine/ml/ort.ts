// onnxruntime-node, an optional dependency: reached only through a dynamic import (CarStudio runs
// without it), with the part of its API that CarStudio uses declared here so that the typecheck
// does not depend on whether it is installed.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

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
  InferenceSession: { create(file: string, opts?: OrtSessionOptions): Promise<OrtSession> };
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
  return mod.InferenceSession ? mod : mod.default!;
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
 * Trying CUDA without it makes ONNX Runtime print an error line for every session, so it is only
 * tried when the library is there.
 */
export function ortHasCuda(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node'); // <pkg>/dist/index.js
    const bin = path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
    return fs.readdirSync(bin).some((f) => /onnxruntime_providers_cuda\.(so|dll)$/.test(f));
  } catch {
    return false;
  }
}
