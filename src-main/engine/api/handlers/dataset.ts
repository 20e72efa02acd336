import { UserError } from '../../workspace/errors.ts';
import type { Db } from '../../workspace/db.ts';
import type {
  DatasetFacets,
  DatasetPlots,
  DatasetResults,
  ListingDetail,
  ListingImage,
  ListingOwner,
  ListingPage,
  ListingRow,
  ListingSort,
  ScrapeErrors,
  TimeBucket,
} from '../contract/dataset.ts';
import type { ParsedParams } from '../contract/index.ts';
import type { Handlers } from './types.ts';

const PRICE_BIN = 5_000;
const PRICE_BINS = 20; // $0..$100k, then one overflow bin
const TOP_MAKE_MODELS = 20;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Gaps in the over-time series are filled with zero buckets up to this many buckets. */
const MAX_FILLED_BUCKETS = 5_000;

/** Columns the listing browser may sort by (a fixed map: never user text in SQL). */
const SORT_COLUMNS: Record<ListingSort, string> = { id: 'l.id', price: 'l.price', year: 'l.year', scraped_at: 'l.scraped_at' };

const ROW_COLUMNS = `l.id, l.listing_id AS listingId, l.source, l.url, l.title, l.price, l.make, l.model, l.year, l.odometer,
  l.scraped_at AS scrapedAt,
  (SELECT COUNT(*) FROM listing_images li WHERE li.listing_rowid = l.id) AS imageCount,
  (SELECT i.key FROM listing_images li JOIN images i ON i.id = li.image_id
     WHERE li.listing_rowid = l.id AND i.state = 'stored' ORDER BY li.position LIMIT 1) AS thumbKey`;

export const datasetHandlers: Handlers<keyof DatasetResults> = {
  'listings.query': (p, e) => queryListings(e.ws.db, p),
  'listings.get': (p, e) => getListing(e.ws.db, p.id),
  'dataset.facets': (_p, e) => facets(e.ws.db),
  'dataset.plots': (_p, e) => plots(e.ws.db),
  'scrape.errors': (p, e) => {
    let window: ScrapeErrors['window'] = null;
    if (p.jobId !== undefined) {
      const job = e.jobs.get(p.jobId);
      if (!job) throw new UserError(`no job ${p.jobId}`);
      const live = job.state === 'running' || job.state === 'cancelling' || job.state === 'queued';
      // createdAt, not startedAt: a resumed job's earlier runs count too
      window = { from: job.createdAt, to: live ? null : job.finishedAt };
    }
    return scrapeErrors(e.ws.db, window, p.limit);
  },
};

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export function queryListings(db: Db, p: ParsedParams<'listings.query'>): ListingPage {
  const where: string[] = [];
  const args: Record<string, unknown> = {};
  if (p.source !== undefined) {
    where.push('l.source = @source');
    args.source = p.source;
  }
  if (p.make !== undefined) {
    where.push('l.make = @make');
    args.make = p.make;
  }
  if (p.model !== undefined) {
    where.push('l.model = @model');
    args.model = p.model;
  }
  if (p.yearMin !== undefined) {
    where.push('l.year >= @yearMin');
    args.yearMin = p.yearMin;
  }
  if (p.yearMax !== undefined) {
    where.push('l.year <= @yearMax');
    args.yearMax = p.yearMax;
  }
  if (p.priceMin !== undefined) {
    where.push('l.price >= @priceMin');
    args.priceMin = p.priceMin;
  }
  if (p.priceMax !== undefined) {
    where.push('l.price <= @priceMax');
    args.priceMax = p.priceMax;
  }
  const q = p.q?.trim();
  if (q) {
    // LIKE is case-insensitive for ASCII in SQLite
    where.push(`l.title LIKE @q ESCAPE '\\'`);
    args.q = `%${escapeLike(q)}%`;
  }
  const whereSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const col = SORT_COLUMNS[p.sort];
  const dir = p.dir === 'desc' ? 'DESC' : 'ASC';
  // id breaks ties so paging is stable; listings without the sorted value come last either way
  const order = p.sort === 'id' ? `l.id ${dir}` : `${col} ${dir} NULLS LAST, l.id ${dir}`;
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM listings l ${whereSql}`).get(args) as { n: number }).n;
  const rows = db
    .prepare(`SELECT ${ROW_COLUMNS} FROM listings l ${whereSql} ORDER BY ${order} LIMIT @limit OFFSET @offset`)
    .all({ ...args, limit: p.limit, offset: p.offset }) as ListingRow[];
  return { total, rows };
}

interface DetailRow extends ListingRow {
  engine: string | null;
  exteriorColor: string | null;
  interiorColor: string | null;
  driveType: string | null;
  fuelType: string | null;
  fuelEconomy: string | null;
  vin: string | null;
  stockNumber: string | null;
  description: string | null;
  owners: string | null;
}

export function getListing(db: Db, id: number): ListingDetail {
  const row = db
    .prepare(
      `SELECT ${ROW_COLUMNS}, l.engine, l.exterior_color AS exteriorColor, l.interior_color AS interiorColor, l.drive_type AS driveType,
         l.fuel_type AS fuelType, l.fuel_economy AS fuelEconomy, l.vin, l.stock_number AS stockNumber, l.description, l.owners
       FROM listings l WHERE l.id = ?`,
    )
    .get(id) as DetailRow | undefined;
  if (!row) throw new UserError(`no listing ${id}`);
  const images = db
    .prepare(
      `SELECT li.position, i.key, i.url, i.state, i.width, i.height, i.fail_reason AS failReason
       FROM listing_images li JOIN images i ON i.id = li.image_id WHERE li.listing_rowid = ? ORDER BY li.position`,
    )
    .all(id) as ListingImage[];
  return {
    ...row,
    fuelEconomy: parseJsonArray(row.fuelEconomy).filter((x): x is string => typeof x === 'string'),
    owners: parseJsonArray(row.owners).map(toOwner),
    images,
  };
}

function parseJsonArray(s: string | null): unknown[] {
  if (!s) return [];
  try {
    const v: unknown = JSON.parse(s);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function toOwner(v: unknown): ListingOwner {
  const o = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  const str = (x: unknown): string | null => (typeof x === 'string' ? x : typeof x === 'number' ? String(x) : null);
  return { id: str(o.id), name: str(o.name), website: str(o.website) };
}

export function facets(db: Db): DatasetFacets {
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM listings`).get() as { n: number }).n;
  const pairs = db
    .prepare(`SELECT make, model, COUNT(*) AS count FROM listings WHERE make IS NOT NULL GROUP BY make, model ORDER BY make, model`)
    .all() as Array<{ make: string; model: string | null; count: number }>;
  const makes: DatasetFacets['makes'] = [];
  const models: DatasetFacets['models'] = {};
  for (const r of pairs) {
    const last = makes[makes.length - 1];
    if (last && last.make === r.make) last.count += r.count;
    else makes.push({ make: r.make, count: r.count });
    if (r.model !== null) (models[r.make] ??= []).push({ model: r.model, count: r.count });
  }
  for (const list of Object.values(models)) list.sort((a, b) => b.count - a.count || a.model.localeCompare(b.model));
  const year = db.prepare(`SELECT MIN(year) AS min, MAX(year) AS max FROM listings`).get() as DatasetFacets['year'];
  const price = db.prepare(`SELECT MIN(price) AS min, MAX(price) AS max FROM listings`).get() as DatasetFacets['price'];
  const sources = db
    .prepare(`SELECT source, COUNT(*) AS count FROM listings GROUP BY source ORDER BY count DESC, source`)
    .all() as DatasetFacets['sources'];
  return { total, makes, models, year, price, sources };
}

export function plots(db: Db): DatasetPlots {
  const counts = db
    .prepare(
      `SELECT COUNT(*) AS listings, COUNT(price) AS priced, COUNT(year) AS withYear, COUNT(make) AS withMake,
         COALESCE(SUM(price > 50000), 0) AS over50k, COALESCE(SUM(price > 70000), 0) AS over70k FROM listings`,
    )
    .get() as { listings: number; priced: number; withYear: number; withMake: number; over50k: number; over70k: number };

  const bins = new Map(
    (
      db
        .prepare(
          `SELECT MIN(MAX(CAST(price / ${PRICE_BIN} AS INTEGER), 0), ${PRICE_BINS}) AS b, COUNT(*) AS n FROM listings WHERE price IS NOT NULL GROUP BY b`,
        )
        .all() as Array<{ b: number; n: number }>
    ).map((r) => [r.b, r.n]),
  );
  const priceHistogram = Array.from({ length: PRICE_BINS + 1 }, (_, b) => ({
    lo: b * PRICE_BIN,
    hi: b < PRICE_BINS ? (b + 1) * PRICE_BIN : null,
    count: bins.get(b) ?? 0,
  }));

  const medianPrice =
    counts.priced > 0
      ? (db
          .prepare(`SELECT price FROM listings WHERE price IS NOT NULL ORDER BY price LIMIT 1 OFFSET ?`)
          .pluck()
          .get(Math.floor((counts.priced - 1) / 2)) as number)
      : null;

  const topMakeModels = (
    db
      .prepare(
        `SELECT make, model, COUNT(*) AS count FROM listings WHERE make IS NOT NULL GROUP BY make, model ORDER BY count DESC, make, model LIMIT ?`,
      )
      .all(TOP_MAKE_MODELS) as Array<{ make: string; model: string | null; count: number }>
  ).map((r) => ({ make: r.make, model: r.model ?? '', count: r.count, share: counts.withMake ? r.count / counts.withMake : 0 }));

  const yearHistogram = db
    .prepare(`SELECT year, COUNT(*) AS count FROM listings WHERE year IS NOT NULL GROUP BY year ORDER BY year`)
    .all() as DatasetPlots['yearHistogram'];

  const span = db.prepare(`SELECT MIN(scraped_at) AS lo, MAX(scraped_at) AS hi FROM listings`).get() as {
    lo: number | null;
    hi: number | null;
  };
  let overTimeBucket: TimeBucket = 'minute';
  let overTime: DatasetPlots['overTime'] = [];
  if (span.lo !== null && span.hi !== null) {
    const width = span.hi - span.lo;
    overTimeBucket = width <= 3 * HOUR ? 'minute' : width <= 10 * DAY ? 'hour' : 'day';
    const ms = overTimeBucket === 'minute' ? MINUTE : overTimeBucket === 'hour' ? HOUR : DAY;
    // ms inlined (one of three constants): a bound JS number is a REAL, and integer division needs an INTEGER
    const got = db
      .prepare(`SELECT (scraped_at / ${ms}) * ${ms} AS t, COUNT(*) AS count FROM listings GROUP BY t ORDER BY t`)
      .all() as DatasetPlots['overTime'];
    const first = got[0]!.t;
    const last = got[got.length - 1]!.t;
    if ((last - first) / ms + 1 <= MAX_FILLED_BUCKETS) {
      const byT = new Map(got.map((r) => [r.t, r.count]));
      for (let t = first; t <= last; t += ms) overTime.push({ t, count: byT.get(t) ?? 0 });
    } else {
      overTime = got;
    }
  }

  return {
    priceHistogram,
    priceShares: {
      over50k: counts.priced ? counts.over50k / counts.priced : 0,
      over70k: counts.priced ? counts.over70k / counts.priced : 0,
    },
    topMakeModels,
    yearHistogram,
    overTime,
    overTimeBucket,
    totals: { listings: counts.listings, priced: counts.priced, withYear: counts.withYear, withMake: counts.withMake, medianPrice },
  };
}

export function scrapeErrors(db: Db, window: ScrapeErrors['window'], limit: number): ScrapeErrors {
  const from = window?.from ?? 0;
  const to = window?.to ?? Number.MAX_SAFE_INTEGER;
  const failedAttempts = db
    .prepare(
      `SELECT source, listing_id AS listingId, http_status AS httpStatus, reason, tries, at FROM attempts
       WHERE outcome = 'failed' AND at BETWEEN ? AND ? ORDER BY at DESC, listing_id LIMIT ?`,
    )
    .all(from, to, limit) as ScrapeErrors['failedAttempts'];
  const totalFailedAttempts = db
    .prepare(`SELECT COUNT(*) FROM attempts WHERE outcome = 'failed' AND at BETWEEN ? AND ?`)
    .pluck()
    .get(from, to) as number;
  const failedImages = db
    .prepare(
      `SELECT url, fail_reason AS reason, tries, updated_at AS at FROM images
       WHERE state = 'failed' AND updated_at BETWEEN ? AND ? ORDER BY updated_at DESC, id LIMIT ?`,
    )
    .all(from, to, limit) as ScrapeErrors['failedImages'];
  const totalFailedImages = db
    .prepare(`SELECT COUNT(*) FROM images WHERE state = 'failed' AND updated_at BETWEEN ? AND ?`)
    .pluck()
    .get(from, to) as number;
  return { window, failedAttempts, totalFailedAttempts, failedImages, totalFailedImages };
}
