// The predict stage end to end on real photos: a small heads run trained here on MobileNetV2
// features of labelled photos, then the predict job over a folder of real photos plus broken files
// made here; the CLI and the API on the same run and images.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { PredictRecord } from '../src-main/engine/api/contract/predict.ts';
import { buildHeadsRun, LABELLED } from './helpers/predict-run.ts';
import { api, runCli, startServe } from './helpers/processes.ts';
import { SHARED_DATA, seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { cropRects } from '../src-main/engine/predict/service.ts';
import { resolveRun } from '../src-main/engine/predict/runs.ts';

const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');
const have = fs.existsSync(GOOD) && fs.existsSync(LABELLED);
if (!have) console.log(`skipping the predict tests: ${GOOD} or ${LABELLED} is absent`);

const sum = (xs: Array<{ p: number }>) => xs.reduce((s, x) => s + x.p, 0);

/** A PNG header declaring width x height (no pixel data): what a decompression bomb looks like. */
function pngHeader(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

describe.runIf(have)('predict on real photos', () => {
  let wsDir: string;
  let input: string;
  let engine: Engine;
  let runId: string;
  const real: string[] = [];
  beforeAll(async () => {
    const root = tmpDir('carstudio-predict-');
    wsDir = path.join(root, 'ws');
    engine = Engine.open(wsDir, { create: true });
    runId = path.basename(await buildHeadsRun(wsDir, 'heads-test', { photos: 60 }));
    input = path.join(root, 'photos');
    fs.mkdirSync(path.join(input, 'nested', 'deeper'), { recursive: true });
    const goods = fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort();
    const pick = goods.filter((_, i) => i % 60 === 0).slice(0, 12);
    pick.forEach((f, i) => {
      const dest = path.join(input, i < 8 ? '' : i < 10 ? 'nested' : 'nested/deeper', f);
      fs.copyFileSync(path.join(GOOD, f), dest);
      real.push(dest);
    });
    const src = fs.readFileSync(path.join(GOOD, pick[0]));
    await sharp(src).png().toFile(path.join(input, 'as-png.png'));
    await sharp(src).webp().toFile(path.join(input, 'as-webp.webp'));
    // EXIF orientation 6: stored landscape pixels, shown rotated 90 degrees (portrait)
    await sharp(src).resize(320, 200, { fit: 'fill' }).withMetadata({ orientation: 6 }).jpeg().toFile(path.join(input, 'exif-rotated.jpg'));
    fs.writeFileSync(path.join(input, 'truncated.jpg'), src.subarray(0, Math.floor(src.length / 3)));
    fs.writeFileSync(path.join(input, 'text.jpg'), 'this is not a photo\n');
    fs.writeFileSync(path.join(input, 'empty.jpg'), '');
    fs.writeFileSync(path.join(input, 'huge.png'), pngHeader(40_000, 40_000));
    fs.writeFileSync(path.join(input, 'notes.txt'), 'ignored: no image extension');
  }, 120_000);
  afterAll(async () => {
    await engine?.close();
  });

  let records: Array<PredictRecord & { index: number }> = [];
  let jobId = 0;

  it('predicts every image or gives a clear per-file error; counts add up', async () => {
    const started = await engine.request('predict.start', { input });
    jobId = started.id;
    const final = await engine.jobs.wait(jobId);
    expect(final.state).toBe('done');
    const res = final.result as { files: number; predicted: number; errors: number; ignored: number };
    const page = await engine.request('predict.results', { jobId, limit: 500 });
    records = page.items;
    const imageFiles = 12 + 7;
    expect(res.files).toBe(imageFiles);
    expect(res.ignored).toBe(1);
    expect(page.count).toBe(imageFiles);
    expect(page.predicted + page.errors).toBe(page.count);
    expect(page.predicted).toBe(15);
    expect(res.predicted).toBe(15);
    const byName = new Map(records.map((r) => [path.basename(r.path), r]));
    expect(byName.get('truncated.jpg')!.error).toMatch(/truncated|corrupt/);
    expect(byName.get('text.jpg')!.error).toMatch(/not an image/);
    expect(byName.get('empty.jpg')!.error).toBe('empty file (0 bytes)');
    expect(byName.get('huge.png')!.error).toMatch(/too large: 40000x40000 .* pixel limit/);
    expect(byName.get('exif-rotated.jpg')!).toMatchObject({ width: 200, height: 320 });
    for (const f of real) expect(byName.get(path.basename(f))?.prediction).toBeTruthy();
    expect(records.some((r) => r.rel === path.join('nested', 'deeper', path.basename(real[11])))).toBe(true);
    for (const r of records.filter((x) => x.prediction)) {
      const p = r.prediction!;
      expect(p.priceBins).toHaveLength(10);
      expect(sum(p.priceBins)).toBeCloseTo(1, 9);
      expect(sum(p.years)).toBeCloseTo(1, 9);
      expect(p.makeModels).toHaveLength(5);
      expect(p.makeModels[0].p).toBeGreaterThanOrEqual(p.makeModels[4].p);
      expect(p.medianPrice).toBeGreaterThan(0);
      expect(p.topYears).toHaveLength(3);
    }
    // progress was reported in images with a total
    expect(final.total).toBe(imageFiles);
    expect(final.done).toBe(imageFiles);
  }, 120_000);

  it('pages, sorts and filters the results, exports CSV and JSON', async () => {
    const byPrice = await engine.request('predict.results', { jobId, sort: 'price', order: 'desc', show: 'ok', limit: 100 });
    const prices = byPrice.items.map((r) => r.prediction!.medianPrice);
    expect(prices).toEqual([...prices].sort((a, b) => b - a));
    const make = byPrice.makes[0].make;
    const filtered = await engine.request('predict.results', { jobId, make });
    expect(filtered.total).toBe(byPrice.makes[0].count);
    expect(filtered.items.every((r) => r.prediction!.makeModels[0].make === make)).toBe(true);
    const conf = await engine.request('predict.results', { jobId, minConfidence: 0.99 });
    expect(conf.items.every((r) => r.prediction!.makeModels[0].p >= 0.99)).toBe(true);
    const errs = await engine.request('predict.results', { jobId, show: 'errors' });
    expect(errs.total).toBe(4);
    const csv = await engine.request('predict.export', { jobId, format: 'csv' });
    expect(csv.content.trim().split('\n')).toHaveLength(1 + 19);
    const json = JSON.parse((await engine.request('predict.export', { jobId, format: 'json' })).content) as { records: unknown[] };
    expect(json.records).toHaveLength(19);
    const one = await engine.request('predict.result', { jobId, index: 0 });
    expect(one.path).toBe(records.find((r) => r.index === 0)!.path);
  });

  it('CLI and API agree for the same run and image; a second run reuses earlier predictions', async () => {
    const cli = await runCli(['predict', '--workspace', wsDir, '--run', runId, '--input', input, '--json', '--fresh'], { timeoutMs: 90_000 });
    expect(cli.code).toBe(0);
    const lines = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; error?: string; medianPrice?: number; priceBins?: Array<{ p: number }>; makeModels?: Array<{ label: string; p: number }> });
    expect(lines).toHaveLength(19);
    const m = /predicted (\d+), errors (\d+), total (\d+)/.exec(cli.stderr)!;
    expect(Number(m[1]) + Number(m[2])).toBe(Number(m[3]));
    expect([Number(m[1]), Number(m[2]), Number(m[3])]).toEqual([15, 4, 19]);
    for (const f of [real[0], real[11], path.join(input, 'exif-rotated.jpg')]) {
      const c = lines.find((l) => l.path === f)!;
      expect(sum(c.priceBins!)).toBeCloseTo(1, 9);
      const a = await engine.request('predict.image', { runId, path: f });
      expect(a.prediction!.medianPrice).toBeCloseTo(c.medianPrice!, 1);
      a.prediction!.priceBins.forEach((b, i) => expect(b.p).toBeCloseTo(c.priceBins![i].p, 5));
      expect(a.prediction!.makeModels.map((x) => x.label)).toEqual(c.makeModels!.map((x) => x.label));
      // the uploaded bytes give the same
      const up = await engine.request('predict.image', { runId, data: fs.readFileSync(f).toString('base64'), name: 'x.jpg' });
      expect(up.prediction!.medianPrice).toBeCloseTo(c.medianPrice!, 1);
    }
    expect(lines.find((l) => l.path.endsWith('empty.jpg'))!.error).toBe('empty file (0 bytes)');
    // without --fresh, unchanged files are not predicted again
    const again = await runCli(['predict', '--workspace', wsDir, '--input', input, '--json'], { timeoutMs: 90_000 });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/predicted 15, errors 4, total 19/);
    const sets = await engine.request('predict.sets', {});
    expect(sets).toHaveLength(3);
  }, 150_000);

  it('crop panning and intervention sets', async () => {
    expect(cropRects(1000, 400, 4)).toEqual([
      { left: 0, top: 0, size: 400 },
      { left: 200, top: 0, size: 400 },
      { left: 400, top: 0, size: 400 },
      { left: 600, top: 0, size: 400 },
    ]);
    const pan = await engine.request('predict.cropPan', { path: real[1], steps: 7 });
    expect(pan.steps).toHaveLength(7);
    expect(pan.tracked.length).toBeGreaterThan(0);
    expect(pan.steps[6].crop.left + pan.steps[6].crop.size).toBe(pan.width);
    expect(pan.image).toMatch(/^data:image\/jpeg;base64,/);
    for (const s of pan.steps) expect(s.tracked.every((p) => p >= 0 && p <= 1)).toBe(true);
    const cmp = await engine.request('predict.compare', { paths: [real[0], path.join(input, 'as-png.png'), path.join(input, 'text.jpg')] });
    expect(cmp.items[0].diff).toBeNull();
    expect(Math.abs(cmp.items[1].diff!.medianPrice)).toBeLessThan(2_000);
    expect(cmp.items[2].error).toMatch(/not an image/);
    const th = await engine.request('predict.thumbnail', { path: real[0], size: 120 });
    expect(Math.max(th.width, th.height)).toBe(120);
  }, 60_000);

  it('thumbnails over the HTTP API: predicted and stored images only', async () => {
    const [key] = await seedStoredImages(engine.ws, 1);
    // outside every prediction set: a photo never predicted, one next to the predicted folder
    // (reached with ..), and one behind a symlinked folder inside it (which the walk does not enter)
    const outsideDir = path.join(path.dirname(input), 'outside');
    fs.mkdirSync(outsideDir, { recursive: true });
    const outside = path.join(outsideDir, 'secret.jpg');
    fs.copyFileSync(real[0], outside);
    fs.symlinkSync(outsideDir, path.join(input, 'link-out'));
    const notPredicted = path.join(GOOD, fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort()[1]!);
    const served = await startServe(['--workspace', wsDir]);
    try {
      type Thumb = { dataUrl: string; width: number; height: number };
      for (const file of [real[11], path.join(input, 'as-png.png'), engine.ws.store.pathFor(key!)]) {
        const t = (await api(served, 'predict.thumbnail', { path: file, size: 64 })) as Thumb;
        expect(t.dataUrl, file).toMatch(/^data:image\/jpeg;base64,/);
        expect(Math.max(t.width, t.height)).toBe(64);
      }
      for (const file of [outside, `${input}/../outside/secret.jpg`, path.join(input, 'link-out', 'secret.jpg'), notPredicted]) {
        await expect(api(served, 'predict.thumbnail', { path: file }), file).rejects.toThrow(/: no such file in the folders this studio may read/);
      }
    } finally {
      await served.stop();
      fs.rmSync(path.join(input, 'link-out'));
    }
  }, 60_000);
});

describe('runs to predict with come from the runs table', () => {
  it('lists usable runs, and says why a run whose folder is missing or empty cannot predict', async () => {
    const wsDir = path.join(tmpDir('carstudio-predict-runs-'), 'ws');
    expect((await runCli(['init', '--workspace', wsDir])).code).toBe(0);
    // a training job that fails on too few images leaves run 1 recorded as failed, with no folder
    expect((await runCli(['train', '--workspace', wsDir, '--steps', '10'], { timeoutMs: 120_000 })).code).toBe(2);
    const good = path.basename(await buildHeadsRun(wsDir, 'good', { synthetic: true, photos: 32, steps: 10 }));
    const engine = Engine.open(wsDir);
    try {
      const now = Date.now();
      const preparing = engine.ws.db
        .prepare(`INSERT INTO runs (name, mode, params, state, steps, created_at, updated_at) VALUES ('starting', 'heads', '{}', 'preparing', 10, ?, ?) RETURNING id`)
        .get(now, now) as { id: number };
      fs.mkdirSync(path.join(wsDir, 'runs', String(preparing.id)), { recursive: true });
      // a run folder copied in by hand, with no row
      fs.cpSync(path.join(wsDir, 'runs', good), path.join(wsDir, 'runs', 'loose'), { recursive: true });
      const runs = await engine.request('predict.runs', {});
      expect(runs.map((r) => [r.id, r.name])).toEqual([[good, 'good']]);
      expect(runs[0]!.checkpoints).toContain('best');
      expect(resolveRun(engine.ws).run.id).toBe(good);
      expect(() => resolveRun(engine.ws, '1')).toThrow(new RegExp(`run 1 \\('heads default'\\) cannot predict: its folder ${path.join(wsDir, 'runs', '1')} is missing`));
      expect(() => resolveRun(engine.ws, String(preparing.id))).toThrow(/cannot predict: its folder .* holds no config\.json yet \(run state: preparing\)/);
      expect(() => resolveRun(engine.ws, 'loose')).toThrow(/no run 'loose'; the folder .*loose holds a run, but not one recorded by this workspace's training \(runs: 3, 2, 1\)/);
      fs.rmSync(path.join(wsDir, 'runs', good), { recursive: true });
      expect(await engine.request('predict.runs', {})).toEqual([]);
      expect(() => resolveRun(engine.ws)).toThrow(/no trained runs in .*; train a model first \(run 3: .*; run 2: its folder .* is missing; run 1: its folder .* is missing\)/);
    } finally {
      await engine.close();
    }
    const cli = await runCli(['predict', '--workspace', wsDir, '--run', '2', '--input', wsDir]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/^carstudio: run 2 \('good'\) cannot predict: its folder .* is missing$/m);
  }, 120_000);
});
