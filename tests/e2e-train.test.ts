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
      ['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '50', '--retry-delay-ms', '5'],
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    s = await startServe(['--workspace', dir]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
    // UI waits get a generous default: a busy machine renders slowly
    page.setDefaultTimeout(60_000);
    await page.goto(`${s.url}?token=${s.token}`);
  }, 400_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  const points = async (id: string): Promise<number> => Number(await page.getByTestId(id).getAttribute('data-points'));
  // Waits that depend on training progress have no clock of their own: training takes as long as
  // the machine needs, and the test's timeout is the last-resort bound.
  const PROGRESS = { timeout: 0 };
  const waitPoints = (id: string, above: number) =>
    page.waitForFunction(`Number(document.querySelector('[data-testid="${id}"]')?.dataset.points ?? 0) > ${above}`, undefined, PROGRESS);
  /**
   * Waits until the run row matching `rows` reaches an end state, and returns it (a failed run ends
   * the wait at once). 'interrupted' is not one: a row can show it for a moment while its job stops.
   */
  const runEnds = async (rows: string): Promise<string | null> => {
    const ended = page.locator(['done', 'failed', 'stopped'].map((st) => `${rows}[data-state="${st}"]`).join(', ')).first();
    await ended.waitFor(PROGRESS);
    return ended.getAttribute('data-state');
  };

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

    // a run long enough to be stopped part way (it is stopped a few evaluations in; the rest,
    // trained after the resume, is what costs the time)
    await page.getByTestId('train-steps').fill('1000');
    await page.getByTestId('train-eval').fill('100');
    await page.getByTestId('start-train').click();
    await waitPoints('chart-loss', 0);
    const first = await points('chart-loss');
    await waitPoints('chart-loss', first);
    expect(await points('chart-loss')).toBeGreaterThan(first);
    await page
      .getByTestId('train-live')
      .filter({ hasText: /samples\/s/ })
      .waitFor(PROGRESS);
    expect(await page.getByTestId('train-live').textContent()).toMatch(/ETA/);

    await page.getByTestId('stop-train').click();
    const row = page.locator('tr[data-testid^="run-"]').first();
    expect(await runEnds('tr[data-testid^="run-"]')).toBe('stopped');
    const runId = Number((await row.getAttribute('data-testid'))!.slice(4));
    const stoppedAt = ((await api(s, 'runs.get', { id: runId })) as RunInfo).step;
    expect(stoppedAt).toBeGreaterThan(0);
    expect(stoppedAt).toBeLessThan(1000);
    const atStop = await points('chart-loss');

    // resume from the runs table: the same run continues (its curve keeps growing) to the end
    await page.getByTestId(`resume-${runId}`).click();
    await page.locator(`[data-testid="run-${runId}"]:not([data-state="stopped"])`).waitFor();
    expect(await runEnds(`[data-testid="run-${runId}"]`)).toBe('done');
    expect(await points('chart-loss')).toBeGreaterThan(atStop);
    const done = (await api(s, 'runs.get', { id: runId })) as RunInfo;
    expect(done.step).toBe(1000);
    expect(done.lastTest!.price.accuracy).toBeGreaterThan(0);

    // a second run with price_ce_only, overlaid on the first
    await page.getByTestId('train-steps').fill('300');
    await page.getByTestId('train-loss').selectOption('price_ce_only');
    await page.getByTestId('start-train').click();
    await page.locator(`tr[data-testid^="run-"]:not([data-testid="run-${runId}"])`).waitFor();
    expect(await runEnds(`tr[data-testid^="run-"]:not([data-testid="run-${runId}"])`)).toBe('done');
    const legend = page.locator('[data-testid="chart-loss"] .u-legend .u-series');
    // the train and test series of each run
    await page.waitForFunction(`document.querySelectorAll('[data-testid="chart-loss"] .u-legend .u-series').length >= 4`, undefined, {
      timeout: 10_000,
    });
    const labels = await legend.allTextContents();
    expect(labels.some((l) => l.includes('price_ce_only train'))).toBe(true);
    // legends name each run by its id and name
    expect(labels.some((l) => l.includes(`#${runId} ${done.name} train`))).toBe(true);
    await page.getByTestId('train-smoothing').fill('0.9');
    await page.screenshot({ path: artifactPath('train-stage-overlay.png'), fullPage: true });

    // delete the second run: gone from the table and from the API
    const runs = (await api(s, 'runs.list')) as RunInfo[];
    const second = runs.find((r) => r.lossWeights === 'price_ce_only')!;
    await page.getByTestId(`delete-${second.id}`).click();
    await page.getByTestId(`run-${second.id}`).waitFor({ state: 'detached', timeout: 10_000 });
    expect(((await api(s, 'runs.list')) as RunInfo[]).map((r) => r.id)).toEqual([runId]);
  }, 600_000);
});
