import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FeatureCache } from '../src-main/engine/filter/feature-cache.ts';
import { extractFeatures, defaultExtractor } from '../src-main/engine/filter/extract.ts';
import { SvmClassifier, crossValDecision } from '../src-main/engine/filter/svm.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import type { Benchmark } from './index.ts';

const PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos');

export const filterBench: Benchmark = {
  name: 'filter',
  description: 'feature extraction images/s (decode included), SVM fit + 10-fold CV on 500 labels, scoring 1M cached feature vectors, feature-cache batch reads',
  async run() {
    const out: Record<string, unknown> = {};
    const ex = await defaultExtractor();
    let X: Float32Array;
    let y: number[];
    if (fs.existsSync(PHOTOS)) {
      const pick = (sub: string, n: number) => fs.readdirSync(path.join(PHOTOS, sub)).sort().slice(0, n).map((f) => path.join(PHOTOS, sub, f));
      const files = [...pick('good', 250), ...pick('bad', 250)];
      const r = await extractFeatures(files.map((data, id) => ({ id, data })), { batchSize: 16 }, ex);
      console.log(`feature extraction (mobilenet_v2 on ${ex.backend}, decode included): ${r.stats.imagesPerSecond.toFixed(1)} images/s over ${files.length} real photos (target >= 20/s)`);
      out.extractImagesPerSec = r.stats.imagesPerSecond;
      X = r.features;
      y = r.ids.map((id) => (id < 250 ? 1 : 0));
    } else {
      console.log(`feature extraction: skipped, ${PHOTOS} is absent; SVM timings use random features`);
      const rnd = mulberry32(1);
      X = Float32Array.from({ length: 500 * 1280 }, () => rnd());
      y = Array.from({ length: 500 }, (_, i) => (i < 250 ? 1 : 0));
    }
    const M = { data: X, rows: y.length, cols: 1280 };
    let t = performance.now();
    const model = await SvmClassifier.fit(M, y);
    await crossValDecision(M, y, 10, 0);
    const fitCv = (performance.now() - t) / 1000;
    console.log(`SVM fit + 10-fold CV on ${y.length} labels: ${fitCv.toFixed(2)} s`);
    out.svmFitCvSeconds = fitCv;
    // scoring, as filter apply does (chunks of 4096 cached vectors): the rate is measured on 16k
    // vectors and projected to 1M (an RBF SVM costs support vectors x dims per vector)
    const rnd = mulberry32(2);
    const chunk = Float32Array.from({ length: 4096 * 1280 }, () => rnd());
    const measured = 4 * 4096;
    t = performance.now();
    for (let done = 0; done < measured; done += 4096) model.decisionValues({ data: chunk, rows: 4096, cols: 1280 });
    const scoreS = (performance.now() - t) / 1000;
    const rate = measured / scoreS;
    const sv = model.nSupport[0] + model.nSupport[1];
    console.log(`scoring cached feature vectors (${sv} support vectors): ${rate.toFixed(0)} vectors/s; 1,000,000 vectors ~ ${(1e6 / rate / 60).toFixed(1)} min`);
    out.scoreVectorsPerSec = rate;
    out.projected1MSeconds = 1e6 / rate;

    // reading the feature cache as filter apply (batches of 4,096 ids) and heads training (64
    // random rows a step) do, against loading the whole cache, on 50k cached 1280-d rows
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-cache-bench-'));
    try {
      const n = 50_000;
      const cache = await FeatureCache.open(dir, 'bench', 1280);
      for (let s = 0; s < n; s += 10_000) await cache.append(Array.from({ length: 10_000 }, (_, i) => s + i + 1), new Float32Array(10_000 * 1280).fill(s));
      t = performance.now();
      await cache.readAll();
      const all = performance.now() - t;
      const ids = Array.from({ length: 4096 }, (_, i) => 1 + ((i * 7919) % n));
      t = performance.now();
      await cache.read(ids);
      const batch = performance.now() - t;
      const rows = await cache.rows(Array.from({ length: n }, (_, i) => i + 1));
      const buf = new Float32Array(64 * 1280);
      t = performance.now();
      for (let k = 0; k < 200; k++) rows.gather(Array.from({ length: 64 }, (_, j) => (k * 1987 + j * 977) % n), buf);
      const gather = (performance.now() - t) / 200;
      rows.close();
      console.log(
        `feature cache (${n} rows): whole cache ${all.toFixed(0)} ms; a 4,096-id batch ${batch.toFixed(0)} ms (${(all / batch).toFixed(1)}x less); 64 random rows ${gather.toFixed(2)} ms`,
      );
      Object.assign(out, { cacheReadAllMs: all, cacheBatch4096Ms: batch, cacheGather64Ms: gather });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return out;
  },
};
