// The Label & Filter stage with car-v1 features, on real listing photos: the API reports each
// extractor with what it is good for, how much of the workspace its cache covers (the old
// extractor's features stay), and the detected car of each image near the threshold, read from
// the car-v1 feature rows; in Chromium the threshold panel draws the car box over the thumbnail,
// badges the photos without a car, and the extractor list shows the measured summaries.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { EXTRACTORS, EXTRACTOR_INFO } from '../src-main/engine/filter/features.ts';
import type { ExtractorInfo, FeatureCoverage, FilterState, JobInfo, JobLogEntry, LabelQueueItem } from '../src-main/engine/api/contract/index.ts';
import { api, runCli, startServe, waitFor, type Served } from './helpers/processes.ts';
import { SHARED_DATA, hasSharedData, tmpDir } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';
import { boxInCover } from '../src-renderer/src/components/car-box-geometry.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const present = hasSharedData('listing-photos/good') && hasSharedData('listing-photos/bad');
if (!present) console.log(`skipping the filter car-box tests: ${PHOTOS} is absent (real listing photos are needed)`);
if (present && !hasChromium()) console.log(`skipping the filter car-box UI check: no Chromium at ${CHROMIUM}`);

/** The first `n` files of a folder whose names start with `prefix`, copied into `into`. */
function pick(src: string, prefix: string, n: number, into: string): string[] {
  fs.mkdirSync(into, { recursive: true });
  const files = fs
    .readdirSync(src)
    .filter((f) => f.startsWith(prefix))
    .sort()
    .slice(0, n);
  for (const f of files) fs.copyFileSync(path.join(src, f), path.join(into, f));
  return files;
}

async function finished(s: Served, id: number, what: string): Promise<JobInfo> {
  const j = await waitFor(
    async () => {
      const j = (await api(s, 'jobs.get', { id })) as JobInfo;
      return j.state === 'done' || j.state === 'failed' || j.state === 'cancelled' ? j : null;
    },
    what,
    120_000,
    200,
  );
  expect(j.state, j.error?.message).toBe('done');
  return j;
}

describe('the car box on a cover-fitted thumbnail', () => {
  it('maps the box to the part of the photo the frame shows', () => {
    const box = { x1: 0.1, y1: 0.2, x2: 0.6, y2: 0.9 };
    // same aspect: unchanged
    const same = boxInCover(box, 4 / 3, 4 / 3)!;
    for (const k of ['x1', 'y1', 'x2', 'y2'] as const) expect(same[k]).toBeCloseTo(box[k], 12);
    // a 2:1 photo in a 4:3 frame shows the middle two thirds of its width, all its height
    const wide = boxInCover(box, 2, 4 / 3)!;
    expect(wide.x1).toBe(0); // 0.1 is cropped away (the frame starts at 1/6)
    expect(wide.x2).toBeCloseTo((0.6 - 1 / 6) / (2 / 3), 12);
    expect(wide.y1).toBeCloseTo(0.2, 12);
    expect(wide.y2).toBeCloseTo(0.9, 12);
    // a 3:4 (portrait) photo in a 4:3 frame shows the middle 9/16 of its height (from 7/32 to 23/32)
    const tall = boxInCover({ x1: 0.1, y1: 0.3, x2: 0.6, y2: 0.9 }, 3 / 4, 4 / 3)!;
    expect(tall.x1).toBeCloseTo(0.1, 12);
    expect(tall.y1).toBeCloseTo((0.3 - 7 / 32) / (9 / 16), 12);
    expect(tall.y2).toBe(1);
    // a box wholly in the cropped part is not drawn
    expect(boxInCover({ x1: 0, y1: 0.2, x2: 0.1, y2: 0.5 }, 2, 4 / 3)).toBeNull();
  });
});

describe.runIf(present)('filter stage: car boxes near the threshold, extractor summaries, switching extractor', () => {
  let s: Served;
  let browser: Browser | undefined;
  beforeAll(async () => {
    const root = tmpDir();
    const good = path.join(root, 'good');
    const bad = path.join(root, 'bad');
    // whole cars from several angles; interiors and details
    for (const side of ['angle-front-on-left', 'profile-on-right', 'angle-back-on-right']) pick(path.join(PHOTOS, 'good'), side, 2, good);
    pick(path.join(PHOTOS, 'bad'), 'interior', 4, bad);
    pick(path.join(PHOTOS, 'bad'), 'detail', 2, bad);
    const dir = path.join(root, 'ws');
    const imp = await runCli(['label', '--workspace', dir, '--create', '--good', good, '--bad', bad]);
    expect(imp.code, imp.stderr).toBe(0);
    s = await startServe(['--workspace', dir]);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await s?.stop();
  });

  it('lists every extractor with its summary and the default; car-v1 features are extracted beside the cached mobilenet_v2 ones', async () => {
    const list = (await api(s, 'features.extractors')) as ExtractorInfo[];
    expect(list.map((x) => x.name)).toEqual([...EXTRACTORS]);
    for (const x of list) {
      expect(x.summary).toBe(EXTRACTOR_INFO[x.name].summary);
      expect(x.dim).toBe(EXTRACTOR_INFO[x.name].dim);
    }
    expect(list.filter((x) => x.default).map((x) => x.name)).toEqual(['car-v1']);
    const car = list.find((x) => x.name === 'car-v1')!;
    expect(car).toMatchObject({ installed: true, ready: true, help: null, runtimeAvailable: true });
    expect(['onnxruntime-node', 'tfjs']).toContain(car.runtime);
    expect(list.find((x) => x.name === 'mobilenet_v2-blocks')).toMatchObject({ ready: true, runtime: car.runtime });
    await expect(api(s, 'features.coverage', { extractor: 'resnet' })).rejects.toThrow(/unknown extractor 'resnet': expected one of car-v1/);

    // an image without car-v1 features has no car: image 1, unlabelled for a moment, in the queue
    const counts0 = ((await api(s, 'filter.state')) as FilterState).counts;
    const un = (await api(s, 'filter.setLabel', { imageId: 1, label: null })) as { counts: FilterState['counts'] };
    const was = un.counts.good < counts0.good ? 'good' : 'bad';
    expect(await api(s, 'filter.queue', { limit: 10 })).toEqual([expect.objectContaining({ imageId: 1, car: null })]);
    await api(s, 'filter.setLabel', { imageId: 1, label: was });

    // the old extractor's features first
    const old = (await api(s, 'jobs.start', { kind: 'features', params: { extractor: 'mobilenet_v2', scope: 'labelled' } })) as JobInfo;
    await finished(s, old.id, 'the mobilenet_v2 features job');
    const before = (await api(s, 'features.coverage', { extractor: 'car-v1' })) as FeatureCoverage;
    expect(before).toMatchObject({ extractor: 'car-v1', labelled: 12, labelledCached: 0, usable: 12, usableCached: 0, imagesPerSecond: null });
    expect(before.otherCached).toEqual([{ extractor: 'mobilenet_v2', images: 12 }]);

    // switching extractor: its features are extracted into their own cache, with a message saying so
    const job = (await api(s, 'jobs.start', { kind: 'features', params: { extractor: 'car-v1', scope: 'labelled' } })) as JobInfo;
    const done = await finished(s, job.id, 'the car-v1 features job');
    expect(done.result).toMatchObject({ featureSet: 'car-v1', extracted: 12, failed: 0 });
    expect(done.step).toBe('features');
    expect(done.total).toBe(12);
    expect(done.message).toMatch(/^extracting car-v1 features for 12 images/);
    const logs = ((await api(s, 'jobs.logs', { id: job.id })) as JobLogEntry[]).map((l) => l.message).join('\n');
    expect(logs).toContain('extracting car-v1 features for 12 labelled images not cached yet (0 already cached); features cached for other extractors stay and keep working');
    const after = (await api(s, 'features.coverage', { extractor: 'car-v1' })) as FeatureCoverage;
    expect(after).toMatchObject({ labelledCached: 12, usableCached: 12 });
    expect(after.imagesPerSecond).toBeGreaterThan(0);
    // the old cache is untouched
    expect(((await api(s, 'features.coverage', { extractor: 'mobilenet_v2' })) as FeatureCoverage).labelledCached).toBe(12);
  }, 180_000);

  it('filter.near and filter.queue give each image the car its car-v1 row holds: a box on the whole cars, "no car" on an interior', async () => {
    const fit = (await api(s, 'jobs.start', { kind: 'filter-fit', params: { extractor: 'car-v1', maxFnr: 0.2, folds: 3 } })) as JobInfo;
    await finished(s, fit.id, 'the car-v1 filter fit');
    await finished(s, ((await api(s, 'jobs.start', { kind: 'filter-apply', params: {} })) as JobInfo).id, 'the filter apply');
    const st = (await api(s, 'filter.state')) as FilterState;
    expect(st.model?.extractor).toBe('car-v1');
    const near = (await api(s, 'filter.near', { threshold: st.model!.threshold, n: 50 })) as { above: LabelQueueItem[]; below: LabelQueueItem[] };
    const all = [...near.above, ...near.below];
    expect(all).toHaveLength(12);
    for (const it of all) expect(it.car, `image ${it.imageId} has car-v1 features`).not.toBeNull();
    const goods = all.filter((it) => it.label === 'good');
    const bads = all.filter((it) => it.label === 'bad');
    expect(goods).toHaveLength(6);
    // every whole-car photo: a car, its box inside the photo and covering a fair part of it
    for (const g of goods) {
      expect(g.car!.hasCar, `good image ${g.imageId}: score ${g.car!.score}`).toBe(true);
      const b = g.car!.box!;
      expect(b.x1).toBeGreaterThanOrEqual(0);
      expect(b.y1).toBeGreaterThanOrEqual(0);
      expect(b.x2).toBeLessThanOrEqual(1);
      expect(b.y2).toBeLessThanOrEqual(1);
      expect((b.x2 - b.x1) * (b.y2 - b.y1)).toBeGreaterThan(0.1);
    }
    const noCar = bads.filter((b) => !b.car!.hasCar);
    console.log(`car-v1 near the threshold: good scores ${goods.map((g) => g.car!.score.toFixed(2)).join(' ')}; bad ${bads.map((b) => b.car!.score.toFixed(2)).join(' ')}`);
    expect(noCar.length).toBeGreaterThanOrEqual(1);

    // the label queue reads the same rows: the interior, unlabelled for a moment, comes with its car
    const interior = noCar[0]!;
    await api(s, 'filter.setLabel', { imageId: interior.imageId, label: null });
    expect(await api(s, 'filter.queue', { limit: 10 })).toEqual([expect.objectContaining({ imageId: interior.imageId, car: interior.car })]);
    await api(s, 'filter.setLabel', { imageId: interior.imageId, label: 'bad' });
  }, 180_000);

  it.runIf(hasChromium())('in Chromium the threshold panel draws the car box over a thumbnail, and the extractor list says what each is good for', async () => {
    browser = await launchChromium();
    const page: Page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${s.url}?token=${s.token}`);
    await page.getByTestId('nav-filter').click();
    const panel = page.getByTestId('threshold-panel');
    await panel.waitFor();
    // the thumbnails near the saved threshold: boxes appear once each photo's size is known
    const boxes = panel.locator('[data-testid="car-box"]');
    await expect.poll(() => boxes.count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(6);
    expect(await panel.locator('[data-testid="no-car"]').count()).toBeGreaterThanOrEqual(1);
    // each box lies within its thumbnail and is a visible outlined rectangle
    // (browser-side code as strings: the tests are typed without the DOM library)
    const geometry = (await page.evaluate(`[...document.querySelectorAll('[data-testid="threshold-panel"] [data-testid="near-thumb"][data-car="car"]')].map((t) => {
      const box = t.querySelector('[data-testid="car-box"]');
      const a = t.getBoundingClientRect();
      const b = box && box.getBoundingClientRect();
      const cs = box && getComputedStyle(box);
      return { has: !!box, inside: !!b && b.left >= a.left - 1 && b.top >= a.top - 1 && b.right <= a.right + 1 && b.bottom <= a.bottom + 1, w: b ? b.width : 0, h: b ? b.height : 0, border: cs && cs.borderTopStyle, abs: cs && cs.position };
    })`)) as Array<{ has: boolean; inside: boolean; w: number; h: number; border: string; abs: string }>;
    expect(geometry.length).toBeGreaterThanOrEqual(6);
    for (const g of geometry) {
      expect(g).toMatchObject({ has: true, inside: true, border: 'solid', abs: 'absolute' });
      expect(g.w).toBeGreaterThan(10);
      expect(g.h).toBeGreaterThan(10);
    }

    // the extractor list: every summary, car-v1 marked default and chosen (the current filter's)
    const list = page.getByTestId('extractor-list');
    const carItem = list.getByTestId('extractor-car-v1');
    expect(await carItem.getByTestId('extractor-summary').textContent()).toBe(EXTRACTOR_INFO['car-v1'].summary);
    expect(await carItem.getByTestId('extractor-default').count()).toBe(1);
    expect(await list.getByTestId('extractor-default').count()).toBe(1);
    expect(await carItem.getAttribute('data-selected')).toBe('true');
    expect(await list.getByTestId('extractor-mobilenet_v2').getByTestId('extractor-summary').textContent()).toBe(EXTRACTOR_INFO.mobilenet_v2.summary);
    expect(await page.getByTestId('filter-extractor').inputValue()).toBe('car-v1');
    await page.getByTestId('coverage-note').filter({ hasText: 'cached for all 12 usable images' }).waitFor();
    await list.locator('xpath=..').screenshot({ path: artifactPath('filter-extractors.png') });
    await panel.scrollIntoViewIfNeeded();
    await page.screenshot({ path: artifactPath('filter-car-boxes.png'), fullPage: true });

    // switching to an extractor with nothing cached says what extracting costs and what stays
    await page.getByTestId('filter-extractor').selectOption('mobilenet_v2-blocks');
    const note = page.getByTestId('coverage-note').filter({ hasText: 'mobilenet_v2-blocks features are not cached for 12 of the 12 labelled images' });
    await note.waitFor();
    const text = (await note.textContent())!;
    expect(text).toContain('fitting extracts them first');
    expect(text).toContain('Switching extractor re-extracts');
    expect(text).toMatch(/car-v1 features \(12 images\).*mobilenet_v2 features \(12 images\) stay cached, and the current filter, fitted on car-v1, keeps working/);
    // extracting them shows the job's progress with the plain message; the headline is caught as it shows
    await page.evaluate(`(() => {
      window.headlines = [];
      new MutationObserver(() => {
        const h = document.querySelector('[data-testid="features-headline"]');
        if (h && !window.headlines.includes(h.textContent)) window.headlines.push(h.textContent);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    })()`);
    await page.getByTestId('extract-features').click();
    const jobBox = page.locator('[data-testid="filter-job"][data-state="done"]');
    await jobBox.waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('filter-message').textContent()).toMatch(/^extracting mobilenet_v2-blocks features for 12 images/);
    expect(await page.getByTestId('filter-progress').getAttribute('data-done')).toBe('12');
    const headlines = (await page.evaluate('window.headlines')) as string[];
    console.log(`features headlines seen: ${JSON.stringify(headlines)}`);
    expect(headlines.some((h) => h.startsWith('extracting mobilenet_v2-blocks features for 12 images — ') && h.includes('switching from car-v1 re-extracts; the car-v1 features stay cached'))).toBe(true);
    await page.getByTestId('coverage-note').filter({ hasText: 'mobilenet_v2-blocks features are cached for all 12 usable images' }).waitFor();
  }, 180_000);
});
