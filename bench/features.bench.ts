import fs from 'node:fs';
import path from 'node:path';
import { extractFeatures, mobilenetExtractor, type FeatureExtractor } from '../src-main/engine/filter/extract.ts';
import { ortAvailable } from '../src-main/engine/ml/ort.ts';
import type { Benchmark } from './index.ts';

const PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos');
const N = 200;

/**
 * MobileNetV2 feature extraction (extractFeatures, decode included) on ONNX Runtime against
 * tfjs, the same 200 real photos through each in one run: the ratio is what to read.
 */
export const featuresBench: Benchmark = {
  name: 'features',
  description: `mobilenet_v2 feature extraction images/s (decode included) on ${N} real photos: ONNX Runtime vs tfjs, as a ratio`,
  async run() {
    if (!fs.existsSync(path.join(PHOTOS, 'good')) || !fs.existsSync(path.join(PHOTOS, 'bad'))) {
      console.log(`features: skipped, ${PHOTOS} is absent`);
      return { skipped: `${PHOTOS} is absent` };
    }
    const pick = (sub: string, n: number) =>
      fs
        .readdirSync(path.join(PHOTOS, sub))
        .filter((f) => f.endsWith('.jpg'))
        .sort()
        .slice(0, n)
        .map((f) => path.join(PHOTOS, sub, f));
    const files = [...pick('good', N / 2), ...pick('bad', N / 2)];
    const inputs = files.map((data, id) => ({ id, data }));
    const runtimes: Array<'tfjs' | 'onnx'> = ortAvailable() ? ['tfjs', 'onnx'] : ['tfjs'];
    if (runtimes.length === 1) console.log('features: onnxruntime-node is not installed, tfjs only');
    const out: Record<string, unknown> = { photos: files.length };
    const rows: Record<string, Float32Array> = {};
    for (const runtime of runtimes) {
      const t0 = performance.now();
      const ex: FeatureExtractor & { backend: string } = await mobilenetExtractor({ runtime, log: (_l, m) => console.log(`  ${m}`) });
      const loadS = (performance.now() - t0) / 1000;
      await extractFeatures(inputs.slice(0, 16), { batchSize: 16 }, ex); // warm-up: first-call allocations
      const r = await extractFeatures(inputs, { batchSize: 16 }, ex);
      rows[runtime] = r.features;
      const modelRate = r.stats.done / r.stats.inferSeconds;
      console.log(
        `${runtime} (${ex.backend}): ${r.stats.imagesPerSecond.toFixed(1)} images/s decode included, ${modelRate.toFixed(1)} images/s in the model alone, ` +
          `waited ${r.stats.waitSeconds.toFixed(1)} s for decode; load ${loadS.toFixed(1)} s`,
      );
      out[`${runtime}ImagesPerSec`] = r.stats.imagesPerSecond;
      out[`${runtime}ModelImagesPerSec`] = modelRate;
      out[`${runtime}Backend`] = ex.backend;
    }
    if (rows.onnx && rows.tfjs) {
      let maxAbs = 0;
      for (let i = 0; i < rows.onnx.length; i++) maxAbs = Math.max(maxAbs, Math.abs(rows.onnx[i]! - rows.tfjs[i]!));
      const ratio = (out.onnxImagesPerSec as number) / (out.tfjsImagesPerSec as number);
      console.log(`onnx / tfjs: ${ratio.toFixed(2)}x images/s decode included (max |feature difference| ${maxAbs.toExponential(1)})`);
      Object.assign(out, { onnxOverTfjs: ratio, maxAbsFeatureDiff: maxAbs });
    }
    return out;
  },
};
