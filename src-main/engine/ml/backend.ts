// Picks the best TensorFlow.js backend this machine can run, walking the ladder
// tfjs-node-gpu → tfjs-node → wasm → pure-JS cpu, and says which one is in use and why the
// better ones were skipped. The native packages are optional dependencies (their install
// downloads libtensorflow), so they are only ever reached through dynamic import.
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

export type TfModule = typeof import('@tensorflow/tfjs');
export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** Which rung of the ladder is in use. */
  name: BackendName;
  /** The tf namespace to use with it (from tfjs-node(-gpu) when native, else @tensorflow/tfjs). */
  tf: TfModule;
  /** The backend has the gradient kernels a conv-net needs (wasm lacks Conv2DBackpropFilter). */
  canTrainConv: boolean;
  /** Full fine-tuning is practical (native only; pure-JS cpu needs minutes per MobileNetV2 step). */
  fastConv: boolean;
  /** Human-readable account: what is in use, why the better rungs were skipped. */
  note: string;
}

const LADDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
const require = createRequire(import.meta.url);

let current: { key: BackendPreference; promise: Promise<BackendInfo> } | null = null;

/**
 * Initialises TensorFlow.js once per process. `prefer` names the rung to start from ('auto' =
 * the top, or the CARSTUDIO_TF_BACKEND environment variable when set); rungs that fail are
 * skipped downwards and the reason is kept in `note`. A second call with the same preference
 * returns the same result; a different preference re-runs the ladder from that rung.
 */
export function initBackend(prefer: BackendPreference = 'auto'): Promise<BackendInfo> {
  const envPref = process.env.CARSTUDIO_TF_BACKEND as BackendPreference | undefined;
  const key: BackendPreference =
    prefer === 'auto' && envPref && (envPref === 'auto' || LADDER.includes(envPref as BackendName)) ? envPref : prefer;
  if (current && current.key === key) return current.promise;
  const promise = walkLadder(key);
  current = { key, promise };
  promise.catch(() => {
    if (current?.promise === promise) current = null;
  });
  return promise;
}

async function walkLadder(prefer: BackendPreference): Promise<BackendInfo> {
  const start = prefer === 'auto' ? 0 : LADDER.indexOf(prefer);
  const skipped: string[] = [];
  if (start > 0) skipped.push(`${LADDER.slice(0, start).join(', ')}: not tried (asked for ${prefer})`);
  for (const rung of LADDER.slice(start)) {
    try {
      const info = await tryRung(rung);
      const why = skipped.length ? ` Skipped: ${skipped.join('; ')}.` : '';
      return { ...info, note: `${info.note}${why}` };
    } catch (err) {
      skipped.push(`${rung}: ${shortError(err)}`);
    }
  }
  throw new Error(`No TensorFlow.js backend could be initialised. ${skipped.join('; ')}`);
}

async function tryRung(rung: BackendName): Promise<Omit<BackendInfo, 'note'> & { note: string }> {
  switch (rung) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = rung === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      const tf = await importOptional(pkg);
      // Both packages register their backend under the name 'tensorflow'.
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not start`);
      await tf.ready();
      await smokeTest(tf);
      return {
        name: rung,
        tf,
        canTrainConv: true,
        fastConv: true,
        note: `Using ${pkg} (native libtensorflow${rung === 'tensorflow-gpu' ? ', CUDA' : ', CPU'}).`,
      };
    }
    case 'wasm': {
      const tf = await import('@tensorflow/tfjs');
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const dist = wasmDistDir();
      const threads = Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
      try {
        wasm.setWasmPaths({
          'tfjs-backend-wasm.wasm': path.join(dist, 'tfjs-backend-wasm.wasm'),
          'tfjs-backend-wasm-simd.wasm': path.join(dist, 'tfjs-backend-wasm-simd.wasm'),
          'tfjs-backend-wasm-threaded-simd.wasm': path.join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'),
        });
        // Only used by the threaded build; harmless otherwise.
        wasm.setThreadsCount(threads);
      } catch {
        // Already initialised earlier in this process: the paths were set then.
      }
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
      await tf.ready();
      await smokeTest(tf);
      const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const multi = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
      let threadNote: string;
      if (multi) {
        let n = threads;
        try {
          n = wasm.getThreadsCount();
        } catch {
          /* keep the requested count */
        }
        threadNote = `${n} threads`;
      } else {
        threadNote =
          'single-threaded (tfjs-backend-wasm disables its pthread build under Node: its workers are blob: URLs ' +
          'that worker_threads rejects, tensorflow/tfjs#3830; forcing it makes the backend fail)';
      }
      return {
        name: 'wasm',
        tf,
        canTrainConv: false,
        fastConv: false,
        note: `Using @tensorflow/tfjs-backend-wasm (${simd ? 'SIMD' : 'no SIMD'}, ${threadNote}); inference only, no Conv2DBackpropFilter.`,
      };
    }
    case 'cpu': {
      const tf = await import('@tensorflow/tfjs');
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
      await tf.ready();
      // Its first write prints a banner recommending tfjs-node; `note` already says that.
      const cpu = tf.backend() as unknown as { firstUse?: boolean };
      if (typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
      await smokeTest(tf);
      return {
        name: 'cpu',
        tf,
        canTrainConv: true,
        fastConv: false,
        note: 'Using the pure-JS cpu backend of @tensorflow/tfjs (about 20x slower than wasm for inference; training a conv-net is impractical).',
      };
    }
  }
}

/** Directory holding the .wasm binaries inside node_modules/@tensorflow/tfjs-backend-wasm/dist. */
export function wasmDistDir(): string {
  // The package's Node entry point lives in dist/, next to the .wasm files.
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
}

async function importOptional(pkg: string): Promise<TfModule> {
  let mod: unknown;
  try {
    // A variable specifier keeps bundlers and the type checker from requiring the optional package.
    const specifier: string = pkg;
    mod = await import(specifier);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`${pkg} is not installed (optional dependency; its install downloads libtensorflow)`);
    }
    throw err;
  }
  const m = mod as { default?: unknown; setBackend?: unknown };
  const ns = (typeof m.setBackend === 'function' ? m : m.default) as TfModule | undefined;
  if (!ns || typeof ns.setBackend !== 'function') throw new Error(`${pkg} did not export a tf namespace`);
  return ns;
}

async function smokeTest(tf: TfModule): Promise<void> {
  const t = tf.tidy(() => {
    const x = tf.tensor4d(new Float32Array(16).fill(1), [1, 4, 4, 1]);
    const k = tf.tensor4d(new Float32Array(4).fill(1), [2, 2, 1, 1]);
    return tf.conv2d(x, k, 1, 'valid').sum();
  });
  const v = (await t.data())[0];
  t.dispose();
  if (v !== 36) throw new Error(`smoke test gave ${v}, expected 36`);
}

function shortError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 200);
}
