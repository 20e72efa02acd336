import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { JobInfo, Stats } from '../src-main/engine/api/contract/index.ts';
import { tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's or a run's progress have no clock of their own (a busy machine takes longer);
// the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };

if (!hasChromium())
  console.log(`skipping the Dataset stage UI test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

/** Page-side expression: the listing count the Listings metric shows. */
const LISTINGS_SHOWN = `Number(document.querySelector('[data-testid="stat-listings"] .metric-value')?.textContent?.replace(/,/g, ''))`;

const num = async (page: Page, testid: string): Promise<number> =>
  Number(((await page.getByTestId(testid).locator('.metric-value').textContent()) ?? '').replace(/,/g, '')) || 0;

/**
 * The Dataset stage against a real `carstudio serve` on a fresh workspace: a scrape of the
 * bundled demo site started from the form, watched, stopped and resumed; then the listing
 * browser filtered by a make and a listing opened with its fields and photos.
 */
describe.runIf(hasChromium())('Dataset stage in Chromium', () => {
  let browser: Browser;
  let served: Served;
  beforeAll(async () => {
    served = await startServe(['--workspace', path.join(tmpDir(), 'ws'), '--create']);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await served?.stop('SIGKILL');
  });

  it('scrapes the demo site from the form, then browses, filters and opens a listing', async () => {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();

    // a fresh workspace: empty states, no made-up data
    await page.getByTestId('plots').getByText('no listings yet — start a scrape').first().waitFor();
    await page.getByTestId('listing-browser').getByText('no listings yet — start a scrape').waitFor();
    expect(await page.getByTestId('scrape-baseUrl').inputValue()).toBe('demo');
    await page.getByText("'demo' = the bundled demo listing site").waitFor();

    // start a scrape from the form (one worker, so that it lasts long enough to watch and stop)
    await page.getByTestId('scrape-minId').fill('1');
    await page.getByTestId('scrape-maxId').fill('150');
    await page.getByTestId('scrape-retryDelayMs').fill('5');
    await page.getByTestId('scrape-concurrency').fill('1');
    await page.getByTestId('scrape-start').click();
    const job = page.getByTestId('scrape-job');
    await job.and(page.locator('[data-state="running"]')).waitFor();
    expect(await page.getByTestId('scrape-start').isDisabled()).toBe(true);

    // progress moves and the listing count grows while it runs
    const progress = page.getByTestId('scrape-progress');
    await page.waitForFunction(`Number(document.querySelector('[data-testid="scrape-progress"]')?.getAttribute('data-done')) > 0`);
    expect(await progress.getAttribute('data-total')).toBe('150');
    await page
      .getByTestId('scrape-message')
      .filter({ hasText: /hit rate \d+%, listings \d+/ })
      .waitFor();
    await page.waitForFunction(`${LISTINGS_SHOWN} > 0`);
    const firstCount = await num(page, 'stat-listings');
    const firstDone = Number(await progress.getAttribute('data-done'));
    await page.waitForFunction(`${LISTINGS_SHOWN} > ${firstCount}`);
    await page.waitForFunction(
      `Number(document.querySelector('[data-testid="scrape-progress"]')?.getAttribute('data-done')) > ${firstDone}`,
    );
    await page.getByTestId('scrape-rate').filter({ hasText: /\/s/ }).waitFor();
    await page.getByTestId('scrape-eta').waitFor();
    await page.getByTestId('listing-grid').waitFor();

    // stop it, then resume it to the end
    await page.getByTestId('scrape-stop').click();
    await job.and(page.locator('[data-state="cancelled"]')).waitFor(PROGRESS);
    await page.getByTestId('scrape-resume').click();
    await job.and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
    const jobId = Number(await job.getAttribute('data-job'));
    const finished = (await api(served, 'jobs.get', { id: jobId })) as JobInfo;
    expect(finished).toMatchObject({ state: 'done', total: 150, resumedCount: 1 });
    expect(await progress.textContent()).toContain(`${finished.done} / 150`);
    expect(await job.textContent()).toContain('resumed 1×');
    expect(await page.getByTestId('scrape-stop').count()).toBe(0);

    // the page agrees with the engine once refreshed after the job finished
    const stats = (await api(served, 'stats.get')) as Stats;
    expect(stats.attempts).toBe(finished.done);
    // 150 once the scrape job keeps the ids that were in flight when it was stopped: today its final
    // checkpoint moves past them, so the resumed run skips them (the next scrape of the range gets them)
    expect(stats.attempts).toBeGreaterThanOrEqual(145);
    await page
      .getByTestId('stat-listings')
      .locator('.metric-value')
      .filter({ hasText: new RegExp(`^${stats.listings}$`) })
      .waitFor();
    await page.locator(`[data-testid="listings-total"][data-total="${stats.listings}"]`).waitFor();
    await page.locator(`[data-testid="plot-price"][data-sum="${stats.listings}"]`).waitFor();
    await page.locator(`[data-testid="plot-years"][data-sum="${stats.listings}"]`).waitFor();
    await page.locator(`[data-testid="plot-time"][data-sum="${stats.listings}"]`).waitFor();
    expect(await page.getByTestId('top-make-models').locator('tbody tr').count()).toBeGreaterThan(5);
    await page
      .getByTestId('price-shares')
      .filter({ hasText: /over \$50k: \d+\.\d%/ })
      .waitFor();
    expect(await page.getByTestId('listing-card').count()).toBe(Math.min(24, stats.listings));

    // filter by a make: every card is of that make, and the total is the make's count
    // (the make with the most listings)
    const options = await page
      .getByTestId('filter-make')
      .locator('option')
      .evaluateAll((os) =>
        os.slice(1).map((o) => ({ make: o.getAttribute('value') ?? '', count: Number(/\((\d+)\)/.exec(o.textContent ?? '')?.[1]) })),
      );
    expect(options.length).toBeGreaterThan(5);
    const { make, count: makeCount } = options.sort((a, b) => b.count - a.count)[0]!;
    await page.getByTestId('filter-make').selectOption(make);
    await page.locator(`[data-testid="listings-total"][data-total="${makeCount}"]`).waitFor();
    await page.waitForFunction(
      `[...document.querySelectorAll('[data-testid="listing-card"]')].every((c) => c.getAttribute('data-make') === ${JSON.stringify(make)}) && document.querySelector('[data-testid="listing-card"]') !== null`,
    );
    expect(await page.getByTestId('listing-card').count()).toBe(Math.min(24, makeCount));
    // its models are offered, with counts
    expect(await page.getByTestId('filter-model').locator('option').count()).toBeGreaterThan(1);
    // thumbnails are real images served by the engine
    await page.waitForFunction(
      `[...document.querySelectorAll('[data-testid="listing-card"] img')].some((i) => i.complete && i.naturalWidth > 0)`,
    );
    // the whole stage in one picture (the stage scrolls inside the window)
    await page.setViewportSize({ width: 1500, height: 2600 });
    await page.screenshot({ path: artifactPath('dataset.png') });
    await page.setViewportSize({ width: 1500, height: 1000 });

    // open a listing: all its fields and all its photos
    const card = page.getByTestId('listing-card').first();
    const rowId = Number(await card.getAttribute('data-id'));
    await card.click();
    const detail = page.getByTestId('listing-detail');
    await detail.waitFor();
    const expected = (await api(served, 'listings.get', { id: rowId })) as {
      make: string;
      model: string;
      vin: string;
      title: string;
      images: unknown[];
      price: number;
    };
    await detail.getByTestId('detail-title').filter({ hasText: expected.title }).waitFor();
    expect(await detail.getByTestId('detail-make').textContent()).toContain(make);
    expect(await detail.getByTestId('detail-model').textContent()).toContain(expected.model);
    expect(await detail.getByTestId('detail-vin').textContent()).toContain(expected.vin);
    expect(await detail.getByTestId('detail-price').textContent()).toContain(`$${expected.price.toLocaleString('en-US')}`);
    for (const f of [
      'year',
      'odometer',
      'engine',
      'exteriorColor',
      'interiorColor',
      'driveType',
      'fuelType',
      'fuelEconomy',
      'stockNumber',
      'owners',
      'scrapedAt',
    ]) {
      expect((await detail.getByTestId(`detail-${f}`).locator('td').textContent())?.trim()).not.toBe('—');
    }
    await detail.getByTestId('detail-description').waitFor();
    expect(await detail.locator('[data-testid^="detail-image-"]').count()).toBe(expected.images.length);
    await page.waitForFunction(
      `(() => { const imgs = [...document.querySelectorAll('[data-testid="detail-images"] img')]; return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0); })()`,
    );
    await page.screenshot({ path: artifactPath('dataset-detail.png') });
    await page.keyboard.press('Escape');
    await detail.waitFor({ state: 'detached' });

    // the error log answers for this scrape (a clean demo run: none)
    expect(await page.getByTestId('scrape-errors').getAttribute('data-count')).toBe(String(stats.failedAttempts + stats.images.failed));
    expect(errors).toEqual([]);
  }, 600_000);
});
