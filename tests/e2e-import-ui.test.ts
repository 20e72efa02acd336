// The Import panel of the Dataset stage and the `import.preview` method behind it. The handler
// is called on a real engine (real workspace, real JPEGs made with sharp, real manifests on disk)
// and checked against what the `import` job itself then does; the panel is driven in real
// Chromium against `carstudio serve`: preview, map the columns by hand, import, read the summary,
// find the imported listings in the listing browser.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { DatasetFacets, ImportSummary, JobInfo, ListingPage } from '../src-main/engine/api/contract/index.ts';
import { Engine } from '../src-main/engine/engine.ts';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's progress have no clock of their own (a busy machine takes longer); the test's
// timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };
const T = 120_000;

interface Row {
  file: string;
  listing: string;
  price: string;
  make: string;
  model: string;
  year: string;
  color: string;
  /** Whether the test writes the photo (false: the row names a missing file). */
  written: boolean;
}

/** A manifest whose image and price columns have names the importer does not know (`file`, `Price_USD`). */
const ROWS: Row[] = [
  { file: 'photos/a1.jpg', listing: 'A1', price: '12500', make: 'Audi', model: 'A3', year: '2015', color: 'red', written: true },
  { file: 'photos/a2.jpg', listing: 'A1', price: '', make: '', model: '', year: '', color: '', written: true },
  { file: 'photos/b1.jpg', listing: 'B7', price: '"9,900"', make: 'BMW', model: 'X5', year: '2012', color: 'black', written: true },
  { file: 'photos/missing.jpg', listing: 'C3', price: '15000', make: 'Ford', model: 'Focus', year: '2018', color: 'blue', written: false },
  { file: 'photos/d1.jpg', listing: 'D4', price: '22000', make: 'Toyota', model: 'Camry', year: '2019', color: 'white', written: true },
];

/** Writes the manifest and its photos (each a different colour and size, so none is a duplicate of another). */
async function writeDataset(dir: string, name = 'cars.csv'): Promise<string> {
  fs.mkdirSync(path.join(dir, 'photos'), { recursive: true });
  let i = 0;
  for (const r of ROWS) {
    i++;
    if (r.written) fs.writeFileSync(path.join(dir, r.file), await makeJpeg(200 + 40 * i, 150 + 30 * i, 11 * i));
  }
  const lines = [
    'file,listing_id,Price_USD,make,model,year,color',
    ...ROWS.map((r) => [r.file, r.listing, r.price, r.make, r.model, r.year, r.color].join(',')),
  ];
  const manifest = path.join(dir, name);
  fs.writeFileSync(manifest, `${lines.join('\n')}\n`);
  return manifest;
}

/** What the import of ROWS must report, from the rows themselves. */
function expected() {
  const good = ROWS.filter((r) => r.written);
  const missing = ROWS.map((r, i) => ({ r, line: i + 2 })).filter((x) => !x.r.written);
  return {
    rowsRead: ROWS.length,
    rowsImported: good.length,
    rowsSkipped: missing.length,
    listingsAdded: new Set(good.map((r) => r.listing)).size,
    imagesAdded: good.length,
    missingLines: missing.map((m) => m.line),
    listingsInAll: new Set(ROWS.map((r) => r.listing)).size,
  };
}

async function waitForJob(engine: Engine, id: number): Promise<JobInfo> {
  for (;;) {
    const j = await engine.request('jobs.get', { id });
    if (!['queued', 'running', 'cancelling'].includes(j.state)) return j;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('import.preview', () => {
  let engine: Engine;
  let data: string;
  let outside: string;
  let manifest: string;
  beforeAll(async () => {
    data = tmpDir('carstudio-import-data-');
    outside = tmpDir('carstudio-import-outside-');
    manifest = await writeDataset(data);
    engine = Engine.open(path.join(tmpDir(), 'ws'), { create: true, allowPaths: [data] });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('shows the raw columns, suggests fields by name, and refuses the import until an image column is mapped', async () => {
    const p = await engine.request('import.preview', { manifest });
    expect(p.format).toBe('csv');
    expect(p.source).toBe('import:cars.csv');
    expect(p.imagesRoot).toBe(data);
    expect(p.totalRows).toBe(ROWS.length);
    expect(p.columns).toEqual([
      { name: 'file', field: 'metadata', suggested: 'metadata' },
      { name: 'listing_id', field: 'listing_id', suggested: 'listing_id' },
      { name: 'Price_USD', field: 'metadata', suggested: 'metadata' },
      { name: 'make', field: 'make', suggested: 'make' },
      { name: 'model', field: 'model', suggested: 'model' },
      { name: 'year', field: 'year', suggested: 'year' },
      { name: 'color', field: 'metadata', suggested: 'metadata' },
    ]);
    expect(p.error).toMatch(/has no 'image' column.*its columns are: file, listing_id, Price_USD/);
    expect(p.rows.map((r) => r.line)).toEqual(ROWS.map((_, i) => i + 2));
    expect(p.rows[2]!.cells).toEqual({
      file: 'photos/b1.jpg',
      listing_id: 'B7',
      Price_USD: '9,900',
      make: 'BMW',
      model: 'X5',
      year: '2012',
      color: 'black',
    });
    // without an image column every row is one with no image, as the importer would say
    expect(p.rows.every((r) => r.image.kind === 'none' && r.error?.category === 'no image')).toBe(true);
    // `rows` limits the rows shown, not the count
    const two = await engine.request('import.preview', { manifest, rows: 2 });
    expect(two.rows).toHaveLength(2);
    expect(two.totalRows).toBe(ROWS.length);
  });

  it(
    'with the map: the fields, each image resolved with whether it is there, and the errors the import job then reports',
    async () => {
      const map = { image: 'file', price: 'Price_USD' };
      const p = await engine.request('import.preview', { manifest, map });
      expect(p.error).toBeNull();
      expect(p.columns.find((c) => c.name === 'file')!.field).toBe('image');
      expect(p.columns.find((c) => c.name === 'Price_USD')!.field).toBe('price');
      expect(p.columns.find((c) => c.name === 'color')!.field).toBe('metadata');
      ROWS.forEach((r, i) => {
        const row = p.rows[i]!;
        expect(row.image).toEqual({ ref: r.file, resolved: path.join(data, r.file), kind: 'file', exists: r.written });
        expect(row.fields.image).toBe(r.file);
        expect(row.fields.listing_id).toBe(r.listing);
        expect(row.fields.price).toBe(r.price.replace(/"/g, ''));
        expect('color' in row.fields).toBe(false);
        expect(row.cells.color).toBe(r.color);
        if (r.written) expect(row.error).toBeNull();
        else expect(row.error).toMatchObject({ line: i + 2, where: `line ${i + 2}`, category: 'missing file' });
      });

      // the job agrees: the same rows skipped for the same reason, on the same lines
      const started = await engine.request('jobs.start', { kind: 'import', params: { manifest, map } });
      const job = await waitForJob(engine, started.id);
      expect(job.state, JSON.stringify(job.error)).toBe('done');
      const s = job.result as ImportSummary;
      const e = expected();
      expect(s).toMatchObject({
        rowsRead: e.rowsRead,
        rowsSkipped: e.rowsSkipped,
        listingsAdded: e.listingsAdded,
        imagesAdded: e.imagesAdded,
      });
      expect(s.errors.map((x) => [x.line, x.category])).toEqual(p.rows.filter((r) => r.error).map((r) => [r.line, r.error!.category]));
    },
    T,
  );

  it('previews a JSON Lines manifest with its unreadable lines, and a labelled folder', async () => {
    const dir = path.join(data, 'jsonl');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'x.jpg'), await makeJpeg(120, 90, 5));
    const file = path.join(dir, 'cars.jsonl');
    fs.writeFileSync(
      file,
      ['{"path": "x.jpg", "price": 7000}', 'not json', '[1, 2]', '{"path": "x.jpg", "price": 7000}', '{"path": ""}'].join('\n'),
    );
    const p = await engine.request('import.preview', { manifest: file, map: { image: 'path' } });
    expect(p.format).toBe('jsonl');
    expect(p.totalRows).toBe(5);
    expect(p.problemCount).toBe(2);
    expect(p.problems.map((x) => [x.line, x.category])).toEqual([
      [2, 'unreadable row'],
      [3, 'unreadable row'],
    ]);
    expect(p.rows.map((r) => [r.line, r.error?.category ?? null])).toEqual([
      [1, null],
      [4, 'duplicate row'],
      [5, 'no image'],
    ]);
    expect(p.rows[0]!.image.exists).toBe(true);

    const folder = path.join(data, 'labelled');
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, 'Audi_A3_2015_01.jpg'), await makeJpeg(100, 80, 6));
    fs.writeFileSync(path.join(folder, 'unlabelled.jpg'), await makeJpeg(100, 80, 7));
    const f = await engine.request('import.preview', { folder, pattern: '{make}_{model}_{year}_*' });
    expect(f.format).toBe('folder');
    expect(f.source).toBe('import:labelled');
    expect(f.columns.map((c) => [c.name, c.field])).toEqual([
      ['image', 'image'],
      ['make', 'make'],
      ['model', 'model'],
      ['year', 'year'],
    ]);
    expect(f.rows).toHaveLength(1);
    expect(f.rows[0]).toMatchObject({ where: 'Audi_A3_2015_01.jpg', fields: { make: 'Audi', model: 'A3', year: '2015' }, error: null });
    expect(f.rows[0]!.image).toMatchObject({ resolved: path.join(folder, 'Audi_A3_2015_01.jpg'), exists: true });
    expect(f.problems).toEqual([expect.objectContaining({ where: 'unlabelled.jpg', category: 'no labels' })]);
    expect(f.totalRows).toBe(2);
  });

  it('refuses paths outside the folders the studio may read, and says what is wrong with a malformed manifest', async () => {
    const elsewhere = await writeDataset(outside);
    const refused = /no such file in the folders this studio may read/;
    await expect(engine.request('import.preview', { manifest: elsewhere })).rejects.toThrow(refused);
    // a missing file gets the same answer as one that is not allowed
    await expect(engine.request('import.preview', { manifest: path.join(data, 'nope.csv') })).rejects.toThrow(refused);
    await expect(engine.request('import.preview', { manifest, imagesRoot: outside })).rejects.toThrow(refused);
    await expect(engine.request('import.preview', { folder: outside, pattern: '{make}_*' })).rejects.toThrow(refused);
    // an image outside the readable folders looks missing (the preview is no oracle for other folders)
    const abs = path.join(data, 'abs.csv');
    fs.writeFileSync(abs, `image\n${path.join(outside, 'photos', 'a1.jpg')}\n`);
    const p = await engine.request('import.preview', { manifest: abs });
    expect(p.rows[0]!.image.exists).toBe(false);
    expect(p.rows[0]!.error?.category).toBe('missing file');

    const bad = path.join(data, 'bad.csv');
    fs.writeFileSync(bad, 'image,price\na.jpg,100\n"b.jpg,200\nc.jpg,300\n');
    await expect(engine.request('import.preview', { manifest: bad })).rejects.toThrow(/quote opened on line 3 that is never closed/);
    const empty = path.join(data, 'empty.csv');
    fs.writeFileSync(empty, '');
    await expect(engine.request('import.preview', { manifest: empty })).rejects.toThrow(/is empty; it needs a header row/);
    await expect(engine.request('import.preview', { manifest, folder: data })).rejects.toThrow(/either a manifest or a folder/);
  });
});

if (!hasChromium())
  console.log(`skipping the Import panel UI test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('Import panel in Chromium', () => {
  let browser: Browser;
  let served: Served;
  let data: string;
  let manifest: string;
  beforeAll(async () => {
    data = tmpDir('carstudio-import-ui-');
    manifest = await writeDataset(data);
    served = await startServe(['--workspace', path.join(tmpDir(), 'ws'), '--create', '--allow-path', data]);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await served?.stop('SIGKILL');
  });

  it('previews a manifest, maps its columns by hand, imports it and shows the listings with their source', async () => {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    const panel = page.getByTestId('import-panel');

    // a path the studio may not read is refused with the path policy's message
    await page.getByTestId('import-manifest').fill('/etc/hosts');
    await page.getByTestId('import-preview').click();
    await page.getByTestId('import-preview-error').filter({ hasText: 'no such file in the folders this studio may read' }).waitFor();

    // preview: the rows as written, the known columns mapped by name, the others not
    await page.getByTestId('import-manifest').fill(manifest);
    await page.getByTestId('import-preview').click();
    const table = page.getByTestId('import-preview-table');
    await table.and(page.locator(`[data-total="${ROWS.length}"]`)).waitFor();
    expect(await page.getByTestId('import-preview-row').count()).toBe(ROWS.length);
    const mapOf = (column: string) => panel.locator(`[data-testid="import-map"][data-column="${column}"]`);
    for (const c of ['listing_id', 'make', 'model', 'year']) expect(await mapOf(c).inputValue()).toBe(c);
    expect(await mapOf('file').inputValue()).toBe('metadata');
    expect(await mapOf('Price_USD').inputValue()).toBe('metadata');
    await page.getByTestId('import-preview-problem').filter({ hasText: "no 'image' column" }).waitFor();
    expect(await page.getByTestId('import-start').isDisabled()).toBe(true);

    // the user maps them; the preview follows (the engine's reading of the map is in data-field)
    await mapOf('file').selectOption('image');
    await mapOf('Price_USD').selectOption('price');
    await panel.locator('[data-testid="import-map"][data-column="file"][data-field="image"]').waitFor();
    await panel.locator('[data-testid="import-map"][data-column="Price_USD"][data-field="price"]').waitFor();
    expect(await page.getByTestId('import-preview-problem').count()).toBe(0);
    const e = expected();
    await page
      .locator('[data-testid="import-preview-image"][data-exists="true"]')
      .nth(e.imagesAdded - 1)
      .waitFor();
    expect(await page.locator('[data-testid="import-preview-image"][data-exists="true"]').count()).toBe(e.imagesAdded);
    const bad = page.locator('[data-testid="import-preview-row"][data-error="missing file"]');
    expect(await bad.evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('data-line'))))).toEqual(e.missingLines);
    expect(await bad.first().textContent()).toContain('missing.jpg');
    await page.screenshot({ path: artifactPath('import-preview.png') });

    // import: the job runs to its end and the summary says what the rows were
    await page.getByTestId('import-start').click();
    const job = page.getByTestId('import-job');
    await job.and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
    const progress = page.getByTestId('import-progress');
    expect(await progress.getAttribute('data-done')).toBe(String(e.listingsInAll));
    expect(await progress.textContent()).toContain(`${e.listingsInAll} / ${e.listingsInAll} listings`);
    const summary = page.getByTestId('import-summary');
    await summary.waitFor();
    expect(await summary.getAttribute('data-rows-read')).toBe(String(e.rowsRead));
    expect(await summary.getAttribute('data-rows-imported')).toBe(String(e.rowsImported));
    expect(await summary.getAttribute('data-rows-skipped')).toBe(String(e.rowsSkipped));
    expect(await summary.getAttribute('data-listings-added')).toBe(String(e.listingsAdded));
    expect(await summary.getAttribute('data-images-added')).toBe(String(e.imagesAdded));
    const reason = page.getByTestId('import-skipped-reason');
    expect(await reason.getAttribute('data-reason')).toBe('missing file');
    expect(await reason.getAttribute('data-count')).toBe(String(e.rowsSkipped));
    const rowErrors = page.getByTestId('import-error');
    expect(await rowErrors.evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('data-line'))))).toEqual(e.missingLines);
    expect(await rowErrors.first().textContent()).toContain(`line ${e.missingLines[0]}`);
    expect(await rowErrors.first().textContent()).toContain(path.join(data, 'photos', 'missing.jpg'));
    // the page agrees with the engine
    const finished = (await api(served, 'jobs.get', { id: Number(await job.getAttribute('data-job')) })) as JobInfo;
    expect((finished.result as ImportSummary).listingsAdded).toBe(e.listingsAdded);

    // the listing browser refreshed: the imported listings, each with its source, and a source filter
    const source = 'import:cars.csv';
    await page.locator(`[data-testid="listings-total"][data-total="${e.listingsAdded}"]`).waitFor();
    await page
      .getByTestId('stat-listings')
      .locator('.metric-value')
      .filter({ hasText: new RegExp(`^${e.listingsAdded}$`) })
      .waitFor();
    const cards = page.getByTestId('listing-card');
    expect(await cards.count()).toBe(e.listingsAdded);
    expect(await cards.evaluateAll((cs) => cs.map((c) => c.getAttribute('data-source')))).toEqual(Array(e.listingsAdded).fill(source));
    expect(await page.getByTestId('listing-source').first().textContent()).toBe(source);
    const facets = (await api(served, 'dataset.facets')) as DatasetFacets;
    expect(facets.sources).toEqual([{ source, count: e.listingsAdded }]);
    await page.getByTestId('filter-source').selectOption(source);
    await page.locator(`[data-testid="listings-total"][data-total="${e.listingsAdded}"]`).waitFor();
    const byApi = (await api(served, 'listings.query', { source })) as ListingPage;
    expect(byApi.total).toBe(e.listingsAdded);
    expect(((await api(served, 'listings.query', { source: 'import:other.csv' })) as ListingPage).total).toBe(0);

    // a listing's detail names its source; A1's two rows are one listing with two photos
    const a1 = byApi.rows.find((r) => r.make === 'Audi')!;
    expect(a1.imageCount).toBe(ROWS.filter((r) => r.listing === 'A1').length);
    await page.locator(`[data-testid="listing-card"][data-id="${a1.id}"]`).click();
    const detail = page.getByTestId('listing-detail');
    await detail.waitFor();
    expect(await detail.getByTestId('detail-source').locator('td').textContent()).toBe(source);
    expect(await detail.getByTestId('detail-price').textContent()).toContain('$12,500');
    await page.waitForFunction(
      `(() => { const imgs = [...document.querySelectorAll('[data-testid="detail-images"] img')]; return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0); })()`,
    );
    await page.keyboard.press('Escape');
    await detail.waitFor({ state: 'detached' });
    await page.setViewportSize({ width: 1500, height: 2600 });
    await page.screenshot({ path: artifactPath('import-done.png') });
    expect(errors).toEqual([]);
  }, 300_000);

  it('stops an import from the panel and resumes it to the counts of an uninterrupted one', async () => {
    // enough rows that the import lasts while it is watched and stopped
    const n = 400;
    const dir = path.join(data, 'many');
    fs.mkdirSync(dir, { recursive: true });
    const lines = ['image,listing_id,price'];
    for (let i = 0; i < n; i++) {
      fs.writeFileSync(path.join(dir, `p${i}.jpg`), await makeJpeg(420 + (i % 40), 320 + Math.floor(i / 40), 1000 + i));
      lines.push(`p${i}.jpg,L${i},${10_000 + i}`);
    }
    const many = path.join(dir, 'many.csv');
    fs.writeFileSync(many, `${lines.join('\n')}\n`);

    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.getByTestId('import-manifest').fill(many);
    await page.getByTestId('import-preview').click();
    await page
      .getByTestId('import-preview-table')
      .and(page.locator(`[data-total="${n}"]`))
      .waitFor();
    // every column of this manifest is known by name: nothing to map
    await page.locator('[data-testid="import-map"][data-column="image"][data-field="image"]').waitFor();
    await page.getByTestId('import-start').click();

    const job = page.getByTestId('import-job');
    await job.and(page.locator('[data-state="running"]')).waitFor();
    expect(await page.getByTestId('import-start').isDisabled()).toBe(true);
    await page.waitForFunction(`Number(document.querySelector('[data-testid="import-progress"]')?.getAttribute('data-done')) > 0`);
    expect(await page.getByTestId('import-progress').getAttribute('data-total')).toBe(String(n));
    await page.getByTestId('import-rate').waitFor();
    await page.getByTestId('import-eta').filter({ hasText: 'ETA' }).waitFor();
    await page.getByTestId('import-stop').click();
    await job.and(page.locator('[data-state="cancelled"]')).waitFor(PROGRESS);
    const stoppedAt = Number(await page.getByTestId('import-progress').getAttribute('data-done'));
    expect(stoppedAt).toBeLessThan(n);
    expect(await page.getByTestId('import-summary').count()).toBe(0);

    await page.getByTestId('import-resume').click();
    await job.and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
    const summary = page.getByTestId('import-summary');
    await summary.waitFor();
    expect(await summary.getAttribute('data-rows-read')).toBe(String(n));
    expect(await summary.getAttribute('data-rows-skipped')).toBe('0');
    expect(await summary.getAttribute('data-listings-added')).toBe(String(n));
    expect(await summary.getAttribute('data-images-added')).toBe(String(n));
    expect(await job.textContent()).toContain('resumed 1×');
    const finished = (await api(served, 'jobs.get', { id: Number(await job.getAttribute('data-job')) })) as JobInfo;
    expect(finished).toMatchObject({ state: 'done', done: n, total: n, resumedCount: 1 });
    expect(((await api(served, 'listings.query', { source: 'import:many.csv' })) as ListingPage).total).toBe(n);
    expect(errors).toEqual([]);
  }, 300_000);
});
