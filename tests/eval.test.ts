// The eval job and `carstudio eval`: a run's checkpoint scored on its own test split (by listing:
// no car on both sides) or on a manifest's rows, beside the majority-class and kNN baselines, with
// calibration; the report written to runs/<id>/eval/<report id>/ and served by eval.list/eval.get.
// With the run's calibration (temperature scaling, calibration.json): each head's calibrated CE,
// ECE and reliability, checked against the stored temperatures applied to the raw outputs, and
// whether they are in-sample (the test split the temperatures were fitted on) or held out.
// Also training on a dataset without prices (the price heads are recorded as not trained), and
// the identity of the labelled-cars photos imported as a manifest and as a labelled folder.
// Real workspaces of sharp-made JPEGs (colour families with a texture per class, plus noise),
// real training runs, the CLI as child processes.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { Engine } from '../src-main/engine/engine.ts';
import { maskedLabels, testSplitOutputs } from '../src-main/engine/eval/eval-job.ts';
import { readCalibration } from '../src-main/engine/train/calibrate.ts';
import { eceByDefinition, scaledByDefinition } from './helpers/calibration.ts';
import type { EvalReport, EvalReportEntry } from '../src-main/engine/api/contract/eval.ts';
import type { JobInfo } from '../src-main/engine/api/contract/index.ts';
import type { EvalJobResult } from '../src-main/engine/eval/eval-kind.ts';
import type { HeadName, HeadPlan } from '../src-main/engine/train/trainer.ts';
import { buildLabelSpace, makeModelKey, splitRows, type LabelRow } from '../src-main/engine/train/labels.ts';
import { trainingRows } from '../src-main/engine/train/dataset.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { CLI, runCli, untilProgress } from './helpers/processes.ts';
import { ROOT, SHARED_DATA, tmpDir } from './helpers/workspace.ts';
import { mulberry32 } from '../src-main/engine/util/random.ts';

const T = 180_000; // last-resort bound for a busy machine; the tests wait on the jobs and processes themselves

/** Four visually distinct classes: a colour family and a texture each; a make/model, year and price each. */
const CLASSES = [
  { make: 'Audi', model: 'A3', year: 2015, price: 12_000, rgb: [205, 45, 40] },
  { make: 'BMW', model: 'X5', year: 2012, price: 27_000, rgb: [40, 170, 60] },
  { make: 'Fiat', model: 'Panda', year: 2008, price: 8_000, rgb: [45, 60, 210] },
  { make: 'Kia', model: 'Rio', year: 2019, price: 45_000, rgb: [230, 205, 40] },
] as const;

/** A photo of class `cls`: its colour (jittered per photo), its texture darkened in, pixel noise. */
async function classJpeg(cls: number, seed: number, width = 80, height = 60): Promise<Buffer> {
  const r = mulberry32(cls * 100_003 + seed * 7919 + 1);
  const base = CLASSES[cls]!.rgb.map((c) => c + (r() - 0.5) * 40);
  const texture = [
    (x: number, y: number) => (y >> 3) & 1, // horizontal stripes
    (x: number, _y: number) => (x >> 3) & 1, // vertical stripes
    (x: number, y: number) => ((x + y) >> 3) & 1, // diagonal stripes
    (x: number, y: number) => ((x >> 3) ^ (y >> 3)) & 1, // checks
  ][cls]!;
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dark = texture(x, y) ? 0.6 : 1;
      for (let c = 0; c < 3; c++) px[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c]! * dark + (r() - 0.5) * 50)));
    }
  }
  return sharp(px, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

interface FixtureRow {
  file: string;
  listing: string;
  cls: number;
  price: number | null;
}

/**
 * `perClass[c]` photos of each class in `dir/<sub>/`, grouped into listings of 1, 2, 3, 1, 2, 3...
 * photos (a multi-photo listing has a listing_id); every other listing has a price.
 */
async function writeClassPhotos(dir: string, sub: string, perClass: readonly number[], seed0: number): Promise<FixtureRow[]> {
  fs.mkdirSync(path.join(dir, sub), { recursive: true });
  const rows: FixtureRow[] = [];
  for (let cls = 0; cls < perClass.length; cls++) {
    let k = 0;
    for (let i = 0; i < perClass[cls]!; k++) {
      const size = Math.min([1, 2, 3][k % 3]!, perClass[cls]! - i);
      const listing = size > 1 ? `${sub}-${CLASSES[cls]!.make}-${k}` : '';
      const price = k % 2 === 0 ? CLASSES[cls]!.price + ((k * 37) % 900) : null;
      for (let j = 0; j < size; j++, i++) {
        const file = `${sub}/${CLASSES[cls]!.make.toLowerCase()}-${i}.jpg`;
        fs.writeFileSync(path.join(dir, file), await classJpeg(cls, seed0 + i));
        rows.push({ file, listing, cls, price });
      }
    }
  }
  return rows;
}

/** A manifest whose image column is `file` (imported with map image=file). */
function manifestLines(
  rows: ReadonlyArray<FixtureRow | { file: string; listing: string; cls: number; price: number | null }>,
  withPrice = true,
): string[] {
  return [
    withPrice ? 'file,listing_id,price,make,model,year' : 'file,listing_id,make,model,year',
    ...rows.map((r) => {
      const c = CLASSES[r.cls]!;
      return [r.file, r.listing, ...(withPrice ? [r.price ?? ''] : []), c.make, c.model, c.year].join(',');
    }),
  ];
}

/** Text as the HTML report escapes it. */
const escapeText = (t: string): string =>
  t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function readReportJson(dir: string): EvalReport {
  return JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')) as EvalReport;
}

/** Every scored head's model and baselines: ECE in [0, 1], reliability counts summing to n. */
function expectCalibration(report: EvalReport): void {
  for (const [head, h] of Object.entries(report.heads)) {
    if (!h) continue;
    for (const [who, s] of Object.entries({ model: h.model, majority: h.majority, knn: h.knn })) {
      if (!s) continue;
      expect(s.ece, `${head} ${who} ECE`).toBeGreaterThanOrEqual(0);
      expect(s.ece, `${head} ${who} ECE`).toBeLessThanOrEqual(1);
      expect(s.reliability.length, `${head} ${who} bins`).toBeGreaterThan(0);
      expect(
        s.reliability.reduce((a, b) => a + b.count, 0),
        `${head} ${who} reliability counts`,
      ).toBe(s.n);
    }
  }
}

const scoredHeads = (r: EvalReport): number => Object.values(r.heads).filter((h) => h !== null).length;
const CAL_HEADS = ['price', 'makeModel', 'year'] as const;

/** A report whose run's calibration did not apply: every head raw only, and why in the note. */
function expectNotCalibrated(report: EvalReport, reason: RegExp): void {
  expect(report.calibration).toMatchObject({ applied: false, temperatures: null, inSample: false, inSampleRows: 0 });
  expect(report.calibration!.reason).toMatch(reason);
  expect(report.calibration!.note).toMatch(/^Not calibrated: /);
  for (const h of CAL_HEADS) if (report.heads[h]) expect(report.heads[h]!.calibrated, h).toBeNull();
}

describe('eval job: a heads run on its test split and on a manifest', () => {
  let fx: string;
  let ws: string;
  let engine: Engine;
  let runA: number;
  let runB: number;
  let photos: FixtureRow[];
  const reportIds: string[] = [];

  const train = async (params: Record<string, unknown>): Promise<{ runId: number; heads: Record<HeadName, HeadPlan> }> => {
    const job = (await engine.jobs.wait(engine.jobs.start('train', params).id)) as JobInfo;
    expect(job.state, job.error?.message).toBe('done');
    return job.result as { runId: number; heads: Record<HeadName, HeadPlan> };
  };
  const evaluate = async (params: Record<string, unknown>): Promise<{ result: EvalJobResult; report: EvalReport }> => {
    const job = (await engine.jobs.wait(engine.jobs.start('eval', params).id)) as JobInfo;
    expect(job.state, job.error?.message).toBe('done');
    const result = job.result as EvalJobResult;
    expect(result.dir).toBe(path.join(ws, 'runs', String(result.runId), 'eval', result.reportId));
    expect(fs.existsSync(path.join(result.dir, 'report.html'))).toBe(true);
    return { result, report: readReportJson(result.dir) };
  };

  beforeAll(async () => {
    fx = tmpDir('carstudio-eval-fx-');
    // 120 photos, classes of unequal size so the training set has one most frequent class
    photos = await writeClassPhotos(fx, 'img', [38, 32, 27, 23], 0);
    const manifest = path.join(fx, 'cars.csv');
    fs.writeFileSync(manifest, manifestLines(photos).join('\n') + '\n');
    ws = path.join(tmpDir('carstudio-eval-'), 'ws');
    engine = Engine.open(ws, { create: true });
    const imp = (await engine.jobs.wait(engine.jobs.start('import', { manifest, map: { image: 'file' } }).id)) as JobInfo;
    expect(imp.state, imp.error?.message).toBe('done');
    expect(imp.result).toMatchObject({ rowsImported: photos.length, imagesAdded: photos.length });
    const a = await train({ name: 'colours & textures', steps: 150, evalEvery: 50, checkpointEvery: 50, hidden: 0 });
    runA = a.runId;
    expect(Object.values(a.heads).every((h) => h.trains)).toBe(true);
    runB = (
      await train({
        name: 'colours (price CE only)',
        steps: 60,
        evalEvery: 30,
        checkpointEvery: 30,
        hidden: 0,
        lossWeights: 'price_ce_only',
      })
    ).runId;
  }, 2 * T);
  afterAll(async () => {
    await engine?.close();
  });

  it("scores the run's test split by listing: rows, baselines, calibration, and no car on both sides", { timeout: T }, async () => {
    const { result, report } = await evaluate({ runId: runA });
    reportIds.push(result.reportId);
    const db = engine.ws.db;
    const rows = trainingRows(db);
    expect(rows).toHaveLength(photos.length);
    const split = splitRows(rows, 'listing', 0.1);
    expect(report).toMatchObject({ runId: runA, runName: 'colours & textures', checkpoint: 'best', knnK: 10 });
    expect(report.source).toEqual({ kind: 'test-split', split: 'listing' });
    expect(report.rows).toBe(split.test.length);
    expect(report.trainRows).toBe(split.train.length);
    expect(split.test.length).toBeGreaterThan(0);

    // every listing of the workspace has all its photos on one side, and the test side has multi-photo listings
    const testIds = new Set(split.test.map((r) => r.imageId));
    const links = db.prepare(`SELECT listing_rowid AS listing, image_id AS image FROM listing_images`).all() as Array<{
      listing: number;
      image: number;
    }>;
    const sides = new Map<number, Set<boolean>>();
    for (const l of links) (sides.get(l.listing) ?? sides.set(l.listing, new Set()).get(l.listing)!).add(testIds.has(l.image));
    for (const [listing, s] of sides) expect(s.size, `listing ${listing} on both sides`).toBe(1);
    const testListingSizes = [...sides].filter(([, s]) => s.has(true)).map(([l]) => links.filter((x) => x.listing === l).length);
    expect(Math.max(...testListingSizes)).toBeGreaterThan(1);

    const h = report.heads;
    expect(h.price).not.toBeNull();
    expect(h.makeModel).not.toBeNull();
    expect(h.year).not.toBeNull();
    const priced = split.test.filter((r) => r.price !== null).length;
    expect(priced).toBeGreaterThan(0);
    expect(priced).toBeLessThan(split.test.length);
    expect(h.price!.model.n).toBe(priced);
    expect(h.price!.majority.n).toBe(priced);
    expect(h.makeModel!.model.n).toBe(split.test.length);
    expect(h.year!.model.n).toBe(split.test.length);

    // majority = the training split's most frequent make/model, scored on the test rows
    const counts = new Map<string, number>();
    for (const r of split.train) {
      const k = makeModelKey(r.make, r.model)!;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const ranked = [...counts].sort((x, y) => y[1] - x[1]);
    expect(ranked[0]![1], 'one most frequent class').toBeGreaterThan(ranked[1]![1]);
    const share = (rs: LabelRow[], key: string): number => rs.filter((r) => makeModelKey(r.make, r.model) === key).length / rs.length;
    expect(h.makeModel!.majority.top1).toBeCloseTo(share(split.test, ranked[0]![0]), 9);
    // the classes are separable: the kNN on the backbone's features is near perfect and the model beats the prior
    expect(h.makeModel!.knn!.top1).toBeGreaterThan(0.8);
    expect(h.makeModel!.model.top1).toBeGreaterThan(h.makeModel!.majority.top1);
    expect(h.makeModel!.model.makeTop1).toBeGreaterThanOrEqual(h.makeModel!.model.top1);
    expectCalibration(report);
    expect(report.untrained).toEqual([]);
    console.log(
      `eval: ${report.rows} test rows (${report.trainRows} training); make/model top-1 model ${h.makeModel!.model.top1.toFixed(3)}, ` +
        `majority ${h.makeModel!.majority.top1.toFixed(3)}, kNN ${h.makeModel!.knn!.top1.toFixed(3)}; ${report.seconds} s`,
    );

    // the run's calibration (fitted at the end of training on this test split): in-sample here
    const cal = readCalibration(path.join(ws, 'runs', String(runA)))!;
    expect(cal.checkpoint).toBe('best');
    expect(report.calibration).toMatchObject({
      applied: true,
      reason: null,
      inSample: true,
      inSampleRows: report.rows,
      temperatures: cal.temperatures,
    });
    expect(report.calibration!.note).toMatch(/^The temperatures were fitted on this very test split, .*optimistic/);
    // the stored temperatures applied, by definition, to the raw outputs of the checkpoint on the test rows
    const raw = (await testSplitOutputs(engine.ws, runA, 'best', {
      signal: new AbortController().signal,
      progress: () => undefined,
      log: () => undefined,
    }))!;
    expect(raw.rows.map((r) => r.imageId).sort()).toEqual(split.test.map((r) => r.imageId).sort());
    const y = {
      price: maskedLabels(raw.labels.priceBin, raw.labels.priceMask),
      makeModel: maskedLabels(raw.labels.makeModel, raw.labels.makeModelMask),
      year: maskedLabels(raw.labels.year, raw.labels.yearMask),
    };
    for (const head of CAL_HEADS) {
      const s = h[head]!;
      const probs = raw.model[head];
      const C = probs.length / raw.rows.length;
      const T = cal.temperatures[head];
      const fit = cal.heads[head];
      expect('skipped' in fit, head).toBe(false);
      // the raw figures are those of these outputs
      const rawDef = eceByDefinition(probs, y[head], C);
      expect(s.model.ece, `${head} raw ECE`).toBeCloseTo(rawDef.ece, 9);
      expect(s.model.ce, `${head} raw CE`).toBeCloseTo(rawDef.ce, 9);
      // the calibrated ones are the same outputs scaled by the stored temperature
      const k = s.calibrated!;
      expect(k, head).not.toBeNull();
      const calDef = eceByDefinition(scaledByDefinition(probs, C, T), y[head], C);
      expect(k.temperature).toBe(T);
      expect(k.n).toBe(s.model.n);
      expect(k.ece, `${head} calibrated ECE`).toBeCloseTo(calDef.ece, 6);
      expect(k.ce, `${head} calibrated CE`).toBeCloseTo(calDef.ce, 6);
      expect(Math.abs(k.ece - s.model.ece), `${head}: calibrated ECE differs from raw`).toBeGreaterThan(1e-6);
      expect(calDef.top1, `${head}: top-1 does not change`).toBeCloseTo(s.model.top1, 12);
      expect(k.reliability.reduce((a, b) => a + b.count, 0)).toBe(k.n);
      // in-sample on the same rows: calibration.json's own after-fit figures, and its cross-fit as the held-out one
      if ('skipped' in fit) continue;
      expect(k.ece).toBeCloseTo(fit.after.ece, 9);
      expect(k.ce).toBeCloseTo(fit.after.nll, 9);
      if (fit.heldOut) expect(k.heldOut!.ece).toBeCloseTo(fit.heldOut.ece.after, 9);
      else expect(k.heldOut).toBeNull();
    }
    expect(h.makeModel!.calibrated!.makeTop1).toBeGreaterThanOrEqual(0);
    console.log(
      `eval calibrated (in-sample): ` +
        CAL_HEADS.map(
          (k) =>
            `${k} T ${h[k]!.calibrated!.temperature.toFixed(3)} ECE ${h[k]!.model.ece.toFixed(4)} -> ${h[k]!.calibrated!.ece.toFixed(4)}`,
        ).join('; '),
    );
  });

  it('lists the heads a price_ce_only run did not train as loss weight 0', { timeout: T }, async () => {
    const { report } = await evaluate({ runId: runB, checkpoint: 'last' });
    expect(report).toMatchObject({ runId: runB, checkpoint: 'last', step: 60 });
    expect(report.untrained).toEqual([
      { head: 'median', reason: 'loss weight 0' },
      { head: 'makeModel', reason: 'loss weight 0' },
      { head: 'year', reason: 'loss weight 0' },
    ]);
    expectCalibration(report);
    // the run's calibration is of its best checkpoint: predictions from the last one are raw, and so is this report
    expect(readCalibration(path.join(ws, 'runs', String(runB)))!.checkpoint).toBe('best');
    expectNotCalibrated(report, /of its best checkpoint, not of the last one/);
  });

  it('a run without calibration (an older run, or its calibration failed): not calibrated, raw figures only', { timeout: T }, async () => {
    const runDir = path.join(ws, 'runs', String(runB));
    fs.renameSync(path.join(runDir, 'calibration.json'), path.join(runDir, 'calibration.json.away'));
    try {
      const { result, report } = await evaluate({ runId: runB });
      expectNotCalibrated(report, /has no calibration/);
      expect(report.heads.price!.model.n).toBeGreaterThan(0);
      const html = fs.readFileSync(path.join(result.dir, 'report.html'), 'utf8');
      expect(html).toContain('<b>Not calibrated.</b>');
      expect(html).not.toContain('Model, calibrated (T =');
      expect(html).not.toContain('class="reliability calibrated"');
    } finally {
      fs.renameSync(path.join(runDir, 'calibration.json.away'), path.join(runDir, 'calibration.json'));
    }
  });

  it("scores a manifest's rows, skipping missing files and a text file named .jpg", { timeout: T }, async () => {
    const fresh = await writeClassPhotos(fx, 'new', [3, 3, 3, 3], 10_000);
    fs.writeFileSync(path.join(fx, 'new', 'notes.jpg'), 'this is text, not a JPEG\n');
    const broken = [
      { file: 'new/gone-1.jpg', listing: '', cls: 0, price: 9_000 },
      { file: 'new/notes.jpg', listing: '', cls: 1, price: null },
      { file: 'new/gone-2.jpg', listing: 'new-gone', cls: 2, price: null },
    ];
    const manifest = path.join(fx, 'new.csv');
    fs.writeFileSync(
      manifest,
      manifestLines([...fresh.slice(0, 5), broken[0]!, ...fresh.slice(5, 9), broken[1]!, broken[2]!, ...fresh.slice(9)]).join('\n') + '\n',
    );
    const { result, report } = await evaluate({ runId: runA, manifest, map: { image: 'file' } });
    reportIds.push(result.reportId);
    expect(report.source).toEqual({ kind: 'manifest', manifest, rowsSkipped: broken.length });
    expect(report.rows).toBe(fresh.length);
    expect(report.heads.price!.model.n).toBe(fresh.filter((r) => r.price !== null).length);
    expect(report.heads.makeModel!.model.n).toBe(fresh.length);
    expect(report.heads.makeModel!.knn!.top1).toBeGreaterThan(0.8);
    expectCalibration(report);
    // photos the temperatures were not fitted on: held out
    expect(report.calibration).toMatchObject({ applied: true, inSample: false, inSampleRows: 0 });
    expect(report.calibration!.note).toMatch(/no photo of this manifest is a file of it/);
    for (const head of CAL_HEADS) {
      const s = report.heads[head]!;
      expect(s.calibrated!.n).toBe(s.model.n);
      expect(s.calibrated!.heldOut).toBeNull(); // only in-sample reports need the cross-fit estimate
      expect(Math.abs(s.calibrated!.ece - s.model.ece), head).toBeGreaterThan(1e-6);
    }
  });

  it("a manifest holding photos of the run's test split is partly in-sample: those rows are counted", { timeout: T }, async () => {
    const split = splitRows(trainingRows(engine.ws.db), 'listing', 0.1);
    const testIds = new Set(split.test.map((r) => r.imageId));
    const idOfKey = engine.ws.db.prepare(`SELECT id FROM images WHERE key = ?`).pluck();
    // images.key is the sha256 of the imported file's bytes
    const sha256 = (file: string): string =>
      crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(fx, file)))
        .digest('hex');
    const ofTest = photos.filter((r) => testIds.has(idOfKey.get(sha256(r.file)) as number));
    expect(ofTest.length).toBeGreaterThanOrEqual(2);
    const fresh = await writeClassPhotos(fx, 'mix', [2, 2, 1, 1], 20_000);
    const manifest = path.join(fx, 'mix.csv');
    fs.writeFileSync(manifest, manifestLines([...ofTest.slice(0, 2), ...fresh]).join('\n') + '\n');
    const { result, report } = await evaluate({ runId: runA, manifest, map: { image: 'file' } });
    reportIds.push(result.reportId);
    expect(report.rows).toBe(2 + fresh.length);
    expect(report.calibration).toMatchObject({ applied: true, inSample: true, inSampleRows: 2 });
    expect(report.calibration!.note).toMatch(new RegExp(`^2 of the ${report.rows} photos are files of the run's test split`));
    expect(fs.readFileSync(path.join(result.dir, 'report.html'), 'utf8')).toContain('Partly in-sample calibrated figures.');
  });

  it(
    'eval.list lists the reports newest first; eval.get returns the page with a reliability chart per scored head',
    { timeout: T },
    async () => {
      expect(reportIds).toHaveLength(3);
      const list = (await engine.request('eval.list', { runId: runA })) as EvalReportEntry[];
      expect(list.map((e) => e.id)).toEqual([...reportIds].reverse());
      expect(list.map((e) => e.source.kind)).toEqual(['manifest', 'manifest', 'test-split']);
      expect(list[0]!.createdAt >= list[1]!.createdAt).toBe(true);
      for (const e of list) {
        const got = await engine.request('eval.get', { runId: runA, id: e.id });
        expect(got.entry).toEqual(e);
        expect(got.report).toEqual(readReportJson(path.join(ws, 'runs', String(runA), 'eval', e.id)));
        expect(got.html).toContain('colours &amp; textures'); // the run's name, escaped
        expect(got.html).not.toContain('colours & textures');
        expect(got.html.match(/<svg class="reliability"/g) ?? []).toHaveLength(scoredHeads(got.report));
        // and beside each, the calibrated one, with the caveat of its source
        expect(got.html.match(/<svg class="reliability calibrated"/g) ?? []).toHaveLength(scoredHeads(got.report));
        const c = got.report.calibration!;
        expect(got.html).toContain(
          !c.inSample
            ? 'Held-out calibrated figures.'
            : c.inSampleRows < got.report.rows
              ? 'Partly in-sample calibrated figures.'
              : 'In-sample calibrated figures.',
        );
        expect(got.html).toContain(escapeText(got.report.calibration!.note));
        expect(got.html.match(/<svg class="per-class"/g) ?? []).toHaveLength(1);
        expect(e.headline.makeModelTop1).toBe(got.report.heads.makeModel!.model.top1);
      }
      expect(((await engine.request('eval.list', { runId: runB })) as EvalReportEntry[]).map((e) => e.source.kind)).toEqual([
        'test-split',
        'test-split',
      ]);
      const missing = await engine.call('eval.get', { runId: runA, id: 'no-such-report' });
      expect(missing.ok).toBe(false);
      expect(missing.ok ? '' : missing.error.message).toMatch(/no evaluation report no-such-report/);
      const noRun = await engine.call('eval.list', { runId: 9999 });
      expect(noRun.ok ? '' : noRun.error.message).toBe('no run 9999');
    },
  );

  it('a report stored before the calibrated figures still lists and opens, raw only', { timeout: T }, async () => {
    const root = path.join(ws, 'runs', String(runA), 'eval');
    const recent = readReportJson(path.join(root, reportIds[0]!));
    const old = JSON.parse(JSON.stringify(recent)) as EvalReport;
    delete old.calibration;
    for (const head of CAL_HEADS) if (old.heads[head]) delete old.heads[head]!.calibrated;
    old.createdAt = '2026-01-01T00:00:00.000Z';
    fs.mkdirSync(path.join(root, '20260101-000000-000'));
    fs.writeFileSync(path.join(root, '20260101-000000-000', 'report.json'), JSON.stringify(old)); // no report.html: rendered on reading
    const list = (await engine.request('eval.list', { runId: runA })) as EvalReportEntry[];
    expect(list.at(-1)!.id).toBe('20260101-000000-000');
    const got = await engine.request('eval.get', { runId: runA, id: '20260101-000000-000' });
    expect(got.report).toEqual(old);
    expect(got.html).toContain('from before calibrated figures were recorded');
    expect(got.html.match(/<svg class="reliability"/g) ?? []).toHaveLength(scoredHeads(old));
    expect(got.html).not.toContain('class="reliability calibrated"');
  });
});

describe('a labelled dataset without prices, and carstudio eval', () => {
  let fx: string;
  let ws: string;

  beforeAll(async () => {
    fx = tmpDir('carstudio-eval-noprice-');
    const rows = await writeClassPhotos(fx, 'img', [12, 10, 9], 500);
    fs.writeFileSync(path.join(fx, 'labels.csv'), manifestLines(rows, false).join('\n') + '\n');
    ws = path.join(tmpDir('carstudio-eval-noprice-ws-'), 'ws');
    const init = await runCli(['init', '--workspace', ws]);
    expect(init.code, init.stderr).toBe(0);
    const imp = await runCli(['import', '--workspace', ws, '--manifest', path.join(fx, 'labels.csv'), '--map', 'image=file', '--json'], {
      timeoutMs: T,
    });
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({ rowsImported: rows.length, errors: [] });
  }, T);

  const TRAIN = ['--steps', '40', '--eval-every', '20', '--checkpoint-every', '20', '--hidden', '0'];

  it('trains make/model and year; the price heads are recorded as not trained (no labels)', { timeout: T }, async () => {
    const t = await runCli(['train', '--workspace', ws, ...TRAIN, '--name', 'no prices'], { timeoutMs: T });
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain('price: not trained (no labels)');
    expect(t.stdout).toContain('median: not trained (no labels)');
    // the train job's result, as the engine recorded it
    const db = new Database(path.join(ws, 'studio.db'), { readonly: true });
    const row = db.prepare(`SELECT state, result FROM jobs WHERE kind = 'train' ORDER BY id DESC LIMIT 1`).get() as {
      state: string;
      result: string;
    };
    db.close();
    expect(row.state).toBe('done');
    const res = JSON.parse(row.result) as { state: string; heads: Record<HeadName, HeadPlan> };
    expect(res.state).toBe('done');
    expect(res.heads.price).toMatchObject({ trains: false, reason: 'no labels', train: 0, test: 0 });
    expect(res.heads.median).toMatchObject({ trains: false, reason: 'no labels' });
    expect(res.heads.makeModel).toMatchObject({ trains: true, reason: null });
    expect(res.heads.year).toMatchObject({ trains: true, reason: null });
    expect(res.heads.makeModel.train).toBeGreaterThan(0);
  });

  it(
    'eval --json prints the report (no price head, price/median untrained); --report DIR writes report.html and report.json there',
    { timeout: T },
    async () => {
      const j = await runCli(['eval', '--workspace', ws, '--test-split', '--json'], { timeoutMs: T });
      expect(j.code, j.stderr).toBe(0);
      const out = JSON.parse(j.stdout) as { jobId: number; reportId: string; dir: string; report: EvalReport };
      expect(out.report.runName).toBe('no prices'); // the newest finished run
      expect(out.report.heads.price).toBeNull();
      expect(out.report.heads.makeModel!.model.n).toBe(out.report.rows);
      expect(out.report.heads.year!.model.n).toBe(out.report.rows);
      expect(out.report.untrained).toEqual([
        { head: 'price', reason: 'no labels' },
        { head: 'median', reason: 'no labels' },
      ]);
      expect(readReportJson(out.dir)).toEqual(out.report);
      // --test-split: the calibration (fitted on that split when training ended) is in-sample
      expect(out.report.calibration).toMatchObject({ applied: true, inSample: true, inSampleRows: out.report.rows });
      expect(out.report.heads.makeModel!.calibrated!.ece).not.toBe(out.report.heads.makeModel!.model.ece);
      expect(out.report.heads.year!.calibrated!.temperature).toBe(out.report.calibration!.temperatures!.year);

      const dest = path.join(tmpDir('carstudio-eval-report-'), 'out');
      const r = await runCli(['eval', '--workspace', ws, '--run', String(out.report.runId), '--checkpoint', 'last', '--report', dest], {
        timeoutMs: T,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('price: not trained (no labels)');
      expect(r.stdout).toContain("not calibrated: the run's calibration is of its best checkpoint, not of the last one");
      expect(r.stdout).toContain(`report: ${path.join(dest, 'report.html')}`);
      const copied = readReportJson(dest);
      expect(copied).toMatchObject({ runId: out.report.runId, checkpoint: 'last', rows: out.report.rows });
      const html = fs.readFileSync(path.join(dest, 'report.html'), 'utf8');
      expect(html).toContain('no prices');
      expect(html.match(/<svg class="reliability"/g) ?? []).toHaveLength(scoredHeads(copied));
      expect(copied.calibration).toMatchObject({ applied: false });

      // --manifest of other photos: the calibrated figures are held out; the text names both
      const fresh = await writeClassPhotos(fx, 'fresh', [2, 2, 2], 9_000);
      fs.writeFileSync(path.join(fx, 'fresh.csv'), manifestLines(fresh, false).join('\n') + '\n');
      const m = await runCli(['eval', '--workspace', ws, '--manifest', path.join(fx, 'fresh.csv'), '--map', 'image=file'], {
        timeoutMs: T,
      });
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout).toMatch(/calibrated \(held out\); top-1 and top-5 do not change under calibration/);
      expect(m.stdout).toMatch(/make\/model, calibrated \(T = \d+\.\d{3}\): ECE \d+\.\d% -> \d+\.\d%, cross-entropy/);
      expect(m.stdout).toContain('price bins: not calibrated: not trained (no labels)');
      const page = /report: (.*)\n/.exec(m.stdout)![1]!;
      const held = readReportJson(path.dirname(page));
      expect(held.source.kind).toBe('manifest');
      expect(held.calibration).toMatchObject({
        applied: true,
        inSample: false,
        inSampleRows: 0,
        skipped: { price: 'not trained (no labels)' },
      });
      expect(held.heads.price).toBeNull();
    },
  );

  it(
    '--checkpoint best on a run stopped before its first evaluation is a user error (exit 2) that names --checkpoint last',
    { timeout: T },
    async () => {
      // a run stopped by Ctrl-C at a checkpoint, long before its first evaluation: last.ckpt, no best.ckpt
      const child = spawn(
        process.execPath,
        [
          CLI,
          'train',
          '--workspace',
          ws,
          '--steps',
          '1000000',
          '--eval-every',
          '1000000',
          '--checkpoint-every',
          '5',
          '--hidden',
          '0',
          '--new-run',
          '--name',
          'stopped',
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stdout.resume();
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      const db = new Database(path.join(ws, 'studio.db'), { readonly: true, fileMustExist: true });
      let runId = 0;
      try {
        await untilProgress(child, 'the run trains a few steps', () => {
          const r = db.prepare(`SELECT id, step FROM runs WHERE name = 'stopped' AND state = 'running'`).get() as
            { id: number; step: number } | undefined;
          runId = r?.id ?? 0;
          return (r?.step ?? 0) >= 10;
        });
        child.kill('SIGINT');
        await exited;
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${stderr}`);
      } finally {
        db.close();
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      const runDir = path.join(ws, 'runs', String(runId));
      expect(fs.existsSync(path.join(runDir, 'last.ckpt')), stderr).toBe(true);
      expect(fs.existsSync(path.join(runDir, 'best.ckpt'))).toBe(false);

      const best = await runCli(['eval', '--workspace', ws, '--run', String(runId), '--checkpoint', 'best'], { timeoutMs: T });
      expect(best.code).toBe(2);
      expect(best.stdout).toBe('');
      expect(best.stderr).toMatch(new RegExp(`carstudio: run ${runId} has no best checkpoint yet.*use --checkpoint last`));
      expect(fs.existsSync(path.join(runDir, 'eval'))).toBe(false);
    },
  );
});

describe('import identity: the labelled-cars photos as a manifest and as a labelled folder', () => {
  const dataDir = path.join(SHARED_DATA, 'labelled-cars');
  const labels = path.join(dataDir, 'labels.csv');
  const have = fs.existsSync(labels);
  if (!have)
    console.log(
      `eval: skipping the labelled-cars import identity: ${labels} does not exist (the shared test data is not in this checkout)`,
    );

  const counts = (dir: string): { listings: number; images: number } => {
    const db = new Database(path.join(dir, 'studio.db'), { readonly: true });
    try {
      return {
        listings: db.prepare(`SELECT COUNT(*) FROM listings`).pluck().get() as number,
        images: db.prepare(`SELECT COUNT(*) FROM images WHERE state = 'stored'`).pluck().get() as number,
      };
    } finally {
      db.close();
    }
  };
  const space = (dir: string): { classes: Array<[string, number]>; years: string[]; labelled: unknown; rows: number } => {
    const w = Workspace.open(dir);
    try {
      const s = buildLabelSpace(trainingRows(w.db));
      return {
        classes: s.makeModels
          .map((c): [string, number] => [makeModelKey(c.make, c.model)!, c.count])
          .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
        years: s.years,
        labelled: s.labelled,
        rows: s.rows,
      };
    } finally {
      w.close();
    }
  };

  it.skipIf(!have)('the same listings, images and label space (class keys, counts, years) either way', { timeout: T }, async () => {
    const a = path.join(tmpDir('carstudio-eval-idm-'), 'ws');
    const b = path.join(tmpDir('carstudio-eval-idf-'), 'ws');
    const [ia, ib] = await Promise.all([runCli(['init', '--workspace', a]), runCli(['init', '--workspace', b])]);
    expect(ia.code, ia.stderr).toBe(0);
    expect(ib.code, ib.stderr).toBe(0);
    const viaManifest = await runCli(['import', '--workspace', a, '--manifest', labels, '--map', 'image=file', '--json'], { timeoutMs: T });
    expect(viaManifest.code, viaManifest.stderr).toBe(0);
    const viaFolder = await runCli(['import', '--workspace', b, '--folder', dataDir, '--pattern', '{make}_{model}_{year}_*', '--json'], {
      timeoutMs: T,
    });
    expect(viaFolder.code, viaFolder.stderr).toBe(0);
    const sm = JSON.parse(viaManifest.stdout) as { errors: unknown[]; listingsAdded: number };
    const sf = JSON.parse(viaFolder.stdout) as { errors: Array<{ where: string }>; listingsAdded: number };
    expect(sm.errors).toEqual([]);
    // the folder holds labels.csv beside the photos: the only file it skips
    expect(sf.errors.map((e) => e.where)).toEqual(['labels.csv']);
    const ca = counts(a);
    expect(ca.listings).toBeGreaterThan(800);
    expect(counts(b)).toEqual(ca);
    const sa = space(a);
    const sb = space(b);
    expect(sa.classes.length).toBeGreaterThan(10);
    expect(sb).toEqual(sa);
  });
});
