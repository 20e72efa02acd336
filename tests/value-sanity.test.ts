/**
 * Absurd listing values (issue 11, item 3): a scrape stores a price, year or odometer outside the
 * workspace's value ranges (or one it cannot read) as NULL with a warning on the listing, stats
 * count them, and training drops listings whose stored price is outside the range (older
 * databases hold unchecked values). Real KBB-format pages from a real HTTP server on 127.0.0.1,
 * real SQLite files and JPEGs, the CLI as a child process.
 */
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { getStats } from '../src-main/engine/stats.ts';
import { checkValues, defaultValueRanges, rangeArg } from '../src-main/engine/workspace/value-ranges.ts';
import type { JobInfo, Stats, ValueWarning } from '../src-main/engine/api/contract/index.ts';
import { runCli } from './helpers/processes.ts';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';

const LISTING_PATH = '/cars-for-sale/vehicledetails.xhtml';
const NEXT_YEAR = new Date().getFullYear() + 1;

/** The vehicle part of each listing's data blob; every listing also has one photo. */
const VEHICLES: Record<number, Record<string, unknown>> = {
  1: { price: -5000, car_year: 2015, odometer: '50,000' },
  2: { price: 1e12, car_year: 2016, odometer: '40,000' },
  3: { price: '$1,000,000,000,000', car_year: 2017, odometer: '30,000' },
  4: { price: 21_000, car_year: 3000, odometer: '20,000' },
  5: { price: 9_500, car_year: 2012, odometer: '99,999,999 mi' },
  6: { price: 'call for price', car_year: 2014, odometer: 61_000 },
  7: { price: 15_000, car_year: 2015, odometer: '50,000' },
  8: { price: '$25,500', car_year: NEXT_YEAR, odometer: '12 mi' },
};

function listingPage(id: number, base: string): string {
  const blob = {
    initialState: {
      birf: { pageData: { page: { vehicle: { makeName: ['Honda'], modelName: ['Civic'], ...VEHICLES[id] } } } },
      inventory: { [id]: { images: { sources: [{ src: `${base}/images/${id}.jpg` }], primary: 0 } } },
    },
  };
  return `<!DOCTYPE html><html><body><h1>Used Honda Civic #${id}</h1><script>window.__BONNET_DATA__=${JSON.stringify(blob)};</script></body></html>`;
}

interface Site {
  url: string;
  close(): Promise<void>;
}

async function startSite(): Promise<Site> {
  const jpegs = new Map<number, Buffer>();
  for (const id of Object.keys(VEHICLES).map(Number)) jpegs.set(id, await makeJpeg(96, 64, id));
  let base = '';
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', base);
    const send = (status: number, type: string, body: Buffer | string): void => {
      const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(b.length) });
      res.end(b);
    };
    const img = /^\/images\/(\d+)\.jpg$/.exec(u.pathname);
    if (img && jpegs.has(Number(img[1]))) return send(200, 'image/jpeg', jpegs.get(Number(img[1]))!);
    const id = Number(u.searchParams.get('listingId'));
    if (u.pathname === LISTING_PATH && VEHICLES[id]) return send(200, 'text/html', listingPage(id, base));
    if (u.pathname === '/') return send(200, 'text/html', '<h1>Fixture autos</h1>');
    send(404, 'text/html', '<h2>Not found</h2>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Row {
  listing_id: number;
  price: number | null;
  year: number | null;
  odometer: number | null;
  warnings: string | null;
}

function listingRows(dir: string): Map<number, Row & { parsed: ValueWarning[] }> {
  const db = new Database(path.join(dir, 'studio.db'), { readonly: true });
  try {
    const rows = db.prepare(`SELECT listing_id, price, year, odometer, warnings FROM listings ORDER BY listing_id`).all() as Row[];
    return new Map(rows.map((r) => [r.listing_id, { ...r, parsed: r.warnings === null ? [] : (JSON.parse(r.warnings) as ValueWarning[]) }]));
  } finally {
    db.close();
  }
}

const SCRAPE = ['--min-id', '1', '--max-id', '9', '--concurrency', '2', '--retries', '0', '--retry-delay-ms', '0', '--timeout-ms', '5000'];

describe('value ranges in the scrape', () => {
  let site: Site;
  beforeAll(async () => {
    site = await startSite();
  });
  afterAll(async () => {
    await site.close();
  });

  it('stores absurd or unreadable prices, years and odometers as NULL with a warning on the listing, keeps normal ones, and stats count them', async () => {
    const dir = `${tmpDir()}/ws`;
    Workspace.open(dir, { create: true }).close();
    const r = await runCli(['scrape', '--workspace', dir, '--base-url', site.url, ...SCRAPE, '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: 8, gone: 1, failed: 0 });
    // each warning is also in the job's log, shown as the scrape runs
    expect(r.stderr).toMatch(/listing 2: price 1000000000000 is outside \$100\.\.\$5,000,000; stored as NULL/);

    const rows = listingRows(dir);
    expect(rows.size).toBe(8);
    const nulled = (id: number, field: 'price' | 'year' | 'odometer', problem: ValueWarning['problem'], value: string): void => {
      const row = rows.get(id)!;
      expect(row[field], `listing ${id} ${field}`).toBeNull();
      expect(row.parsed, `listing ${id}`).toEqual([{ field, value, problem, message: expect.stringContaining(`${field} ${value} `) }]);
    };
    nulled(1, 'price', 'out of range', '-5000');
    nulled(2, 'price', 'out of range', '1000000000000');
    nulled(3, 'price', 'out of range', '"$1,000,000,000,000"');
    nulled(4, 'year', 'out of range', '3000');
    nulled(5, 'odometer', 'out of range', '"99,999,999 mi"');
    nulled(6, 'price', 'unparsable', '"call for price"');
    expect(rows.get(1)!.parsed[0]!.message).toBe('price -5000 is outside $100..$5,000,000; stored as NULL');
    expect(rows.get(4)!.parsed[0]!.message).toBe(`year 3000 is outside 1886..${NEXT_YEAR}; stored as NULL`);
    expect(rows.get(5)!.parsed[0]!.message).toBe('odometer "99,999,999 mi" is outside 0..2,000,000 miles; stored as NULL');
    // the other values of those listings, and the normal listings, are intact
    expect(rows.get(4)).toMatchObject({ price: 21_000, odometer: 20_000 });
    expect(rows.get(5)).toMatchObject({ price: 9_500, year: 2012 });
    expect(rows.get(6)).toMatchObject({ year: 2014, odometer: 61_000 });
    expect(rows.get(7)).toMatchObject({ price: 15_000, year: 2015, odometer: 50_000, warnings: null });
    expect(rows.get(8)).toMatchObject({ price: 25_500, year: NEXT_YEAR, odometer: 12, warnings: null });

    const json = await runCli(['stats', '--workspace', dir, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const stats = JSON.parse(json.stdout) as Stats;
    expect(stats.values).toEqual({
      ranges: defaultValueRanges(),
      listingsWithWarnings: 6,
      nulled: { price: 4, year: 1, odometer: 1 },
      outOfRange: { price: 0, year: 0, odometer: 0 },
    });
    const text = await runCli(['stats', '--workspace', dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^values +set to NULL: price 4, year 1, odometer 1 \(6 listings with warnings\)/m);
    expect(text.stdout).toMatch(new RegExp(`^ranges +price \\$100\\.\\.\\$5,000,000, year 1886\\.\\.${NEXT_YEAR}, odometer 0\\.\\.2,000,000 miles$`, 'm'));
  }, 150_000);

  it('takes the workspace ranges from the API (values.setRanges) and the CLI (carstudio ranges), and refuses a bad range', async () => {
    const dir = `${tmpDir()}/ws`;
    const engine = Engine.open(dir, { create: true });
    try {
      const info = await engine.request('values.setRanges', { price: { min: 10_000, max: 20_000 }, odometer: { min: 0, max: 100_000_000 } });
      expect(info.saved).toEqual(['price', 'odometer']);
      expect(info.ranges.year).toEqual(defaultValueRanges().year);
      const job = engine.jobs.start('scrape', { baseUrl: site.url, minId: 5, maxId: 8, concurrency: 2, retries: 0, retryDelayMs: 0 });
      const final = (await engine.jobs.wait(job.id)) as JobInfo;
      expect(final.state, final.error?.message).toBe('done');
      const logs = engine.jobs.logs(job.id).map((l) => l.message);
      expect(logs).toContain('listing 8: price "$25,500" is outside $10,000..$20,000; stored as NULL');
      const stats = (await engine.request('stats.get', {})) as Stats;
      // 5: $9,500 and 8: $25,500 outside the range, 6: "call for price" unreadable
      expect(stats.values.nulled).toEqual({ price: 3, year: 0, odometer: 0 });
      // a bad range is refused and changes nothing
      const bad = await engine.call('values.setRanges', { year: { min: 2030, max: 1990 } });
      expect(bad).toMatchObject({ ok: false, error: { name: 'UserError', message: expect.stringContaining('greater than the maximum') } });
      expect(await engine.request('values.ranges', {})).toMatchObject({ saved: ['price', 'odometer'], ranges: { year: defaultValueRanges().year } });
    } finally {
      await engine.close();
    }
    const rows = listingRows(dir);
    expect(rows.get(5)).toMatchObject({ price: null, odometer: 99_999_999 });
    expect(rows.get(7)).toMatchObject({ price: 15_000, warnings: null });
    expect(rows.get(8)!.price).toBeNull();

    const refused = await runCli(['ranges', '--workspace', dir, '--price-range', '5000-abc']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`--price-range must be MIN-MAX (e.g. --price-range 100-5000000) or 'default', got '5000-abc'`);
    const set = await runCli(['ranges', '--workspace', dir, '--price-range', 'default', '--year-range', '1990..2020', '--json']);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ saved: ['year', 'odometer'], ranges: { price: { min: 100, max: 5_000_000 }, year: { min: 1990, max: 2020 } } });
    const ws = Workspace.open(dir, { readonly: true });
    try {
      // stats count stored values outside the ranges in effect now: listing 8's next year
      expect(getStats(ws.db).values.outOfRange).toEqual({ price: 0, year: 1, odometer: 0 });
    } finally {
      ws.close();
    }
  }, 150_000);

  it('checkValues: parsed values against ranges, the raw value in the warning', () => {
    const ranges = defaultValueRanges();
    expect(checkValues({ price: 5_000_000, year: 1886, odometer: 0 }, undefined, ranges)).toEqual({ values: { price: 5_000_000, year: 1886, odometer: 0 }, warnings: [] });
    const r = checkValues({ price: 99, year: null, odometer: Number.POSITIVE_INFINITY }, { year: 'soon', odometer: 'lots' }, ranges);
    expect(r.values).toEqual({ price: null, year: null, odometer: null });
    expect(r.warnings.map((w) => [w.field, w.problem])).toEqual([
      ['price', 'out of range'],
      ['year', 'unparsable'],
      ['odometer', 'out of range'],
    ]);
    expect(rangeArg('price')('$500 - $250,000')).toEqual({ min: 500, max: 250_000 });
    expect(rangeArg('year')('default')).toBeNull();
    expect(() => rangeArg('odometer')('-5-100')).toThrow(/cannot start below 0/);
  });
});

describe('training on a workspace with absurd prices already stored', () => {
  it('drops the listings whose price is outside the range, says so, and trains to a sane MAE', async () => {
    const dir = `${tmpDir()}/ws`;
    const ws = Workspace.open(dir, { create: true });
    // An older database: prices written straight into listings, never checked. The absurd
    // listings' images sort first by hash, so they would be the whole test split.
    const normal = Array.from({ length: 24 }, (_, i) => ({ price: 6_000 + ((i * 7919) % 50) * 1_000, images: 1, hashFirst: false }));
    const absurd = [
      { price: 1e12, images: 3, hashFirst: true },
      { price: 7.5e9, images: 2, hashFirst: true },
      { price: -5000, images: 1, hashFirst: true },
    ];
    const insertListing = ws.db.prepare(
      `INSERT INTO listings (source, listing_id, url, title, price, make, model, year, scraped_at) VALUES ('kbb', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    );
    const insertImage = ws.db.prepare(
      `INSERT INTO images (key, url, state, width, height, bytes, exact_hash, updated_at) VALUES (?, ?, 'stored', ?, ?, ?, ?, ?) RETURNING id`,
    );
    const link = ws.db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, ?, ?)`);
    let n = 0;
    for (const [i, l] of [...absurd, ...normal].entries()) {
      const makes = ['Honda', 'Ford', 'BMW'];
      const rowId = (insertListing.get(i + 1, `http://example.test/${i + 1}`, `car ${i + 1}`, l.price, makes[i % 3], 'X', 2010 + (i % 10), Date.now()) as { id: number }).id;
      for (let k = 0; k < l.images; k++, n++) {
        const url = `http://example.test/img/${n}.jpg`;
        const key = ImageStore.keyFor(url);
        const buf = await makeJpeg(64 + (n % 4) * 8, 48, n);
        await ws.store.write(key, buf);
        const hash = (l.hashFirst ? '0' : 'f') + key.slice(1);
        const imageId = (insertImage.get(key, url, 64, 48, buf.length, hash, Date.now()) as { id: number }).id;
        link.run(rowId, k, imageId);
      }
    }
    ws.close();

    const engine = Engine.open(dir);
    try {
      const job = engine.jobs.start('train', { steps: 30, batchSize: 16, evalEvery: 15, checkpointEvery: 15 });
      const final = (await engine.jobs.wait(job.id)) as JobInfo;
      expect(final.state, final.error?.message).toBe('done');
      const result = final.result as {
        ignoredPrices: { listings: number; images: number; message: string };
        lastEval: { test: { median: { maeDollars: number; n: number }; samples: number } };
      };
      expect(result.ignoredPrices).toMatchObject({ listings: 3, images: 6, message: 'ignored the price of 3 listings (6 images) outside $100..$5,000,000' });
      const logs = engine.jobs.logs(job.id).map((l) => `${l.level}: ${l.message}`);
      expect(logs.some((l) => l.startsWith('warn: ignored the price of 3 listings (6 images) outside $100..$5,000,000'))).toBe(true);
      // The 6 images keep their make/model/year labels; only the 24 with believable prices train
      // and score the price heads. A median head that has barely trained is still off by the
      // order of a car's price, not by billions.
      const summary = await engine.request('train.dataset', {});
      expect(summary.images).toBe(30);
      expect(summary.labelCounts.price.train + summary.labelCounts.price.test).toBe(24);
      expect(summary.labelCounts.makeModel.train + summary.labelCounts.makeModel.test).toBe(30);
      expect(result.lastEval.test.samples).toBe(summary.testImages);
      expect(result.lastEval.test.median.n).toBe(summary.labelCounts.price.test);
      if (result.lastEval.test.median.n > 0) expect(result.lastEval.test.median.maeDollars).toBeLessThan(60_000);
    } finally {
      await engine.close();
    }
  }, 180_000);
});
