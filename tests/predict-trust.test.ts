// What a prediction knows of its own reliability (Prediction.trust), through the CLI as a user runs it:
// - the distance to the training data: a run's own training photos are near, a noise photo is far
//   (the 'far' warning), the reference is built into the run folder on first use, and a run folder
//   copied away from its workspace still predicts (no filter score, no distance);
// - the junk filter at predict time, on the shared listing photos (skips without them or ONNX
//   Runtime): a car-v1 filter fitted on a few dozen labels, a heads run on labelled cars, and
//   held-out interior/detail photos carry the junk warning where held-out whole-car photos rarely do.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Prediction, PredictionTrust } from '../src-main/engine/api/contract/predict.ts';
import { loadPredictor } from '../src-main/engine/predict/model-loader.ts';
import { OOD_FILES } from '../src-main/engine/predict/trust.ts';
import { appendRecords, CSV_HEAD, exportSet, listSetMetas, readRecords, writeSetMeta } from '../src-main/engine/predict/store.ts';
import { api, startServe } from './helpers/processes.ts';
import { fakePrice } from './helpers/predict-run.ts';
import { hasOrt } from './helpers/onnx.ts';
import { classJpeg, noiseJpeg, trustWorkspace, type TrustWorkspace } from './helpers/trust-fixture.ts';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';

type Line = { path: string; medianPrice: number; binPrice: Prediction['binPrice'] | null; trust: PredictionTrust | null; error?: string };
const lines = (stdout: string): Line[] =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

describe('distance to the training photos', () => {
  let t: TrustWorkspace;
  let runId: number;
  beforeAll(async () => {
    t = await trustWorkspace(12);
    runId = await t.train('ood');
  }, 400_000);
  afterAll(() => fs.rmSync(t.fx, { recursive: true, force: true }));

  it("finds the run's own training photos near and noise photos far, with the 'far' warning in words", { timeout: 240_000 }, async () => {
    const probe = path.join(t.fx, 'probe');
    fs.mkdirSync(probe);
    for (const make of ['audi', 'bmw', 'fiat', 'kia']) fs.copyFileSync(path.join(t.fx, 'img', `${make}-1.jpg`), path.join(probe, `train-${make}.jpg`));
    for (let s = 0; s < 3; s++) fs.writeFileSync(path.join(probe, `noise-${s}.jpg`), await noiseJpeg(100 + s));
    const r = await t.cli(['predict', '--run', String(runId), '--input', probe, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const got = lines(r.stdout);
    expect(got).toHaveLength(7);
    const runDir = path.join(t.ws, 'runs', String(runId));
    expect(fs.existsSync(path.join(runDir, OOD_FILES.data)) && fs.existsSync(path.join(runDir, OOD_FILES.meta))).toBe(true);
    for (const l of got) {
      expect(l.trust?.ood, l.path).toBeTruthy();
      expect(l.trust!.filter).toBeNull(); // no junk filter fitted in this workspace
      expect(l.medianPrice).toBeGreaterThanOrEqual(0);
    }
    const near = got.filter((l) => path.basename(l.path).startsWith('train-'));
    const noise = got.filter((l) => path.basename(l.path).startsWith('noise-'));
    const threshold = near[0]!.trust!.ood!.threshold;
    console.log(
      `predict-trust: threshold ${threshold}; training photos at ${near.map((l) => l.trust!.ood!.distance).join(', ')}; noise at ${noise.map((l) => l.trust!.ood!.distance).join(', ')}`,
    );
    for (const l of near) {
      expect(l.trust!.ood!.far).toBe(false);
      expect(l.trust!.warnings.map((w) => w.code)).not.toContain('far');
    }
    for (const l of noise) {
      expect(l.trust!.ood!.far).toBe(true);
      expect(l.trust!.ood!.distance).toBeGreaterThan(Math.max(...near.map((n) => n.trust!.ood!.distance)));
      const far = l.trust!.warnings.find((w) => w.code === 'far');
      expect(far?.message).toMatch(/^far from the photos this run was trained on \(distance \d\.\d\d, 99% of test photos are within \d\.\d\d\)$/);
    }
    expect(r.stderr).toMatch(/\d+ of 7 photos carry a warning: .*3 far from the training photos/);
  });

  it.runIf(hasOrt)(
    "scores each photo with the workspace's junk filter of another extractor (car-v1 on a mobilenet_v2 run), in the job, the API and the export",
    { timeout: 400_000 },
    async () => {
      const probe = path.join(t.fx, 'probe');
      const good = path.join(t.fx, 'label-good');
      const bad = path.join(t.fx, 'label-bad');
      fs.mkdirSync(good);
      fs.mkdirSync(bad);
      for (const f of fs.readdirSync(path.join(t.fx, 'img')).filter((n) => /-[0-7]\.jpg$/.test(n))) fs.copyFileSync(path.join(t.fx, 'img', f), path.join(good, f));
      for (let s = 0; s < 16; s++) fs.writeFileSync(path.join(bad, `noise-${s}.jpg`), await noiseJpeg(200 + s));
      const label = await t.cli(['label', '--good', good, '--bad', bad]);
      expect(label.code, label.stderr).toBe(0);
      const fit = await t.cli(['filter', 'fit', '--extractor', 'car-v1', '--max-fnr', '0.1', '--json'], 300_000);
      expect(fit.code, fit.stderr).toBe(0);
      const r = await t.cli(['predict', '--run', String(runId), '--input', probe, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const got = lines(r.stdout);
      for (const l of got) expect(l.trust?.filter, l.path).toMatchObject({ extractor: 'car-v1' });
      const junkOf = (prefix: string) => got.filter((l) => path.basename(l.path).startsWith(prefix)).map((l) => l.trust!.filter!.junk);
      expect(junkOf('noise-')).toEqual([true, true, true]);
      expect(junkOf('train-')).toEqual([false, false, false, false]);
      expect(r.stderr).toMatch(/3 not whole-car photos, 3 far from the training photos/);

      // the same through the served API: one photo, and a compare set
      const served = await startServe(['--workspace', t.ws]);
      try {
        const one = (await api(served, 'predict.image', { runId: String(runId), path: path.join(probe, 'noise-0.jpg') })) as { prediction: Prediction };
        expect(one.prediction.trust).toMatchObject({ filter: { extractor: 'car-v1', junk: true }, ood: { far: true } });
        expect(one.prediction.trust!.warnings.map((w) => w.code)).toEqual(expect.arrayContaining(['junk', 'far']));
        const cmp = (await api(served, 'predict.compare', { runId: String(runId), paths: [path.join(probe, 'train-audi.jpg'), path.join(probe, 'noise-0.jpg')] })) as { items: Array<{ prediction: Prediction }> };
        expect(cmp.items.map((i) => i.prediction.trust?.filter?.junk)).toEqual([false, true]);
      } finally {
        await served.stop('SIGKILL');
      }

      // the export: one row per file under the documented header; a record from before trust exports with empty cells
      {
        const jobId = listSetMetas(t.ws)[0]!.jobId;
        const csv = exportSet(t.ws, jobId, 'csv').content.trim().split('\n');
        expect(csv[0]).toBe(CSV_HEAD.join(','));
        expect(csv).toHaveLength(1 + 7);
        const col = (name: string) => CSV_HEAD.indexOf(name);
        const noiseRow = csv.find((l) => l.includes('noise-0.jpg'))!.split(',');
        expect(noiseRow[col('junk')]).toBe('yes');
        expect(noiseRow[col('far')]).toBe('yes');
        expect(noiseRow[col('warning_codes')]).toMatch(/junk;far/);
        expect(Number(noiseRow[col('bins_median')])).toBeGreaterThan(0);
        writeSetMeta(t.ws, { jobId: 99_999, runId: String(runId), checkpoint: 'best', input: probe, createdAt: new Date().toISOString() });
        const old = readRecords(t.ws, jobId)[0]!;
        const { trust: _t, binPrice: _b, calibrated: _c, ...legacy } = old.prediction!;
        appendRecords(t.ws, 99_999, [{ ...old, prediction: legacy }]);
        const oldRow = exportSet(t.ws, 99_999, 'csv').content.trim().split('\n')[1]!.split(',');
        expect(oldRow).toHaveLength(CSV_HEAD.length);
        for (const c of ['bins_median', 'filter_score', 'junk', 'ood_distance', 'far', 'warning_codes']) expect(oldRow[col(c)], c).toBe('');
        expect(oldRow[col('calibrated')]).toBe('no');
      }
    },
  );

  it('predicts from a run folder copied out of its workspace: no filter score, no distance, nothing breaks', { timeout: 120_000 }, async () => {
    const copy = path.join(tmpDir('carstudio-trust-copy-'), 'run');
    fs.cpSync(path.join(t.ws, 'runs', String(runId)), copy, { recursive: true });
    fs.rmSync(path.join(copy, OOD_FILES.data));
    fs.rmSync(path.join(copy, OOD_FILES.meta));
    const p = await loadPredictor(copy, { runtime: 'tfjs', log: () => undefined });
    try {
      const d = await p.decodePhoto(await classJpeg(0, 3));
      const [pred] = await p.predictPhotos([d]);
      expect(pred!.trust).toBeTruthy();
      expect(pred!.trust!.filter).toBeNull();
      expect(pred!.trust!.ood).toBeNull();
      expect(pred!.medianPrice).toBeGreaterThanOrEqual(0);
    } finally {
      p.dispose();
    }
  });
});

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const LABELLED = path.join(SHARED_DATA, 'labelled-cars');
const haveShared = fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad')) && fs.existsSync(path.join(LABELLED, 'labels.csv'));
if (!haveShared) console.log(`predict-trust: ${PHOTOS} or ${LABELLED} is absent, skipping the junk-warning test`);
else if (!hasOrt) console.log('predict-trust: onnxruntime-node is not installed, skipping the junk-warning test (car-v1 on tfjs alone is too slow here)');

/** Every k-th of the sorted names from offset, n of them. */
const pick = (names: string[], n: number, offset: number, k: number): string[] => names.filter((_, i) => i % k === offset).slice(0, n);

describe.skipIf(!haveShared || !hasOrt)('the junk warning on the shared listing photos', () => {
  it('held-out interior/detail photos carry the junk warning, held-out whole-car photos rarely; no negative price, the bins\' price on every photo', { timeout: 900_000 }, async () => {
    const root = tmpDir('carstudio-trust-junk-');
    const env = { CARSTUDIO_MODEL_CACHE: tmpDir('carstudio-trust-models-') };
    const good = fs.readdirSync(path.join(PHOTOS, 'good')).filter((f) => f.endsWith('.jpg')).sort();
    const bad = fs.readdirSync(path.join(PHOTOS, 'bad')).filter((f) => f.endsWith('.jpg')).sort();
    // labels: every 8th photo; held out: other photos of each kind
    const copy = (from: string, names: string[], to: string) => {
      fs.mkdirSync(to, { recursive: true });
      for (const n of names) fs.copyFileSync(path.join(from, n), path.join(to, n));
    };
    copy(path.join(PHOTOS, 'good'), pick(good, 80, 0, 8), path.join(root, 'label', 'good'));
    copy(path.join(PHOTOS, 'bad'), pick(bad, 60, 0, 8), path.join(root, 'label', 'bad'));
    copy(path.join(PHOTOS, 'good'), pick(good, 30, 4, 8), path.join(root, 'held', 'good'));
    copy(path.join(PHOTOS, 'bad'), pick(bad, 30, 4, 8), path.join(root, 'held', 'bad'));
    // a few dozen labelled cars with made-up prices for the run, and 20 others held out
    const rows = fs.readFileSync(path.join(LABELLED, 'labels.csv'), 'utf8').trim().split('\n').slice(1);
    const cars = pick(rows, 60, 0, 15).map((l) => l.split(','));
    copy(LABELLED, pick(rows, 20, 7, 15).map((l) => l.split(',')[0]!), path.join(root, 'held', 'labelled'));
    const manifest = ['image,price,make,model,year', ...cars.map((c) => [path.join(LABELLED, c[0]!), fakePrice(c[1]!, Number(c[3]) || null), c[1], c[2], c[3]].join(','))];
    fs.writeFileSync(path.join(root, 'cars.csv'), manifest.join('\n') + '\n');

    const { runCli } = await import('./helpers/processes.ts');
    const ws = path.join(root, 'ws');
    const cli = async (args: string[], timeoutMs = 600_000) => {
      const r = await runCli([...args, '--workspace', ws], { env, timeoutMs });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r;
    };
    await runCli(['label', '--workspace', ws, '--create', '--good', path.join(root, 'label', 'good'), '--bad', path.join(root, 'label', 'bad')], { env, timeoutMs: 240_000 });
    const fit = JSON.parse((await cli(['filter', 'fit', '--json', '--max-fnr', '0.05'])).stdout) as { modelId?: number; threshold: number; cvBadRemoved: number };
    await cli(['import', '--manifest', path.join(root, 'cars.csv')]);
    await cli(['train', '--mode', 'heads', '--steps', '40', '--eval-every', '20', '--checkpoint-every', '20', '--test-fraction', '0.3', '--split', 'photo', '--batch-size', '16', '--json']);
    const r = await cli(['predict', '--input', path.join(root, 'held'), '--json']);
    const got = lines(r.stdout);
    expect(got).toHaveLength(80);
    for (const l of got) {
      expect(l.error, l.path).toBeUndefined();
      expect(l.medianPrice, l.path).toBeGreaterThanOrEqual(0);
      expect(l.binPrice, l.path).toBeTruthy();
      expect(l.trust?.filter, l.path).toMatchObject({ extractor: 'car-v1' });
    }
    const rate = (kind: string) => {
      const of = got.filter((l) => l.path.includes(`${path.sep}held${path.sep}${kind}${path.sep}`));
      return of.filter((l) => l.trust!.filter!.junk).length / of.length;
    };
    const badRate = rate('bad');
    const goodRate = rate('good');
    console.log(`predict-trust: filter threshold ${fit.threshold.toFixed(3)} (CV bad removed ${(100 * fit.cvBadRemoved).toFixed(1)}%); junk warning on ${(100 * badRate).toFixed(0)}% of 30 held-out bad photos, ${(100 * goodRate).toFixed(0)}% of 30 held-out good`);
    expect(badRate).toBeGreaterThanOrEqual(0.7);
    expect(goodRate).toBeLessThanOrEqual(0.2);
    const junk = got.find((l) => l.trust!.filter!.junk)!;
    expect(junk.trust!.warnings.find((w) => w.code === 'junk')?.message).toMatch(
      /^not a whole-car photo \(junk filter score -?\d+\.\d\d, below its threshold -?\d+\.\d\d\): the price model was not trained on photos like this$/,
    );
    expect(r.stderr).toMatch(/of 80 photos carry a warning: \d+ not whole-car photos/);
  });
});
