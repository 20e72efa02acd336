// The CLIP ViT-B/16 image encoder (512-d embeddings, the original pipeline's features) through
// ONNX Runtime. onnxruntime-node is an optional dependency (reached only through a dynamic import,
// so CarStudio runs without it) and the ONNX weights do not ship with CarStudio: they live in the
// workspace (<workspace>/models/clip-vit-b16/vision_model.onnx), put there by `carstudio features
// weights` (a download with progress and resume, or a copy of a file the user has). When either is
// missing the error says exactly what to do.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import { kindOf, onnxFileProblem } from '../ml/onnx-file.ts';
import type { FeatureExtractor } from './extract.ts';
import { createOrtSession, loadOrt, ortAvailable, OrtNotInstalled, ORT_INSTALL_STEPS, type OrtModule, type OrtSession, type OrtTensor } from '../ml/ort.ts';

export { ortAvailable };

export const CLIP_NAME = 'clip-vit-b16';
export const CLIP_DIM = 512;
export const CLIP_INPUT_SIZE = 224;
export const CLIP_WEIGHTS_FILE = 'vision_model.onnx';
/** Where `features weights clip-vit-b16` downloads from unless --url says otherwise. */
export const CLIP_DEFAULT_URL = 'https://huggingface.co/Xenova/clip-vit-base-patch16/resolve/main/onnx/vision_model.onnx';
// CLIPImageProcessor's normalisation (openai/clip-vit-base-patch16 preprocessor_config.json)
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

export function clipWeightsPath(workspaceDir: string): string {
  return path.join(workspaceDir, 'models', CLIP_NAME, CLIP_WEIGHTS_FILE);
}

/**
 * The ONNX file to install from what the user points to: the file itself, or a folder holding
 * vision_model.onnx directly or in onnx/ (the layout of the Hugging Face repository).
 */
export function clipWeightsSource(from: string): string {
  // stat only (it never opens, so a FIFO cannot block it); regular files only
  const st = statOrNull(from);
  if (!st) throw new UserError(`${from} does not exist`);
  if (st.isFile()) return from;
  if (!st.isDirectory()) {
    throw new UserError(`${from} is ${kindOf(st)}, not a regular file: give the path of a ${CLIP_WEIGHTS_FILE} file, or of a folder holding one`);
  }
  const candidates = [path.join(from, CLIP_WEIGHTS_FILE), path.join(from, 'onnx', CLIP_WEIGHTS_FILE)];
  const found = candidates.find((f) => statOrNull(f)?.isFile() === true);
  if (!found) throw new UserError(`${from} is a folder without ${CLIP_WEIGHTS_FILE}: looked for ${candidates.join(' and ')}`);
  return found;
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

/**
 * What ONNX Runtime found when the weights job or the extractor last loaded the installed weights
 * (kept beside them, and only trusted while the file has the same size and mtime), so that the
 * engine, which never loads ONNX Runtime itself, reports weights that failed the check as invalid.
 */
interface WeightsVerdict {
  size: number;
  mtimeMs: number;
  ok: boolean;
  reason: string | null;
}

function verdictPath(workspaceDir: string): string {
  return path.join(path.dirname(clipWeightsPath(workspaceDir)), 'vision_model.check.json');
}

/** Records whether the installed weights passed ONNX Runtime's check (best effort: a cache of the check). */
export function recordClipVerdict(workspaceDir: string, reason: string | null): void {
  const file = clipWeightsPath(workspaceDir);
  const st = statOrNull(file);
  if (!st?.isFile()) return;
  const v: WeightsVerdict = { size: st.size, mtimeMs: st.mtimeMs, ok: reason === null, reason };
  const out = verdictPath(workspaceDir);
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(v));
    fs.renameSync(tmp, out);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}

function readVerdict(workspaceDir: string, st: fs.Stats): WeightsVerdict | null {
  try {
    const v = JSON.parse(fs.readFileSync(verdictPath(workspaceDir), 'utf8')) as WeightsVerdict;
    return v.size === st.size && v.mtimeMs === st.mtimeMs ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether weights are installed and, if so, why they cannot be used (null: no problem known):
 * what ONNX Runtime found the last time it loaded this file, else the checks that need no ONNX
 * Runtime (a regular file of a plausible size with an ONNX model's structure). Cheap, never
 * blocks: the engine calls it for `features.extractors`.
 */
export function clipWeightsState(workspaceDir: string): { present: boolean; problem: string | null } {
  const file = clipWeightsPath(workspaceDir);
  const st = statOrNull(file);
  if (!st) return { present: false, problem: null };
  if (!st.isFile()) return { present: true, problem: `it is ${kindOf(st)}, not a regular file` };
  const verdict = readVerdict(workspaceDir, st);
  if (verdict) return { present: true, problem: verdict.ok ? null : verdict.reason };
  return { present: true, problem: onnxFileProblem(file) };
}

/** What a user runs to get the weights, offline or not. */
export function clipWeightsHelp(workspaceDir: string): string {
  return (
    `the ${CLIP_NAME} extractor needs the CLIP ViT-B/16 image encoder as ONNX at ${clipWeightsPath(workspaceDir)}. ` +
    `Online: \`carstudio features weights ${CLIP_NAME} --workspace ${workspaceDir}\` downloads it (about 350 MB, resumable). ` +
    `Offline: copy a vision_model.onnx (input pixel_values [N,3,224,224], output image_embeds [N,512], e.g. from Xenova/clip-vit-base-patch16) ` +
    `to this machine and run \`carstudio features weights ${CLIP_NAME} --workspace ${workspaceDir} --from FILE_OR_FOLDER\`. ` +
    `Or use --extractor mobilenet_v2, which works offline.`
  );
}

export const ORT_HELP =
  `the ${CLIP_NAME} extractor runs on ONNX Runtime, and the onnxruntime-node package (an optional dependency of CarStudio) is not installed. ` +
  `${ORT_INSTALL_STEPS}, or use --extractor mobilenet_v2, which works offline.`;

async function importOrt(): Promise<OrtModule> {
  try {
    return await loadOrt();
  } catch (e) {
    if (e instanceof OrtNotInstalled) throw new UserError(ORT_HELP);
    throw new UserError(
      `onnxruntime-node is installed but failed to load (${(e as Error).message}); reinstall it, or use --extractor mobilenet_v2`,
    );
  }
}

/** NHWC [0,1] (what extract.ts hands every extractor) -> NCHW normalised with CLIP's mean/std. */
export function toClipInput(batch: Float32Array, n: number, size = CLIP_INPUT_SIZE): Float32Array {
  const plane = size * size;
  const out = new Float32Array(n * 3 * plane);
  for (let b = 0; b < n; b++) {
    const src = b * plane * 3;
    const dst = b * plane * 3;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) out[dst + c * plane + p] = (batch[src + p * 3 + c]! - MEAN[c]!) / STD[c]!;
    }
  }
  return out;
}

/**
 * What the user must do before the CLIP extractor can run, given whether its runtime and its
 * weights are present, or null when both are.
 */
export function clipNotReadyHelp(workspaceDir: string, have: { runtime: boolean; weights: boolean; problem?: string | null }): string | null {
  if (have.problem) {
    const invalid = `invalid weights: ${have.problem} (${clipWeightsPath(workspaceDir)}). Replace them: ${clipWeightsHelp(workspaceDir)}`;
    return have.runtime ? invalid : `${invalid} And: ${ORT_HELP}`;
  }
  if (!have.runtime && !have.weights) return `${ORT_HELP} Then: ${clipWeightsHelp(workspaceDir)}`;
  if (!have.runtime) return ORT_HELP;
  if (!have.weights) return clipWeightsHelp(workspaceDir);
  return null;
}

/** Why a loaded model is not the CLIP image encoder this extractor needs. */
class InvalidWeights extends Error {}

const shapeText = (shape: ReadonlyArray<number | string>): string => `[${shape.join(', ')}]`;
/** A fixed dimension that differs from `want` (symbolic and -1 dimensions match anything). */
const dimDiffers = (d: number | string | undefined, want: number): boolean => typeof d === 'number' && d >= 0 && d !== want;

/**
 * Checks that a session has the CLIP ViT-B/16 image encoder's interface, from the model's declared
 * inputs and outputs and then by running it once on a batch of two (the extractor runs batches):
 * input pixel_values (or the only input) float32 [N, 3, 224, 224], output image_embeds (or the
 * only output) [N, 512]. Returns the names to use; throws InvalidWeights with the reason.
 */
async function checkClipSession(ort: OrtModule, sess: OrtSession): Promise<{ input: string; output: string }> {
  const names = (l: readonly string[]): string => l.join(', ') || 'none';
  const input = sess.inputNames.includes('pixel_values') ? 'pixel_values' : sess.inputNames.length === 1 ? sess.inputNames[0]! : null;
  if (!input) throw new InvalidWeights(`it has no pixel_values input (inputs: ${names(sess.inputNames)})`);
  const output = sess.outputNames.includes('image_embeds') ? 'image_embeds' : sess.outputNames.length === 1 ? sess.outputNames[0]! : null;
  if (!output) throw new InvalidWeights(`it has no image_embeds output (outputs: ${names(sess.outputNames)})`);
  const inMeta = sess.inputMetadata?.find((m) => m.name === input);
  if (inMeta?.isTensor && inMeta.shape && inMeta.shape.length > 0) {
    const s = inMeta.shape;
    if (inMeta.type && inMeta.type !== 'float32') throw new InvalidWeights(`input ${input} is ${inMeta.type}, expected float32`);
    if (s.length !== 4 || dimDiffers(s[1], 3) || dimDiffers(s[2], CLIP_INPUT_SIZE) || dimDiffers(s[3], CLIP_INPUT_SIZE)) {
      throw new InvalidWeights(`input ${input} has shape ${shapeText(s)}, expected [N, 3, ${CLIP_INPUT_SIZE}, ${CLIP_INPUT_SIZE}]`);
    }
  }
  const outMeta = sess.outputMetadata?.find((m) => m.name === output);
  if (outMeta?.isTensor && outMeta.shape && outMeta.shape.length > 0) {
    const s = outMeta.shape;
    if (s.length !== 2 || dimDiffers(s[1], CLIP_DIM)) {
      throw new InvalidWeights(`output ${output} has shape ${shapeText(s)}, expected [N, ${CLIP_DIM}] (the vision model with projection, image_embeds)`);
    }
  }
  const dims = [2, 3, CLIP_INPUT_SIZE, CLIP_INPUT_SIZE];
  let res: Record<string, OrtTensor>;
  try {
    res = await sess.run({ [input]: new ort.Tensor('float32', new Float32Array(2 * 3 * CLIP_INPUT_SIZE * CLIP_INPUT_SIZE), dims) });
  } catch (e) {
    throw new InvalidWeights(`ONNX Runtime could not run it on ${input} ${shapeText(dims)} (${(e as Error).message.split('\n')[0]})`);
  }
  const t = res[output];
  if (!t || t.dims.length !== 2 || t.dims[0] !== 2 || t.dims[1] !== CLIP_DIM) {
    throw new InvalidWeights(
      `on a batch of 2 images its output ${output} has shape ${shapeText(t?.dims ?? [])}, expected [2, ${CLIP_DIM}] (the vision model with projection, image_embeds)`,
    );
  }
  if (!t.data.every(Number.isFinite)) throw new InvalidWeights(`its output ${output} is not finite on a black image`);
  return { input, output };
}

/**
 * The full check of a weights file, for the weights job (in its worker, before the file is
 * installed): the structure checks that need no ONNX Runtime, then ONNX Runtime loads it on the CPU
 * and checkClipSession runs it. Returns why it cannot be used, or null. Needs onnxruntime-node
 * (a UserError saying how to install it otherwise).
 */
export async function checkClipWeights(file: string): Promise<string | null> {
  const structural = onnxFileProblem(file);
  if (structural) return structural;
  const ort = await importOrt();
  let sess: OrtSession;
  try {
    sess = (await createOrtSession(ort, file, { device: 'cpu' })).session;
  } catch (e) {
    return `ONNX Runtime cannot load it (${(e as Error).message.split('\n')[0]})`;
  }
  try {
    await checkClipSession(ort, sess);
    return null;
  } catch (e) {
    if (e instanceof InvalidWeights) return e.message;
    throw e;
  } finally {
    await sess.release?.().catch(() => undefined);
  }
}

/**
 * Loads the CLIP image encoder: the weights first (so a missing file is reported even where
 * ONNX Runtime is absent too), then onnxruntime-node, on the device asked for (createOrtSession:
 * CUDA when asked or when its provider is installed and loads, else the CPU). Embeddings are
 * L2-normalised, as CLIP compares them.
 */
export async function loadClipExtractor(workspaceDir: string): Promise<FeatureExtractor & { backend: string }> {
  const weights = clipWeightsPath(workspaceDir);
  const haveWeights = fs.existsSync(weights);
  const ort = await importOrt().catch((e: unknown) => {
    if (!haveWeights) throw new UserError(clipNotReadyHelp(workspaceDir, { runtime: false, weights: false })!);
    throw e;
  });
  if (!haveWeights) throw new UserError(clipNotReadyHelp(workspaceDir, { runtime: true, weights: false })!);
  // a FIFO or device there would block ONNX Runtime's read for ever; a text file is refused at once
  const structural = onnxFileProblem(weights);
  if (structural) throw new UserError(`${weights}: ${clipNotReadyHelp(workspaceDir, { runtime: true, weights: true, problem: structural })}`);
  let session: OrtSession;
  let backend: string;
  try {
    const opened = await createOrtSession(ort, weights);
    session = opened.session;
    backend = `onnxruntime-node (${opened.provider})`;
  } catch (e) {
    const reason = `ONNX Runtime cannot load it (${(e as Error).message.split('\n')[0]})`;
    recordClipVerdict(workspaceDir, reason);
    throw new UserError(`${weights}: ${clipNotReadyHelp(workspaceDir, { runtime: true, weights: true, problem: reason })}`);
  }
  const sess = session;
  let names: { input: string; output: string };
  try {
    names = await checkClipSession(ort, sess);
  } catch (e) {
    if (!(e instanceof InvalidWeights)) throw e;
    recordClipVerdict(workspaceDir, e.message); // features.extractors reports it from now on
    throw new UserError(`${weights}: ${clipNotReadyHelp(workspaceDir, { runtime: true, weights: true, problem: e.message })}`);
  }
  recordClipVerdict(workspaceDir, null);
  const { input, output } = names;
  async function embed(batch: Float32Array, n: number): Promise<Float32Array> {
    if (n <= 0) return new Float32Array(0);
    const dims = [n, 3, CLIP_INPUT_SIZE, CLIP_INPUT_SIZE];
    let res: Record<string, OrtTensor>;
    try {
      res = await sess.run({ [input]: new ort.Tensor('float32', toClipInput(batch, n), dims) });
    } catch (e) {
      throw new UserError(
        `${weights}: ONNX Runtime could not run it on ${input} [${dims.join(', ')}] (${(e as Error).message.split('\n')[0]}); expected the CLIP ViT-B/16 vision model (input pixel_values [N, 3, 224, 224])`,
      );
    }
    const t = res[output]!;
    if (t.dims.length !== 2 || t.dims[1] !== CLIP_DIM) {
      throw new UserError(
        `${weights}: output ${output} has shape [${t.dims.join(', ')}], expected [N, ${CLIP_DIM}] (the vision model with projection, image_embeds)`,
      );
    }
    const out = Float32Array.from(t.data);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < CLIP_DIM; k++) s += out[r * CLIP_DIM + k]! ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let k = 0; k < CLIP_DIM; k++) out[r * CLIP_DIM + k] *= inv;
    }
    return out;
  }
  return { name: `${CLIP_NAME}/image_embeds`, inputSize: CLIP_INPUT_SIZE, featureDim: CLIP_DIM, embed, backend };
}
