import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { api, runCli, startServe, type Served } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import type { RunInfo, RunMetricPoint } from '../src-main/engine/api/contract/index.ts';

if (!hasChromium()) console.log(`skipping the training dashboard UI test: no Chromium at ${CHROMIUM}`);

/**
 * The Train stage's dashboard in Chromium on a demo-site workspace with two CLI-trained runs (all
 * heads; price only, named): hovering a chart shows every run's value at the step, equal to
 * runs.metrics; legends name the runs, whose colours stay put when a run is hidden; log-scale
 * steps; the total-loss warning across loss-weight presets; the runs table's best figures, "not
 * trained" heads and config diff, fitting the stage at 1280 px; the backend line in plain words.
 */
describe.runIf(hasChromium())('training dashboard in Chromium', () => {
  let browser: Browser;
  let s: Served;
  let page: Page;
  let runs: RunInfo[];
  const metrics: Record<number, RunMetricPoint[]> = {};
  beforeAll(async () => {
    const dir = `${tmpDir()}/ws`;
    const sc = await runCli(['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '80', '--retry-delay-ms', '5'], { timeoutMs: 120_000 });
    expect(sc.code, sc.stderr).toBe(0);
    for (const extra of [['--steps', '60'], ['--steps', '40', '--loss-weights', 'price_ce_only', '--name', 'price only']]) {
      const t = await runCli(['train', '--workspace', dir, '--extractor', 'mobilenet_v2', '--eval-every', '20', '--split', 'photo', '--json', ...extra], { timeoutMs: 300_000 });
      expect(t.code, t.stderr).toBe(0);
    }
    s = await startServe(['--workspace', dir]);
    runs = (await api(s, 'runs.list', {})) as RunInfo[];
    // the same points the stage asks for
    for (const r of runs) metrics[r.id] = (await api(s, 'runs.metrics', { id: r.id, maxTrainPoints: 1500 })) as RunMetricPoint[];
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(60_000);
    await page.goto(`${s.url}?token=${s.token}`);
    await page.getByTestId('nav-train').click();
  }, 400_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  const label = (r: RunInfo) => `#${r.id} ${r.name}`;
  /** Every tooltip row of the chart under the mouse: series label, colour, value and the step of that value. */
  const tooltipRows = async (chart: string) => {
    const tip = page.getByTestId(chart).getByTestId('chart-tooltip');
    await tip.waitFor();
    const step = Number(await tip.getAttribute('data-step'));
    const rows = await tip.getByTestId('tooltip-row').evaluateAll((els) =>
      els.map((e) => ({ series: e.getAttribute('data-series')!, value: e.getAttribute('data-value')!, at: e.getAttribute('data-at-step')!, color: e.getAttribute('data-color')! })),
    );
    return { step, rows };
  };
  const hover = async (chart: string, fx: number) => {
    const over = page.getByTestId(chart).locator('.u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * fx, box.y + box.height * 0.5);
  };

  it('hover shows each run’s train and test value at the step, equal to runs.metrics; colours stay per run', async () => {
    const [b, a] = runs; // newest first: b = price only, a = all heads
    expect(b!.name).toBe('price only');
    await page.getByTestId('train-smoothing').fill('0');
    await page.getByTestId('head-select').selectOption('price');
    // both runs plotted: all their price-loss points
    const expected = [a!, b!].reduce((n, r) => n + metrics[r.id]!.length, 0);
    await expect.poll(async () => Number(await page.getByTestId('chart-loss').getAttribute('data-points'))).toBe(expected);
    const legend = await page.locator('[data-testid="chart-loss"] .u-legend .u-series .u-label').allTextContents();
    for (const r of [a!, b!]) for (const split of ['train', 'test']) expect(legend).toContain(`${label(r)} ${split}`);

    const colours: Record<string, string> = {};
    for (const fx of [0.1, 0.5, 0.97]) {
      await hover('chart-loss', fx);
      await page.waitForTimeout(100);
      const { step, rows } = await tooltipRows('chart-loss');
      expect(rows).toHaveLength(4);
      // the step under the cursor is one of the plotted steps, and some series has its point there
      expect(rows.some((r) => Number(r.at) === step)).toBe(true);
      for (const row of rows) {
        const run = [a!, b!].find((r) => row.series.startsWith(`${label(r)} `))!;
        const split = row.series.endsWith(' test') ? 'test' : 'train';
        const at = Number(row.at);
        const point = metrics[run.id]!.find((p) => p.split === split && p.step === at);
        expect(point, `${row.series} at step ${at}`).toBeDefined();
        expect(Number(row.value)).toBe(point!.price.loss);
        // the nearest point of that series to the hovered step
        const steps = metrics[run.id]!.filter((p) => p.split === split).map((p) => Math.abs(p.step - step));
        expect(Math.abs(at - step)).toBe(Math.min(...steps));
        colours[row.series] = row.color;
      }
    }
    expect(colours[`${label(a!)} train`]).toBe(colours[`${label(a!)} test`]);
    expect(colours[`${label(a!)} train`]).not.toBe(colours[`${label(b!)} train`]);
    await page.getByTestId('chart-loss').screenshot({ path: artifactPath('dashboard-hover.png') });

    // hiding the newer run leaves the older one its colour; adding it back gives it its own again
    await page.getByTestId(`plot-${b!.id}`).uncheck();
    await hover('chart-loss', 0.5);
    await page.waitForTimeout(100);
    const alone = await tooltipRows('chart-loss');
    expect(alone.rows.map((r) => r.series).sort()).toEqual([`${label(a!)} test`, `${label(a!)} train`]);
    expect(alone.rows.find((r) => r.series === `${label(a!)} train`)!.color).toBe(colours[`${label(a!)} train`]);
    await page.getByTestId(`plot-${b!.id}`).check();
    await hover('chart-loss', 0.5);
    await page.waitForTimeout(100);
    const again = await tooltipRows('chart-loss');
    expect(again.rows.find((r) => r.series === `${label(b!)} train`)!.color).toBe(colours[`${label(b!)} train`]);
    await page.mouse.move(0, 0);
  });

  it('log-scale steps, and a warning when total loss overlays different loss weights', async () => {
    await page.getByTestId('head-select').selectOption('total');
    await page.getByTestId('total-loss-warning').waitFor();
    expect(await page.getByTestId('total-loss-warning').textContent()).toMatch(/default, price_ce_only|price_ce_only, default/);
    const [b] = runs;
    await page.getByTestId(`plot-${b!.id}`).uncheck();
    await page.getByTestId('total-loss-warning').waitFor({ state: 'detached' });
    await page.getByTestId(`plot-${b!.id}`).check();

    await page.getByTestId('train-log-x').check();
    await expect.poll(() => page.getByTestId('chart-loss').getAttribute('data-log-x')).toBe('1');
    const positive = runs.reduce((n, r) => n + metrics[r.id]!.filter((p) => p.step >= 1).length, 0);
    expect(Number(await page.getByTestId('chart-loss').getAttribute('data-points'))).toBe(positive);
    await page.getByTestId('chart-loss').screenshot({ path: artifactPath('dashboard-log-x.png') });
    await page.getByTestId('train-log-x').uncheck();
  });

  it('runs table: best figures, not-trained heads, config diff; no sideways scroll at 1280, 1440, 1920 px', async () => {
    const [b, a] = runs;
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    expect(await page.getByTestId(`run-${a!.id}-price`).textContent()).toBe(`${pct(a!.best!.price.accuracy)} (${a!.best!.step})`);
    expect(await page.getByTestId(`run-${a!.id}-state`).textContent()).toBe('done');
    for (const h of ['makeModel', 'year', 'median']) expect(await page.getByTestId(`run-${b!.id}-${h}`).textContent()).toBe('not trained');
    expect(await page.getByTestId(`run-${b!.id}-makeModel`).getAttribute('title')).toBe('loss weight 0');
    expect(await page.getByTestId(`select-run-${b!.id}`).textContent()).toContain('price only');

    await page.getByTestId(`diff-${a!.id}`).check();
    await page.getByTestId(`diff-${b!.id}`).check();
    const diff = page.getByTestId('run-diff');
    await diff.waitFor();
    expect(await diff.getByTestId('diff-row-lossWeights').locator('td').allTextContents()).toEqual(['lossWeights', 'default', 'price_ce_only']);
    expect(await diff.getByTestId('diff-row-steps').locator('td').allTextContents()).toEqual(['steps', '60', '40']);
    expect(await diff.getByTestId('diff-row-name').locator('td').allTextContents()).toEqual(['name', '(not set)', 'price only']);
    expect(await diff.getByTestId('diff-row-mode').count()).toBe(0);

    // plain words first: where it trains; the backend's own note is behind "how"
    const line = page.getByTestId('backend-line');
    expect(await line.locator('span').first().textContent()).toMatch(/^Training on (CPU|GPU); fine-tuning /);
    expect(await line.getByTestId('backend-details').getAttribute('open')).toBeNull();

    for (const width of [1280, 1440, 1920]) {
      await page.setViewportSize({ width, height: 1000 });
      await page.waitForTimeout(300);
      const fit = (await page.evaluate(`(() => {
        const wrap = document.querySelector('[data-testid="runs-table-wrap"]');
        return {
          wrap: [wrap.scrollWidth, wrap.clientWidth],
          table: wrap.querySelector('table').scrollWidth,
          page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        };
      })()`)) as { wrap: [number, number]; table: number; page: [number, number] };
      expect(fit.wrap[0], `runs table at ${width} px`).toBeLessThanOrEqual(fit.wrap[1]);
      expect(fit.table).toBeLessThanOrEqual(fit.wrap[1]);
      expect(fit.page[0], `page at ${width} px`).toBeLessThanOrEqual(fit.page[1]);
      await page.getByTestId('runs-table').scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifactPath(`dashboard-${width}.png`), fullPage: true });
    }
  });
});
