import { useCall, useJobRefresh, useQuery } from '../hooks.ts';
import { fmtInt } from '../format.ts';
import { Planned } from '../components/Planned.tsx';

export function DatasetStage() {
  const stats = useQuery('stats.get', {});
  const call = useCall();
  useJobRefresh(['scrape', 'verify-store'], () => void stats.reload());
  const s = stats.data;
  return (
    <div>
      <h1>Dataset</h1>
      <p className="lead">Listings, their metadata and their photos, gathered into this workspace.</p>
      <section className="cards">
        <Metric label="Listings" value={s?.listings} testid="stat-listings" />
        <Metric label="Ids attempted" value={s?.attempts} testid="stat-attempts" />
        <Metric label="Misses" value={s?.misses} />
        <Metric label="Images stored" value={s?.images.stored} testid="stat-images-stored" />
        <Metric label="Images failed" value={s?.images.failed} />
      </section>
      <section className="card">
        <h3>Image store</h3>
        <p className="muted">Check that every stored image exists and decodes; broken ones are marked failed so the next scrape fetches them again.</p>
        <button data-testid="verify-store" onClick={() => void call('jobs.start', { kind: 'verify-store', params: {} })}>
          Verify image store
        </button>
      </section>
      <Planned title="Scrape">
        Start, stop and resume a crawl of a listing site (a KBB-format source; the bundled demo site works offline) with its
        settings, live progress and error log; a listing browser with thumbnails and filters; plots of prices, top make/models,
        years and listings over time.
      </Planned>
    </div>
  );
}

export function Metric({ label, value, testid, hint }: { label: string; value: number | null | undefined; testid?: string; hint?: string }) {
  return (
    <div className="metric" data-testid={testid} title={hint}>
      <div className="metric-value">{fmtInt(value)}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}
