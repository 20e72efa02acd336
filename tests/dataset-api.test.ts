import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { ListingRow, Params } from '../src-main/engine/api/contract/index.ts';
import { DEFAULT_DEMO_SEED, expectedImageUrls, getListing as demoListing } from '../src-main/engine/demo-site/catalog.ts';
import { tmpDir } from './helpers/workspace.ts';

interface DbListing {
  id: number;
  listing_id: number;
  title: string | null;
  price: number | null;
  make: string | null;
  model: string | null;
  year: number | null;
  scraped_at: number;
}

/**
 * The Dataset stage's API on a real workspace filled by a real scrape of the bundled demo site:
 * every answer is checked against the listings table read directly (filters and sorts computed
 * here in plain TypeScript) and against the demo site's own catalog.
 */
describe('dataset API', () => {
  let engine: Engine;
  let all: DbListing[];
  let cleanJob: number;
  let faultyJob: number;

  beforeAll(async () => {
    engine = Engine.open(path.join(tmpDir(), 'ws'), { create: true });
    const clean = engine.jobs.start('scrape', { baseUrl: 'demo', minId: 1, maxId: 120, retryDelayMs: 5 });
    cleanJob = clean.id;
    expect((await engine.jobs.wait(clean.id)).state).toBe('done');
    // a second range with injected faults and no retries, so that some ids and images fail
    const faulty = engine.jobs.start('scrape', {
      baseUrl: 'demo',
      minId: 121,
      maxId: 220,
      retryDelayMs: 5,
      retries: 0,
      timeoutMs: 1000,
      demoFaults: true,
      concurrency: 16,
    });
    faultyJob = faulty.id;
    expect((await engine.jobs.wait(faulty.id)).state).toBe('done');
    all = engine.ws.db.prepare(`SELECT id, listing_id, title, price, make, model, year, scraped_at FROM listings`).all() as DbListing[];
  }, 60_000);
  afterAll(async () => {
    await engine?.close();
  });

  const query = (p: Params<'listings.query'>) => engine.request('listings.query', p);
  const ids = (rows: ListingRow[]) => rows.map((r) => r.id);
  /** All pages of a query, fetched `pageSize` at a time. */
  async function allPages(p: Params<'listings.query'>, pageSize: number): Promise<{ total: number; ids: number[] }> {
    const out: number[] = [];
    let total = -1;
    for (let offset = 0; ; offset += pageSize) {
      const page = await query({ ...p, offset, limit: pageSize });
      if (total < 0) total = page.total;
      expect(page.total).toBe(total);
      out.push(...ids(page.rows));
      if (page.rows.length < pageSize) break;
    }
    return { total, ids: out };
  }
  const cmpNullsLast = (key: 'price' | 'year' | 'scraped_at', dir: 1 | -1) => (a: DbListing, b: DbListing) => {
    const x = a[key];
    const y = b[key];
    if (x === null && y === null) return dir * (a.id - b.id);
    if (x === null) return 1;
    if (y === null) return -1;
    return x !== y ? dir * (x - y) : dir * (a.id - b.id);
  };

  it('scraped a real range', () => {
    expect(all.length).toBeGreaterThan(80);
    expect(new Set(all.map((l) => l.make)).size).toBeGreaterThan(5);
  });

  it('listings.query: unfiltered, paged, default order by id', async () => {
    const first = await query({});
    expect(first.total).toBe(all.length);
    expect(first.rows).toHaveLength(50);
    expect(ids(first.rows)).toEqual(
      all
        .map((l) => l.id)
        .sort((a, b) => a - b)
        .slice(0, 50),
    );
    const paged = await allPages({}, 7);
    expect(paged.ids).toEqual(all.map((l) => l.id).sort((a, b) => a - b));
    // rows carry the listing's fields, image count and first stored image
    const db = engine.ws.db;
    for (const r of first.rows.slice(0, 10)) {
      const l = all.find((x) => x.id === r.id)!;
      expect([r.listingId, r.title, r.price, r.make, r.model, r.year, r.scrapedAt]).toEqual([
        l.listing_id,
        l.title,
        l.price,
        l.make,
        l.model,
        l.year,
        l.scraped_at,
      ]);
      expect(r.imageCount).toBe(db.prepare(`SELECT COUNT(*) FROM listing_images WHERE listing_rowid = ?`).pluck().get(r.id));
      const firstStored = db
        .prepare(
          `SELECT i.key FROM listing_images li JOIN images i ON i.id = li.image_id WHERE li.listing_rowid = ? AND i.state = 'stored' ORDER BY li.position LIMIT 1`,
        )
        .pluck()
        .get(r.id);
      expect(r.thumbKey).toBe(firstStored ?? null);
      if (r.thumbKey) expect(engine.ws.store.has(r.thumbKey)).toBe(true);
    }
  });

  it('listings.query: filters match the table', async () => {
    const byCount = new Map<string, number>();
    for (const l of all) if (l.make) byCount.set(l.make, (byCount.get(l.make) ?? 0) + 1);
    const make = [...byCount].sort((a, b) => b[1] - a[1])[0]![0];
    const model = all.find((l) => l.make === make)!.model!;
    const prices = all.map((l) => l.price!).sort((a, b) => a - b);
    const priceMin = prices[Math.floor(prices.length * 0.25)]!;
    const priceMax = prices[Math.floor(prices.length * 0.75)]!;
    const cases: Array<[Params<'listings.query'>, (l: DbListing) => boolean]> = [
      [{ make }, (l) => l.make === make],
      [{ make, model }, (l) => l.make === make && l.model === model],
      [{ yearMin: 2015 }, (l) => l.year !== null && l.year >= 2015],
      [{ yearMin: 2010, yearMax: 2018 }, (l) => l.year !== null && l.year >= 2010 && l.year <= 2018],
      [{ priceMin, priceMax }, (l) => l.price !== null && l.price >= priceMin && l.price <= priceMax],
      [{ q: make.toLowerCase() }, (l) => (l.title ?? '').toLowerCase().includes(make.toLowerCase())],
      [{ q: '%' }, (l) => (l.title ?? '').includes('%')],
      [
        { make, yearMin: 2012, priceMax },
        (l) => l.make === make && l.year !== null && l.year >= 2012 && l.price !== null && l.price <= priceMax,
      ],
      [{ make: 'No Such Make' }, () => false],
    ];
    for (const [p, pred] of cases) {
      const expected = all
        .filter(pred)
        .map((l) => l.id)
        .sort((a, b) => a - b);
      const got = await allPages(p, 200);
      expect({ p, ...got }).toEqual({ p, total: expected.length, ids: expected });
    }
    expect((await query({ q: make })).total).toBeGreaterThan(0);
  });

  it('listings.query: sorts (nulls last, id breaks ties) and pages stably', async () => {
    for (const sort of ['price', 'year', 'scraped_at'] as const) {
      for (const dir of ['asc', 'desc'] as const) {
        const expected = all
          .slice()
          .sort(cmpNullsLast(sort, dir === 'asc' ? 1 : -1))
          .map((l) => l.id);
        expect((await allPages({ sort, dir }, 13)).ids).toEqual(expected);
      }
    }
    const desc = await query({ sort: 'id', dir: 'desc', limit: 5 });
    expect(ids(desc.rows)).toEqual(
      all
        .map((l) => l.id)
        .sort((a, b) => b - a)
        .slice(0, 5),
    );
    const last = await query({ offset: all.length - 2, limit: 10 });
    expect(last.rows).toHaveLength(2);
    expect(await engine.call('listings.query', { limit: 201 })).toMatchObject({ ok: false, error: { name: 'UserError' } });
    expect(await engine.call('listings.query', { sort: 'title' })).toMatchObject({ ok: false });
  });

  it('listings.get: every field, images in order, failures with reasons', async () => {
    const db = engine.ws.db;
    const withFailed = db
      .prepare(`SELECT DISTINCT li.listing_rowid FROM listing_images li JOIN images i ON i.id = li.image_id WHERE i.state = 'failed'`)
      .pluck()
      .all() as number[];
    const sample = [...all.slice(0, 5).map((l) => l.id), ...withFailed.slice(0, 3)];
    for (const id of sample) {
      const d = await engine.request('listings.get', { id });
      const src = demoListing(DEFAULT_DEMO_SEED, d.listingId)!;
      expect(src).not.toBeNull();
      expect(d).toMatchObject({
        id,
        source: 'kbb',
        make: src.make,
        model: src.model,
        year: src.year,
        price: src.price,
        odometer: src.odometer,
        engine: src.engine,
        exteriorColor: src.exteriorColor,
        interiorColor: src.interiorColor,
        fuelType: src.fuelType,
        fuelEconomy: src.fuelEconomy,
        vin: src.vin,
        stockNumber: src.stockNumber,
        owners: [{ id: src.owner.id, name: src.owner.name, website: src.owner.website }],
      });
      expect(d.title).toContain(`${src.year} ${src.make} ${src.model}`);
      expect(d.description).toContain(src.make);
      expect(d.driveType).toBeTruthy();
      expect(d.url).toContain(`listingId=${d.listingId}`);
      expect(d.scrapedAt).toBe(all.find((l) => l.id === id)!.scraped_at);
      // the images in the page's order (primary first), as the site lists them
      const origin = new URL(d.url).origin;
      const expectedPaths = expectedImageUrls(src, origin).map((u) => new URL(u).pathname + new URL(u).search);
      expect(d.images.map((i) => i.url)).toEqual(expectedPaths);
      expect(d.images.map((i) => i.position)).toEqual(d.images.map((_, i) => i));
      expect(d.imageCount).toBe(d.images.length);
      for (const img of d.images) {
        if (img.state === 'stored') {
          expect(engine.ws.store.has(img.key)).toBe(true);
          expect(img.width! * img.height!).toBeGreaterThan(0);
          expect(img.failReason).toBeNull();
        } else {
          expect(img.state).toBe('failed');
          expect(img.failReason).toBeTruthy();
        }
      }
      expect(d.thumbKey).toBe(d.images.find((i) => i.state === 'stored')?.key ?? null);
    }
    expect(await engine.call('listings.get', { id: 999_999 })).toMatchObject({ ok: false, error: { message: 'no listing 999999' } });
  });

  it('dataset.facets: makes and models with counts, ranges', async () => {
    const f = await engine.request('dataset.facets', {});
    expect(f.total).toBe(all.length);
    const makes = new Map<string, number>();
    for (const l of all) if (l.make) makes.set(l.make, (makes.get(l.make) ?? 0) + 1);
    expect(f.makes).toEqual([...makes].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([make, count]) => ({ make, count })));
    for (const { make, count } of f.makes) {
      const models = f.models[make]!;
      expect(models.reduce((s, m) => s + m.count, 0)).toBe(count);
      for (const m of models) expect(m.count).toBe(all.filter((l) => l.make === make && l.model === m.model).length);
    }
    const years = all.map((l) => l.year!);
    const prices = all.map((l) => l.price!);
    expect(f.year).toEqual({ min: Math.min(...years), max: Math.max(...years) });
    expect(f.price).toEqual({ min: Math.min(...prices), max: Math.max(...prices) });
  });

  it('dataset.plots: histograms and series add up to the listing count', async () => {
    const p = await engine.request('dataset.plots', {});
    const priced = all.filter((l) => l.price !== null);
    expect(p.totals).toMatchObject({ listings: all.length, priced: priced.length, withYear: all.filter((l) => l.year !== null).length });
    expect(p.priceHistogram).toHaveLength(21);
    expect(p.priceHistogram[20]).toMatchObject({ lo: 100_000, hi: null });
    expect(p.priceHistogram.reduce((s, b) => s + b.count, 0)).toBe(priced.length);
    for (const b of p.priceHistogram) {
      expect(b.count).toBe(priced.filter((l) => l.price! >= b.lo && (b.hi === null || l.price! < b.hi)).length);
    }
    expect(p.priceShares.over50k).toBeCloseTo(priced.filter((l) => l.price! > 50_000).length / priced.length, 10);
    expect(p.priceShares.over70k).toBeCloseTo(priced.filter((l) => l.price! > 70_000).length / priced.length, 10);
    const sorted = priced.map((l) => l.price!).sort((a, b) => a - b);
    expect(p.totals.medianPrice).toBe(sorted[Math.floor((sorted.length - 1) / 2)]);

    expect(p.yearHistogram.reduce((s, b) => s + b.count, 0)).toBe(all.length);
    expect(p.yearHistogram.map((b) => b.year)).toEqual([...new Set(all.map((l) => l.year!))].sort((a, b) => a - b));

    expect(p.overTime.reduce((s, b) => s + b.count, 0)).toBe(all.length);
    expect(p.overTimeBucket).toBe('minute'); // a scrape of seconds
    for (let i = 1; i < p.overTime.length; i++) expect(p.overTime[i]!.t - p.overTime[i - 1]!.t).toBe(60_000);

    const pairs = new Map<string, number>();
    for (const l of all) pairs.set(`${l.make}|${l.model}`, (pairs.get(`${l.make}|${l.model}`) ?? 0) + 1);
    expect(p.topMakeModels.length).toBe(Math.min(20, pairs.size));
    for (let i = 0; i < p.topMakeModels.length; i++) {
      const t = p.topMakeModels[i]!;
      expect(t.count).toBe(pairs.get(`${t.make}|${t.model}`));
      expect(t.share).toBeCloseTo(t.count / all.length, 10);
      if (i) expect(t.count).toBeLessThanOrEqual(p.topMakeModels[i - 1]!.count);
    }
    expect(p.topMakeModels[0]!.count).toBe(Math.max(...pairs.values()));
  });

  it('scrape.errors: failed ids and images from the ledger, per job', async () => {
    const db = engine.ws.db;
    const failedIds = db.prepare(`SELECT listing_id FROM attempts WHERE outcome = 'failed' ORDER BY listing_id`).pluck().all() as number[];
    const failedImages = db.prepare(`SELECT url FROM images WHERE state = 'failed' ORDER BY url`).pluck().all() as string[];
    expect(failedIds.length + failedImages.length).toBeGreaterThan(0);

    const every = await engine.request('scrape.errors', { limit: 1000 });
    expect(every.window).toBeNull();
    expect(every.totalFailedAttempts).toBe(failedIds.length);
    expect(every.failedAttempts.map((a) => a.listingId).sort((a, b) => a - b)).toEqual(failedIds);
    for (const a of every.failedAttempts) {
      expect(a.reason).toBeTruthy();
      expect(a.tries).toBeGreaterThanOrEqual(1);
      expect(a.listingId).toBeGreaterThanOrEqual(121); // only the faulty range can fail
    }
    expect(every.totalFailedImages).toBe(failedImages.length);
    expect(every.failedImages.map((i) => i.url).sort()).toEqual(failedImages);
    for (const i of every.failedImages) expect(i.reason).toBeTruthy();
    // newest first
    for (let i = 1; i < every.failedAttempts.length; i++)
      expect(every.failedAttempts[i]!.at).toBeLessThanOrEqual(every.failedAttempts[i - 1]!.at);

    const clean = await engine.request('scrape.errors', { jobId: cleanJob, limit: 1000 });
    expect(clean.totalFailedAttempts).toBe(0);
    expect(clean.window!.to).not.toBeNull();
    const faulty = await engine.request('scrape.errors', { jobId: faultyJob, limit: 1000 });
    expect(faulty.totalFailedAttempts).toBe(failedIds.length);

    const cut = await engine.request('scrape.errors', { limit: 1 });
    expect(cut.failedAttempts.length).toBe(Math.min(1, failedIds.length));
    expect(cut.totalFailedAttempts).toBe(failedIds.length);
    expect(await engine.call('scrape.errors', { jobId: 9999, limit: 5 })).toMatchObject({ ok: false, error: { message: 'no job 9999' } });
  });
});
