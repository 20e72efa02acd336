import { useMemo, useState, type FormEvent } from 'react';
import type { JobInfo, Params } from '../../../src-main/engine/api/contract/index.ts';
import { useCall, useJobs, useQuery } from '../hooks.ts';
import { fmtInt } from '../format.ts';
import { JobProgress, LIVE } from './JobProgress.tsx';

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

const NUMBER_FIELDS: Array<{ key: Exclude<keyof ScrapeForm, 'baseUrl' | 'allowImageHosts' | 'demoFaults'>; label: string; hint: string }> =
  [
    { key: 'minId', label: 'Min id', hint: 'first listing id to try' },
    { key: 'maxId', label: 'Max id', hint: 'last listing id to try (ids are visited in a keyed random order)' },
    { key: 'concurrency', label: 'Concurrency', hint: 'listings fetched at once' },
    { key: 'retries', label: 'Retries', hint: 'retries after the first try (15 tries in all by default, as the original)' },
    { key: 'retryDelayMs', label: 'Retry delay (ms)', hint: 'base of the exponential backoff between tries' },
    { key: 'timeoutMs', label: 'Timeout (ms)', hint: 'per request' },
    { key: 'rps', label: 'Requests / s', hint: 'global cap on requests per second; 0 = none' },
    { key: 'resize', label: 'Resize (px)', hint: 'images are downsampled so the short side is at most this' },
  ];

export function ScrapePanel({ version }: { version: number }) {
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
        <label
          className="span2"
          title="images are fetched only from the site's own host:port, its domain's subdomains and these hosts; never from loopback, link-local or private addresses other than those named exactly"
        >
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
      {latest ? <JobProgress job={latest} testid="scrape" unit="ids" /> : <p className="muted">No scrape yet in this workspace.</p>}
      <ScrapeErrorLog job={latest} version={version} />
    </section>
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
