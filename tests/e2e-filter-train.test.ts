import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { runCli, startServe, type Served } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's or a run's progress have no clock of their own (a busy machine takes longer);
// the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };

if (!hasChromium()) console.log(`skipping the Label & Filter / Train UI tests: no Chromium at ${CHROMIUM}`);

describe.runIf(hasChromium())('Label & Filter and Train stages in Chromium', () => {
  let browser: Browser;
  let s: Served;
  let page: Page;
  beforeAll(async () => {
    const dir = `${tmpDir()}/ws`;
    const r = await runCli(['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '60', '--retry-delay-ms', '5'], { timeoutMs: 600_000 });
    expect(r.code, r.stderr).toBe(0);
    s = await startServe(['--workspace', dir]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    await page.goto(`${s.url}?token=${s.token}`);
  }, 600_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  const count = async (id: string) => Number((await page.getByTestId(id).locator('.metric-value').textContent())!.replace(/,/g, ''));

  it('labels a page with the keyboard, keeps the labels over a reload, fits a filter and moves the threshold', async () => {
    await page.getByTestId('nav-filter').click();
    const grid = page.getByTestId('label-grid');
    await grid.locator('[data-testid="label-item"]').first().waitFor();
    await grid.locator('[data-testid="label-item"]').first().click();
    const keys = ['g', 'b', 'g', 'b', 'g', 'b', 'g', 'b', 'g', 'b', 'g', 'b', 's', 'g'];
    for (const k of keys) await page.keyboard.press(k);
    // undo the last one
    await page.keyboard.press('u');
    await page.getByTestId('count-good').locator('.metric-value').filter({ hasText: /^6$/ }).waitFor();
    await page.getByTestId('count-bad').locator('.metric-value').filter({ hasText: /^6$/ }).waitFor();
    // the counts come from the engine; the grid's own marks follow the undo a moment later
    await expect.poll(() => grid.locator('[data-label="good"]').count(), { timeout: 10_000 }).toBe(6);
    await expect.poll(() => grid.locator('[data-label="bad"]').count(), { timeout: 10_000 }).toBe(6);

    await page.reload();
    await page.getByTestId('nav-filter').click();
    await page.getByTestId('count-good').locator('.metric-value').filter({ hasText: /^6$/ }).waitFor();
    expect(await count('count-bad')).toBe(6);

    await page.getByTestId('fit-filter').click();
    const panel = page.getByTestId('threshold-panel');
    await panel.waitFor(PROGRESS);
    const fnr = page.getByTestId('meter-fnr').locator('.metric-value');
    await fnr.filter({ hasText: /%/ }).waitFor();
    const slider = page.getByTestId('threshold-slider');
    const max = Number(await slider.getAttribute('max'));
    await slider.fill(String(max));
    // past the highest score every good image is below the threshold, past the lowest none is
    await fnr.filter({ hasText: /^100\.00%$/ }).waitFor();
    const high = await fnr.textContent();
    const min = Number(await slider.getAttribute('min'));
    await slider.fill(String(min));
    await fnr.filter({ hasText: /^0\.00%$/ }).waitFor();
    expect(high).not.toBe('0.00%');
    await page.screenshot({ path: artifactPath('filter-stage.png'), fullPage: true });
  }, 600_000);

  it('offers to download the CLIP weights when clip-vit-b16 is chosen and they are not installed', async () => {
    await page.getByTestId('nav-filter').click();
    await page.getByTestId('filter-extractor').selectOption('clip-vit-b16');
    await expect.poll(() => page.getByTestId('extractor-help').textContent()).toContain('needs the CLIP ViT-B/16 image encoder as ONNX');
    expect(await page.getByTestId('clip-url').inputValue()).toContain('huggingface.co');
    expect(await page.getByTestId('clip-download').isEnabled()).toBe(true);
    expect(await page.getByTestId('fit-filter').isDisabled()).toBe(true);
    await page.getByTestId('extractor-setup').scrollIntoViewIfNeeded();
    await page.screenshot({ path: artifactPath('filter-clip-setup.png') });
    await page.getByTestId('filter-extractor').selectOption('mobilenet_v2');
    expect(await page.getByTestId('extractor-setup').count()).toBe(0);
  });

  it('starts runs from the Train stage and shows their curves growing, overlaid', async () => {
    await page.getByTestId('nav-train').click();
    await page.getByTestId('backend').locator('.metric-value').filter({ hasText: /wasm|cpu|tensorflow/ }).waitFor();
    await page.getByTestId('train-steps').fill('300');
    await page.getByTestId('train-eval').fill('100');
    await page.getByTestId('start-train').click();
    const chart = page.getByTestId('chart-loss');
    const points = async () => Number(await chart.getAttribute('data-points'));
    await page.waitForFunction(`Number(document.querySelector('[data-testid="chart-loss"]').dataset.points) > 0`, undefined, PROGRESS);
    const first = await points();
    await page.waitForFunction(`Number(document.querySelector('[data-testid="chart-loss"]').dataset.points) > ${first}`, undefined, PROGRESS);
    await page.locator('tr[data-testid^="run-"][data-state="done"]').first().waitFor(PROGRESS);
    await page.getByTestId('train-loss').selectOption('price_ce_only');
    await page.getByTestId('start-train').click();
    await page.locator('tr[data-testid^="run-"][data-state="done"]').nth(1).waitFor(PROGRESS);
    // both runs overlaid: the train and test series of each
    expect(await page.locator('[data-testid="chart-loss"] .u-legend .u-series').count()).toBeGreaterThanOrEqual(4);
    expect(await page.getByTestId('runs-table').textContent()).toContain('price_ce_only');
    await page.screenshot({ path: artifactPath('train-stage.png'), fullPage: true });
  }, 900_000);
});
