// Batched SVM scoring (SvmClassifier.scorer): the blocked-JS and ONNX Runtime backends against
// the reference SvmClassifier.decisionValues, on the scikit-learn fixture (see filter-svm.test.ts)
// and on a real-sized random model (1,000 support vectors x 1,280 dims), including rows equal to
// a support vector (where ||x||^2 + ||sv||^2 - 2 x·sv cancels) and batch sizes that are not
// multiples of the blocks.
import { describe, expect, it } from 'vitest';
import { SvmClassifier, type FeatureMatrix } from '../src-main/engine/filter/svm.ts';
import type { SvmScorer } from '../src-main/engine/filter/svm-scorer.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';
import { hasOrt } from './helpers/onnx.ts';
import { svmFixture } from './helpers/svm-fixture.ts';

const fixture = svmFixture();

if (!hasOrt) console.log('filter-svm-batch: the ONNX Runtime half is skipped: onnxruntime-node is not installed');
const backends: Array<'js' | 'onnx'> = hasOrt ? ['js', 'onnx'] : ['js'];

/** Every value within 1e-6 relative of the reference, or 1e-9 absolute near 0. */
function expectClose(got: Float64Array, want: Float64Array): void {
  expect(got).toBeInstanceOf(Float64Array);
  expect(got.length).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i] - want[i]) / Math.max(1e-6 * Math.abs(want[i]), 1e-9);
    if (!(excess <= worst)) {
      worst = excess;
      at = i;
    }
  }
  if (!(worst <= 1)) throw new Error(`row ${at}: ${got[at]} vs reference ${want[at]}`);
}

/** A model from its parts, through libsvm's text format (as SvmClassifier.fit stores it). */
function makeModel(sv: Float64Array, coef: Float64Array, dim: number, gamma: number, rho: number): SvmClassifier {
  const n = coef.length;
  const half = Math.floor(n / 2);
  const lines = ['svm_type c_svc', 'kernel_type rbf', `gamma ${gamma}`, 'nr_class 2', `total_sv ${n}`, `rho ${rho}`, 'label 0 1', `nr_sv ${half} ${n - half}`, 'SV'];
  for (let k = 0; k < n; k++) {
    const parts = [String(coef[k])];
    for (let j = 0; j < dim; j++) parts.push(`${j + 1}:${sv[k * dim + j]}`);
    lines.push(parts.join(' '));
  }
  return SvmClassifier.deserialize(JSON.stringify({ format: 'carstudio-rbf-svc/1', gamma, C: 1, dim, sign: -1, libsvm: lines.join('\n') + '\n' }));
}

function randomModel(seed: number, nsv: number, dim: number, offset = 0, spread = 1): SvmClassifier {
  const rnd = mulberry32(seed);
  const sv = Float64Array.from({ length: nsv * dim }, () => offset + spread * rnd());
  const coef = Float64Array.from({ length: nsv }, (_, k) => (k < nsv / 2 ? 1 : -1) * rnd());
  // gamma='scale' for uniform features: 1 / (dim * spread^2 / 12)
  return makeModel(sv, coef, dim, 12 / (dim * spread * spread), rnd() - 0.5);
}

/** `rows` random rows like the model's support vectors, the first `copies` of them equal to support vectors. */
function queries(model: SvmClassifier, seed: number, rows: number, copies: number, offset = 0, spread = 1): Float64Array {
  const rnd = mulberry32(seed);
  const d = model.dim;
  const X = Float64Array.from({ length: rows * d }, () => offset + spread * rnd());
  const nsv = model.dualCoef.length;
  for (let i = 0; i < copies; i++) {
    const k = (i * 7919) % nsv;
    X.set(model.supportVectors.subarray(k * d, (k + 1) * d), i * d);
  }
  return X;
}

async function withScorer<T>(model: SvmClassifier, backend: 'js' | 'onnx', fn: (s: SvmScorer) => Promise<T>, chunkRows?: number): Promise<T> {
  const s = await model.scorer({ backend, chunkRows });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

describe('batched SVM scoring matches decisionValues', () => {
  for (const backend of backends) {
    describe(backend, () => {
      for (const c of fixture.cases) {
        it(`scikit-learn fixture ${c.name}: training rows, held-out rows and the support vectors themselves`, async () => {
          const X: FeatureMatrix = { data: Float64Array.from(c.X), rows: c.rows, cols: c.cols };
          const model = await SvmClassifier.fit(X, c.y);
          const nsv = model.dualCoef.length;
          await withScorer(model, backend, async (s) => {
            expect(s.backend).toMatch(backend === 'js' ? /^js/ : /^onnxruntime cpu/);
            expectClose(await s.score(X.data, X.rows), model.decisionValues(X));
            const Xt = Float64Array.from(c.Xtest);
            expectClose(await s.score(Xt, c.testRows), model.decisionValues({ data: Xt, rows: c.testRows, cols: c.cols }));
            expectClose(await s.score(model.supportVectors, nsv), model.decisionValues({ data: model.supportVectors, rows: nsv, cols: c.cols }));
            // Float32 input (what the feature cache holds) scores as the same values in float64
            const f32 = Float32Array.from(c.Xtest);
            expectClose(await s.score(f32, c.testRows), model.decisionValues({ data: f32, rows: c.testRows, cols: c.cols }));
          });
        });
      }

      it('1,000 support vectors x 1,280 dims, rows equal to support vectors included', async () => {
        const model = randomModel(11, 1000, 1280);
        const X = queries(model, 12, 150, 5);
        const want = model.decisionValues({ data: X, rows: 150, cols: 1280 });
        await withScorer(model, backend, async (s) => expectClose(await s.score(X, 150), want));
      });

      it('features far from the origin relative to their spread (the cancellation-prone case)', async () => {
        // non-negative "pooled" features: mean 4, spread 0.05, so ||x||^2 is ~1e4 times ||x - sv||^2
        const model = randomModel(21, 300, 1280, 4, 0.05);
        const X = queries(model, 22, 40, 8, 4, 0.05);
        // and rows a hair from a support vector
        const rnd = mulberry32(23);
        for (let j = 0; j < 1280; j++) X[8 * 1280 + j] = model.supportVectors[j] + 1e-7 * (rnd() - 0.5);
        const want = model.decisionValues({ data: X, rows: 40, cols: 1280 });
        await withScorer(model, backend, async (s) => expectClose(await s.score(X, 40), want));
      });

      it('empty input, a single row, and batch sizes off the block sizes (odd support-vector count)', async () => {
        const model = randomModel(31, 7, 33);
        const X = queries(model, 32, 131, 3);
        const want = model.decisionValues({ data: X, rows: 131, cols: 33 });
        await withScorer(
          model,
          backend,
          async (s) => {
            expect(Array.from(await s.score(new Float32Array(0), 0))).toEqual([]);
            for (const rows of [1, 3, 5, 63, 64, 65, 130, 131]) {
              expectClose(await s.score(X.subarray(0, rows * 33), rows), want.subarray(0, rows));
            }
            // rows below what X holds: only the first rows are scored
            expectClose(await s.score(X, 2), want.subarray(0, 2));
            await expect(s.score(X.subarray(0, 32), 1)).rejects.toThrow(/cannot hold 1 rows of 33/);
          },
          50,
        );
      });
    });
  }

  it(`'auto' picks ${hasOrt ? 'ONNX Runtime' : 'JS (onnxruntime-node is absent)'}`, async () => {
    const model = randomModel(41, 10, 16);
    const reasons: string[] = [];
    const s = await model.scorer({ onFallback: (why) => reasons.push(why) });
    try {
      if (hasOrt) {
        expect(s.backend).toMatch(/^onnxruntime cpu \(\d+ threads?\)$/);
        expect(reasons).toEqual([]);
      } else {
        expect(s.backend).toBe('js blocked');
        expect(reasons).toEqual(['onnxruntime-node is not installed']);
      }
      const X = queries(model, 42, 9, 1);
      expectClose(await s.score(X, 9), model.decisionValues({ data: X, rows: 9, cols: 16 }));
    } finally {
      await s.close();
    }
  });
});
