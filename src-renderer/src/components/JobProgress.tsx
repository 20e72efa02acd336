import type { JobInfo } from '../../../src-main/engine/api/contract/index.ts';
import { useCall } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtRate } from '../format.ts';

/** Job states in which a job is still going (Stop is offered, the start button waits). */
export const LIVE = new Set(['running', 'cancelling', 'queued']);

/**
 * The word a job's state is shown with, the same as the runs table's and the CLI's `runs`: a job
 * the user cancelled is "stopped" (Resume continues it), one being cancelled "stopping".
 */
export function stateWord(state: JobInfo['state']): string {
  return state === 'cancelled' ? 'stopped' : state === 'cancelling' ? 'stopping' : state;
}

/**
 * A job's title, state badge and progress bar (indeterminate while it is going without a total):
 * the top of the Jobs panel's cards and of a stage's job progress.
 */
export function JobBar({ job, pct, going }: { job: JobInfo; pct: number | null; going: boolean }) {
  return (
    <>
      <div className="job-head">
        <span className="job-title">
          #{job.id} {job.title}
        </span>
        <span className={`badge badge-${job.state}`} title={job.state === 'cancelled' ? 'stopped by you (cancelled); Resume continues it' : undefined}>
          {stateWord(job.state)}
        </span>
      </div>
      <div className="progress" role="progressbar" aria-label={`Progress of job ${job.id}: ${job.title}`} aria-valuenow={pct ?? undefined} aria-valuemin={0} aria-valuemax={100}>
        <div className={`progress-bar ${pct == null && going ? 'indeterminate' : ''}`} style={{ width: `${pct ?? (going ? 30 : 0)}%` }} />
      </div>
    </>
  );
}

/**
 * A job's live progress in a stage's panel: title and state, a progress bar, count / total with
 * rate and ETA while it runs, its message or error, and Stop / Resume. The test ids are
 * `<testid>-job`, `-progress`, `-rate`, `-eta`, `-message`, `-stop` and `-resume` (the scrape
 * panel's are `scrape-...`).
 */
export function JobProgress({ job, testid, unit }: { job: JobInfo; testid: string; unit: string }) {
  const call = useCall();
  const live = LIVE.has(job.state);
  const pct = job.total ? Math.min(100, (100 * job.done) / job.total) : null;
  return (
    <div className="scrape-job" data-testid={`${testid}-job`} data-state={job.state} data-job={job.id}>
      <JobBar job={job} pct={pct} going={live} />
      <div className="job-meta">
        <span data-testid={`${testid}-progress`} data-done={job.done} data-total={job.total ?? ''}>
          {fmtInt(job.done)}
          {job.total != null ? ` / ${fmtInt(job.total)} ${unit}` : ''}
          {pct != null ? ` (${pct.toFixed(0)}%)` : ''}
        </span>
        {live && <span data-testid={`${testid}-rate`}>{fmtRate(job.rate)}</span>}
        {live && <span data-testid={`${testid}-eta`}>ETA {fmtDuration(job.eta)}</span>}
        {job.resumedCount > 0 && <span>resumed {job.resumedCount}×</span>}
      </div>
      {job.message && (
        <div className="job-msg" data-testid={`${testid}-message`}>
          {job.message}
        </div>
      )}
      {job.error && <div className="job-error">{job.error.message}</div>}
      <div className="job-actions">
        {live && (
          <button
            onClick={() => void call('jobs.cancel', { id: job.id })}
            disabled={job.state === 'cancelling'}
            data-testid={`${testid}-stop`}
          >
            {job.state === 'cancelling' ? 'Stopping…' : 'Stop'}
          </button>
        )}
        {job.resumable && (
          <button className="primary" onClick={() => void call('jobs.resume', { id: job.id })} data-testid={`${testid}-resume`}>
            Resume
          </button>
        )}
      </div>
    </div>
  );
}
