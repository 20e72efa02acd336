import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { api, startServe, type Served } from './helpers/processes.ts';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import type { FilterState, JobInfo } from '../src-main/engine/api/contract/index.ts';

// Waits on a job have no clock of their own (a busy machine takes longer); the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };
const SINGLE = 8;

if (!hasChromium())
  console.log(`skipping the labelling end-to-end test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('labelling in bulk and the filter meter in Chromium', () => {
  let browser: Browser;
  let s: Served;
  beforeAll(async () => {
    const dir = path.join(tmpDir(), 'ws');
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 150);
    ws.close();
    s = await startServe(['--workspace', dir]);
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  const count = async (page: Page, id: string) =>
    Number((await page.getByTestId(id).locator('.metric-value').textContent())!.replace(/,/g, ''));
  const untilCounts = (page: Page, good: number, bad: number) =>
    Promise.all([
      page
        .getByTestId('count-good')
        .locator('.metric-value')
        .filter({ hasText: new RegExp(`^${good}$`) })
        .waitFor(),
      page
        .getByTestId('count-bad')
        .locator('.metric-value')
        .filter({ hasText: new RegExp(`^${bad}$`) })
        .waitFor(),
    ]);
  /** Waits for a fresh page of unlabelled images (none labelled yet). */
  const freshPage = async (page: Page) => {
    const grid = page.getByTestId('label-grid');
    await expect
      .poll(
        async () =>
          (await grid.locator('[data-testid="label-item"]').count()) > 0 &&
          (await grid.locator('[data-label="good"], [data-label="bad"]').count()) === 0,
      )
      .toBe(true);
    return grid.locator('[data-testid="label-item"]');
  };

  it('labels 100 images with bulk actions several times faster than one at a time; undo/redo a bulk step; preview, scrolling cursor, labels view', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${s.url}?token=${s.token}#/filter`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    let items = await freshPage(page);

    // keys work as soon as the stage opens: no click first
    await page.keyboard.press('g');
    await untilCounts(page, 1, 0);
    await page.keyboard.press('Control+z');
    await untilCounts(page, 0, 0);

    // one at a time: the baseline, clicking each image's own "good" button and seeing it counted
    const t0 = performance.now();
    for (let i = 0; i < SINGLE; i++) {
      await items.nth(i).hover();
      await items.nth(i).locator('.label-actions button', { hasText: 'good' }).click();
      await untilCounts(page, i + 1, 0);
    }
    const singleMs = performance.now() - t0;
    await page.getByTestId('next-page').click();
    items = await freshPage(page);

    // bulk: 100 images in three pages
    const t1 = performance.now();
    // page 1: shift-click a range of 4 as bad, the rest of the page good
    await items.nth(0).click();
    await items.nth(3).click({ modifiers: ['Shift'] });
    expect(await page.locator('[data-picked="true"]').count()).toBe(4);
    await page.keyboard.press('b');
    await page.keyboard.press('Shift+G');
    const page1 = await items.count();
    await untilCounts(page, SINGLE + page1 - 4, 4);
    await page.keyboard.press('n');
    items = await freshPage(page);
    // page 2: Ctrl-click two as bad, the button "mark the rest good"
    await items.nth(5).click({ modifiers: ['Control'] });
    await items.nth(9).click({ modifiers: ['Control'] });
    await page.keyboard.press('b');
    await page.getByTestId('label-rest-good').click();
    const page2 = await items.count();
    await untilCounts(page, SINGLE + page1 + page2 - 6, 6);
    await page.keyboard.press('n');
    items = await freshPage(page);
    // page 3: the rest up to 100 as one shift-click range, good
    const rest = 100 - page1 - page2;
    await items.nth(0).click();
    await items.nth(rest - 1).click({ modifiers: ['Shift'] });
    await page.keyboard.press('g');
    await untilCounts(page, SINGLE + 94, 6);
    const bulkMs = performance.now() - t1;

    const singlePerMin = (SINGLE / singleMs) * 60_000;
    const bulkPerMin = (100 / bulkMs) * 60_000;
    console.log(
      `labels per minute in Chromium: one at a time ${singlePerMin.toFixed(0)} (${SINGLE} in ${(singleMs / 1000).toFixed(1)} s), bulk ${bulkPerMin.toFixed(0)} (100 in ${(bulkMs / 1000).toFixed(1)} s, 11 actions): ${(bulkPerMin / singlePerMin).toFixed(1)}x`,
    );
    // one page is 3-4 actions instead of 36 clicks; each action costs about what one click does
    expect(bulkPerMin).toBeGreaterThan(3 * singlePerMin);

    // the last bulk action is one undo step, and one redo step
    await page.keyboard.press('Control+z');
    await untilCounts(page, SINGLE + 94 - rest, 6);
    await expect.poll(() => page.getByTestId('label-grid').locator('[data-label="good"]').count()).toBe(0);
    await page.keyboard.press('Control+y');
    await untilCounts(page, SINGLE + 94, 6);
    await expect.poll(() => page.getByTestId('label-grid').locator('[data-label="good"]').count()).toBe(rest);

    // the cursor scrolls into view; the key legend stays in view
    await page.keyboard.press('n');
    items = await freshPage(page);
    await items.nth(0).click();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowDown');
    const cursor = page.locator('[data-testid="label-item"].selected');
    // (browser-side code as strings: the tests are typed without the DOM library)
    const inView = (selector: string) =>
      page.evaluate(
        `(() => { const r = document.querySelector('${selector}').getBoundingClientRect(); return r.top >= -1 && r.bottom <= window.innerHeight + 1; })()`,
      );
    await expect.poll(() => inView('[data-testid="label-item"].selected')).toBe(true);
    expect(await inView('[data-testid="key-legend"]')).toBe(true);
    // space: the large preview of the image under the cursor (away from the pointer, which previews what it rests on)
    await page.mouse.move(0, 0);
    await page.keyboard.press(' ');
    const preview = page.getByTestId('label-preview');
    await preview.waitFor();
    expect(await preview.getAttribute('data-image-id')).toBe(await cursor.getAttribute('data-image-id'));
    expect((await preview.locator('img').boundingBox())!.width).toBeGreaterThan(2 * (await cursor.boundingBox())!.width);
    await page.screenshot({ path: artifactPath('labelling-preview-1280.png') });
    await page.keyboard.press(' ');
    await preview.waitFor({ state: 'detached' });
    // resting the pointer on a thumbnail previews it, until the pointer leaves
    await items.nth(2).hover();
    await preview.and(page.locator('[data-pinned="false"]')).waitFor();
    expect(await preview.getAttribute('data-image-id')).toBe(await items.nth(2).getAttribute('data-image-id'));
    await page.mouse.move(0, 0);
    await preview.waitFor({ state: 'detached' });

    // the labels given so far: bad ones, relabelled good from there
    const view = page.getByTestId('labels-view');
    await view.getByTestId('labels-filter').selectOption('bad');
    await view.locator('[data-testid="labels-total"][data-total="6"]').waitFor();
    expect(await view.locator('[data-testid="labels-item"][data-label="bad"]').count()).toBe(6);
    await view.getByTestId('labels-item').first().getByTestId('relabel-good').click();
    await untilCounts(page, SINGLE + 95, 5);
    await view.locator('[data-testid="labels-total"][data-total="5"]').waitFor();
    expect(await count(page, 'count-good')).toBe(SINGLE + 95);
    expect(errors).toEqual([]);
  }, 120_000);

  it('the meter: the CV FNR interval, too-few-labels warnings, "choose" with its reason, a stale fit, boundary labels and the kept share after Apply; screenshots at 1280, 1440 and 1920 px', async () => {
    // a real fit on the labels of the first test (mobilenet_v2 features, one C)
    const fit = (await api(s, 'jobs.start', {
      kind: 'filter-fit',
      params: { extractor: 'mobilenet_v2', maxFnr: 0.05, folds: 5, cGrid: [1] },
    })) as JobInfo;
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${s.url}?token=${s.token}#/filter`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await expect
      .poll(async () => ((await api(s, 'jobs.get', { id: fit.id })) as JobInfo).state, { timeout: 100_000, interval: 500 })
      .toBe('done');
    const panel = page.getByTestId('threshold-panel');
    await panel.waitFor();
    const state = (await api(s, 'filter.state')) as FilterState;
    expect(state.model!.stale).toBeNull();

    // the FNR with its 90% interval, and the warnings: 5 bad labels (under 100), 103 good (over 20 times as many)
    const ci = page.getByTestId('meter-fnr-ci');
    await ci.waitFor();
    expect(await ci.textContent()).toMatch(new RegExp(String.raw`^90% CI \d+\.\d%–\d+\.\d% · \d+ of ${SINGLE + 95} good$`));
    await page.getByTestId('meter-warning').nth(1).waitFor();
    expect(await page.getByTestId('meter-warning').allTextContents()).toEqual([
      expect.stringMatching(/^only 5 bad labels/),
      expect.stringMatching(/^unbalanced labels \(103 good, 5 bad\)/),
    ]);

    // "choose" moves the slider and says why
    await page.getByTestId('choose-threshold').click();
    const why = page.getByTestId('choose-explanation');
    await why.waitFor();
    const picked = await page.getByTestId('threshold-value').textContent();
    expect(await why.textContent()).toContain(`at ${picked} the CV FNR is`);

    // before Apply the kept share waits; Apply fills it in without moving the slider
    await page.getByTestId('meter-kept').locator('.metric-label').filter({ hasText: 'apply to see' }).waitFor();
    await page.getByTestId('apply-filter').click();
    await page.getByTestId('meter-kept').locator('.metric-label').filter({ hasText: 'of 150 scored' }).waitFor(PROGRESS);
    expect(await page.getByTestId('meter-kept').locator('.metric-value').textContent()).toMatch(/^\d+(\.\d+)?%$/);
    expect(await page.getByTestId('threshold-value').textContent()).toBe(picked);

    // a boundary image labelled from the panel: the fit is now stale
    const nearItem = panel.locator('[data-testid="near-item"][data-label=""]').first();
    await nearItem.waitFor();
    await nearItem.getByTestId('near-bad').click();
    await page.getByTestId('filter-stale').and(page.locator('[data-added="1"]')).waitFor();
    expect(await page.getByTestId('filter-stale').textContent()).toMatch(/The filter is stale:.*fitted on 103 good and 5 bad \(1 added\)/);

    for (const width of [1280, 1440, 1920]) {
      await page.setViewportSize({ width, height: 1000 });
      await panel.scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifactPath(`labelling-filter-${width}.png`), fullPage: true });
    }
    expect(errors).toEqual([]);
  }, 120_000);
});
