/**
 * Predict figures: images/s of the predict path (sharp decode + MobileNetV2 + heads, batches of 16,
 * decode of the next batch overlapped with inference as the job does) over ~100 real photos on the
 * backend in use, against the decode alone and the model alone measured in the same run; and, where
 * onnxruntime-node is installed, the MobileNetV2 on ONNX Runtime against tfjs as a ratio (two
 * alternating rounds each, the better of each kept).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ortAvailable } from '../src-main/engine/ml/ort.ts';
import { loadPredictor, type Predictor } from '../src-main/engine/predict/model-loader.ts';
import { decodeImage, type DecodedImage } from '../src-main/engine/predict/decode-file.ts';
import { buildHeadsRun } from '../tests/helpers/predict-run.ts';
import type { Benchmark } from './index.ts';

const GOOD = path.resolve(import.meta.dirname, '../../shared/data/listing-photos/good');

export const predictBench: Benchmark = {
  name: 'predict',
  description: 'prediction images/s (decode included) over ~100 real photos on the backend in use',
  async run() {
    if (!fs.existsSync(GOOD)) {
      console.log(`${GOOD} is absent: skipped`);
      return { skipped: true };
    }
    const files = fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort().filter((_, i) => i % 7 === 0).slice(0, 100).map((f) => path.join(GOOD, f));
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-predict-bench-'));
    try {
      const runDir = await buildHeadsRun(ws, 'bench', { synthetic: true, photos: 64, steps: 10 });
      const p = await loadPredictor(runDir);
      const B = 16;
      const per = 224 * 224 * 3;
      const buf = new Float32Array(B * per);
      // decode only (all cores through libuv)
      const t = performance.now();
      const decoded = await Promise.all(files.map((f) => decodeImage(f)));
      const decodeRate = files.length / ((performance.now() - t) / 1000);
      /** Images/s of the model alone (inputs decoded beforehand). */
      const modelOnly = async (pr: Predictor, inputs: DecodedImage[]): Promise<number> => {
        const t0 = performance.now();
        for (let i = 0; i < inputs.length; i += B) {
          const n = Math.min(B, inputs.length - i);
          for (let j = 0; j < n; j++) buf.set(inputs[i + j].input, j * per);
          await pr.predictInputs(buf, n);
        }
        return inputs.length / ((performance.now() - t0) / 1000);
      };
      /** Images/s end to end, decode of batch k+1 overlapped with inference of batch k. */
      const endToEnd = async (pr: Predictor): Promise<number> => {
        const t0 = performance.now();
        let next = Promise.all(files.slice(0, B).map((f) => decodeImage(f)));
        for (let i = 0; i < files.length; i += B) {
          const cur = await next;
          next = Promise.all(files.slice(i + B, i + 2 * B).map((f) => decodeImage(f)));
          cur.forEach((d, j) => buf.set(d.input, j * per));
          await pr.predictInputs(buf, cur.length);
        }
        return files.length / ((performance.now() - t0) / 1000);
      };
      const modelRate = await modelOnly(p, decoded);
      const e2e = await endToEnd(p);
      p.dispose();
      const out: Record<string, unknown> = {
        backend: p.backendName,
        runtime: p.runtime,
        note: p.backend.note,
        images: files.length,
        imagesPerSec: +e2e.toFixed(2),
        decodeOnlyPerSec: +decodeRate.toFixed(2),
        modelOnlyPerSec: +modelRate.toFixed(2),
        cores: os.cpus().length,
      };
      console.log(`backend ${out.backend}: ${out.imagesPerSec} images/s end to end (decode alone ${out.decodeOnlyPerSec}/s, model alone ${out.modelOnlyPerSec}/s; ${out.cores} cores, ${files.length} photos)`);
      if (!ortAvailable()) {
        console.log('onnxruntime-node is not installed: the ONNX Runtime against tfjs comparison is skipped');
        return out;
      }
      const onnx = await loadPredictor(runDir, { runtime: 'onnx' });
      const tfjs = await loadPredictor(runDir, { runtime: 'tfjs' });
      try {
        const best = { onnx: { e2e: 0, model: 0 }, tfjs: { e2e: 0, model: 0 } };
        for (let round = 0; round < 2; round++) {
          for (const [name, pr] of [['tfjs', tfjs], ['onnx', onnx]] as const) {
            best[name].model = Math.max(best[name].model, await modelOnly(pr, decoded));
            best[name].e2e = Math.max(best[name].e2e, await endToEnd(pr));
          }
        }
        const ratio = best.onnx.e2e / best.tfjs.e2e;
        out.runtimes = {
          onnx: { backend: onnx.backendName, imagesPerSec: +best.onnx.e2e.toFixed(2), modelOnlyPerSec: +best.onnx.model.toFixed(2) },
          tfjs: { backend: tfjs.backendName, imagesPerSec: +best.tfjs.e2e.toFixed(2), modelOnlyPerSec: +best.tfjs.model.toFixed(2) },
        };
        out.onnxVsTfjs = +ratio.toFixed(2);
        out.onnxVsTfjsModelOnly = +(best.onnx.model / best.tfjs.model).toFixed(2);
        console.log(
          `${onnx.backendName}: ${best.onnx.e2e.toFixed(2)} images/s end to end (model alone ${best.onnx.model.toFixed(2)}/s) vs ${tfjs.backendName}: ${best.tfjs.e2e.toFixed(2)} (${best.tfjs.model.toFixed(2)}/s): ${ratio.toFixed(2)}x end to end, ${(best.onnx.model / best.tfjs.model).toFixed(2)}x model alone`,
        );
      } finally {
        onnx.dispose();
        tfjs.dispose();
      }
      return out;
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
    }
  },
};
