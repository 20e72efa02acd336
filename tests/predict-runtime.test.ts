// Prediction with a heads run's MobileNetV2 on ONNX Runtime and on tfjs: the same predictions on
// real photos (or JPEGs made here where the shared photos are absent), in the predictor, the
// predict job and `carstudio predict`, each naming what predicted; --runtime onnx where
// onnxruntime-node cannot be found fails with the message that says how to install it.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { Prediction, PredictRecord } from '../src-main/engine/api/contract/predict.ts';
import { decodeImage } from '../src-main/engine/predict/decode-file.ts';
import { loadPredictor } from '../src-main/engine/predict/model-loader.ts';
import type { PredictJobResult } from '../src-main/engine/predict/predict-job.ts';
import { readRecords } from '../src-main/engine/predict/store.ts';
import { hasOrt } from './helpers/onnx.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';
import { runCli } from './helpers/processes.ts';
import { makeJpeg, SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');
const realPhotos = fs.existsSync(GOOD);
if (!realPhotos) console.log(`predict-runtime: ${GOOD} is absent; using JPEGs made with sharp instead of real photos`);
if (!hasOrt) console.log('predict-runtime: onnxruntime-node is not installed; skipping the ONNX Runtime comparisons (only the missing-runtime error is checked)');

const withoutOrt = {
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(path.join(import.meta.dirname, 'helpers', 'hide-onnxruntime.mjs')).href}`.trim(),
};

/** Same top make/model and year, price bins within 1e-4. */
function expectSame(a: Prediction, b: Prediction): void {
  expect(a.priceBins.map((x) => x.label)).toEqual(b.priceBins.map((x) => x.label));
  a.priceBins.forEach((x, i) => expect(Math.abs(x.p - b.priceBins[i].p)).toBeLessThan(1e-4));
  expect(a.makeModels[0].label).toBe(b.makeModels[0].label);
  expect(a.topYears[0].label).toBe(b.topYears[0].label);
}

describe('predict: the MobileNetV2 on ONNX Runtime or tfjs', () => {
  let wsDir: string;
  let input: string;
  let runDir: string;
  let runId: string;
  let engine: Engine;
  const files: string[] = [];

  beforeAll(async () => {
    const root = tmpDir('carstudio-predict-runtime-');
    wsDir = path.join(root, 'ws');
    engine = Engine.open(wsDir, { create: true });
    runDir = await buildHeadsRun(wsDir, 'runtime-test', { synthetic: true, photos: 64, steps: 20 });
    runId = path.basename(runDir);
    input = path.join(root, 'photos');
    fs.mkdirSync(input);
    if (realPhotos) {
      const goods = fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort();
      for (const f of goods.filter((_, i) => i % 50 === 0).slice(0, 12)) {
        fs.copyFileSync(path.join(GOOD, f), path.join(input, f));
        files.push(path.join(input, f));
      }
    } else {
      for (let i = 0; i < 12; i++) {
        const f = path.join(input, `made-${i}.jpg`);
        fs.writeFileSync(f, await makeJpeg(320 + 16 * i, 240, i + 1));
        files.push(f);
      }
    }
  }, 180_000);
  afterAll(async () => {
    await engine?.close();
  });

  it.runIf(hasOrt)('the predictor gives the same predictions on onnx and tfjs and names its backend', async () => {
    const onnx = await loadPredictor(runDir, { runtime: 'onnx' });
    const tfjs = await loadPredictor(runDir, { runtime: 'tfjs' });
    try {
      expect(onnx.runtime).toBe('onnx');
      expect(onnx.backendName).toMatch(/^onnxruntime (cpu \(\d+ threads?\)|cuda)$/);
      expect(tfjs.runtime).toBe('tfjs');
      expect(tfjs.backendName).toBe(`tfjs ${tfjs.backend.name}`);
      const per = onnx.inputSize * onnx.inputSize * 3;
      const decoded = await Promise.all(files.map((f) => decodeImage(f, { size: onnx.inputSize })));
      const batch = new Float32Array(decoded.length * per);
      decoded.forEach((d, i) => batch.set(d.input, i * per));
      const a = await onnx.predictInputs(batch, decoded.length);
      const b = await tfjs.predictInputs(batch, decoded.length);
      expect(a).toHaveLength(files.length);
      a.forEach((p, i) => expectSame(p, b[i]));
      // the probabilities are the model's, not a constant: the photos differ
      expect(new Set(a.map((p) => p.priceBins.map((x) => x.p.toFixed(6)).join())).size).toBeGreaterThan(1);
    } finally {
      onnx.dispose();
      tfjs.dispose();
    }
  }, 180_000);

  it.runIf(hasOrt)('the predict job logs and returns the runtime it ran on; onnx and tfjs jobs agree', async () => {
    const byRuntime: Record<string, Map<string, PredictRecord>> = {};
    for (const runtime of ['onnx', 'tfjs'] as const) {
      const job = engine.jobs.start('predict', { runId, checkpoint: 'best', input, reuse: false, batchSize: 16, maxPixels: 120_000_000, runtime });
      const final = await engine.jobs.wait(job.id);
      expect(final.state).toBe('done');
      const res = final.result as PredictJobResult;
      expect(res.predicted).toBe(files.length);
      expect(res.runtime).toBe(runtime);
      expect(res.backend).toMatch(runtime === 'onnx' ? /^onnxruntime / : /^tfjs /);
      const header = engine.jobs.logs(job.id).find((l) => l.message.startsWith(`model ${runId}/best`));
      expect(header?.message).toContain(`on ${res.backend} (runtime ${runtime}, asked ${runtime})`);
      byRuntime[runtime] = new Map(readRecords(wsDir, job.id).map((r) => [r.path, r]));
    }
    for (const f of files) expectSame(byRuntime.onnx.get(f)!.prediction!, byRuntime.tfjs.get(f)!.prediction!);
  }, 240_000);

  it.runIf(hasOrt)('carstudio predict --runtime onnx|tfjs names the backend in its JSON records and summary', async () => {
    const out: Record<string, Array<{ path: string; backend?: string; runtime?: string; priceBins: Array<{ p: number }>; makeModels: Array<{ label: string }>; year: number }>> = {};
    for (const runtime of ['onnx', 'tfjs']) {
      const r = await runCli(['predict', '--workspace', wsDir, '--run', runId, '--input', input, '--json', '--fresh', '--runtime', runtime], { timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      out[runtime] = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(out[runtime]).toHaveLength(files.length);
      for (const rec of out[runtime]) expect(rec.runtime).toBe(runtime);
      const backend = out[runtime][0].backend!;
      expect(backend).toMatch(runtime === 'onnx' ? /^onnxruntime / : /^tfjs /);
      expect(r.stderr).toContain(`predicted ${files.length}, errors 0, total ${files.length} on ${backend}`);
    }
    const tf = new Map(out.tfjs.map((r) => [r.path, r]));
    for (const a of out.onnx) {
      const b = tf.get(a.path)!;
      a.priceBins.forEach((x, i) => expect(Math.abs(x.p - b.priceBins[i].p)).toBeLessThan(1e-4));
      expect(a.makeModels[0].label).toBe(b.makeModels[0].label);
      expect(a.year).toBe(b.year);
    }
  }, 300_000);

  it('--runtime onnx without onnxruntime-node fails with what to install (exit 2); auto falls back to tfjs', async () => {
    const r = await runCli(['predict', '--workspace', wsDir, '--run', runId, '--input', input, '--fresh', '--runtime', 'onnx'], { env: withoutOrt, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('the onnx feature runtime needs onnxruntime-node (an optional dependency of CarStudio), which is not installed.');
    expect(r.stderr).toContain('ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install');
    expect(r.stderr).toContain('or use --runtime tfjs.');
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack
    const auto = await runCli(['predict', '--workspace', wsDir, '--run', runId, '--input', input, '--json', '--fresh'], { env: withoutOrt, timeoutMs: 120_000 });
    expect(auto.code, auto.stderr).toBe(0);
    const recs = auto.stdout.trim().split('\n').map((l) => JSON.parse(l) as { runtime?: string; backend?: string });
    expect(recs).toHaveLength(files.length);
    expect(recs.every((x) => x.runtime === 'tfjs' && x.backend?.startsWith('tfjs '))).toBe(true);
  }, 300_000);

  it('--runtime must be onnx, tfjs or auto', async () => {
    const r = await runCli(['predict', '--workspace', wsDir, '--run', runId, '--input', input, '--runtime', 'gpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--runtime must be one of auto, onnx, tfjs, got 'gpu'");
  }, 60_000);
});
