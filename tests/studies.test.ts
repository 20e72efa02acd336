// The intervention studies (occlusion map, region edit, background swap) through the API and the
// CLI, on a small heads run trained here and real JPEGs made by sharp (plus a real listing photo
// for the car detector's box when ../shared/data is present): what each study changes, that a
// region the model never sees changes nothing, the same inputs give the same JSON, and bad input
// gets a clear error.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { EditStudy, OcclusionStudy, SwapStudy } from '../src-main/engine/api/contract/studies.ts';
import { placement, windowStarts } from '../src-main/engine/predict/studies.ts';
import { buildHeadsRun, LABELLED } from './helpers/predict-run.ts';
import { buildCarV1Run } from './helpers/car-run.ts';
import { runCli } from './helpers/processes.ts';
import { makeJpeg, SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');

/** The result as the CLI's --json prints it: without data URLs and PNG bytes. */
function withoutImages(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutImages);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k, x]) => !(typeof x === 'string' && (x.startsWith('data:image/') || k === 'png'))).map(([k, x]) => [k, withoutImages(x)]));
  return v;
}

describe('intervention studies', () => {
  let root: string;
  let wsDir: string;
  let engine: Engine;
  let runId: string;
  let wide: string;
  let photo: string;
  let bgDir: string;
  beforeAll(async () => {
    root = tmpDir('carstudio-studies-');
    wsDir = path.join(root, 'ws');
    engine = Engine.open(wsDir, { create: true });
    runId = path.basename(await buildHeadsRun(wsDir, 'study-run', { synthetic: true, photos: 48, steps: 20 }));
    // the photos live in the workspace (readable by the API's path policy)
    const pics = path.join(wsDir, 'pics');
    fs.mkdirSync(pics);
    // 3:1, so the model's centre square spans x 400-800
    wide = path.join(pics, 'wide.jpg');
    fs.writeFileSync(wide, await makeJpeg(1200, 400, 3));
    photo = path.join(pics, 'photo.jpg');
    fs.writeFileSync(photo, await makeJpeg(640, 480, 7));
    bgDir = path.join(pics, 'backgrounds');
    fs.mkdirSync(bgDir);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(bgDir, `bg-${i}.jpg`), await makeJpeg(480 + 80 * i, 360, 20 + i));
    fs.writeFileSync(path.join(bgDir, 'broken.jpg'), 'not a photo');
    fs.writeFileSync(path.join(bgDir, 'notes.txt'), 'not an image name');
  }, 180_000);
  afterAll(async () => {
    await engine?.close();
  });

  it('grid and placement geometry', () => {
    expect(windowStarts(10, 4, 2)).toEqual([0, 2, 4, 6]);
    expect(windowStarts(11, 4, 3)).toEqual([0, 3, 6, 7]);
    expect(windowStarts(3, 4, 2)).toEqual([0]);
    // the car's box keeps its relative centre and fits the box's relative size, its shape kept
    expect(placement({ x1: 0.25, y1: 0.5, x2: 0.75, y2: 1 }, { width: 200, height: 100 }, { width: 400, height: 400 })).toEqual({ left: 100, top: 250, width: 200, height: 100 });
  });

  it('occlusion map: cells over the photo, no change where the model does not look, same result twice', async () => {
    const params = { runId, path: wide, size: 0.25, stride: 0.25, png: true };
    const a = await engine.request('study.occlusion', params);
    expect(a.rows).toBe(4);
    expect(a.cols).toBe(12);
    expect(a.cells).toHaveLength(48);
    expect(a.base.makeModel).not.toBe('');
    for (const c of a.cells) {
      expect(c.rect.x1).toBeGreaterThanOrEqual(0);
      expect(c.rect.x2).toBeLessThanOrEqual(1);
      expect(c.medianPrice).toBeGreaterThanOrEqual(0);
      expect(c.makeModelP).toBeGreaterThanOrEqual(0);
      expect(c.makeModelP).toBeLessThanOrEqual(1);
    }
    // the model sees the centre square (x 1/3-2/3): squares clear of it (beyond the resize
    // filter's reach at its edge) change nothing...
    const outside = a.cells.filter((c) => c.rect.x2 < 1 / 3 - 0.02 || c.rect.x1 > 2 / 3 + 0.02);
    expect(outside.length).toBeGreaterThan(10);
    for (const c of outside) expect([c.dPrice, c.dropMakeModel, c.dropYear]).toEqual([0, 0, 0]);
    // ...and squares inside it move the outputs
    const inside = a.cells.filter((c) => c.rect.x1 >= 1 / 3 && c.rect.x2 <= 2 / 3);
    expect(inside.some((c) => c.dPrice !== 0 || c.dropMakeModel !== 0)).toBe(true);
    // the heat-map PNG is the working decode's size
    const meta = await sharp(Buffer.from(a.png!, 'base64')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1200, 400]);
    const b = await engine.request('study.occlusion', params);
    expect(b).toEqual(a);
    // the PNG of another target: the same cells, another map
    const mm = await engine.request('study.occlusion', { ...params, target: 'makeModel' });
    expect([a.pngTarget, mm.pngTarget]).toEqual(['price', 'makeModel']);
    expect(mm.cells).toEqual(a.cells);
    expect(mm.png).not.toBe(a.png);
  }, 120_000);

  it('region edit: grey, blur and a patch from another photo; before and after side by side', async () => {
    const centre = { x1: 0.4, y1: 0.1, x2: 0.6, y2: 0.9 };
    const grey = await engine.request('study.edit', { runId, path: wide, rect: centre, fill: 'grey', png: true });
    expect(grey.diff.priceBinsTv).toBeGreaterThan(0);
    expect(grey.diff.medianPrice).toBeCloseTo(grey.after.medianPrice - grey.before.medianPrice, 1);
    expect(grey.afterImage).toMatch(/^data:image\/jpeg;base64,/);
    // the edited photo: the rectangle is flat grey
    const { data, info } = await sharp(Buffer.from(grey.png!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    expect(at(Math.round(0.5 * info.width), Math.round(0.5 * info.height))).toEqual([128, 128, 128]);
    expect(at(5, 5)).not.toEqual([128, 128, 128]);
    // an edit outside what the model sees changes nothing
    const aside = await engine.request('study.edit', { runId, path: wide, rect: { x1: 0, y1: 0, x2: 0.2, y2: 1 }, fill: 'grey' });
    expect(aside.diff).toMatchObject({ medianPrice: 0, priceBinsTv: 0, topMakeModelChanged: false, topYearChanged: false });
    const blur = await engine.request('study.edit', { runId, path: wide, rect: centre, fill: 'blur' });
    expect(blur.before).toEqual(grey.before);
    expect(blur.after).not.toEqual(grey.after);
    const patch = await engine.request('study.edit', { runId, path: wide, rect: centre, fill: 'patch', patchPath: photo });
    expect(patch.patchPath).toBe(photo);
    expect(patch.after).not.toEqual(grey.after);
    // bad rectangles and a patch without its photo: clear errors
    const outside = await engine.call('study.edit', { path: wide, rect: { x1: 0.5, y1: 0, x2: 1.4, y2: 1 } });
    expect(outside.ok).toBe(false);
    if (!outside.ok) expect(outside.error.message).toMatch(/x2/);
    const flat = await engine.call('study.edit', { path: wide, rect: { x1: 0.5, y1: 0.2, x2: 0.5, y2: 0.6 } });
    expect(!flat.ok && flat.error.message).toMatch(/x1 < x2 and y1 < y2/);
    const noPatch = await engine.call('study.edit', { path: wide, rect: centre, fill: 'patch' });
    expect(!noPatch.ok && noPatch.error.message).toMatch(/needs a second photo/);
  }, 120_000);

  it('background swap: the car on each background, a broken background gets its reason, the limit is said', async () => {
    const box = { x1: 0.35, y1: 0.2, x2: 0.65, y2: 0.8 };
    const s = await engine.request('study.swap', { runId, path: wide, backgrounds: bgDir, box, png: true });
    expect(s.boxSource).toBe('given');
    expect(s.items.map((i) => path.basename(i.path))).toEqual(['bg-0.jpg', 'bg-1.jpg', 'bg-2.jpg', 'broken.jpg']);
    expect(s.items[3]!.error).toMatch(/not an image/);
    for (const it of s.items.slice(0, 3)) {
      expect(it.prediction!.medianPrice).toBeGreaterThanOrEqual(0);
      expect(it.diff!.medianPrice).toBeCloseTo(it.prediction!.medianPrice - s.original.medianPrice, 1);
      expect(it.image).toMatch(/^data:image\/jpeg;base64,/);
    }
    // different backgrounds, different predictions
    expect(new Set(s.items.slice(0, 3).map((i) => i.prediction!.medianPrice)).size).toBeGreaterThan(1);
    expect(s.note).toBeNull();
    const sheet = await sharp(Buffer.from(s.png!, 'base64')).metadata();
    expect([sheet.width, sheet.height]).toEqual([4 * 240, 180 + 22]);
    expect(await engine.request('study.swap', { runId, path: wide, backgrounds: bgDir, box })).toEqual({ ...s, png: undefined });

    // more backgrounds than the limit: the first 24 by name, and a note saying so
    const many = path.join(wsDir, 'pics', 'many');
    fs.mkdirSync(many);
    const tiny = await makeJpeg(64, 48, 1);
    for (let i = 0; i < 26; i++) fs.writeFileSync(path.join(many, `b${String(i).padStart(2, '0')}.jpg`), tiny);
    const lots = await engine.request('study.swap', { runId, path: wide, backgrounds: many, box });
    expect(lots.items).toHaveLength(24);
    expect(lots.backgrounds).toBe(26);
    expect(lots.note).toMatch(/holds 26 background photos; the swap used the first 24/);

    // an empty folder, a folder outside the readable ones, a corrupt photo: clear errors
    // (a symlink in the folder to a photo outside the readable folders does not count)
    const elsewhere = tmpDir('carstudio-studies-outside-');
    fs.writeFileSync(path.join(elsewhere, 'bg.jpg'), tiny);
    const empty = path.join(wsDir, 'pics', 'empty');
    fs.mkdirSync(empty);
    fs.symlinkSync(path.join(elsewhere, 'bg.jpg'), path.join(empty, 'link.jpg'));
    const e1 = await engine.call('study.swap', { runId, path: wide, backgrounds: empty, box });
    expect(!e1.ok && e1.error.message).toMatch(/holds no background photos/);
    const refused = /no such file in the folders this studio may read/;
    const e2 = await engine.call('study.swap', { runId, path: wide, backgrounds: elsewhere, box });
    expect(!e2.ok && e2.error.message).toMatch(refused);
    const e2b = await engine.call('study.occlusion', { runId, path: path.join(elsewhere, 'bg.jpg') });
    expect(!e2b.ok && e2b.error.message).toMatch(refused);
    const e2c = await engine.call('study.edit', { runId, path: wide, rect: box, fill: 'patch', patchPath: path.join(elsewhere, 'bg.jpg') });
    expect(!e2c.ok && e2c.error.message).toMatch(refused);
    const e3 = await engine.call('study.occlusion', { runId, path: path.join(bgDir, 'broken.jpg') });
    expect(!e3.ok && e3.error.message).toMatch(/broken\.jpg: not an image/);
    // a photo without a car and no box drawn
    const e4 = await engine.call('study.swap', { runId, path: photo, backgrounds: bgDir });
    expect(!e4.ok && e4.error.message).toMatch(/found no car in this photo; draw a box around the car instead|car detector is not available/);
  }, 120_000);

  it.runIf(fs.existsSync(GOOD))("background swap keeps the detector's car box of a real listing photo", async () => {
    const real = fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort()[0]!;
    const file = path.join(wsDir, 'pics', 'listing.jpg');
    fs.copyFileSync(path.join(GOOD, real), file);
    const s = await engine.request('study.swap', { runId, path: file, backgrounds: bgDir });
    expect(s.boxSource).toBe('detector');
    expect(s.box.x2 - s.box.x1).toBeGreaterThan(0.2);
    expect(s.items.filter((i) => i.prediction)).toHaveLength(3);
  }, 60_000);

  it('the CLI: JSON for every study, the same as the API, identical twice; pictures where asked; clear errors', async () => {
    const cli = (args: string[]) => runCli(['study', ...args, '--workspace', wsDir, '--run', runId], { timeoutMs: 120_000 });
    const occ1 = await cli(['occlusion', wide, '--size', '0.25', '--stride', '0.25', '--json']);
    expect(occ1.stderr).toBe('');
    expect(occ1.code).toBe(0);
    const occ2 = await cli(['occlusion', wide, '--size', '0.25', '--stride', '0.25', '--json']);
    expect(occ2.stdout).toBe(occ1.stdout);
    const api = await engine.request('study.occlusion', { runId, path: wide, size: 0.25, stride: 0.25 });
    expect(JSON.parse(occ1.stdout)).toEqual(withoutImages(api));

    const out = path.join(root, 'out');
    const edit = await cli(['edit', wide, '--rect', '0.4,0.1,0.6,0.9', '--fill', 'blur', '--out', out]);
    expect(edit.code).toBe(0);
    expect(edit.stdout).toMatch(/^before\t\$[\d,]+/m);
    expect(edit.stdout).toMatch(/^after\t\$[\d,]+/m);
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'edit.json'), 'utf8')) as EditStudy;
    expect(saved.fill).toBe('blur');
    expect((await sharp(path.join(out, 'edit.png')).metadata()).width).toBe(1200);

    const png = path.join(root, 'swap.png');
    const swap = await cli(['swap', wide, '--backgrounds', bgDir, '--box', '0.35,0.2,0.65,0.8', '--json', '--png', png]);
    expect(swap.code).toBe(0);
    const sw = JSON.parse(swap.stdout) as SwapStudy;
    expect(sw.items).toHaveLength(4);
    expect(sw).toEqual(withoutImages(await engine.request('study.swap', { runId, path: wide, backgrounds: bgDir, box: { x1: 0.35, y1: 0.2, x2: 0.65, y2: 0.8 } })));
    expect((await sharp(png).metadata()).format).toBe('png');

    const pan = await cli(['pan', wide, '--steps', '4', '--json']);
    expect((JSON.parse(pan.stdout) as { steps: unknown[] }).steps).toHaveLength(4);
    const cmp = await cli(['compare', wide, photo]);
    expect(cmp.stdout.trim().split('\n')).toHaveLength(2);

    // bad input: a rectangle outside the photo, an unknown study, a missing photo (exit 2, no stack)
    const bad = await cli(['edit', wide, '--rect', '0.5,0,1.5,1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/rect\.x2: Number must be less than or equal to 1/);
    const unknown = await cli(['heatmap', wide]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown study 'heatmap': use one of occlusion, edit, swap, pan, compare/);
    const missing = await cli(['occlusion', path.join(root, 'nope.jpg')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.jpg: no such file or folder/);
    const occ = JSON.parse(occ1.stdout) as OcclusionStudy;
    expect(occ.image).toBeUndefined();
  }, 240_000);
});

const haveLabelled = fs.existsSync(GOOD) && fs.existsSync(path.join(LABELLED, 'labels.csv'));
if (!haveLabelled) console.log(`skipping the car-v1 studies test: ${GOOD} or ${LABELLED}/labels.csv is absent`);

/**
 * A car-v1 run's input also holds the detector's view of the whole photo: an edit the model's
 * centre square never sees still reaches it through the detector, and a study reads the car box
 * from the features as prediction does.
 */
describe.runIf(haveLabelled)('intervention studies on a car-v1 run', () => {
  let engine: Engine;
  let runId: string;
  let photo: string;
  beforeAll(async () => {
    const wsDir = path.join(tmpDir('carstudio-studies-car-'), 'ws');
    engine = Engine.open(wsDir, { create: true });
    runId = path.basename(await buildCarV1Run(wsDir, 'car-run', 16, 10));
    const side = fs.readdirSync(GOOD).filter((f) => f.startsWith('profile-on-right__') && f.endsWith('.jpg')).sort()[0]!;
    photo = path.join(wsDir, 'side.jpg');
    fs.copyFileSync(path.join(GOOD, side), photo);
  }, 300_000);
  afterAll(async () => {
    await engine?.close();
  });

  it('edits outside the centre square move the prediction through the detector view; the swap finds the car', async () => {
    const meta = await sharp(photo).metadata();
    expect(meta.width!).toBeGreaterThan(meta.height!);
    // the leftmost fifth lies outside the centre square of a landscape photo wider than 5:3
    const edge = (1 - meta.height! / meta.width!) / 2;
    const rect = { x1: 0, y1: 0, x2: Math.min(0.2, edge - 0.02), y2: 1 };
    expect(rect.x2).toBeGreaterThan(0.05);
    const e = await engine.request('study.edit', { runId, path: photo, rect, fill: 'grey' });
    expect(e.before.medianPrice).toBeGreaterThanOrEqual(0);
    expect(e.diff.priceBinsTv).toBeGreaterThan(0);
    const again = await engine.request('study.edit', { runId, path: photo, rect, fill: 'grey' });
    expect(again).toEqual(e);
    const bgs = path.join(path.dirname(photo), 'bgs');
    fs.mkdirSync(bgs);
    fs.writeFileSync(path.join(bgs, 'a.jpg'), await makeJpeg(640, 400, 9));
    const s = await engine.request('study.swap', { runId, path: photo, backgrounds: bgs });
    expect(s.boxSource).toBe('detector');
    expect(s.items[0]!.prediction!.medianPrice).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
