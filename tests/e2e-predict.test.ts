import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';

// Waits on a job's or a run's progress have no clock of their own (a busy machine takes longer);
// the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };

const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');
const BAD = path.join(SHARED_DATA, 'listing-photos', 'bad');
const ok = hasChromium() && fs.existsSync(GOOD) && fs.existsSync(BAD);
if (!ok) console.log(`skipping the Predict stage UI test: needs Chromium at ${CHROMIUM}, ${GOOD} and ${BAD}`);

/**
 * The Predict stage against a real `carstudio serve`: a run trained here, a folder of real photos
 * chosen by path, the grid filling with live progress, a detail view, and a crop pan with its chart.
 */
describe.runIf(ok)('Predict stage in Chromium', () => {
  let browser: Browser;
  let served: Served;
  let folder: string;
  let wide: string;
  let runId: string;
  let yearClasses = 0;
  beforeAll(async () => {
    const root = tmpDir('carstudio-e2e-predict-');
    const ws = path.join(root, 'ws');
    served = await startServe(['--workspace', ws, '--create']);
    const runDir = await buildHeadsRun(ws, 'ui-run', { synthetic: true, photos: 48, steps: 20 });
    runId = path.basename(runDir);
    yearClasses = (JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as { space: { years: string[] } }).space.years.length;
    folder = path.join(root, 'photos');
    fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
    const files = fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort().filter((_, i) => i % 12 === 0).slice(0, 40);
    files.forEach((f, i) => fs.copyFileSync(path.join(GOOD, f), path.join(folder, i % 4 ? '' : 'sub', f)));
    fs.writeFileSync(path.join(folder, 'broken.jpg'), 'not a photo');
    // an interior shot: no car in it, so its card says the prediction is unreliable
    const interior = fs.readdirSync(BAD).filter((f) => f.startsWith('interior__') && f.endsWith('.jpg')).sort()[0]!;
    fs.copyFileSync(path.join(BAD, interior), path.join(folder, interior));
    wide = path.join(folder, files[1]!);
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await served?.stop('SIGKILL');
  });

  it('predicts a folder, fills the grid live, opens a detail view and pans a crop', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.getByTestId('nav-predict').click();
    await page.getByTestId('predict-stage').waitFor();
    // the run list arrives with the stage's first query: wait for it rather than read it at once
    await expect.poll(() => page.getByTestId('predict-run').inputValue(), { timeout: 10_000 }).toBe(runId);
    expect(await page.getByTestId('predict-checkpoint').inputValue()).toBe('best');

    await page.getByTestId('predict-folder').fill(folder);
    await page.getByTestId('predict-start').click();
    const progress = page.getByTestId('predict-progress');
    await progress.waitFor();
    // the grid fills while the job runs: cards appear before it is done
    await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length > 0`, undefined, PROGRESS);
    const seenWhileRunning = (await page.evaluate(`({
      cards: document.querySelectorAll('[data-testid="predict-card"]').length,
      state: document.querySelector('[data-testid="predict-progress"]')?.getAttribute('data-state'),
      done: Number(document.querySelector('[data-testid="predict-progress"]')?.getAttribute('data-done')),
      rate: document.querySelector('[data-testid="predict-rate"]')?.textContent,
    })`)) as { cards: number; state: string; done: number; rate: string };
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor(PROGRESS);
    expect(await progress.getAttribute('data-total')).toBe('42');
    await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length === 42`);
    console.log(`grid while running: ${seenWhileRunning.cards} cards at ${seenWhileRunning.done}/42 (state ${seenWhileRunning.state}, rate ${seenWhileRunning.rate})`);
    expect(seenWhileRunning.cards).toBeLessThan(42);
    await page.getByTestId('predict-counts').filter({ hasText: '41 predicted, 1 errors, 42 files' }).waitFor();
    await page.getByTestId('predict-error').filter({ hasText: 'not an image' }).waitFor();
    await progress.filter({ hasText: '41 predicted, 1 errors' }).waitFor();

    // the detected car's box is drawn over the thumbnail of a photo with a car, where the car is
    // in the displayed (4:3, cropped to fill) thumbnail
    const withCar = page.locator('[data-testid="predict-photo"][data-has-car="true"]').first();
    await withCar.locator('img').waitFor();
    await withCar.getByTestId('predict-car-box').waitFor();
    type Box = { left: number; top: number; width: number; height: number };
    type El = { getBoundingClientRect(): Box; querySelector(s: string): El; closest(s: string): El; getAttribute(n: string): string };
    const geo = await withCar.evaluate((node) => {
      const el = node as unknown as El;
      const r = (e: El) => {
        const b = e.getBoundingClientRect();
        return { x: b.left, y: b.top, w: b.width, h: b.height };
      };
      return { img: r(el.querySelector('img')), box: r(el.querySelector('[data-testid="predict-car-box"]')), path: el.closest('[data-testid="predict-card"]').getAttribute('data-path') };
    });
    const sets = (await api(served, 'predict.sets', {})) as Array<{ jobId: number }>;
    const pageOf = (await api(served, 'predict.results', { jobId: sets[0]!.jobId, limit: 100 })) as { items: Array<{ path: string; width: number; height: number; prediction?: { car: { box: { x1: number; y1: number; x2: number; y2: number } } } }> };
    const rec = pageOf.items.find((it) => it.path === geo.path)!;
    const b = rec.prediction!.car.box;
    // object-fit: cover of a w:h photo in a 4:3 box: it fills one side, the other is cut evenly
    const a = rec.width / rec.height;
    const sx = a > 4 / 3 ? a / (4 / 3) : 1;
    const sy = a > 4 / 3 ? 1 : 4 / 3 / a;
    const at = (v: number, s: number) => Math.min(1, Math.max(0, (1 - s) / 2 + v * s));
    expect(geo.img.h).toBeCloseTo((geo.img.w * 3) / 4, 0);
    expect(Math.abs(geo.box.x - (geo.img.x + at(b.x1, sx) * geo.img.w))).toBeLessThan(2);
    expect(Math.abs(geo.box.y - (geo.img.y + at(b.y1, sy) * geo.img.h))).toBeLessThan(2);
    expect(Math.abs(geo.box.x + geo.box.w - (geo.img.x + at(b.x2, sx) * geo.img.w))).toBeLessThan(2);
    expect(Math.abs(geo.box.y + geo.box.h - (geo.img.y + at(b.y2, sy) * geo.img.h))).toBeLessThan(2);
    expect(await withCar.getByTestId('predict-car-box').textContent()).toMatch(/^car \d+%$/);
    // the interior's card: no box, and the warning
    const noCar = page.locator('[data-testid="predict-card"][data-path*="interior__"]');
    await noCar.getByTestId('predict-no-car').filter({ hasText: 'No car found in this photo — the prediction is unreliable' }).waitFor();
    expect(await noCar.getByTestId('predict-car-box').count()).toBe(0);
    // listing photos of whole cars: most thumbnails carry a box
    expect(await page.getByTestId('predict-car-box').count()).toBeGreaterThan(20);
    await page.getByTestId('predict-grid').screenshot({ path: artifactPath('e2e-predict-car-boxes.png') });

    // sort by predicted price, descending
    await page.getByTestId('predict-sort').selectOption('price');
    await page.getByTestId('predict-order').selectOption('desc');
    await page.waitForTimeout(500);
    const medians = await page.getByTestId('predict-median').allTextContents();
    const vals = medians.map((m) => Number(m.replace(/[^0-9.]/g, '')));
    expect(vals).toEqual([...vals].sort((a, b) => b - a));

    // detail view
    await page.getByTestId('predict-open').first().click();
    await page.getByTestId('predict-detail').waitFor();
    expect(Number(await page.getByTestId('predict-detail-price').getAttribute('data-bars'))).toBe(10);
    // one bar per year class of the run (the years its data spans, plus "unknown")
    expect(yearClasses).toBeGreaterThan(2);
    expect(Number(await page.getByTestId('predict-detail-years').getAttribute('data-bars'))).toBe(yearClasses);
    expect(await page.getByTestId('predict-detail-mm').locator('tr').count()).toBe(5);

    // crop pan of a chosen photo
    await page.getByTestId('predict-pan-path').fill(wide);
    await page.getByTestId('predict-pan-steps').fill('7');
    await page.getByTestId('predict-pan-run').click();
    await page.getByTestId('predict-pan-result').waitFor(PROGRESS);
    expect(await page.getByTestId('predict-pan-price').getAttribute('data-points')).toBe('7');
    expect(await page.getByTestId('predict-pan-mm').locator('polyline').count()).toBeGreaterThan(0);
    const x0 = Number(await page.getByTestId('predict-crop-rect').getAttribute('x'));
    await page.getByTestId('predict-pan-pos').fill('6');
    const x6 = Number(await page.getByTestId('predict-crop-rect').getAttribute('x'));
    expect(x6).toBeGreaterThan(x0);
    await page.screenshot({ path: artifactPath('e2e-predict.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 400_000);
});
