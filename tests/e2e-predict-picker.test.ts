import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { makeJpeg, SHARED_DATA, tmpDir } from './helpers/workspace.ts';
import { startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';
import { modelCacheDir } from '../src-main/engine/ml/model-cache.ts';

// Waits on a job have no clock of their own (a busy machine takes longer); the test's timeout bounds them.
const PROGRESS = { timeout: 0 };
const GOOD = path.join(SHARED_DATA, 'listing-photos', 'good');

const ok = hasChromium();
if (!ok) console.log(`skipping the Predict folder picker UI test: needs Chromium at ${CHROMIUM}`);

/** Real photos for a folder: listing photos when the shared data is here, else JPEGs made by sharp. */
async function fillFolder(dir: string, n: number, offset: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const shared = fs.existsSync(GOOD) ? fs.readdirSync(GOOD).filter((f) => f.endsWith('.jpg')).sort() : [];
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = shared.length ? shared[(offset + i * 37) % shared.length]! : `car-${offset + i}.jpg`;
    if (shared.length) fs.copyFileSync(path.join(GOOD, name), path.join(dir, name));
    else fs.writeFileSync(path.join(dir, name), await makeJpeg(320, 240, offset + i));
    names.push(name);
  }
  return names;
}

/** Rectangles of the visible text inputs/selects and buttons of the stage's folder row and forms that overlap. */
async function overlaps(page: Page): Promise<string[]> {
  return (await page.evaluate(`(() => {
    const stage = document.querySelector('[data-testid="predict-stage"]');
    const vis = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 ? r : null; };
    const name = (el) => el.getAttribute('data-testid') || el.textContent.trim().slice(0, 30) || el.tagName;
    const inputs = [...stage.querySelectorAll('input:not([type=checkbox]):not([type=radio]), select')].filter(vis);
    const buttons = [...stage.querySelectorAll('button')].filter(vis);
    const out = [];
    for (const i of inputs) for (const b of buttons) {
      const r = i.getBoundingClientRect(), s = b.getBoundingClientRect();
      const x = Math.min(r.right, s.right) - Math.max(r.left, s.left), y = Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top);
      if (x > 0.5 && y > 0.5) out.push(name(i) + ' overlaps ' + name(b));
    }
    return out;
  })()`)) as string[];
}

/**
 * The Predict stage's folder picker against a real `carstudio serve` whose home folder is a
 * temporary one: browse to a folder and predict it, the stage's own errors for a missing folder
 * and a file, Retry on a failed job with the last good results kept, no toast on an empty stage,
 * a readable compare table, and no input under a button at 1280, 1440 and 1920 px.
 */
describe.runIf(ok)('Predict stage folder picker in Chromium', () => {
  let browser: Browser;
  let served: Served;
  let page: Page;
  let root: string;
  let home: string;
  let cars: string;
  let carNames: string[];
  let runId: string;
  const errorToasts = () => page.locator('[data-testid="toast-error"], .toast-error').count();

  beforeAll(async () => {
    root = fs.realpathSync(tmpDir('carstudio-e2e-picker-'));
    home = path.join(root, 'home');
    cars = path.join(home, 'Pictures', 'cars');
    carNames = await fillFolder(cars, 5, 0);
    fs.mkdirSync(path.join(home, 'Documents'), { recursive: true });
    const ws = path.join(root, 'ws');
    // the model cache stays where the test machine has it; only the home folder moves
    served = await startServe(['--workspace', ws, '--create'], { HOME: home, USERPROFILE: home, CARSTUDIO_MODEL_CACHE: modelCacheDir() });
    runId = path.basename(await buildHeadsRun(ws, 'picker-run', { synthetic: true, photos: 48, steps: 20 }));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await served?.stop('SIGKILL');
  });

  it('opens an empty stage without an error toast', async () => {
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.getByTestId('nav-predict').click();
    await page.getByTestId('predict-stage').waitFor();
    await expect.poll(() => page.getByTestId('predict-run').inputValue(), { timeout: 10_000 }).toBe(runId);
    await page.waitForTimeout(1500);
    expect(await errorToasts()).toBe(0);
    expect(await page.getByTestId('predict-stage-error').count()).toBe(0);
  });

  it('browses to a folder, picks it and predicts it', async () => {
    await page.getByTestId('predict-browse').click();
    const browser = page.getByTestId('folder-browser');
    await expect.poll(() => browser.getByTestId('folder-browser-path').textContent()).toBe(home);
    expect(await browser.getByTestId('folder-browser-up').isDisabled()).toBe(true);
    await browser.locator('[data-testid="folder-browser-folder"][data-name="Pictures"]').click();
    await expect.poll(() => browser.getByTestId('folder-browser-path').textContent()).toBe(path.join(home, 'Pictures'));
    expect(await browser.locator('[data-name="cars"]').textContent()).toContain('5 photos');
    await browser.locator('[data-testid="folder-browser-folder"][data-name="cars"]').click();
    await expect.poll(() => browser.getByTestId('folder-browser-images').textContent()).toBe('5 photos here');
    await browser.getByTestId('folder-browser-choose').click();
    expect(await page.getByTestId('folder-browser').count()).toBe(0);
    expect(await page.getByTestId('predict-folder').inputValue()).toBe(cars);

    await page.getByTestId('predict-start').click();
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor(PROGRESS);
    await expect.poll(() => page.getByTestId('predict-card').count()).toBe(5);
    // the folder is now a recent one: in the browser's list
    await page.getByTestId('predict-browse').click();
    expect(await page.getByTestId('folder-browser-recent').first().getAttribute('title')).toBe(cars);
    await page.getByTestId('folder-browser-close').click();
  }, 240_000);

  it('says in the stage why a folder cannot be predicted: it does not exist, it is a file (~ expanded)', async () => {
    const jobsBefore = (await (await fetch(`${served.url}api/jobs.list`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${served.token}` }, body: '{}' })).json()) as { value: unknown[] };
    await page.getByTestId('predict-folder').fill('~/Pictures/nope');
    await page.getByTestId('predict-start').click();
    await expect.poll(() => page.getByTestId('predict-stage-error').textContent()).toBe(`${path.join(home, 'Pictures', 'nope')}: folder does not exist`);
    await page.getByTestId('predict-folder').fill(`~/Pictures/cars/${carNames[0]}`);
    expect(await page.getByTestId('predict-stage-error').count()).toBe(0);
    await page.getByTestId('predict-start').click();
    await expect.poll(() => page.getByTestId('predict-stage-error').textContent()).toContain(`${path.join(cars, carNames[0]!)}: not a folder`);
    // no job was started for either, and the results stay
    const jobsAfter = (await (await fetch(`${served.url}api/jobs.list`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${served.token}` }, body: '{}' })).json()) as { value: unknown[] };
    expect(jobsAfter.value.length).toBe(jobsBefore.value.length);
    expect(await page.getByTestId('predict-card').count()).toBe(5);
    expect(await errorToasts()).toBe(0);
  });

  it('predicts a hidden folder typed with ~, which the browser does not list (the job opens it)', async () => {
    await fillFolder(path.join(home, '.photos'), 1, 50);
    await page.getByTestId('predict-folder').fill('~/.photos');
    await page.getByTestId('predict-start').click();
    await expect.poll(() => page.getByTestId('predict-folder').inputValue()).toBe(path.join(home, '.photos'));
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor(PROGRESS);
    await expect.poll(() => page.getByTestId('predict-card').count()).toBe(1);
  }, 120_000);

  it('offers Retry on a failed job and keeps the last good results visible meanwhile', async () => {
    // a folder outside the home folder is not checked by the browser: the job itself fails on it
    const later = path.join(root, 'later');
    await page.getByTestId('predict-folder').fill(later);
    await page.getByTestId('predict-start').click();
    await page.locator('[data-testid="predict-progress"][data-state="failed"]').waitFor(PROGRESS);
    expect(await page.getByTestId('predict-job-error').textContent()).toContain(`${later} does not exist`);
    expect(await page.getByTestId('predict-retry').isVisible()).toBe(true);
    expect(await page.getByTestId('predict-resume').count()).toBe(0);
    expect(await page.getByTestId('predict-card').count()).toBe(1);
    expect(await page.getByTestId('predict-card').first().getAttribute('data-path')).toContain(path.join(home, '.photos'));

    // the folder turns up; Retry runs the same job again and its results replace the old ones
    await fillFolder(later, 2, 100);
    await page.getByTestId('predict-folder').fill('');
    await page.getByTestId('predict-retry').click();
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor(PROGRESS);
    await expect.poll(() => page.getByTestId('predict-card').count()).toBe(2);
    expect(await page.getByTestId('predict-card').first().getAttribute('data-path')).toContain(later);
    expect(await page.getByTestId('predict-job-error').count()).toBe(0);
    expect(await page.getByTestId('predict-folder').inputValue()).toBe(later);
  }, 240_000);

  it('compares two photos in a readable table with a file name on every row', async () => {
    await page.getByTestId('predict-select').nth(0).check();
    await page.getByTestId('predict-select').nth(1).check();
    await page.getByTestId('predict-compare').click();
    const rows = page.getByTestId('predict-compare-row');
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(2);
    for (let i = 0; i < 2; i++) {
      const p = (await rows.nth(i).getAttribute('data-path'))!;
      expect(await rows.nth(i).getByTestId('predict-compare-file').textContent()).toContain(path.basename(p));
    }
    // every cell's text against the panel behind it: WCAG AA contrast (4.5:1)
    const worst = (await page.evaluate(`(() => {
      const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
      const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
      const bg = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
      let worst = 99;
      for (const td of document.querySelectorAll('[data-testid="predict-compare-table"] td, [data-testid="predict-compare-table"] th')) {
        if (!td.textContent.trim()) continue;
        const a = lum(rgb(getComputedStyle(td).color)), b = lum(bg(td));
        worst = Math.min(worst, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
      }
      return worst;
    })()`)) as number;
    console.log(`compare table: worst text contrast ${worst.toFixed(2)}:1`);
    await page.getByTestId('predict-compare-table').screenshot({ path: artifactPath('predict-compare-table.png') });
    expect(worst).toBeGreaterThanOrEqual(4.5);
  }, 120_000);

  it('keeps every input clear of its buttons at 1280, 1440 and 1920 px (screenshots)', async () => {
    await page.getByTestId('predict-folder').fill(path.join(home, 'Pictures', 'a folder with a rather long name for the test', 'and another level'));
    await page.getByTestId('predict-browse').click();
    await page.getByTestId('folder-browser').waitFor();
    for (const width of [1280, 1440, 1920]) {
      await page.setViewportSize({ width, height: 900 });
      await page.waitForTimeout(200);
      expect(await overlaps(page), `at ${width} px`).toEqual([]);
      await page.screenshot({ path: artifactPath(`predict-picker-${width}.png`), fullPage: true });
    }
  });
});
