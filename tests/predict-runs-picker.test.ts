// The run picker: of two runs of one real workspace, the older one trained every head and the newer
// one trained with price loss weight 0 (its price head never trained). The recommended run, the
// default of predict.runs, resolveRun, `carstudio predict` and the Predict stage, is the one whose
// price head trained (the best by test price accuracy), not the newest; each run says what it was
// trained on, which heads trained, and its test metrics. In Chromium against `carstudio serve`: the
// stage selects the recommended run, shows what each run trained on, and a noise photo's card
// carries the 'far' warning badge with the message in its tooltip.
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictRunInfo } from '../src-main/engine/api/contract/predict.ts';
import { listRuns, resolveRun } from '../src-main/engine/predict/runs.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { noiseJpeg, trustWorkspace, type TrustWorkspace } from './helpers/trust-fixture.ts';

describe('the run picker', () => {
  let t: TrustWorkspace;
  let full: number;
  let noPrice: number;
  let probe: string;
  beforeAll(async () => {
    t = await trustWorkspace(12);
    full = await t.train('all heads');
    noPrice = await t.train('no price head', ['--loss-weights', 'price=0']);
    probe = path.join(t.fx, 'probe');
    fs.mkdirSync(probe);
    fs.copyFileSync(path.join(t.fx, 'img', 'audi-2.jpg'), path.join(probe, 'audi.jpg'));
    fs.writeFileSync(path.join(probe, 'noise.jpg'), await noiseJpeg(7));
  }, 400_000);
  afterAll(() => fs.rmSync(t.fx, { recursive: true, force: true }));

  it('recommends the run whose price head trained over the newer one without, in predict.runs, resolveRun and the CLI', { timeout: 180_000 }, async () => {
    expect(noPrice).toBeGreaterThan(full);
    const ws = Workspace.open(t.ws);
    let runs: PredictRunInfo[];
    try {
      runs = listRuns(ws);
      expect(resolveRun(ws).run.id).toBe(String(full));
    } finally {
      ws.close();
    }
    expect(runs.map((r) => r.id)).toEqual([String(noPrice), String(full)]); // newest first
    const [b, a] = runs as [PredictRunInfo, PredictRunInfo];
    expect(a.recommended).toBe(true);
    expect(b.recommended).toBe(false);
    expect(b.heads.find((h) => h.head === 'price')).toEqual({ head: 'price', trains: false, reason: 'loss weight 0' });
    expect(a.heads.every((h) => h.trains)).toBe(true);
    for (const r of runs) {
      expect(r.data, `run ${r.id}`).toBeTruthy();
      expect(r.data!.trainImages + r.data!.testImages).toBe(48);
      expect(r.data!.sources.reduce((s, x) => s + x.images, 0)).toBe(48);
      expect(r.test, `run ${r.id}`).toBeTruthy();
      expect(r.test!.priceAccuracy).toBeGreaterThanOrEqual(0);
    }

    const cli = await t.cli(['predict', '--input', probe, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    const lines = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as { run: string });
    expect(lines.map((l) => l.run)).toEqual([String(full), String(full)]);
    const table = await t.cli(['runs']);
    expect(table.stdout).toContain(`predict uses run ${full} ('all heads') unless told --run`);
  });

  describe.runIf(hasChromium())('in the Predict stage (Chromium)', () => {
    let browser: Browser;
    let served: Served;
    beforeAll(async () => {
      served = await startServe(['--workspace', t.ws]);
      browser = await launchChromium();
    }, 120_000);
    afterAll(async () => {
      await browser?.close();
      await served?.stop('SIGKILL');
    });

    it('selects the recommended run, shows what each run trained on, and a far photo carries its warning', { timeout: 180_000 }, async () => {
      const runs = (await api(served, 'predict.runs')) as PredictRunInfo[];
      expect(runs.find((r) => r.recommended)?.id).toBe(String(full));
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${served.url}?token=${served.token}`);
      await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
      await page.getByTestId('nav-predict').click();
      await page.getByTestId('predict-stage').waitFor();
      await expect.poll(() => page.getByTestId('predict-run').inputValue(), { timeout: 15_000 }).toBe(String(full));
      const rows = page.getByTestId('predict-run-row');
      expect(await rows.count()).toBe(2);
      const rec = page.locator(`[data-testid="predict-run-row"][data-run="${full}"]`);
      expect(await rec.getAttribute('data-recommended')).toBe('true');
      expect(await rec.getAttribute('data-selected')).toBe('true');
      expect(await rec.getByTestId('predict-run-recommended').count()).toBe(1);
      expect(await rec.getByTestId('predict-run-data').textContent()).toMatch(/\(48\).*train \/ \d+ test photos/);
      expect(await rec.getByTestId('predict-run-test').textContent()).toMatch(/^price \d+(\.\d)?% · MAE \$/);
      const other = page.locator(`[data-testid="predict-run-row"][data-run="${noPrice}"]`);
      expect(await other.getByTestId('predict-run-heads').textContent()).toContain('price bins not trained (loss weight 0)');

      await page.getByTestId('predict-folder').fill(probe);
      await page.getByTestId('predict-start').click();
      await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor({ timeout: 0 });
      await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length === 2`);
      const noiseCard = page.locator('[data-testid="predict-card"][data-path$="noise.jpg"]');
      const far = noiseCard.locator('[data-testid="predict-warning"][data-code="far"]');
      await far.waitFor();
      expect(await far.getAttribute('title')).toMatch(/^far from the photos this run was trained on \(distance \d\.\d\d, 99% of test photos are within \d\.\d\d\)$/);
      const carCard = page.locator('[data-testid="predict-card"][data-path$="audi.jpg"]');
      expect(await carCard.locator('[data-testid="predict-warning"][data-code="far"]').count()).toBe(0);
      // the regression median and the bins' median with their interval, side by side
      expect(await carCard.getByTestId('predict-regression').textContent()).toMatch(/^\$[\d,]+$/);
      expect(await carCard.getByTestId('predict-bins-median').textContent()).toMatch(/^\$[\d,]+ \(80%: \$[\d,]+–\$[\d,]+\)$/);
      // only the photos without a warning about the photo (the synthetic car photo may have its no-car one), then only those with
      const sets = (await api(served, 'predict.sets')) as Array<{ jobId: number }>;
      const count = async (warnings: string) => ((await api(served, 'predict.results', { jobId: sets[0]!.jobId, warnings })) as { total: number; items: Array<{ path: string }> });
      const without = await count('without');
      const withW = await count('with');
      expect(without.total + withW.total).toBe(2);
      expect(withW.items.map((i) => path.basename(i.path))).toContain('noise.jpg');
      await page.getByTestId('predict-warnings-filter').selectOption('without');
      await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length === ${without.total}`);
      await page.getByTestId('predict-warnings-filter').selectOption('with');
      await page.waitForFunction(`document.querySelectorAll('[data-testid="predict-card"]').length === ${withW.total}`);
      await noiseCard.waitFor();
      await page.screenshot({ path: artifactPath('predict-runs-picker.png'), fullPage: true });
      expect(errors).toEqual([]);
    });
  });
  if (!hasChromium()) console.log(`predict-runs-picker: no Chromium at ${CHROMIUM}, skipping the stage test`);
});
