/**
 * Predict figures: images/s of the predict path (sharp decode + MobileNetV2 + heads, batches of 16,
 * decode of the next batch overlapped with inference as the job does) over ~100 real photos on the
 * backend in use, against the decode alone and the model alone measured in the same run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPredictor } from '../src-main/engine/predict/model-loader.ts';
import { decodeImage } from '../src-main/engine/predict/decode-file.ts';
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
      // decode only (all cores through libuv)
      let t = performance.now();
      const decoded = await Promise.all(files.map((f) => decodeImage(f)));
      const decodeRate = files.length / ((performance.now() - t) / 1000);
      // model only
      const buf = new Float32Array(B * per);
      t = performance.now();
      for (let i = 0; i < decoded.length; i += B) {
        const n = Math.min(B, decoded.length - i);
        for (let j = 0; j < n; j++) buf.set(decoded[i + j].input, j * per);
        await p.predictInputs(buf, n);
      }
      const modelRate = decoded.length / ((performance.now() - t) / 1000);
      // end to end, decode of batch k+1 overlapped with inference of batch k
      t = performance.now();
      let next = Promise.all(files.slice(0, B).map((f) => decodeImage(f)));
      for (let i = 0; i < files.length; i += B) {
        const cur = await next;
        next = Promise.all(files.slice(i + B, i + 2 * B).map((f) => decodeImage(f)));
        cur.forEach((d, j) => buf.set(d.input, j * per));
        await p.predictInputs(buf, cur.length);
      }
      const e2e = files.length / ((performance.now() - t) / 1000);
      p.dispose();
      const out = { backend: p.backend.name, note: p.backend.note, images: files.length, imagesPerSec: +e2e.toFixed(2), decodeOnlyPerSec: +decodeRate.toFixed(2), modelOnlyPerSec: +modelRate.toFixed(2), cores: os.cpus().length };
      console.log(`backend ${out.backend}: ${out.imagesPerSec} images/s end to end (decode alone ${out.decodeOnlyPerSec}/s, model alone ${out.modelOnlyPerSec}/s; ${out.cores} cores, ${files.length} photos)`);
      return out;
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
    }
  },
};
