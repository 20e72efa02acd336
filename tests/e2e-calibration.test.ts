import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { api, runCli, startServe, type Served } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import type { CalibrationReport } from '../src-main/engine/api/contract/train.ts';

if (!hasChromium()) console.log(`skipping the calibration UI test: no Chromium at ${CHROMIUM}`);

/**
 * The Train stage's calibration panel in Chromium: a run trained by the CLI (calibrated at its
 * end) shows its temperatures, ECE before/after and reliability diagrams before/after; without a
 * calibration the panel says so, and its Calibrate button runs the calibrate job and shows the
 * same temperatures again (the fit is deterministic).
 */
describe.runIf(hasChromium())('calibration in the Train stage', () => {
  let browser: Browser;
  let s: Served;
  let page: Page;
  let dir: string;
  let runId: number;
  beforeAll(async () => {
    dir = `${tmpDir()}/ws`;
    const r = await runCli(['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '80', '--retry-delay-ms', '5'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const t = await runCli(['train', '--workspace', dir, '--extractor', 'mobilenet_v2', '--steps', '120', '--eval-every', '60', '--split', 'photo', '--json'], { timeoutMs: 300_000 });
    expect(t.code, t.stderr).toBe(0);
    runId = (JSON.parse(t.stdout) as { runId: number }).runId;
    s = await startServe(['--workspace', dir]);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
    page.setDefaultTimeout(60_000);
    await page.goto(`${s.url}?token=${s.token}`);
  }, 450_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  it('shows the temperatures, ECE and reliability diagrams; Calibrate refits them', async () => {
    const stored = (await api(s, 'runs.calibration', { id: runId })) as CalibrationReport;
    expect(stored.checkpoint).toBe('best');
    await page.getByTestId('nav-train').click();
    const panel = page.getByTestId('calibration-panel');
    await expect.poll(() => panel.getAttribute('data-calibrated')).toBe('yes');
    expect(await panel.getAttribute('data-run')).toBe(String(runId));
    await expect.poll(() => page.getByTestId('temperature-price').textContent()).toBe(stored.temperatures.price.toFixed(3));
    const price = stored.heads.price as Exclude<CalibrationReport['heads']['price'], { skipped: string }>;
    expect(await page.getByTestId('ece-price').textContent()).toBe(`${price.before.ece.toFixed(3)} → ${price.after.ece.toFixed(3)}`);
    // one bar per used confidence bin, before and after
    for (const when of ['before', 'after'] as const) {
      const chart = page.getByTestId(`reliability-price-${when}`);
      await chart.waitFor();
      const used = price[when].reliability.filter((b) => b.count > 0).length;
      expect(Number(await chart.getAttribute('data-bins'))).toBe(used);
      expect(await chart.locator('rect.chart-bar').count()).toBe(used);
    }
    await page.getByTestId('calibration-panel').screenshot({ path: artifactPath('calibration-panel.png') });

    // without calibration.json the panel says so; Calibrate runs the job and the same fit comes back
    fs.rmSync(path.join(dir, 'runs', String(runId), 'calibration.json'));
    expect(await api(s, 'runs.calibration', { id: runId })).toBeNull();
    await page.reload();
    await page.getByTestId('nav-train').click();
    await page.getByTestId('calibration-none').waitFor();
    await page.getByTestId('calibrate').click();
    await expect.poll(() => panel.getAttribute('data-calibrated'), { timeout: 120_000 }).toBe('yes');
    await expect.poll(() => page.getByTestId('temperature-price').textContent()).toBe(stored.temperatures.price.toFixed(3));
    const again = (await api(s, 'runs.calibration', { id: runId })) as CalibrationReport;
    expect(again.temperatures).toEqual(stored.temperatures);
    await page.getByTestId('reliability-makeModel-after').waitFor();
  }, 240_000);
});
