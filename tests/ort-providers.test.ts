// The device every ONNX Runtime session runs on (createOrtSession, engine/ml/ort.ts): forcing CUDA
// where onnxruntime-node has no CUDA provider (this machine) says why in one line and runs on the
// CPU with features identical to a CPU run; auto stays on the CPU without a word; the same holds
// for the SVM scorer, and for `features --device cuda` / $CARSTUDIO_ORT_DEVICE from the CLI.
// Needs onnxruntime-node (each test skips without it); on a machine whose onnxruntime-node has the
// CUDA provider the forced-failure tests skip too, as CUDA may well load there.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { decodeForModel } from '../src-main/engine/ml/decode.ts';
import type * as OrtTs from '../src-main/engine/ml/ort.ts';
import type * as MobilenetOnnxTs from '../src-main/engine/ml/mobilenet-onnx.ts';
import type * as SvmScorerTs from '../src-main/engine/filter/svm-scorer.ts';
import { SvmClassifier } from '../src-main/engine/filter/svm.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import { hasOrt } from './helpers/onnx.ts';
import { runCli } from './helpers/processes.ts';
import { makeJpeg, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';

const { ortHasCuda } = await import('../src-main/engine/ml/ort.ts');
const cudaInstalled = hasOrt && ortHasCuda();
const noCuda = hasOrt && !cudaInstalled;
if (!hasOrt) console.log('ort-providers: onnxruntime-node is not installed, skipping');
if (cudaInstalled) console.log("ort-providers: onnxruntime-node's CUDA provider is installed here, skipping the tests that need it to fail");

const CUDA_LINE = /^CUDA execution provider could not load: .+; running on CPU \((\d+) threads?\)$/;
const cache = tmpDir('carstudio-ort-providers-');
const S = 224;
const PER = S * S * 3;

/** Fresh module instances: createOrtSession remembers a CUDA failure per instance (one line per worker thread). */
async function fresh(): Promise<{ ort: typeof OrtTs; mobilenet: typeof MobilenetOnnxTs; svm: typeof SvmScorerTs }> {
  vi.resetModules();
  return {
    ort: await import('../src-main/engine/ml/ort.ts'),
    mobilenet: await import('../src-main/engine/ml/mobilenet-onnx.ts'),
    svm: await import('../src-main/engine/filter/svm-scorer.ts'),
  };
}

/** Four decoded JPEGs (made with sharp), as the extractor's input batch. */
async function batch(): Promise<Float32Array> {
  const dir = tmpDir();
  const out = new Float32Array(4 * PER);
  for (let i = 0; i < 4; i++) {
    const f = path.join(dir, `${i}.jpg`);
    fs.writeFileSync(f, await makeJpeg(320 + 40 * i, 240, 11 + i));
    out.set(await decodeForModel(f), i * PER);
  }
  return out;
}

type Line = { level: string; message: string };

describe('ONNX Runtime device', () => {
  it.skipIf(!noCuda)('forced CUDA says why in one line and gives the CPU features exactly; auto is silent', async () => {
    const input = await batch();
    const { mobilenet } = await fresh();
    const lines: Line[] = [];
    const forced = await mobilenet.loadMobilenetOnnx({ device: 'cuda', threads: 2, cacheDir: cache, log: (level, message) => lines.push({ level, message }) });
    const cudaLines = lines.filter((l) => l.message.includes('CUDA'));
    expect(cudaLines).toHaveLength(1);
    expect(cudaLines[0]!.level).toBe('warn');
    expect(cudaLines[0]!.message).toMatch(CUDA_LINE);
    expect(cudaLines[0]!.message).toContain('no CUDA provider library');
    expect(forced.backend).toBe('onnxruntime cpu (2 threads)');
    const a = await forced.embed(input, 4);
    await forced.dispose();

    const m2 = (await fresh()).mobilenet;
    const quiet: Line[] = [];
    const cpu = await m2.loadMobilenetOnnx({ device: 'cpu', threads: 2, cacheDir: cache, log: (level, message) => quiet.push({ level, message }) });
    expect(cpu.backend).toBe('onnxruntime cpu (2 threads)');
    const b = await cpu.embed(input, 4);
    await cpu.dispose();
    expect(a.length).toBe(4 * 1280);
    expect(Array.from(a)).toEqual(Array.from(b));

    const m3 = (await fresh()).mobilenet;
    const auto = await m3.loadMobilenetOnnx({ device: 'auto', threads: 2, cacheDir: cache, log: (level, message) => quiet.push({ level, message }) });
    expect(auto.backend).toBe('onnxruntime cpu (2 threads)');
    await auto.dispose();
    expect(quiet.filter((l) => l.level === 'warn' || /CUDA/.test(l.message))).toEqual([]);
  }, 120_000);

  it.skipIf(!noCuda)('$CARSTUDIO_ORT_DEVICE is read when no device is named; the CUDA failure is said once per worker', async () => {
    const { mobilenet, ort } = await fresh();
    const prev = process.env.CARSTUDIO_ORT_DEVICE;
    try {
      process.env.CARSTUDIO_ORT_DEVICE = 'cuda';
      expect(ort.ortDevice()).toBe('cuda');
      const lines: string[] = [];
      const first = await mobilenet.loadMobilenetOnnx({ threads: 1, cacheDir: cache, log: (_l, m) => lines.push(m) });
      const second = await mobilenet.loadMobilenetOnnx({ threads: 1, cacheDir: cache, log: (_l, m) => lines.push(m) });
      expect(lines.filter((m) => CUDA_LINE.test(m))).toHaveLength(1);
      expect([first.backend, second.backend]).toEqual(['onnxruntime cpu (1 thread)', 'onnxruntime cpu (1 thread)']);
      await first.dispose();
      await second.dispose();
      process.env.CARSTUDIO_ORT_DEVICE = 'gpu';
      expect(() => ort.ortDevice()).toThrow("CARSTUDIO_ORT_DEVICE must be one of auto, cuda, cpu, got 'gpu'");
    } finally {
      if (prev === undefined) delete process.env.CARSTUDIO_ORT_DEVICE;
      else process.env.CARSTUDIO_ORT_DEVICE = prev;
    }
  }, 120_000);

  it.skipIf(!noCuda)('the SVM scorer goes through the same helper: forced CUDA says so once, scores equal the CPU ones', async () => {
    const rnd = mulberry32(5);
    const d = 64;
    const rows = 200;
    const X = Float32Array.from({ length: rows * d }, () => rnd());
    const model = await SvmClassifier.fit({ data: X, rows, cols: d }, Array.from({ length: rows }, (_, i) => (X[i * d]! + X[i * d + 1]! > 1 ? 1 : 0)));
    const { svm } = await fresh();
    const lines: string[] = [];
    const forced = await svm.onnxSvmScorer(model, { device: 'cuda', threads: 2, log: (_l, m) => lines.push(m) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(CUDA_LINE);
    expect(forced.backend).toBe('onnxruntime cpu (2 threads)');
    const cpu = await svm.onnxSvmScorer(model, { device: 'cpu', threads: 2 });
    expect(Array.from(await forced.score(X, rows))).toEqual(Array.from(await cpu.score(X, rows)));
    await forced.close();
    await cpu.close();
  }, 60_000);

  it.skipIf(!noCuda)('`features --device cuda` prints the line once and extracts on the CPU; --device is checked', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 3);
    const dir = ws.dir;
    ws.close();
    const env = { CARSTUDIO_MODEL_CACHE: cache };
    const r = await runCli(['features', '--workspace', dir, '--runtime', 'onnx', '--device', 'cuda'], { env, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend: string; extracted: number };
    expect(res.backend).toMatch(/^onnxruntime cpu \(\d+ threads?\)$/);
    expect(res.extracted).toBe(3);
    const said = r.stderr.split('\n').filter((l) => l.includes('CUDA execution provider'));
    expect(said, r.stderr).toHaveLength(1);
    expect(said[0]).toMatch(/CUDA execution provider could not load: .+; running on CPU \(\d+ threads?\)$/);
    // ONNX Runtime's own log line for the failed provider is not printed beside it
    expect(r.stderr).not.toMatch(/provider_bridge_ort|\[E:onnxruntime/);
    const bad = await runCli(['features', '--workspace', dir, '--device', 'gpu']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--device must be one of auto, cuda, cpu, got 'gpu'");
  }, 180_000);

  it.skipIf(!hasOrt)('auto picks the CPU here without a warning (the features command, default device)', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 2);
    const dir = ws.dir;
    ws.close();
    const r = await runCli(['features', '--workspace', dir, '--runtime', 'onnx'], { env: { CARSTUDIO_MODEL_CACHE: cache, CARSTUDIO_ORT_DEVICE: '' }, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend: string };
    if (cudaInstalled) expect(res.backend).toMatch(/^onnxruntime (cuda|cpu \(\d+ threads?\))$/);
    else {
      expect(res.backend).toMatch(/^onnxruntime cpu \(\d+ threads?\)$/);
      expect(r.stderr).not.toMatch(/CUDA|onnxruntime.*error/i);
    }
  }, 180_000);
});
