// Predict says where the car is: a heads run trained here on car-v1 features (the default
// extractor) predicts with car-v1 and reads the car box from each photo's feature row; an old
// mobilenet_v2 run predicts exactly as before and runs the COCO car detector beside the model.
// Real photos: whole-car shots from listing-photos/good and interiors from listing-photos/bad.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { Prediction, PredictRecord } from '../src-main/engine/api/contract/predict.ts';
import { decodeImage } from '../src-main/engine/predict/decode-file.ts';
import { loadPredictor } from '../src-main/engine/predict/model-loader.ts';
import { appendRecords, readRecords, resultsPage, writeSetMeta } from '../src-main/engine/predict/store.ts';
import { UserError } from '../src-main/engine/workspace/errors.ts';
import { buildHeadsRun, LABELLED } from './helpers/predict-run.ts';
import { buildCarV1Run } from './helpers/car-run.ts';
import { runCli } from './helpers/processes.ts';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');
const BAD = path.join(SHARED_DATA, 'listing-photos', 'bad');
const have = fs.existsSync(GOOD) && fs.existsSync(BAD) && fs.existsSync(path.join(LABELLED, 'labels.csv'));
if (!have) console.log(`skipping the predict car-box tests: ${GOOD}, ${BAD} or ${LABELLED}/labels.csv is absent`);

const boxArea = (p: Prediction) => (p.car?.box ? (p.car.box.x2 - p.car.box.x1) * (p.car.box.y2 - p.car.box.y1) : 0);

describe.runIf(have)('Predict says where the car is', () => {
  let root: string;
  let wsDir: string;
  let engine: Engine;
  let carRun: string;
  let oldRun: string;
  let input: string;
  const cars: string[] = [];
  const interiors: string[] = [];

  beforeAll(async () => {
    root = tmpDir('carstudio-predict-car-');
    wsDir = path.join(root, 'ws');
    engine = Engine.open(wsDir, { create: true });
    input = path.join(root, 'photos');
    fs.mkdirSync(input, { recursive: true });
    const goods = fs.readdirSync(GOOD).sort();
    for (const kind of ['angle-front-on-left__', 'profile-on-right__']) {
      const f = goods.find((g) => g.startsWith(kind) && g.endsWith('.jpg'))!;
      fs.copyFileSync(path.join(GOOD, f), path.join(input, f));
      cars.push(path.join(input, f));
    }
    const bads = fs.readdirSync(BAD).filter((f) => f.startsWith('interior__') && f.endsWith('.jpg')).sort();
    for (const f of bads.slice(0, 2)) {
      fs.copyFileSync(path.join(BAD, f), path.join(input, f));
      interiors.push(path.join(input, f));
    }
    carRun = await buildCarV1Run(wsDir, 'car-v1-run', 40, 20);
    oldRun = await buildHeadsRun(wsDir, 'old-run', { photos: 40, steps: 20 });
  }, 600_000);
  afterAll(async () => {
    await engine?.close();
  });

  const lastJob = new Map<string, number>();
  const predictFolder = async (runDir: string): Promise<{ records: PredictRecord[]; result: Record<string, unknown> }> => {
    const job = await engine.request('predict.start', { runId: path.basename(runDir), input, reuse: false });
    const final = await engine.jobs.wait(job.id);
    lastJob.set(runDir, job.id);
    expect(final.state).toBe('done');
    return { records: readRecords(wsDir, job.id), result: final.result as Record<string, unknown> };
  };

  const expectCars = (records: PredictRecord[]): void => {
    expect(records).toHaveLength(4);
    for (const f of cars) {
      const p = records.find((r) => r.path === f)!.prediction!;
      console.log(`${path.basename(f)}: car ${JSON.stringify(p.car)}`);
      expect(p.car!.hasCar).toBe(true);
      // a whole-car listing shot: the box covers a good part of the photo
      expect(boxArea(p)).toBeGreaterThan(0.2);
      expect(p.car!.box!.x1).toBeGreaterThanOrEqual(0);
      expect(p.car!.box!.x2).toBeLessThanOrEqual(1);
      expect(p.car!.box!.x2).toBeGreaterThan(p.car!.box!.x1);
      expect(p.car!.box!.y2).toBeGreaterThan(p.car!.box!.y1);
    }
    const inner = interiors.map((f) => records.find((r) => r.path === f)!.prediction!);
    inner.forEach((p, i) => console.log(`${path.basename(interiors[i]!)}: car ${JSON.stringify(p.car)}`));
    // the prediction of a photo without a car is still made, and says so
    for (const p of inner) expect(p.makeModels.length).toBeGreaterThan(0);
    expect(inner.some((p) => p.car && !p.car.hasCar)).toBe(true);
  };

  it('a car-v1 run predicts with its own extractor and takes the car box from the feature row', async () => {
    const pr = await loadPredictor(carRun);
    try {
      expect(pr.extractor).toBe('car-v1');
      expect(pr.carSource).toBe('features');
      expect(pr.detectorView).toBe(true);
    } finally {
      pr.dispose();
    }
    const { records, result } = await predictFolder(carRun);
    expect(result.carSource).toBe('features');
    expectCars(records);
    expect(result.noCar).toBe(records.filter((r) => r.prediction!.car && !r.prediction!.car.hasCar).length);
    // the API's one-image prediction of the same photo says the same
    const one = await engine.request('predict.image', { runId: path.basename(carRun), path: cars[0]! });
    const job = records.find((r) => r.path === cars[0])!.prediction!;
    expect(one.prediction!.car).toEqual(job.car);
    expect(one.prediction!.medianPrice).toBeCloseTo(job.medianPrice, 1);
    // a crop pan still runs on a car-v1 run (each crop gets its own detector view)
    const pan = await engine.request('predict.cropPan', { runId: path.basename(carRun), path: cars[0]!, steps: 3 });
    expect(pan.steps).toHaveLength(3);
  }, 300_000);

  it('an old mobilenet_v2 run predicts as before, with the detector finding the car', async () => {
    const pr = await loadPredictor(oldRun);
    try {
      expect(pr.extractor).toBe('mobilenet_v2');
      expect(pr.carSource).not.toBe('features');
      expect(pr.carSource).not.toBe('none');
      // the old path: decodeImage's 224 px input straight into predictInputs
      const d = await decodeImage(cars[0]!, { size: pr.inputSize });
      const [before] = await pr.predictInputs(d.input, 1);
      const [now] = await pr.predictPhotos([await pr.decodePhoto(cars[0]!)]);
      expect(before!.car).toBeNull();
      expect({ ...now!, car: null }).toEqual(before);
      expect(now!.car!.hasCar).toBe(true);
    } finally {
      pr.dispose();
    }
    const { records } = await predictFolder(oldRun);
    expectCars(records);
  }, 300_000);

  it('the CLI prints the car in --json and warns in its plain output when there is none', async () => {
    const id = path.basename(carRun);
    const json = await runCli(['predict', '--workspace', wsDir, '--run', id, '--input', input, '--json'], { timeoutMs: 180_000 });
    expect(json.code).toBe(0);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; car?: Prediction['car'] });
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l.car).toBeTruthy();
    for (const f of cars) expect(lines.find((l) => l.path === f)!.car!.hasCar).toBe(true);
    expect(json.stderr).toMatch(/no car found in [12] photo/);
    const plain = await runCli(['predict', '--workspace', wsDir, '--run', id, '--input', input], { timeoutMs: 180_000 });
    expect(plain.code).toBe(0);
    const out = plain.stdout.trim().split('\n');
    expect(out).toHaveLength(4);
    expect(out.some((l) => l.startsWith('interior__') && l.includes('no car found in this photo'))).toBe(true);
    for (const f of cars) expect(out.find((l) => l.startsWith(path.basename(f)))).toMatch(/\tcar \d+% at x \d+%-\d+%, y \d+%-\d+%$/);
  }, 400_000);

  it('predictions stored before the car box read as car: null and are predicted again rather than reused', async () => {
    const jobId = 9_000;
    writeSetMeta(wsDir, { jobId, runId: path.basename(oldRun), checkpoint: 'best', input, createdAt: new Date().toISOString() });
    const recs = readRecords(wsDir, lastJob.get(oldRun)!);
    const old = recs.map((r) => {
      const { car: _drop, ...p } = r.prediction!;
      return { ...r, prediction: p as Prediction };
    });
    appendRecords(wsDir, jobId, old);
    const back = readRecords(wsDir, jobId);
    expect(back).toHaveLength(4);
    for (const r of back) expect(r.prediction!.car).toBeNull();
    expect(resultsPage(wsDir, jobId, { offset: 0, limit: 10, sort: 'path', order: 'asc', show: 'all' }).items).toHaveLength(4);
  });

  it('a run whose recorded extractor does not match its model says so', async () => {
    const bad = path.join(wsDir, 'runs', 'mismatch');
    fs.mkdirSync(bad, { recursive: true });
    for (const f of fs.readdirSync(oldRun)) if (fs.statSync(path.join(oldRun, f)).isFile()) fs.copyFileSync(path.join(oldRun, f), path.join(bad, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(bad, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, extractor: 'car-v1' }));
    await expect(loadPredictor(bad)).rejects.toThrow(UserError);
    await expect(loadPredictor(bad)).rejects.toThrow(/car-v1 features, but its model takes 1280 values per photo and car-v1 gives 1996/);
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, extractor: 'resnet-9000' }));
    await expect(loadPredictor(bad)).rejects.toThrow(/'resnet-9000' features, which this CarStudio does not know/);
  });
});
