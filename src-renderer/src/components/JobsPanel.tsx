import { useEffect, useState } from 'react';
import type { JobInfo, JobLogEntry } from '../../../src-main/engine/api/contract/index.ts';
import { useCall, useEvent, useJobs } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtRate } from '../format.ts';
import { JobBar, LIVE, stateWord } from './JobProgress.tsx';


/** Finished jobs shown in the panel; older ones collapse into the history view. */
export const RECENT_JOBS = 5;

export function JobsPanel() {
  const jobs = useJobs();
  const [history, setHistory] = useState(false);
  const active = jobs.filter((j) => LIVE.has(j.state));
  const finished = jobs.filter((j) => !LIVE.has(j.state));
  const recent = finished.slice(0, RECENT_JOBS);
  const older = finished.slice(RECENT_JOBS);
  return (
    <aside className="jobs-panel" aria-label="Jobs" data-testid="jobs-panel">
      <h2>
        Jobs <span className="muted">{active.length ? `${active.length} running` : 'idle'}</span>
      </h2>
      {jobs.length === 0 && <p className="muted">No jobs yet. Long work (scrape, dedup, features, training, prediction) shows up here.</p>}
      {active.map((j) => (
        <JobCard key={j.id} job={j} />
      ))}
      {recent.length > 0 && <h3>Recent</h3>}
      {recent.map((j) => (
        <JobCard key={j.id} job={j} />
      ))}
      {older.length > 0 && (
        <button className="link jobs-history-toggle" aria-expanded={history} aria-controls="jobs-history" onClick={() => setHistory(!history)} data-testid="jobs-history-toggle">
          {history ? 'Hide history' : `History: ${older.length} older job${older.length === 1 ? '' : 's'}`}
        </button>
      )}
      {history && older.length > 0 && (
        <ul className="jobs-history" id="jobs-history" data-testid="jobs-history">
          {older.map((j) => (
            <li key={j.id} className={`job-row job-${j.state}`} data-testid={`job-${j.id}`} data-state={j.state}>
              <span className="job-title">
                #{j.id} {j.title}
              </span>{' '}
              <span className={`badge badge-${j.state}`}>{stateWord(j.state)}</span>
              {j.finishedAt != null && <span className="muted small"> {new Date(j.finishedAt).toLocaleString()}</span>}
              {j.error && <div className="job-error small">{j.error.message}</div>}
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}

function JobCard({ job }: { job: JobInfo }) {
  const call = useCall();
  const [open, setOpen] = useState(false);
  const pct = job.total ? Math.min(100, (100 * job.done) / job.total) : null;
  const running = job.state === 'running' || job.state === 'cancelling';
  return (
    <div className={`job job-${job.state}`} data-testid={`job-${job.id}`} data-state={job.state}>
      <JobBar job={job} pct={pct} going={running} />
      <div className="job-meta">
        <span>
          {job.step ? `${job.step}: ` : ''}
          {fmtInt(job.done)}
          {job.total != null ? ` / ${fmtInt(job.total)}` : ''}
        </span>
        {running && <span>{fmtRate(job.rate)}</span>}
        {running && <span>ETA {fmtDuration(job.eta)}</span>}
      </div>
      {job.message && <div className="job-msg">{job.message}</div>}
      {job.error && (
        <div className="job-error" data-user-error={job.error.user}>
          {job.error.message}
          {/* a UserError's message says what to fix; anything else is unexpected, with its stack in the log */}
          {!job.error.user && <span className="muted small"> (an unexpected problem: the log has the details)</span>}
        </div>
      )}
      {job.resumedCount > 0 && <div className="muted small">resumed {job.resumedCount}×</div>}
      <div className="job-actions">
        {running && (
          <button onClick={() => void call('jobs.cancel', { id: job.id })} disabled={job.state === 'cancelling'}>
            {job.state === 'cancelling' ? 'Stopping…' : 'Cancel'}
          </button>
        )}
        {/* a failed job runs again from its last checkpoint: for the user that is a retry; a stopped or interrupted one resumes */}
        {job.resumable && <button onClick={() => void call('jobs.resume', { id: job.id })}>{job.state === 'failed' ? 'Retry' : 'Resume'}</button>}
        <button className="link" aria-expanded={open} aria-label={`${open ? 'Hide' : 'Show'} the log of job ${job.id}`} onClick={() => setOpen(!open)}>
          {open ? 'Hide log' : 'Log'}
        </button>
      </div>
      {open && <JobLog id={job.id} />}
    </div>
  );
}

function JobLog({ id }: { id: number }) {
  const call = useCall();
  const [lines, setLines] = useState<JobLogEntry[] | null>(null);
  useEffect(() => {
    void call('jobs.logs', { id, limit: 200 }).then((l) => setLines(l ?? []));
  }, [call, id]);
  useEvent('job.log', (l) => {
    if (l.jobId === id) setLines((all) => [...(all ?? []), l].slice(-300));
  });
  return (
    <pre className="job-log">
      {(lines ?? []).map((l, i) => (
        <div key={i} className={`log-${l.level}`}>
          {new Date(l.at).toLocaleTimeString()} {l.message}
        </div>
      ))}
    </pre>
  );
}
