import { useState } from 'react';
import { useCall, useJobRefresh, useQuery } from '../hooks.ts';
import { Metric } from '../components/Metric.tsx';
import { ScrapePanel } from '../components/ScrapePanel.tsx';
import { ImportPanel } from '../components/ImportPanel.tsx';
import { DatasetPlots } from '../components/DatasetPlots.tsx';
import { ListingBrowser } from '../components/ListingBrowser.tsx';

/**
 * The Dataset stage: the workspace's figures, then its panels, each in its own file under
 * components/: Scrape (a listing site into listings), Import (a manifest or a labelled folder),
 * the plots, the listing browser (with each listing's detail) and the image-store check. Every
 * panel reloads on one counter, bumped (throttled) while a scrape, an import or a store check runs.
 */
export function DatasetStage() {
  const stats = useQuery('stats.get', {});
  const call = useCall();
  // one counter that every panel reloads on: bumped (throttled) while a scrape, an import or a store check runs
  const [version, setVersion] = useState(0);
  useJobRefresh(['scrape', 'import', 'verify-store'], () => {
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
      <ImportPanel />
      <DatasetPlots version={version} />
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
