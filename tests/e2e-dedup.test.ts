import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { dedupFixture } from './helpers/dedup-fixture.ts';
import { startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's or a run's progress have no clock of their own (a busy machine takes longer);
// the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };

if (!hasChromium()) console.log(`skipping the Dedup stage end-to-end test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('Dedup stage in Chromium', () => {
  let browser: Browser;
  let served: Served;
  beforeAll(async () => {
    const { dir } = await dedupFixture();
    served = await startServe(['--workspace', dir]);
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('runs dedup from the stage, shows the groups, moves the distance slider and sets an override', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}#/dedup`);
    await page.getByTestId('stage-dedup').locator('h1').filter({ hasText: 'Dedup' }).waitFor();
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();

    await page.getByTestId('dedup-policy').selectOption('default');
    await page.getByTestId('dedup-max-distance').fill('10');
    await page.getByTestId('dedup-run').click();
    await page.getByTestId('dedup-job').and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
    await page.getByTestId('dedup-hashed').locator('.metric-value').filter({ hasText: /^12$/ }).waitFor();
    await page.getByTestId('dedup-groups').locator('.metric-value').filter({ hasText: /^3$/ }).waitFor();
    await page.getByTestId('dedup-excluded').locator('.metric-value').filter({ hasText: /^5$/ }).waitFor();
    const groups = page.locator('[data-testid^="dup-group-"]');
    await groups.nth(2).waitFor();
    expect(await groups.count()).toBe(3);
    // images side by side, with the listings they come from
    const first = groups.first();
    expect(await first.locator('img').count()).toBe(2);
    await first.locator('.dup-listing').first().waitFor();
    expect(await first.locator('.dup-listing').allTextContents()).toEqual(expect.arrayContaining([expect.stringMatching(/^Car \d$/)]));
    const loaded = await first.locator('img').evaluateAll((imgs) => imgs.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth));
    expect(loaded.every((w) => w > 0)).toBe(true);

    // the slider: 3 groups at 10, the two exact ones at 0
    const count = page.getByTestId('near-count');
    await count.and(page.locator('[data-groups="3"]')).waitFor();
    await page.getByTestId('dedup-slider').fill('0');
    await count.and(page.locator('[data-distance="0"][data-groups="2"]')).waitFor();
    await page.getByTestId('dedup-slider').fill('8');
    await count.and(page.locator('[data-distance="8"]')).waitFor();

    // keep the group that spans two listings: its images are no longer excluded
    const spanning = groups.filter({ hasText: '2 listings' }).first();
    const id = await spanning.getAttribute('data-testid');
    await spanning.getByTestId('dup-keep').click();
    const card = page.getByTestId(id!);
    await card.and(page.locator('[data-override="keep"]')).waitFor();
    expect(await card.locator('.dup-member.excluded').count()).toBe(0);
    await page.getByTestId('dedup-excluded').locator('.metric-value').filter({ hasText: /^3$/ }).waitFor();
    await page.screenshot({ path: artifactPath('dedup-stage.png'), fullPage: true });

    // the override survives a re-run from the stage
    await page.getByTestId('dedup-run').click();
    await expect.poll(() => page.locator('.job[data-state="done"]').count(), { timeout: 300_000 }).toBe(2);
    await page.getByTestId('dedup-job').and(page.locator('[data-state="done"]')).waitFor();
    await page.locator('[data-override="keep"]').first().waitFor();
    await page.getByTestId('dedup-excluded').locator('.metric-value').filter({ hasText: /^3$/ }).waitFor();
    expect(errors).toEqual([]);
  }, 400_000);
});
