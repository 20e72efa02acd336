import { useEffect, useState } from 'react';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtInt, fmtPct } from '../format.ts';
import type { DedupGroup, DedupNearCount } from '../../../src-main/engine/api/contract/index.ts';
import { DedupGroupCard, type DedupGroupActions } from '../components/DedupGroupCard.tsx';
import { ListingDetailPanel } from '../components/ListingDetail.tsx';
import { stateWord } from '../components/JobProgress.tsx';

type Method = 'exact' | 'near';
type Policy = 'default' | 'original';

export function DedupStage() {
  const summary = useQuery('dedup.summary', {});
  const [page, setPage] = useState(0);
  const PAGE = 10;
  const groups = useQuery('dedup.groups', { offset: page * PAGE, limit: PAGE, maxMembers: 12 });
  const call = useCall();
  const jobs = useJobs();
  const job = jobs.find((j) => j.kind === 'dedup');
  const running = job && (job.state === 'running' || job.state === 'cancelling');
  useJobRefresh(['dedup', 'scrape'], () => {
    void summary.reload();
    void groups.reload();
  });

  const [method, setMethod] = useState<Method>('near');
  const [maxDistance, setMaxDistance] = useState(10);
  const [policy, setPolicy] = useState<Policy>('default');
  const s = summary.data;

  const run = async () => {
    await call('jobs.start', { kind: 'dedup', params: { method, maxDistance, policy } });
  };
  const [listing, setListing] = useState<number | null>(null);
  const [accepted, setAccepted] = useState<string | null>(null);
  const refresh = (r: unknown) => {
    if (r) {
      void groups.reload();
      void summary.reload();
    }
  };
  const actionsFor = (g: DedupGroup): DedupGroupActions => ({
    onOverride: (action) => void call('dedup.override', { groupId: g.id, action }).then(refresh),
    onDecide: (imageId, action) => void call('dedup.decide', { imageId, action }).then(refresh),
    onKeepBest: () => void call('dedup.keepBest', { groupId: g.id }).then(refresh),
    onOpenListing: setListing,
  });
  const acceptAll = async () => {
    const r = await call('dedup.acceptAll', {});
    if (r) setAccepted(`Kept the best copy in ${fmtInt(r.groups)} group${r.groups === 1 ? '' : 's'}; ${fmtInt(r.excluded)} images excluded from training.`);
    refresh(r);
  };

  return (
    <div>
      <h1>Dedup</h1>
      <p className="lead">Listing sites reuse photos; duplicates teach the model nothing true about a car's price.</p>
      <section className="cards">
        <Metric label="Images hashed" value={fmtInt(s?.hashed)} hint={s ? `${fmtInt(s.stored)} stored, ${fmtInt(s.hashErrors)} unreadable` : undefined} testid="dedup-hashed" />
        <Metric label="Duplicate groups" value={fmtInt(s?.groups)} testid="dedup-groups" />
        <Metric label="Images in groups" value={fmtInt(s?.imagesInGroups)} />
        <Metric label="Excluded from training" value={fmtInt(s?.excluded)} testid="dedup-excluded" />
        <Metric label="Share of dataset" value={s ? fmtPct(s.excludedShare) : '—'} testid="dedup-share" />
      </section>

      <section className="card">
        <h3>Run dedup</h3>
        <p className="muted small">
          Hashes the images not hashed yet, then groups duplicates. <b>exact</b>: the original pipeline's hash (16×16, 4 bits a channel, aspect, SHA-256).{' '}
          <b>near</b>: 64-bit pHash within a distance, each pair checked by colour. Policy <b>default</b>: exclude groups whose copies span listings,
          keep the best copy within a listing; <b>original</b>: drop every image whose exact hash repeats. Your keep/drop choices always win.
        </p>
        <div className="form">
          <label>
            Method
            <select data-testid="dedup-method" value={method} onChange={(e) => setMethod(e.target.value as Method)}>
              <option value="near">near (pHash)</option>
              <option value="exact">exact (original hash)</option>
            </select>
          </label>
          <label>
            Max distance
            <input data-testid="dedup-max-distance" type="number" min={0} max={32} value={maxDistance} disabled={method === 'exact'} onChange={(e) => setMaxDistance(Math.max(0, Math.min(32, Number(e.target.value) || 0)))} />
          </label>
          <label>
            Policy
            <select data-testid="dedup-policy" value={policy} onChange={(e) => setPolicy(e.target.value as Policy)}>
              <option value="default">default</option>
              <option value="original">original</option>
            </select>
          </label>
          <div className="form-actions">
            <button className="primary" data-testid="dedup-run" disabled={!!running} onClick={() => void run()}>
              {running ? 'Running…' : 'Run dedup'}
            </button>
          </div>
        </div>
        {job && (
          <div className="dedup-job small" data-testid="dedup-job" data-state={job.state}>
            <span className={`badge badge-${job.state}`}>{stateWord(job.state)}</span> {job.step ?? ''} {fmtInt(job.done)}
            {job.total != null ? ` / ${fmtInt(job.total)}` : ''} {job.message ? <span className="muted">· {job.message}</span> : null}
            {job.total ? (
              <div className="progress">
                <div className="progress-bar" style={{ width: `${Math.min(100, (100 * job.done) / job.total)}%` }} />
              </div>
            ) : null}
          </div>
        )}
      </section>

      {s?.last?.method === 'near' && <NearSlider key={`${s.last.at}`} maxDistance={s.last.maxDistance} initial={s.last.maxDistance} />}
      {s?.last?.method === 'exact' && (
        <section className="card muted small">The distance slider counts near-duplicate groups: run dedup with the near method to use it.</section>
      )}

      <section className="card">
        <div className="row" style={{ justifyContent: 'space-between' }}>
          <h3>Largest groups first{s?.last ? ` (${s.last.method}${s.last.method === 'near' ? ` ≤ ${s.last.maxDistance}` : ''}, ${s.last.policy} policy)` : ''}</h3>
          {groups.data && groups.data.total > PAGE && (
            <div className="row small">
              <button disabled={page === 0} onClick={() => setPage(page - 1)}>
                ‹ Prev
              </button>
              <span className="muted">
                {page * PAGE + 1}–{Math.min(groups.data.total, (page + 1) * PAGE)} of {fmtInt(groups.data.total)}
              </span>
              <button disabled={(page + 1) * PAGE >= groups.data.total} onClick={() => setPage(page + 1)}>
                Next ›
              </button>
            </div>
          )}
        </div>
        {groups.data && groups.data.groups.length === 0 && <p className="muted">{s?.last ? 'No duplicate groups.' : 'Run dedup to find duplicate groups.'}</p>}
        {groups.data && groups.data.total > 0 && (
          <div className="row dup-review-bar">
            <span className="muted small">
              Review side by side: the best copy (largest, then sharpest: most bytes) comes first. Keep or drop single photos, a whole group, or accept the best copy of
              every group you have not decided on.
            </span>
            <button data-testid="dedup-accept-all" onClick={() => void acceptAll()}>
              Accept all: keep the best copies
            </button>
            {accepted && (
              <span className="small" data-testid="dedup-accepted">
                {accepted}
              </span>
            )}
          </div>
        )}
        {groups.data?.groups.map((g) => <DedupGroupCard key={g.id} group={g} actions={actionsFor(g)} />)}
      </section>
      {listing !== null && <ListingDetailPanel id={listing} version={0} onClose={() => setListing(null)} />}
    </div>
  );
}

function NearSlider({ maxDistance, initial }: { maxDistance: number; initial: number }) {
  const [d, setD] = useState(initial);
  const [count, setCount] = useState<DedupNearCount | null>(null);
  const call = useCall();
  useEffect(() => {
    let live = true;
    void call('dedup.nearCount', { distance: d }).then((c) => live && c && setCount(c));
    return () => {
      live = false;
    };
  }, [call, d]);
  return (
    <section className="card">
      <h3>Near duplicates by distance</h3>
      <div className="row">
        <input type="range" min={0} max={maxDistance} value={d} data-testid="dedup-slider" onChange={(e) => setD(Number(e.target.value))} style={{ flex: 1, maxWidth: 420 }} />
        <span data-testid="near-count" data-distance={count?.distance} data-groups={count?.groups}>
          distance ≤ <b>{d}</b>: {count ? `${fmtInt(count.groups)} groups (${fmtInt(count.images)} images)` : '…'}
        </span>
      </div>
      <p className="muted small">Counts come from the pairs the last run verified (up to distance {maxDistance}); run dedup with a larger distance to look further.</p>
    </section>
  );
}

function Metric({ label, value, testid, hint }: { label: string; value: string; testid?: string; hint?: string }) {
  return (
    <div className="metric" data-testid={testid} title={hint}>
      <div className="metric-value">{value}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}
