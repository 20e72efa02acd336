import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { api, runCli, startServe, type Served } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import type { JobInfo, RunInfo, TrainDatasetSummary } from '../src-main/engine/api/contract/index.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { ClassificationScores, EvalReport, EvalReportEntry } from '../src-main/engine/api/contract/eval.ts';

if (!hasChromium()) console.log(`skipping the Evaluate panel UI test: no Chromium at ${CHROMIUM}`);

// What the panel promises: percentages with one decimal, cross-entropy to 3 places, dollars rounded.
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const dollars = (v: number) => `$${Math.round(v).toLocaleString('en-US')}`;
const HEAD_ROWS: Record<'price' | 'makeModel' | 'year', Array<[string, (s: Record<string, unknown>) => number, (v: number) => string]>> = {
  price: [
    ['top1', (s) => s.top1 as number, pct],
    ['top5', (s) => s.top5 as number, pct],
    ['ce', (s) => s.ce as number, (v) => v.toFixed(3)],
    ['ece', (s) => s.ece as number, pct],
    ['mae', (s) => s.maeDollars as number, dollars],
  ],
  makeModel: [
    ['top1', (s) => s.top1 as number, pct],
    ['top5', (s) => s.top5 as number, pct],
    ['make', (s) => s.makeTop1 as number, pct],
    ['ce', (s) => s.ce as number, (v) => v.toFixed(3)],
    ['ece', (s) => s.ece as number, pct],
  ],
  year: [
    ['top1', (s) => s.top1 as number, pct],
    ['within2', (s) => s.within2 as number, pct],
    ['mae', (s) => s.maeYears as number, (v) => v.toFixed(2)],
    ['ce', (s) => s.ce as number, (v) => v.toFixed(3)],
    ['ece', (s) => s.ece as number, pct],
  ],
};

/**
 * The Train stage's Evaluate panel in Chromium against `carstudio serve`: a demo-site workspace
 * with a short heads run (trained by the CLI); the run is selected, evaluated on its test split
 * from the panel, and the panel's tables, reliability diagrams, per-class and confusion tables and
 * the full HTML report are checked against the report the API returns, with the calibrated figures
 * beside the raw ones and the in-sample caveat (training calibrates the run on its test split);
 * a run evaluated on a checkpoint its calibration is not of, and a report stored before calibrated
 * figures, show raw only. Also the dataset's
 * per-head label counts, split kind and year range against train.dataset.
 */
describe.runIf(hasChromium())('Evaluate panel in Chromium', () => {
  let browser: Browser;
  let s: Served;
  let page: Page;
  let run: RunInfo;
  let priceOnly: RunInfo;
  let dir: string;
  beforeAll(async () => {
    dir = `${tmpDir()}/ws`;
    const scrape = await runCli(
      ['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '50', '--retry-delay-ms', '5'],
      { timeoutMs: 300_000 },
    );
    expect(scrape.code, scrape.stderr).toBe(0);
    // a short heads run (the first run extracts every image's features, hence the wide bound)
    const train = await runCli(
      ['train', '--workspace', dir, '--steps', '150', '--eval-every', '50', '--checkpoint-every', '50', '--name', 'eval-ui-run', '--json'],
      {
        timeoutMs: 500_000,
      },
    );
    expect(train.code, train.stderr).toBe(0);
    // a price-only run (features cached by now): its other heads are not trained
    const second = await runCli(
      [
        'train',
        '--workspace',
        dir,
        '--steps',
        '40',
        '--eval-every',
        '20',
        '--checkpoint-every',
        '20',
        '--loss-weights',
        'price_ce_only',
        '--name',
        'eval-ui-price-only',
        '--new-run',
      ],
      { timeoutMs: 300_000 },
    );
    expect(second.code, second.stderr).toBe(0);
    s = await startServe(['--workspace', dir]);
    const runs = (await api(s, 'runs.list')) as RunInfo[];
    run = runs.find((r) => r.name === 'eval-ui-run')!;
    priceOnly = runs.find((r) => r.name === 'eval-ui-price-only')!;
    expect(run.state).toBe('done');
    expect(priceOnly.state).toBe('done');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
    page.setDefaultTimeout(60_000);
    await page.goto(`${s.url}?token=${s.token}`);
  }, 900_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  it('shows per-head label counts, the split and the year range from train.dataset', async () => {
    await page.getByTestId('nav-train').click();
    const d = (await api(s, 'train.dataset')) as TrainDatasetSummary;
    await page.getByTestId('train-label-counts').waitFor();
    for (const head of ['price', 'makeModel', 'year'] as const) {
      const row = page.getByTestId(`train-labels-${head}`);
      expect(Number(await row.getAttribute('data-train'))).toBe(d.labelCounts[head].train);
      expect(Number(await row.getAttribute('data-test'))).toBe(d.labelCounts[head].test);
      const text = (await row.textContent())!;
      expect(text).toContain(d.labelCounts[head].train.toLocaleString('en-US'));
      expect(text.includes('no labels — this head will not train')).toBe(d.labelCounts[head].train === 0);
    }
    expect(await page.getByTestId('train-labels').getAttribute('data-split')).toBe(d.split);
    expect(await page.getByTestId('train-split').textContent()).toContain(d.split === 'listing' ? 'no car in both sets' : 'Split by photo');
    const years = (await page.getByTestId('train-year-range').textContent())!;
    if (d.yearRange) expect(years).toContain(`${d.yearRange[0]}–${d.yearRange[1]}`);
    else expect(years).toContain('No photo has a year');
  });

  it('evaluates the selected run on its test split and shows the report the API has', async () => {
    await page.getByTestId(`select-run-${run.id}`).click();
    await page.locator(`[data-testid="evaluate-panel"][data-run="${run.id}"]`).waitFor();
    expect(await page.getByTestId('eval-source').inputValue()).toBe('test');
    await page.getByTestId('eval-checkpoint').selectOption('best');
    await page.getByTestId('eval-k').fill('5');
    await page.getByTestId('eval-start').click();

    // the job runs as long as the machine needs: the test's timeout is the last-resort bound
    const ended = page.locator(['done', 'failed', 'cancelled'].map((st) => `[data-testid="eval-job"][data-state="${st}"]`).join(', '));
    await ended.waitFor({ timeout: 0 });
    const state = await ended.getAttribute('data-state');
    const jobId = Number(await ended.getAttribute('data-job'));
    const job = (await api(s, 'jobs.get', { id: jobId })) as JobInfo;
    expect(state, job.error?.message).toBe('done');
    expect(job.kind).toBe('eval');
    expect(job.params).toMatchObject({ runId: run.id, checkpoint: 'best', k: 5 });
    const reportId = (job.result as { reportId: string }).reportId;

    // the panel shows the job's report, which is the newest of the run's list
    await page.locator(`[data-testid="eval-report"][data-report-id="${reportId}"]`).waitFor();
    const list = (await api(s, 'eval.list', { runId: run.id })) as EvalReportEntry[];
    expect(list[0]!.id).toBe(reportId);
    await page.getByTestId(`eval-entry-${reportId}`).waitFor();
    const { report } = (await api(s, 'eval.get', { runId: run.id, id: reportId })) as { report: EvalReport; html: string };
    expect(report.runId).toBe(run.id);
    expect(report.knnK).toBe(5);
    expect(report.source.kind).toBe('test-split');
    expect(report.rows).toBeGreaterThan(0);

    // per head: every figure of Model, Majority and kNN is the report's, formatted as promised
    let scored = 0;
    let calibrated = 0;
    for (const head of ['price', 'makeModel', 'year'] as const) {
      const scores = report.heads[head];
      const section = page.getByTestId(`eval-head-${head}`);
      if (!scores) {
        expect(await section.textContent()).toContain('Not scored');
        continue;
      }
      scored++;
      const cols: Array<['model' | 'majority' | 'knn', ClassificationScores | null]> = [
        ['model', scores.model],
        ['majority', scores.majority],
        ['knn', scores.knn],
      ];
      for (const [key, value, fmt] of HEAD_ROWS[head]) {
        for (const [col, sc] of cols) {
          const cell = page.getByTestId(`eval-${head}-${key}-${col}`);
          if (!sc) {
            expect((await cell.textContent())!.trim()).toBe('—');
            continue;
          }
          const v = value(sc as unknown as Record<string, unknown>);
          expect(Number(await cell.getAttribute('data-value')), `${head} ${key} ${col}`).toBe(v);
          expect((await cell.textContent())!.trim(), `${head} ${key} ${col}`).toBe(fmt(v));
        }
      }
      // the reliability diagram: one bar per non-empty bin of the model's reliability
      const chart = page.getByTestId(`eval-reliability-${head}`);
      const bins = scores.model.reliability.filter((b) => b.count > 0).length;
      expect(bins).toBeGreaterThan(0);
      expect(Number(await chart.getAttribute('data-bins'))).toBe(bins);
      expect(await chart.locator('rect.chart-bar').count()).toBe(bins);
      expect((await chart.boundingBox())!.width).toBeGreaterThan(100);

      // beside the raw figures, the calibrated ones: CE and ECE (with the held-out estimate when
      // there is one), "unchanged" for the ranking figures, and the calibrated reliability diagram
      const skipped = report.calibration!.skipped[head];
      if (skipped) {
        // too few labelled test rows to fit a temperature: the head says so and shows raw only
        expect(scores.calibrated).toBeNull();
        expect(await page.getByTestId(`eval-cal-note-${head}`).textContent()).toContain(skipped);
        continue;
      }
      calibrated++;
      const k = scores.calibrated!;
      expect(k, `${head} calibrated`).toBeTruthy();
      expect(await section.getByTestId(`eval-${head}-calibrated-col`).textContent()).toContain('Model, calibrated');
      for (const [key, value] of [
        ['ce', k.ce],
        ['ece', k.ece],
      ] as const) {
        const cell = page.getByTestId(`eval-${head}-${key}-calibrated`);
        expect(Number(await cell.getAttribute('data-value')), `${head} ${key} calibrated`).toBe(value);
        const fmt = HEAD_ROWS[head].find((r) => r[0] === key)![2];
        const text = (await cell.textContent())!.trim();
        expect(text.startsWith(fmt(value))).toBe(true);
        if (k.heldOut) expect(text).toContain(`(held out ${fmt(key === 'ce' ? k.heldOut.ce : k.heldOut.ece)})`);
        else expect(text).toBe(fmt(value));
      }
      expect(k.ece).not.toBe(scores.model.ece);
      expect((await page.getByTestId(`eval-${head}-top1-calibrated`).textContent())!.trim()).toBe('unchanged');
      const calChart = page.getByTestId(`eval-reliability-${head}-calibrated`);
      expect(Number(await calChart.getAttribute('data-bins'))).toBe(k.reliability.filter((b) => b.count > 0).length);
      expect(await page.getByTestId(`eval-cal-note-${head}`).getAttribute('data-calibrated')).toBe('true');
    }
    expect(scored).toBeGreaterThan(0);
    expect(calibrated).toBeGreaterThan(0);
    // the caveat: evaluated on the very test split the temperatures were fitted on
    expect(report.calibration).toMatchObject({ applied: true, inSample: true, inSampleRows: report.rows });
    const caveat = page.getByTestId('eval-calibration');
    expect(await caveat.getAttribute('data-applied')).toBe('true');
    expect(await caveat.getAttribute('data-in-sample')).toBe('true');
    expect(await caveat.textContent()).toContain('Calibrated figures are in-sample.');
    expect((await page.getByTestId('eval-calibration-note').textContent())!.trim()).toBe(report.calibration!.note);
    expect(report.calibration!.note).toMatch(/optimistic/);
    expect(await page.getByTestId('eval-calibration-temps').textContent()).toContain(report.calibration!.temperatures!.price.toFixed(3));

    // per-class accuracy (at most the 30 largest classes) and the most confused pairs
    const mm = report.heads.makeModel;
    if (mm) {
      const rows = page.getByTestId('eval-per-class').locator('tbody tr');
      expect(await rows.count()).toBe(mm.perClass.length);
      expect(mm.perClass.length).toBeLessThanOrEqual(30);
      for (const [i, c] of mm.perClass.slice(0, 5).entries()) {
        const text = (await rows.nth(i).textContent())!;
        expect(text).toContain(c.label);
        expect(text).toContain(pct(c.accuracy));
      }
      if (mm.confused.length) {
        const pairs = page.getByTestId('eval-confused').locator('tbody tr');
        expect(await pairs.count()).toBe(mm.confused.length);
        const first = (await pairs.first().textContent())!;
        expect(first).toContain(mm.confused[0]!.truth);
        expect(first).toContain(mm.confused[0]!.predicted);
      }
    }
    // heads the run did not train, with the report's reasons
    for (const u of report.untrained) expect(await page.getByTestId(`eval-untrained-${u.head}`).textContent()).toContain(u.reason);
    if (!report.untrained.length) expect(await page.getByTestId('eval-untrained').count()).toBe(0);
    await page.getByTestId('evaluate-panel').screenshot({ path: artifactPath('evaluate-panel.png') });

    // "Open full report": the report's HTML in a new tab, naming the run
    const [popup] = await Promise.all([page.context().waitForEvent('page'), page.getByTestId('eval-open-html').click()]);
    await popup.waitForLoadState();
    expect(popup.url()).toMatch(/^blob:/);
    const full = await popup.content();
    expect(full).toContain(run.name);
    expect(full).toContain('In-sample calibrated figures.');
    expect(await popup.locator('svg.reliability.calibrated').count()).toBe(calibrated);
    await popup.close();
  }, 600_000);

  it("names the heads a run did not train, and shows each run's own reports", async () => {
    await page.getByTestId(`select-run-${priceOnly.id}`).click();
    await page.locator(`[data-testid="evaluate-panel"][data-run="${priceOnly.id}"]`).waitFor();
    // no report of this run yet: the first run's is not listed here
    expect(await page.getByTestId('eval-reports').count()).toBe(0);
    await page.getByTestId('eval-checkpoint').selectOption('last');
    await page.getByTestId('eval-start').click();
    const ended = page.locator(['done', 'failed', 'cancelled'].map((st) => `[data-testid="eval-job"][data-state="${st}"]`).join(', '));
    await ended.waitFor({ timeout: 0 });
    const job = (await api(s, 'jobs.get', { id: Number(await ended.getAttribute('data-job')) })) as JobInfo;
    expect(job.state, job.error?.message).toBe('done');
    const reportId = (job.result as { reportId: string }).reportId;
    await page.locator(`[data-testid="eval-report"][data-report-id="${reportId}"]`).waitFor();
    const { report } = (await api(s, 'eval.get', { runId: priceOnly.id, id: reportId })) as { report: EvalReport };
    expect(report.checkpoint).toBe('last');
    expect(report.untrained.map((u) => u.head).sort()).toEqual(['makeModel', 'median', 'year']);
    for (const u of report.untrained) expect(await page.getByTestId(`eval-untrained-${u.head}`).textContent()).toContain(u.reason);
    // each untrained head's section carries a badge, the trained price head none of its own
    await page.getByTestId('eval-head-makeModel').getByTestId('eval-head-untrained-makeModel').waitFor();
    await page.getByTestId('eval-head-year').getByTestId('eval-head-untrained-year').waitFor();
    expect(await page.getByTestId('eval-head-price').getByTestId('eval-head-untrained-price').count()).toBe(0);
    // its calibration is of the best checkpoint: the last one is shown raw, and the panel says why
    expect(report.calibration).toMatchObject({ applied: false });
    expect(report.heads.price!.calibrated).toBeNull();
    expect(await page.getByTestId('eval-calibration').getAttribute('data-applied')).toBe('false');
    expect(await page.getByTestId('eval-calibration').textContent()).toContain('Not calibrated.');
    expect(await page.getByTestId('eval-calibration').textContent()).toContain('best checkpoint');
    expect(await page.getByTestId('eval-price-calibrated-col').count()).toBe(0);
    expect(await page.getByTestId('eval-reliability-price-calibrated').count()).toBe(0);
    expect(await page.getByTestId('eval-reliability-price').count()).toBe(1);
    expect(await page.getByTestId('eval-reports').locator('tbody tr').count()).toBe(1);
    await page.getByTestId('evaluate-panel').screenshot({ path: artifactPath('evaluate-panel-untrained.png') });

    // a report stored before calibrated figures (no calibration fields) beside the first run's
    const root = path.join(dir, 'runs', String(run.id), 'eval');
    const [newest] = (await api(s, 'eval.list', { runId: run.id })) as EvalReportEntry[];
    const old = JSON.parse(fs.readFileSync(path.join(root, newest!.id, 'report.json'), 'utf8')) as EvalReport;
    delete old.calibration;
    for (const h of ['price', 'makeModel', 'year'] as const) if (old.heads[h]) delete old.heads[h]!.calibrated;
    old.createdAt = '2026-01-01T00:00:00.000Z';
    fs.mkdirSync(path.join(root, '20260101-000000-000'));
    fs.writeFileSync(path.join(root, '20260101-000000-000', 'report.json'), JSON.stringify(old));

    // back to the first run: its reports are listed and the newest shown again
    await page.getByTestId(`select-run-${run.id}`).click();
    await page.locator(`[data-testid="evaluate-panel"][data-run="${run.id}"] [data-testid="eval-report"]`).waitFor();
    const list = (await api(s, 'eval.list', { runId: run.id })) as EvalReportEntry[];
    expect(list.at(-1)!.id).toBe('20260101-000000-000');
    await page.getByTestId('eval-entry-20260101-000000-000').waitFor();
    expect(await page.getByTestId('eval-reports').locator('tbody tr').count()).toBe(list.length);
    // the old report opens: raw figures only, and the panel says it is from before calibrated figures
    await page.getByTestId('eval-show-20260101-000000-000').click();
    await page.locator('[data-testid="eval-report"][data-report-id="20260101-000000-000"]').waitFor();
    expect(await page.getByTestId('eval-calibration').getAttribute('data-applied')).toBe('unknown');
    expect(await page.getByTestId('eval-calibration').textContent()).toContain('from before calibrated figures');
    expect(Number(await page.getByTestId('eval-makeModel-ece-model').getAttribute('data-value'))).toBe(old.heads.makeModel!.model.ece);
    expect(await page.getByTestId('eval-makeModel-calibrated-col').count()).toBe(0);
    await page.getByTestId('evaluate-panel').screenshot({ path: artifactPath('evaluate-panel-old-report.png') });
  }, 600_000);
});
