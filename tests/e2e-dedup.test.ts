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

  it('reviews photo by photo: per-photo keep/drop, keep the best copy, accept all, listings opened in the studio; screenshots at 1280, 1440 and 1920 px', async () => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const popups: string[] = [];
    page.context().on('page', (p) => popups.push(p.url()));
    const stageUrl = `${served.url}?token=${served.token}#/dedup`;
    await page.goto(stageUrl);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    const excludedMetric = async () => Number(await page.getByTestId('dedup-excluded').locator('.metric-value').textContent());
    const groups = page.locator('[data-testid^="dup-group-"]');
    await groups.nth(2).waitFor();

    // the near group C spans two listings: both photos excluded, the larger original first as the best copy
    const c = groups.filter({ hasText: 'near' }).filter({ has: page.locator('[data-best="1"]') }).filter({ hasText: '2 listings' }).filter({ hasNot: page.locator('[data-decision]:not([data-decision=""])') });
    const cCard = page.getByTestId((await c.last().getAttribute('data-testid'))!);
    const members = cCard.locator('[data-testid^="dup-member-"]');
    expect(await members.count()).toBe(2);
    expect(await members.first().getAttribute('data-best')).toBe('1');
    await expect.poll(() => members.first().locator('.muted').first().textContent()).toMatch(/^\d+×\d+/);
    const sizes = await members.locator('img').evaluateAll((imgs) => imgs.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth));
    expect(sizes[0]).toBeGreaterThan(sizes[1]!);
    expect(await members.evaluateAll((ms) => ms.map((m) => m.getAttribute('data-excluded')))).toEqual(['1', '1']);

    // keep one photo: only it becomes usable for training
    const before = await excludedMetric();
    const best = members.first();
    await best.getByTestId('dup-photo-keep').click();
    await best.and(page.locator('[data-excluded="0"][data-decision="keep"]')).waitFor();
    expect(await members.nth(1).getAttribute('data-excluded')).toBe('1');
    await expect.poll(excludedMetric).toBe(before - 1);

    // drop the photo the policy keeps in the one-listing group B
    const b = groups.filter({ hasText: '1 listing ·' }).first();
    const bId = (await b.getAttribute('data-testid'))!;
    const bKept = page.getByTestId(bId).locator('[data-excluded="0"]');
    await bKept.first().waitFor();
    expect(await bKept.count()).toBe(1);
    expect(await bKept.getAttribute('data-best')).toBe('1');
    const bBest = page.getByTestId(bId).locator('[data-best="1"]');
    await bBest.getByTestId('dup-photo-drop').click();
    await bBest.and(page.locator('[data-excluded="1"][data-decision="drop"]')).waitFor();
    await expect.poll(excludedMetric).toBe(before);
    // ... and keep the best copy again, in one click
    await page.getByTestId(bId).getByTestId('dup-keep-best').click();
    await bBest.and(page.locator('[data-excluded="0"][data-decision="keep"]')).waitFor();
    await expect.poll(excludedMetric).toBe(before - 1);

    // the listing opens inside the studio, not on the (perhaps stopped) site
    const urlBefore = page.url();
    await best.getByTestId('dup-listing').first().click();
    const detail = page.getByTestId('listing-detail');
    await detail.waitFor();
    await expect.poll(() => page.getByTestId('detail-title').textContent()).toMatch(/^Car \d$/);
    expect(page.url()).toBe(urlBefore);
    await page.screenshot({ path: artifactPath('dedup-review-listing.png') });
    await page.getByTestId('detail-close').click();
    await detail.waitFor({ state: 'detached' });

    // decisions survive a re-run from the stage
    const doneBefore = await page.locator('.job[data-state="done"]').count();
    await page.getByTestId('dedup-run').click();
    await expect.poll(() => page.locator('.job[data-state="done"]').count(), { timeout: 300_000 }).toBe(doneBefore + 1);
    await page.getByTestId('dedup-job').and(page.locator('[data-state="done"]')).waitFor();
    await page.locator('[data-decision="keep"][data-best="1"][data-excluded="0"]').first().waitFor();
    await expect.poll(excludedMetric).toBe(before - 1);

    // accept all: every group left undecided keeps its best copy
    await page.getByTestId('dedup-accept-all').click();
    await page.getByTestId('dedup-accepted').waitFor();
    await expect.poll(async () => (await page.locator('[data-best="1"][data-excluded="1"]').count())).toBe(0);

    // side by side at the widths people use, without the page scrolling sideways
    for (const width of [1280, 1440, 1920]) {
      await page.setViewportSize({ width, height: 1000 });
      await expect.poll(() => page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
      await page.screenshot({ path: artifactPath(`dedup-review-${width}.png`), fullPage: true });
    }
    expect(popups).toEqual([]);
    expect(errors).toEqual([]);
  }, 400_000);
});
