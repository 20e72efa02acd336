import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { api, runCli, startServe, type Served } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import type { RunInfo } from '../src-main/engine/api/contract/index.ts';

if (!hasChromium()) console.log(`skipping the Train stage UI test: no Chromium at ${CHROMIUM}`);

/**
 * The Train stage in Chromium on a demo-site workspace: class lists, a run started from the form
 * whose curves grow while it trains, stop and resume from the runs table, a second run
 * (price_ce_only) overlaid on the first, smoothing, and deleting a run.
 */
describe.runIf(hasChromium())('Train stage in Chromium', () => {
  let browser: Browser;
  let s: Served;
  let page: Page;
  beforeAll(async () => {
    const dir = `${tmpDir()}/ws`;
    const r = await runCli(
      ['scrape', '--workspace', dir, '--base-url', 'demo', '--min-id', '1', '--max-id', '50', '--retry-delay-ms', '5'],
      { timeoutMs: 90_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    s = await startServe(['--workspace', dir]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
    await page.goto(`${s.url}?token=${s.token}`);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  const points = async (id: string): Promise<number> => Number(await page.getByTestId(id).getAttribute('data-points'));
  const waitPoints = (id: string, above: number, timeout = 60_000) =>
    page.waitForFunction(`Number(document.querySelector('[data-testid="${id}"]')?.dataset.points ?? 0) > ${above}`, undefined, { timeout });

  it('trains, stops, resumes, overlays a second run and deletes one', async () => {
    await page.getByTestId('nav-train').click();
    // the backend in use, why finetune is (not) available, and the class lists with counts
    await page
      .getByTestId('backend')
      .locator('.metric-value')
      .filter({ hasText: /wasm|cpu|tensorflow/ })
      .waitFor();
    expect(await page.getByText(/^Finetune: /).textContent()).toMatch(/convolution gradients|force/);
    expect(await page.getByTestId('price-classes').locator('tr').count()).toBe(10);
    expect(await page.getByTestId('year-classes').locator('tr').count()).toBeGreaterThan(3);

    // a run long enough to be stopped half way
    await page.getByTestId('train-steps').fill('2500');
    await page.getByTestId('train-eval').fill('100');
    await page.getByTestId('start-train').click();
    await waitPoints('chart-loss', 0, 90_000);
    const first = await points('chart-loss');
    await waitPoints('chart-loss', first);
    expect(await points('chart-loss')).toBeGreaterThan(first);
    await page
      .getByTestId('train-live')
      .filter({ hasText: /samples\/s/ })
      .waitFor();
    expect(await page.getByTestId('train-live').textContent()).toMatch(/ETA/);

    await page.getByTestId('stop-train').click();
    const row = page.locator('[data-testid^="run-"]').first();
    await page.locator('[data-testid^="run-"][data-state="stopped"]').first().waitFor({ timeout: 30_000 });
    const runId = Number((await row.getAttribute('data-testid'))!.slice(4));
    const stoppedAt = ((await api(s, 'runs.get', { id: runId })) as RunInfo).step;
    expect(stoppedAt).toBeGreaterThan(0);
    expect(stoppedAt).toBeLessThan(2500);
    const atStop = await points('chart-loss');

    // resume from the runs table: the same run continues (its curve keeps growing) to the end
    await page.getByTestId(`resume-${runId}`).click();
    await page.locator(`[data-testid="run-${runId}"][data-state="done"]`).waitFor({ timeout: 90_000 });
    expect(await points('chart-loss')).toBeGreaterThan(atStop);
    const done = (await api(s, 'runs.get', { id: runId })) as RunInfo;
    expect(done.step).toBe(2500);
    expect(done.lastTest!.price.accuracy).toBeGreaterThan(0);

    // a second run with price_ce_only, overlaid on the first
    await page.getByTestId('train-steps').fill('300');
    await page.getByTestId('train-loss').selectOption('price_ce_only');
    await page.getByTestId('start-train').click();
    await page.locator('[data-testid^="run-"][data-state="done"]').nth(1).waitFor({ timeout: 90_000 });
    const legend = page.locator('[data-testid="chart-loss"] .u-legend .u-series');
    // the train and test series of each run
    await page.waitForFunction(`document.querySelectorAll('[data-testid="chart-loss"] .u-legend .u-series').length >= 4`, undefined, {
      timeout: 10_000,
    });
    const labels = await legend.allTextContents();
    expect(labels.some((l) => l.includes('price_ce_only train'))).toBe(true);
    expect(labels.some((l) => l.includes(`#${runId} default train`))).toBe(true);
    await page.getByTestId('train-smoothing').fill('0.9');
    await page.screenshot({ path: artifactPath('train-stage-overlay.png'), fullPage: true });

    // delete the second run: gone from the table and from the API
    const runs = (await api(s, 'runs.list')) as RunInfo[];
    const second = runs.find((r) => r.lossWeights === 'price_ce_only')!;
    await page.getByTestId(`delete-${second.id}`).click();
    await page.getByTestId(`run-${second.id}`).waitFor({ state: 'detached', timeout: 10_000 });
    expect(((await api(s, 'runs.list')) as RunInfo[]).map((r) => r.id)).toEqual([runId]);
  }, 240_000);
});
