import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FeatureCache } from '../src-main/engine/filter/feature-cache.ts';
import { extractFeatures, defaultExtractor } from '../src-main/engine/filter/extract.ts';
import { SvmClassifier, crossValDecision } from '../src-main/engine/filter/svm.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import type { Benchmark } from './index.ts';
import { filterLevers } from './filter-levers.ts';

const PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos');

export const filterBench: Benchmark = {
  name: 'filter',
  description: 'the junk filter levers on the 1,321 labelled listing photos (extractor, 3-crop, car crop, detector, standardisation, nested C, margin: bad removed at 1% of good lost) and each extractor\'s images/s; feature extraction images/s (decode included), SVM fit + 10-fold CV on 500 labels, SVM scoring (reference loop vs blocked JS vs ONNX Runtime, projected to 1M cached vectors), feature-cache batch reads',
  async run() {
    const out: Record<string, unknown> = {};
    if (fs.existsSync(PHOTOS)) {
      console.log('junk filter levers (10-fold CV on ../shared/data/listing-photos; bad removed at <= 1% of good lost):');
      const levers = await filterLevers();
      out.levers = levers.rows;
      out.extractorImagesPerSec = levers.throughput;
    } else console.log(`junk filter levers: skipped, ${PHOTOS} is absent`);
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
    // scoring, as filter apply does (batches of 4,096 cached vectors), on 20,480 synthetic
    // 1280-d vectors, with the model fitted above and with one of 1,000 support vectors (fitted on
    // 1,000 random rows with random labels): today's reference loop (decisionValues, on the first
    // 2,048 rows: it is the slow one), the blocked JS scorer (first 8,192) and ONNX Runtime (all),
    // as rows/s and ratios measured in this run
    const rnd = mulberry32(2);
    const rowsAll = 5 * 4096;
    const vecs = Float32Array.from({ length: rowsAll * 1280 }, () => rnd());
    const big = await SvmClassifier.fit(
      { data: vecs.subarray(0, 1000 * 1280), rows: 1000, cols: 1280 },
      Array.from({ length: 1000 }, () => (rnd() < 0.5 ? 1 : 0)),
    );
    const timeScorer = async (s: { score(X: Float32Array, rows: number): Promise<Float64Array> }, rows: number) => {
      await s.score(vecs, 64); // warm-up
      const t0 = performance.now();
      const parts: Float64Array[] = [];
      for (let i = 0; i < rows; i += 4096) parts.push(await s.score(vecs.subarray(i * 1280, Math.min(rows, i + 4096) * 1280), Math.min(4096, rows - i)));
      const secs = (performance.now() - t0) / 1000;
      const all = new Float64Array(rows);
      parts.forEach((p, k) => all.set(p, k * 4096));
      return { rate: rows / secs, values: all };
    };
    const scoring: Record<string, unknown>[] = [];
    for (const clf of [model, big]) {
      const sv = clf.nSupport[0] + clf.nSupport[1];
      const refRows = 2048;
      t = performance.now();
      const refValues = clf.decisionValues({ data: vecs.subarray(0, refRows * 1280), rows: refRows, cols: 1280 });
      const refRate = refRows / ((performance.now() - t) / 1000);
      const worst = (v: Float64Array) => {
        let w = 0;
        for (let i = 0; i < refRows; i++) w = Math.max(w, Math.abs(v[i] - refValues[i]) / Math.max(1e-6 * Math.abs(refValues[i]), 1e-9));
        return w;
      };
      const rates: Record<string, number> = { reference: refRate };
      console.log(`SVM scoring (${sv} support vectors x 1280 dims): reference loop ${refRate.toFixed(0)} rows/s over ${refRows} rows`);
      const js = await clf.scorer({ backend: 'js' });
      const jsr = await timeScorer(js, 4 * 2048);
      await js.close();
      rates.js = jsr.rate;
      console.log(`  ${js.backend}: ${jsr.rate.toFixed(0)} rows/s over ${4 * 2048} rows, ${(jsr.rate / refRate).toFixed(1)}x the reference (worst deviation ${worst(jsr.values).toExponential(1)} of the tolerance)`);
      const auto = await clf.scorer({ onFallback: (why) => console.log(`  ONNX Runtime: skipped, ${why}`) });
      if (auto.backend !== js.backend) {
        const o = await timeScorer(auto, rowsAll);
        rates.onnx = o.rate;
        console.log(
          `  ${auto.backend}: ${o.rate.toFixed(0)} rows/s over ${rowsAll} rows, ${(o.rate / refRate).toFixed(1)}x the reference, ${(o.rate / jsr.rate).toFixed(1)}x blocked JS (worst deviation ${worst(o.values).toExponential(1)} of the tolerance)`,
        );
      }
      await auto.close();
      const rate = rates.onnx ?? rates.js;
      console.log(`  filter apply scores with ${auto.backend}: 1,000,000 vectors ~ ${(1e6 / rate / 60).toFixed(1)} min (reference loop: ${(1e6 / refRate / 60).toFixed(1)} min)`);
      scoring.push({ supportVectors: sv, backend: auto.backend, rowsPerSec: rates, projected1MSeconds: 1e6 / rate });
    }
    out.scoring = scoring;
    out.scoreVectorsPerSec = (scoring[0].rowsPerSec as Record<string, number>).onnx ?? (scoring[0].rowsPerSec as Record<string, number>).js;
    out.projected1MSeconds = scoring[0].projected1MSeconds;

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
