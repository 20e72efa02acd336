import { useEffect, useMemo, useState, type FormEvent } from 'react';
import type { JobInfo, ListingRow, ListingSort, Params, TimeBucket } from '../../../src-main/engine/api/contract/index.ts';
import { api } from '../api/client.ts';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtPct, fmtPrice, fmtRate } from '../format.ts';
import { BarChart, EmptyChart, LineChart, ShareTable } from '../components/charts.tsx';

const PAGE_SIZE = 24;
const LIVE = new Set(['running', 'cancelling', 'queued']);

export function DatasetStage() {
  const stats = useQuery('stats.get', {});
  const call = useCall();
  // one counter that every panel reloads on: bumped (throttled) while a scrape or store check runs
  const [version, setVersion] = useState(0);
  useJobRefresh(['scrape', 'verify-store'], () => {
    void stats.reload();
    setVersion((v) => v + 1);
  });
  const s = stats.data;
  return (
    <div>
      <h1>Dataset</h1>
      <p className="lead">Listings, their metadata and their photos, gathered into this workspace.</p>
      <section className="cards">
        <Metric label="Listings" value={s?.listings} testid="stat-listings" />
        <Metric label="Ids attempted" value={s?.attempts} testid="stat-attempts" />
        <Metric label="Misses" value={s?.misses} hint="ids the site says are gone (404 or 'no longer available')" />
        <Metric
          label="Failed ids"
          value={s?.failedAttempts}
          testid="stat-failed"
          hint="ids that failed every try; the next run tries them again"
        />
        <Metric label="Images stored" value={s?.images.stored} testid="stat-images-stored" />
        <Metric label="Images failed" value={s?.images.failed} />
        <Metric
          label="Listings with absurd values"
          value={s?.values.listingsWithWarnings}
          testid="stat-value-warnings"
          hint={
            s
              ? `price, year or odometer stored as NULL (out of range or unreadable): price ${s.values.nulled.price}, year ${s.values.nulled.year}, odometer ${s.values.nulled.odometer}; ranges: carstudio ranges`
              : undefined
          }
        />
      </section>
      <ScrapePanel version={version} />
      <Plots version={version} />
      <ListingBrowser version={version} />
      <section className="card">
        <h3>Image store</h3>
        <p className="muted">
          Check that every stored image exists and decodes; broken ones are marked failed so the next scrape fetches them again.
        </p>
        <button data-testid="verify-store" onClick={() => void call('jobs.start', { kind: 'verify-store', params: {} })}>
          Verify image store
        </button>
      </section>
    </div>
  );
}

export function Metric({
  label,
  value,
  testid,
  hint,
}: {
  label: string;
  value: number | null | undefined;
  testid?: string;
  hint?: string;
}) {
  return (
    <div className="metric" data-testid={testid} title={hint}>
      <div className="metric-value">{fmtInt(value)}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}

// ---- Scrape: settings, live progress, stop/resume, error log ----

interface ScrapeForm {
  baseUrl: string;
  minId: string;
  maxId: string;
  concurrency: string;
  retries: string;
  retryDelayMs: string;
  timeoutMs: string;
  rps: string;
  resize: string;
  /** Extra image hosts, separated by spaces or commas (host, host:port, *.domain). */
  allowImageHosts: string;
  demoFaults: boolean;
}

const DEFAULT_FORM: ScrapeForm = {
  baseUrl: 'demo',
  minId: '1',
  maxId: '2000',
  concurrency: '8',
  retries: '14',
  retryDelayMs: '2000',
  timeoutMs: '30000',
  rps: '0',
  resize: '256',
  allowImageHosts: '',
  demoFaults: false,
};

const NUMBER_FIELDS: Array<{ key: Exclude<keyof ScrapeForm, 'baseUrl' | 'allowImageHosts' | 'demoFaults'>; label: string; hint: string }> = [
  { key: 'minId', label: 'Min id', hint: 'first listing id to try' },
  { key: 'maxId', label: 'Max id', hint: 'last listing id to try (ids are visited in a keyed random order)' },
  { key: 'concurrency', label: 'Concurrency', hint: 'listings fetched at once' },
  { key: 'retries', label: 'Retries', hint: 'retries after the first try (15 tries in all by default, as the original)' },
  { key: 'retryDelayMs', label: 'Retry delay (ms)', hint: 'base of the exponential backoff between tries' },
  { key: 'timeoutMs', label: 'Timeout (ms)', hint: 'per request' },
  { key: 'rps', label: 'Requests / s', hint: 'global cap on requests per second; 0 = none' },
  { key: 'resize', label: 'Resize (px)', hint: 'images are downsampled so the short side is at most this' },
];

function ScrapePanel({ version }: { version: number }) {
  const call = useCall();
  const jobs = useJobs();
  const [form, setForm] = useState<ScrapeForm>(DEFAULT_FORM);
  const latest = useMemo(() => jobs.filter((j) => j.kind === 'scrape').sort((a, b) => b.id - a.id)[0] ?? null, [jobs]);
  const running = latest !== null && LIVE.has(latest.state);
  const isDemo = form.baseUrl.trim() === 'demo';

  const start = async (e: FormEvent) => {
    e.preventDefault();
    const num = (k: keyof ScrapeForm) => Number(form[k]);
    await call('jobs.start', {
      kind: 'scrape',
      params: {
        baseUrl: form.baseUrl.trim(),
        minId: num('minId'),
        maxId: num('maxId'),
        concurrency: num('concurrency'),
        retries: num('retries'),
        retryDelayMs: num('retryDelayMs'),
        timeoutMs: num('timeoutMs'),
        rps: num('rps'),
        resize: num('resize'),
        allowImageHosts: form.allowImageHosts.split(/[\s,]+/).filter((h) => h !== ''),
        demoFaults: isDemo && form.demoFaults,
      },
    });
  };

  return (
    <section className="card" data-testid="scrape-panel">
      <h3>Scrape</h3>
      <form className="form" onSubmit={(e) => void start(e)} data-testid="scrape-form">
        <label className="span2">
          Base URL
          <input
            value={form.baseUrl}
            onChange={(e) => setForm({ ...form, baseUrl: e.target.value })}
            data-testid="scrape-baseUrl"
            placeholder="https://www.example.com or demo"
          />
          <span className="muted small">
            {isDemo
              ? "'demo' = the bundled demo listing site (offline, started inside the job)"
              : 'a KBB-format listing site; ids become /cars-for-sale/vehicledetails.xhtml?listingId=N'}
          </span>
        </label>
        <label className="span2" title="images are fetched only from the site's own host:port, its domain's subdomains and these hosts; never from loopback, link-local or private addresses other than those named exactly">
          Extra image hosts
          <input
            value={form.allowImageHosts}
            onChange={(e) => setForm({ ...form, allowImageHosts: e.target.value })}
            data-testid="scrape-allowImageHosts"
            placeholder="e.g. images.example-cdn.com *.cdn.example.net"
          />
        </label>
        {NUMBER_FIELDS.map((f) => (
          <label key={f.key} title={f.hint}>
            {f.label}
            <input
              type="number"
              value={form[f.key]}
              onChange={(e) => setForm({ ...form, [f.key]: e.target.value })}
              data-testid={`scrape-${f.key}`}
            />
          </label>
        ))}
        <label
          className="check"
          title="the demo site fails some requests (503/429 with Retry-After, resets, stalls, truncated bodies, bad JSON) and serves some broken images"
        >
          <span>
            <input
              type="checkbox"
              checked={form.demoFaults && isDemo}
              disabled={!isDemo}
              onChange={(e) => setForm({ ...form, demoFaults: e.target.checked })}
              data-testid="scrape-demoFaults"
            />{' '}
            inject faults (demo only)
          </span>
        </label>
        <div className="form-actions">
          <button
            type="submit"
            className="primary"
            disabled={running}
            data-testid="scrape-start"
            title={running ? 'a scrape is running (one at a time per workspace)' : undefined}
          >
            Start scrape
          </button>
        </div>
      </form>
      {latest ? <ScrapeJob job={latest} /> : <p className="muted">No scrape yet in this workspace.</p>}
      <ScrapeErrorLog job={latest} version={version} />
    </section>
  );
}

function ScrapeJob({ job }: { job: JobInfo }) {
  const call = useCall();
  const live = LIVE.has(job.state);
  const pct = job.total ? Math.min(100, (100 * job.done) / job.total) : null;
  return (
    <div className="scrape-job" data-testid="scrape-job" data-state={job.state} data-job={job.id}>
      <div className="job-head">
        <span className="job-title">
          #{job.id} {job.title}
        </span>
        <span className={`badge badge-${job.state}`}>{job.state}</span>
      </div>
      <div className="progress" role="progressbar" aria-valuenow={pct ?? undefined} aria-valuemin={0} aria-valuemax={100}>
        <div className={`progress-bar ${pct == null && live ? 'indeterminate' : ''}`} style={{ width: `${pct ?? (live ? 30 : 0)}%` }} />
      </div>
      <div className="job-meta">
        <span data-testid="scrape-progress" data-done={job.done} data-total={job.total ?? ''}>
          {fmtInt(job.done)}
          {job.total != null ? ` / ${fmtInt(job.total)} ids` : ''}
          {pct != null ? ` (${pct.toFixed(0)}%)` : ''}
        </span>
        {live && <span data-testid="scrape-rate">{fmtRate(job.rate)}</span>}
        {live && <span data-testid="scrape-eta">ETA {fmtDuration(job.eta)}</span>}
        {job.resumedCount > 0 && <span>resumed {job.resumedCount}×</span>}
      </div>
      {job.message && (
        <div className="job-msg" data-testid="scrape-message">
          {job.message}
        </div>
      )}
      {job.error && <div className="job-error">{job.error.message}</div>}
      <div className="job-actions">
        {live && (
          <button onClick={() => void call('jobs.cancel', { id: job.id })} disabled={job.state === 'cancelling'} data-testid="scrape-stop">
            {job.state === 'cancelling' ? 'Stopping…' : 'Stop'}
          </button>
        )}
        {job.resumable && (
          <button className="primary" onClick={() => void call('jobs.resume', { id: job.id })} data-testid="scrape-resume">
            Resume
          </button>
        )}
      </div>
    </div>
  );
}

function ScrapeErrorLog({ job, version }: { job: JobInfo | null; version: number }) {
  const params: Params<'scrape.errors'> = job ? { jobId: job.id, limit: 50 } : { limit: 50 };
  const errors = useQuery('scrape.errors', params, [version]);
  const e = errors.data;
  if (!e || e.totalFailedAttempts + e.totalFailedImages === 0) {
    return (
      <p className="muted small" data-testid="scrape-errors" data-count={0}>
        No errors{job ? ' in this scrape' : ''}.
      </p>
    );
  }
  return (
    <details className="error-log" data-testid="scrape-errors" data-count={e.totalFailedAttempts + e.totalFailedImages} open>
      <summary>
        Errors{job ? ' in this scrape' : ''}: {fmtInt(e.totalFailedAttempts)} failed id{e.totalFailedAttempts === 1 ? '' : 's'},{' '}
        {fmtInt(e.totalFailedImages)} failed image
        {e.totalFailedImages === 1 ? '' : 's'}{' '}
        <span className="muted small">(newest first; failed ones are tried again by the next run)</span>
      </summary>
      <div className="error-list">
        {e.failedAttempts.map((a) => (
          <div key={`a${a.source}${a.listingId}`} className="error-row" data-testid="scrape-error">
            <span className="muted">{new Date(a.at).toLocaleTimeString()}</span> <span>id {a.listingId}</span>{' '}
            {a.httpStatus != null && <span className="badge">HTTP {a.httpStatus}</span>} <span className="log-warn">{a.reason}</span>{' '}
            <span className="muted">
              ({a.tries} tr{a.tries === 1 ? 'y' : 'ies'})
            </span>
          </div>
        ))}
        {e.failedImages.map((i) => (
          <div key={`i${i.url}`} className="error-row" data-testid="scrape-error-image">
            <span className="muted">{new Date(i.at).toLocaleTimeString()}</span> <span>image {i.url}</span>{' '}
            <span className="log-warn">{i.reason}</span>{' '}
            <span className="muted">
              ({i.tries} run{i.tries === 1 ? '' : 's'})
            </span>
          </div>
        ))}
      </div>
    </details>
  );
}

// ---- Plots ----

const BUCKET_FORMAT: Record<TimeBucket, Intl.DateTimeFormatOptions> = {
  minute: { hour: '2-digit', minute: '2-digit' },
  hour: { month: 'short', day: 'numeric', hour: '2-digit' },
  day: { year: 'numeric', month: 'short', day: 'numeric' },
};

function Plots({ version }: { version: number }) {
  const plots = useQuery('dataset.plots', {}, [version]);
  const p = plots.data;
  const empty = !p || p.totals.listings === 0;
  const k = (n: number) => `$${n / 1000}k`;
  return (
    <section className="plots" data-testid="plots">
      <div className="card">
        <h3>Prices</h3>
        {empty ? (
          <EmptyChart />
        ) : (
          <>
            <BarChart
              ariaLabel="price histogram"
              testid="plot-price"
              bars={p.priceHistogram.map((b) => ({
                label: b.hi === null ? `${k(b.lo)}+` : k(b.lo),
                value: b.count,
                title: `${b.hi === null ? `${fmtPrice(b.lo)} and over` : `${fmtPrice(b.lo)} – ${fmtPrice(b.hi)}`}: ${fmtInt(b.count)}`,
              }))}
            />
            <p className="muted small" data-testid="price-shares">
              {fmtInt(p.totals.priced)} priced listings · median {fmtPrice(p.totals.medianPrice)} · over $50k:{' '}
              {fmtPct(p.priceShares.over50k)} · over $70k: {fmtPct(p.priceShares.over70k)}
            </p>
          </>
        )}
      </div>
      <div className="card">
        <h3>Top make/models</h3>
        {empty ? (
          <EmptyChart />
        ) : (
          <ShareTable
            nameHeader="Make / model"
            testid="top-make-models"
            rows={p.topMakeModels.map((r) => ({ name: `${r.make} ${r.model}`.trim(), count: r.count, share: r.share }))}
          />
        )}
      </div>
      <div className="card">
        <h3>Model years</h3>
        {empty ? (
          <EmptyChart />
        ) : (
          <BarChart
            ariaLabel="year histogram"
            testid="plot-years"
            bars={fillYears(p.yearHistogram).map((b) => ({ label: String(b.year), value: b.count }))}
          />
        )}
      </div>
      <div className="card">
        <h3>Listings scraped over time {p && !empty && <span className="muted small">(per {p.overTimeBucket})</span>}</h3>
        {empty ? (
          <EmptyChart />
        ) : p.overTime.length <= 40 ? (
          // few buckets (a short scrape): bars read better than a line of a few points
          <BarChart
            ariaLabel="listings over time"
            testid="plot-time"
            bars={p.overTime.map((b) => ({
              label: new Date(b.t).toLocaleString(undefined, BUCKET_FORMAT[p.overTimeBucket]),
              value: b.count,
            }))}
          />
        ) : (
          <LineChart
            ariaLabel="listings over time"
            testid="plot-time"
            points={p.overTime.map((b) => ({ x: b.t, y: b.count }))}
            formatX={(t) => new Date(t).toLocaleString(undefined, BUCKET_FORMAT[p.overTimeBucket])}
          />
        )}
      </div>
    </section>
  );
}

/** Years with no listings between the first and last still get a (zero) bar. */
function fillYears(h: Array<{ year: number; count: number }>): Array<{ year: number; count: number }> {
  if (h.length === 0) return h;
  const by = new Map(h.map((b) => [b.year, b.count]));
  const out: Array<{ year: number; count: number }> = [];
  for (let y = h[0]!.year; y <= h[h.length - 1]!.year; y++) out.push({ year: y, count: by.get(y) ?? 0 });
  return out;
}

// ---- Listing browser ----

interface Filters {
  make: string;
  model: string;
  yearMin: string;
  yearMax: string;
  priceMin: string;
  priceMax: string;
  q: string;
  sort: ListingSort;
  dir: 'asc' | 'desc';
}

const NO_FILTERS: Filters = {
  make: '',
  model: '',
  yearMin: '',
  yearMax: '',
  priceMin: '',
  priceMax: '',
  q: '',
  sort: 'scraped_at',
  dir: 'desc',
};

const SORTS: Array<{ value: string; label: string }> = [
  { value: 'scraped_at:desc', label: 'Newest scraped' },
  { value: 'scraped_at:asc', label: 'Oldest scraped' },
  { value: 'price:asc', label: 'Price, low to high' },
  { value: 'price:desc', label: 'Price, high to low' },
  { value: 'year:desc', label: 'Year, newest' },
  { value: 'year:asc', label: 'Year, oldest' },
  { value: 'id:asc', label: 'Row id' },
];

function useDebounced(value: string, ms: number): string {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

function toNum(s: string): number | undefined {
  const t = s.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

function ListingBrowser({ version }: { version: number }) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState<number | null>(null);
  const facets = useQuery('dataset.facets', {}, [version]);
  // typed filters reach the engine 250 ms after the last keystroke (a string, so the value is stable)
  const typedKey = useDebounced(JSON.stringify([filters.q, filters.yearMin, filters.yearMax, filters.priceMin, filters.priceMax]), 250);
  const [tq, tYearMin, tYearMax, tPriceMin, tPriceMax] = JSON.parse(typedKey) as string[];
  const typed = { q: tq!, yearMin: tYearMin!, yearMax: tYearMax!, priceMin: tPriceMin!, priceMax: tPriceMax! };
  const params: Params<'listings.query'> = {
    make: filters.make || undefined,
    model: filters.model || undefined,
    yearMin: toNum(typed.yearMin),
    yearMax: toNum(typed.yearMax),
    priceMin: toNum(typed.priceMin),
    priceMax: toNum(typed.priceMax),
    q: typed.q.trim() || undefined,
    sort: filters.sort,
    dir: filters.dir,
    offset: page * PAGE_SIZE,
    limit: PAGE_SIZE,
  };
  const listings = useQuery('listings.query', params, [version]);
  const set = (patch: Partial<Filters>) => {
    setFilters((f) => ({ ...f, ...patch }));
    setPage(0);
  };
  const f = facets.data;
  const models = (filters.make && f?.models[filters.make]) || [];
  const total = listings.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  // a page past the end (the filtered set shrank): go back to the last one
  useEffect(() => {
    if (page > 0 && page >= pages) setPage(pages - 1);
  }, [page, pages]);
  const rows = listings.data?.rows ?? [];

  return (
    <section className="card" data-testid="listing-browser">
      <h3>Listings</h3>
      <div className="filters">
        <label>
          Make
          <select value={filters.make} onChange={(e) => set({ make: e.target.value, model: '' })} data-testid="filter-make">
            <option value="">All makes</option>
            {f?.makes.map((m) => (
              <option key={m.make} value={m.make}>
                {m.make} ({fmtInt(m.count)})
              </option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select
            value={filters.model}
            onChange={(e) => set({ model: e.target.value })}
            disabled={!filters.make}
            data-testid="filter-model"
          >
            <option value="">All models</option>
            {models.map((m) => (
              <option key={m.model} value={m.model}>
                {m.model} ({fmtInt(m.count)})
              </option>
            ))}
          </select>
        </label>
        <label>
          Year
          <span className="range">
            <input
              type="number"
              placeholder={f?.year.min != null ? String(f.year.min) : 'from'}
              value={filters.yearMin}
              onChange={(e) => set({ yearMin: e.target.value })}
              data-testid="filter-yearMin"
            />
            –
            <input
              type="number"
              placeholder={f?.year.max != null ? String(f.year.max) : 'to'}
              value={filters.yearMax}
              onChange={(e) => set({ yearMax: e.target.value })}
              data-testid="filter-yearMax"
            />
          </span>
        </label>
        <label>
          Price ($)
          <span className="range">
            <input
              type="number"
              placeholder={f?.price.min != null ? String(Math.floor(f.price.min)) : 'min'}
              value={filters.priceMin}
              onChange={(e) => set({ priceMin: e.target.value })}
              data-testid="filter-priceMin"
            />
            –
            <input
              type="number"
              placeholder={f?.price.max != null ? String(Math.ceil(f.price.max)) : 'max'}
              value={filters.priceMax}
              onChange={(e) => set({ priceMax: e.target.value })}
              data-testid="filter-priceMax"
            />
          </span>
        </label>
        <label className="grow">
          Title contains
          <input
            type="search"
            value={filters.q}
            onChange={(e) => set({ q: e.target.value })}
            placeholder="e.g. Limited"
            data-testid="filter-q"
          />
        </label>
        <label>
          Sort
          <select
            value={`${filters.sort}:${filters.dir}`}
            onChange={(e) => {
              const [sort, dir] = e.target.value.split(':') as [ListingSort, 'asc' | 'desc'];
              set({ sort, dir });
            }}
            data-testid="filter-sort"
          >
            {SORTS.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </label>
        <button className="link" onClick={() => set(NO_FILTERS)} disabled={JSON.stringify(filters) === JSON.stringify(NO_FILTERS)}>
          Clear
        </button>
      </div>
      <div className="row pager">
        <span data-testid="listings-total" data-total={total}>
          {total === 0
            ? 'No listings'
            : `${fmtInt(page * PAGE_SIZE + 1)}–${fmtInt(Math.min(total, (page + 1) * PAGE_SIZE))} of ${fmtInt(total)} listings`}
        </span>
        <span className="grow" />
        <button onClick={() => setPage(page - 1)} disabled={page === 0} data-testid="page-prev">
          ‹ Prev
        </button>
        <span className="muted">
          page {page + 1} / {pages}
        </span>
        <button onClick={() => setPage(page + 1)} disabled={page + 1 >= pages} data-testid="page-next">
          Next ›
        </button>
      </div>
      {rows.length === 0 ? (
        <EmptyChart>{(f?.total ?? 0) === 0 ? 'no listings yet — start a scrape' : 'no listings match these filters'}</EmptyChart>
      ) : (
        <div className="listing-grid" data-testid="listing-grid">
          {rows.map((r) => (
            <ListingCard key={r.id} row={r} onOpen={() => setSelected(r.id)} />
          ))}
        </div>
      )}
      {selected !== null && <ListingDetailPanel id={selected} version={version} onClose={() => setSelected(null)} />}
    </section>
  );
}

function ListingCard({ row, onOpen }: { row: ListingRow; onOpen: () => void }) {
  return (
    <button
      className="listing-card"
      onClick={onOpen}
      data-testid="listing-card"
      data-id={row.id}
      data-make={row.make ?? ''}
      title={row.title ?? undefined}
    >
      <div className="listing-thumb">
        {row.thumbKey ? <img src={api.imageUrl(row.thumbKey)} alt="" loading="lazy" /> : <span className="muted small">no image</span>}
      </div>
      <div className="listing-info">
        <div className="listing-title">{row.title ?? `${row.year ?? ''} ${row.make ?? ''} ${row.model ?? ''}`}</div>
        <div className="listing-sub">
          <strong>{fmtPrice(row.price)}</strong>
          <span className="muted">{row.odometer != null ? `${fmtInt(row.odometer)} mi` : ''}</span>
          <span className="muted">
            {row.imageCount} photo{row.imageCount === 1 ? '' : 's'}
          </span>
        </div>
      </div>
    </button>
  );
}

function ListingDetailPanel({ id, version, onClose }: { id: number; version: number; onClose: () => void }) {
  const detail = useQuery('listings.get', { id }, [version]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  const d = detail.data && detail.data.id === id ? detail.data : null;
  const fields: Array<[string, string, string]> = d
    ? [
        ['price', 'Price', fmtPrice(d.price)],
        ['make', 'Make', d.make ?? '—'],
        ['model', 'Model', d.model ?? '—'],
        ['year', 'Year', d.year != null ? String(d.year) : '—'],
        ['odometer', 'Odometer', d.odometer != null ? `${fmtInt(d.odometer)} mi` : '—'],
        ['engine', 'Engine', d.engine ?? '—'],
        ['exteriorColor', 'Exterior', d.exteriorColor ?? '—'],
        ['interiorColor', 'Interior', d.interiorColor ?? '—'],
        ['driveType', 'Drive', d.driveType ?? '—'],
        ['fuelType', 'Fuel', d.fuelType ?? '—'],
        ['fuelEconomy', 'Fuel economy', d.fuelEconomy.join(' / ') || '—'],
        ['vin', 'VIN', d.vin ?? '—'],
        ['stockNumber', 'Stock #', d.stockNumber ?? '—'],
        ['owners', 'Seller', d.owners.map((o) => [o.name, o.id ? `#${o.id}` : null].filter(Boolean).join(' ')).join(', ') || '—'],
        ['listingId', 'Listing id', `${d.source} ${d.listingId}`],
        ['scrapedAt', 'Scraped', new Date(d.scrapedAt).toLocaleString()],
      ]
    : [];
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div
        className="modal"
        role="dialog"
        aria-modal="true"
        aria-label="Listing detail"
        onClick={(e) => e.stopPropagation()}
        data-testid="listing-detail"
        data-id={id}
      >
        <div className="modal-head">
          <h2 data-testid="detail-title">{d ? (d.title ?? `Listing ${d.listingId}`) : 'Loading…'}</h2>
          <button className="link" onClick={onClose} aria-label="Close" data-testid="detail-close">
            ✕
          </button>
        </div>
        {d && (
          <>
            <table className="detail-fields">
              <tbody>
                {fields.map(([key, label, value]) => (
                  <tr key={key} data-testid={`detail-${key}`}>
                    <th>{label}</th>
                    <td>{value}</td>
                  </tr>
                ))}
                <tr>
                  <th>Page</th>
                  <td>
                    <a href={d.url} target="_blank" rel="noreferrer noopener">
                      {d.url}
                    </a>
                  </td>
                </tr>
              </tbody>
            </table>
            {d.description && (
              <p className="detail-description" data-testid="detail-description">
                {d.description}
              </p>
            )}
            <h3>
              Photos <span className="muted small">({d.images.length}, in the listing's order)</span>
            </h3>
            <div className="detail-images" data-testid="detail-images">
              {d.images.map((img) => (
                <figure
                  key={img.position}
                  className={`detail-image detail-image-${img.state}`}
                  data-testid={`detail-image-${img.state}`}
                  title={img.url}
                >
                  {img.state === 'stored' ? (
                    <img src={api.imageUrl(img.key)} alt={`photo ${img.position + 1}`} />
                  ) : (
                    <div className="detail-image-missing">
                      <strong>{img.state === 'failed' ? 'failed' : 'pending'}</strong>
                      {img.failReason && <span>{img.failReason}</span>}
                    </div>
                  )}
                  <figcaption className="muted small">
                    {img.position + 1}
                    {img.width && img.height ? ` · ${img.width}×${img.height}` : ''}
                  </figcaption>
                </figure>
              ))}
              {d.images.length === 0 && <p className="muted">This listing has no photos.</p>}
            </div>
          </>
        )}
      </div>
    </div>
  );
}
