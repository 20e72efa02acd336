/**
 * Predict figures on 500 real photos (whole cars and details from listing-photos, labelled-cars):
 * images/s of the predict path (sharp decode + MobileNetV2 + heads, batches of 16, decode of the
 * next batch overlapped with inference as the job does) on the backend in use, against the decode
 * alone (all 500) and the model alone (the first 100, decoded beforehand) measured in the same run;
 * and, where onnxruntime-node is installed, the MobileNetV2 on ONNX Runtime against tfjs end to end
 * on the same 500 as a ratio (one round each, the machine load printed beside it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ortAvailable } from '../src-main/engine/ml/ort.ts';
import { loadPredictor, type Predictor } from '../src-main/engine/predict/model-loader.ts';
import { decodeImage, type DecodedImage } from '../src-main/engine/predict/decode-file.ts';
import { buildHeadsRun } from '../tests/helpers/predict-run.ts';
import type { Benchmark } from './index.ts';

const DATA = path.resolve(import.meta.dirname, '../../shared/data');
const GOOD = path.join(DATA, 'listing-photos/good');
const N = 500;

/** `n` .jpg files of `dir`, evenly spaced in name order. */
function spread(dir: string, n: number): string[] {
  if (!fs.existsSync(dir)) return [];
  const all = fs.readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort();
  const step = Math.max(1, all.length / n);
  return Array.from({ length: Math.min(n, all.length) }, (_, i) => path.join(dir, all[Math.floor(i * step)]!));
}

export const predictBench: Benchmark = {
  name: 'predict',
  description: `prediction images/s (decode included) over ${N} real photos on the backend in use; ONNX Runtime vs tfjs as a ratio`,
  async run() {
    if (!fs.existsSync(GOOD)) {
      console.log(`${GOOD} is absent: skipped`);
      return { skipped: true };
    }
    const labelled = spread(path.join(DATA, 'labelled-cars'), 200);
    const files = [...spread(GOOD, N - 100 - labelled.length), ...spread(path.join(DATA, 'listing-photos/bad'), 100), ...labelled];
    console.log(`${files.length} photos; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-predict-bench-'));
    try {
      const runDir = await buildHeadsRun(ws, 'bench', { synthetic: true, photos: 64, steps: 10 });
      const p = await loadPredictor(runDir);
      const B = 16;
      const per = 224 * 224 * 3;
      const buf = new Float32Array(B * per);
      // decode only (all cores through libuv)
      const t = performance.now();
      const decoded: DecodedImage[] = [];
      for (let i = 0; i < files.length; i += 50) {
        const part = await Promise.all(files.slice(i, i + 50).map((f) => decodeImage(f)));
        if (decoded.length < 100) decoded.push(...part.slice(0, 100 - decoded.length));
      }
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
      const out: Record<string, unknown> = {
        backend: p.backendName,
        runtime: p.runtime,
        note: p.backend.note,
        images: files.length,
        decodeOnlyPerSec: +decodeRate.toFixed(2),
        cores: os.cpus().length,
        loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
      };
      if (!ortAvailable()) {
        out.modelOnlyPerSec = +(await modelOnly(p, decoded)).toFixed(2);
        out.imagesPerSec = +(await endToEnd(p)).toFixed(2);
        p.dispose();
        console.log(`backend ${out.backend}: ${out.imagesPerSec} images/s end to end (decode alone ${out.decodeOnlyPerSec}/s, model alone ${out.modelOnlyPerSec}/s; ${out.cores} cores, ${files.length} photos)`);
        console.log('onnxruntime-node is not installed: the ONNX Runtime against tfjs comparison is skipped');
        return out;
      }
      p.dispose();
      const onnx = await loadPredictor(runDir, { runtime: 'onnx' });
      const tfjs = await loadPredictor(runDir, { runtime: 'tfjs' });
      try {
        const got = { onnx: { e2e: 0, model: 0 }, tfjs: { e2e: 0, model: 0 } };
        for (const [name, pr] of [['tfjs', tfjs], ['onnx', onnx]] as const) {
          got[name].model = await modelOnly(pr, decoded);
          got[name].e2e = await endToEnd(pr);
          console.log(`  ${pr.backendName}: ${got[name].e2e.toFixed(2)} images/s end to end, model alone ${got[name].model.toFixed(2)}/s`);
        }
        const ratio = got.onnx.e2e / got.tfjs.e2e;
        out.runtimes = {
          onnx: { backend: onnx.backendName, imagesPerSec: +got.onnx.e2e.toFixed(2), modelOnlyPerSec: +got.onnx.model.toFixed(2) },
          tfjs: { backend: tfjs.backendName, imagesPerSec: +got.tfjs.e2e.toFixed(2), modelOnlyPerSec: +got.tfjs.model.toFixed(2) },
        };
        out.onnxVsTfjs = +ratio.toFixed(2);
        out.onnxVsTfjsModelOnly = +(got.onnx.model / got.tfjs.model).toFixed(2);
        const inUse = p.runtime === 'onnx' ? got.onnx : got.tfjs;
        out.imagesPerSec = +inUse.e2e.toFixed(2);
        out.modelOnlyPerSec = +inUse.model.toFixed(2);
        out.loadAverageAfter = os.loadavg().map((l) => +l.toFixed(2));
        console.log(
          `${onnx.backendName}: ${got.onnx.e2e.toFixed(2)} images/s end to end (model alone ${got.onnx.model.toFixed(2)}/s) vs ${tfjs.backendName}: ${got.tfjs.e2e.toFixed(2)} (${got.tfjs.model.toFixed(2)}/s): ${ratio.toFixed(2)}x end to end (target >= 4x), ${(got.onnx.model / got.tfjs.model).toFixed(2)}x model alone; decode alone ${decodeRate.toFixed(1)}/s`,
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
