import { useEffect, useState } from 'react';
import type { ListingRow, ListingSort, Params } from '../../../src-main/engine/api/contract/index.ts';
import { api } from '../api/client.ts';
import { useQuery } from '../hooks.ts';
import { fmtInt, fmtPrice } from '../format.ts';
import { EmptyChart } from './charts.tsx';
import { ListingDetailPanel } from './ListingDetail.tsx';

// ---- Listing browser: filters, sort, pages of listing cards; a card opens the listing's detail ----

const PAGE_SIZE = 24;

interface Filters {
  /** A listing source (`import:cars.csv`, a scraped site's); '' for all. */
  source: string;
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
  source: '',
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

export function ListingBrowser({ version }: { version: number }) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [page, setPage] = useState(0);
  const [selected, setSelected] = useState<number | null>(null);
  const facets = useQuery('dataset.facets', {}, [version]);
  // typed filters reach the engine 250 ms after the last keystroke (a string, so the value is stable)
  const typedKey = useDebounced(JSON.stringify([filters.q, filters.yearMin, filters.yearMax, filters.priceMin, filters.priceMax]), 250);
  const [tq, tYearMin, tYearMax, tPriceMin, tPriceMax] = JSON.parse(typedKey) as string[];
  const typed = { q: tq!, yearMin: tYearMin!, yearMax: tYearMax!, priceMin: tPriceMin!, priceMax: tPriceMax! };
  const params: Params<'listings.query'> = {
    source: filters.source || undefined,
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
        <label title="where listings came from: a scraped site, or import:<file or folder> for an import">
          Source
          <select value={filters.source} onChange={(e) => set({ source: e.target.value })} data-testid="filter-source">
            <option value="">All sources</option>
            {f?.sources.map((s) => (
              <option key={s.source} value={s.source}>
                {s.source} ({fmtInt(s.count)})
              </option>
            ))}
          </select>
        </label>
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
      data-source={row.source}
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
        <div className="listing-source muted small" data-testid="listing-source">
          {row.source}
        </div>
      </div>
    </button>
  );
}
