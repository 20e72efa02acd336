import type { TimeBucket } from '../../../src-main/engine/api/contract/index.ts';
import { useQuery } from '../hooks.ts';
import { fmtInt, fmtPct, fmtPrice } from '../format.ts';
import { BarChart, EmptyChart, LineChart, ShareTable } from './charts.tsx';

// ---- Plots: prices, top make/models, model years, listings over time ----

const BUCKET_FORMAT: Record<TimeBucket, Intl.DateTimeFormatOptions> = {
  minute: { hour: '2-digit', minute: '2-digit' },
  hour: { month: 'short', day: 'numeric', hour: '2-digit' },
  day: { year: 'numeric', month: 'short', day: 'numeric' },
};

export function DatasetPlots({ version }: { version: number }) {
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
