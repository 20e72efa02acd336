import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';
import { startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';

// Waits on a study have no clock of their own (a busy machine takes longer); the test's timeout
// is the last-resort bound.
const SLOW = { timeout: 0 };

const ok = hasChromium();
if (!ok) console.log(`skipping the intervention studies UI test: needs Chromium at ${CHROMIUM}`);

/**
 * The studies panel of the Predict stage against a real `carstudio serve`: a run trained here, a
 * folder of sharp-made JPEGs predicted, then on one predicted photo an occlusion map (heat map and
 * its PNG download), a region edit drawn by dragging (before/after) and a background swap onto a
 * folder (composites with prices), all on the shared price axis with the crop pan.
 */
describe.runIf(ok)('intervention studies in Chromium', () => {
  let browser: Browser;
  let served: Served;
  let folder: string;
  let bgDir: string;
  beforeAll(async () => {
    const root = tmpDir('carstudio-e2e-studies-');
    const ws = path.join(root, 'ws');
    served = await startServe(['--workspace', ws, '--create']);
    await buildHeadsRun(ws, 'study-ui-run', { synthetic: true, photos: 48, steps: 20 });
    folder = path.join(root, 'photos');
    fs.mkdirSync(folder);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(folder, `car-${i}.jpg`), await makeJpeg(900, 500, 5 + i));
    // backgrounds in a subfolder (predicted too): readable because the folder was opened for prediction
    bgDir = path.join(folder, 'scenes');
    fs.mkdirSync(bgDir);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(bgDir, `bg-${i}.jpg`), await makeJpeg(600, 400, 30 + i));
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await served?.stop('SIGKILL');
  });

  it('runs occlusion, region edit and background swap on a predicted photo', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.getByTestId('nav-predict').click();
    await page.getByTestId('predict-stage').waitFor();
    await expect.poll(() => page.getByTestId('predict-run').inputValue(), { timeout: 10_000 }).not.toBe('');

    // predict the folder, open a photo's details and study it (its crop pan runs too)
    await page.getByTestId('predict-folder').fill(folder);
    await page.getByTestId('predict-start').click();
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor(SLOW);
    await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length === 6`, undefined, SLOW);
    await page.getByTestId('predict-open').first().click();
    await page.getByTestId('predict-pan-this').click();
    await page.getByTestId('predict-pan-result').waitFor(SLOW);
    const photo = await page.getByTestId('study-path').inputValue();
    expect(photo).toBe(path.join(folder, 'car-0.jpg'));

    // occlusion map: a heat map over the photo, a list of regions, a PNG to download
    await page.getByTestId('study-occlusion-size').selectOption({ label: '1/4 of the shorter side' });
    await page.getByTestId('study-occlusion-run').click();
    await page.getByTestId('study-occlusion-result').waitFor(SLOW);
    const cells = Number(await page.getByTestId('study-heatmap').getAttribute('data-cells'));
    expect(cells).toBeGreaterThan(20);
    expect(await page.getByTestId('study-heatmap').locator('rect').count()).toBe(cells);
    expect(await page.getByTestId('study-regions').locator('li').count()).toBe(5);
    await page.getByTestId('study-heat-target').selectOption('makeModel');
    expect(await page.getByTestId('study-heatmap').getAttribute('data-target')).toBe('makeModel');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('study-occlusion-export-png').click()]);
    const pngFile = await download.path();
    expect((await sharp(pngFile).metadata()).format).toBe('png');
    expect(download.suggestedFilename()).toBe('occlusion.png');

    // region edit: drag a rectangle over the middle of the photo, grey it, before and after
    const picker = page.getByTestId('study-rect-picker');
    await picker.locator('img').waitFor();
    await picker.scrollIntoViewIfNeeded();
    const b = (await picker.boundingBox())!;
    await page.mouse.move(b.x + b.width * 0.35, b.y + b.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width * 0.55, b.y + b.height * 0.5, { steps: 4 });
    await page.mouse.move(b.x + b.width * 0.65, b.y + b.height * 0.8, { steps: 4 });
    await page.mouse.up();
    expect(await page.getByTestId('study-rect').textContent()).toMatch(/x 3[45]%–6[56]%, y (19|20|21)%–(79|80|81)%/);
    await page.getByTestId('study-edit-run').click();
    await page.getByTestId('study-edit-result').waitFor(SLOW);
    await page.getByTestId('study-edit-after').waitFor();
    expect(await page.getByTestId('study-edit-table').locator('tbody tr').count()).toBeGreaterThanOrEqual(4);

    // background swap: the drawn rectangle as the car, onto each background
    await page.getByTestId('study-swap-folder').fill(bgDir);
    await page.getByTestId('study-swap-usebox').check();
    await page.getByTestId('study-swap-run').click();
    await page.getByTestId('study-swap-result').waitFor(SLOW);
    expect(await page.getByTestId('study-swap-item').count()).toBe(3);
    const prices = await page.getByTestId('study-swap-price').allTextContents();
    expect(prices.every((p) => /^\$[\d,]+$/.test(p))).toBe(true);

    // the crop pan's chart downloads as a PNG too
    const [panPng] = await Promise.all([page.waitForEvent('download'), page.getByTestId('study-pan-export-png').click()]);
    expect(panPng.suggestedFilename()).toBe('crop-pan.png');
    const panMeta = await sharp(await panPng.path()).metadata();
    expect([panMeta.format, panMeta.width]).toEqual(['png', 1200]);
    await panPng.saveAs(artifactPath('e2e-studies-pan.png'));

    // every study's prices on the one axis the crop pan's chart shares
    const axis = page.getByTestId('study-price-axis');
    for (const row of ['crop pan', 'occlusion', 'region edit', 'background swap']) expect(await axis.getByTestId(`study-price-row-${row}`).count()).toBe(1);
    expect(Number(await axis.getAttribute('data-marks'))).toBe(9 + cells + 1 + 2 + 4);
    // tall enough that the whole panel is painted at once
    await page.setViewportSize({ width: 1400, height: 3200 });
    await page.getByTestId('studies').screenshot({ path: artifactPath('e2e-studies.png') });
    await page.setViewportSize({ width: 1400, height: 1000 });

    // a folder of no photos: the error is said, the results on screen stay
    const empty = path.join(folder, 'empty');
    fs.mkdirSync(empty);
    await page.getByTestId('study-swap-folder').fill(empty);
    await page.getByTestId('study-swap-run').click();
    await page.getByText(/holds no background photos/).first().waitFor();
    expect(await page.getByTestId('study-swap-item').count()).toBe(3);
    expect(errors).toEqual([]);
  }, 300_000);
});
