import { useEffect, useState } from 'react';
import type { JobInfo } from '../../../src-main/engine/api/contract/index.ts';
import { useJobs } from '../hooks.ts';
import { fmtDuration, fmtInt } from '../format.ts';
import { LIVE } from './JobProgress.tsx';

type Phase = 'scrape' | 'train' | 'ready' | 'failed' | null;

/**
 * The demo workspace's first start, in one banner: which of its two steps is running (collecting
 * listings from the bundled demo site, then training the demo model) with the step's progress,
 * and "ready" once the model is trained. It stays away when the demo was ready before the page
 * opened.
 */
export function DemoBanner({ isDemo }: { isDemo: boolean }) {
  const jobs = useJobs();
  const [sawPreparation, setSawPreparation] = useState(false);
  const [dismissed, setDismissed] = useState(false);
  const { phase, job } = demoPhase(jobs);
  const preparing = phase === 'scrape' || phase === 'train';
  useEffect(() => {
    if (preparing) setSawPreparation(true);
  }, [preparing]);
  if (!isDemo || dismissed || phase === null) return null;
  if (!preparing && !sawPreparation) return null;

  if (phase === 'ready' || phase === 'failed') {
    return (
      <div className={`banner ${phase === 'ready' ? 'banner-ok' : 'banner-error'}`} role="status" data-testid="demo-banner" data-phase={phase}>
        {phase === 'ready' ? (
          <span>
            <strong>The demo is ready.</strong> Its model was trained on the drawn cars of the bundled demo site: see its curves in{' '}
            <a href="#/train">Train</a> or try it on photos in <a href="#/predict">Predict</a>.
          </span>
        ) : (
          <span>
            <strong>The demo could not be prepared.</strong> {job?.error?.message ?? ''} The Jobs panel has its log; Resume there tries again.
          </span>
        )}
        <button className="link" onClick={() => setDismissed(true)} aria-label="Dismiss the demo message" data-testid="demo-banner-dismiss">
          ×
        </button>
      </div>
    );
  }
  const pct = job?.total ? Math.min(100, (100 * job.done) / job.total) : null;
  return (
    <div className="banner banner-info" role="status" data-testid="demo-banner" data-phase={phase}>
      <div>
        <strong>Preparing the demo ({phase === 'scrape' ? 1 : 2} of 2):</strong>{' '}
        {phase === 'scrape' ? 'collecting car listings from the bundled demo site' : 'training the demo model on the collected photos'}
        {job && (
          <span className="muted" data-testid="demo-banner-progress">
            {' '}
            — {job.step ? `${job.step} ` : ''}
            {fmtInt(job.done)}
            {job.total != null ? ` / ${fmtInt(job.total)}` : ''}
            {pct != null ? ` (${pct.toFixed(0)}%)` : ''}
            {job.eta != null ? `, about ${fmtDuration(job.eta)} left` : ''}
          </span>
        )}
        . The studio can be used meanwhile; the stages fill in as the steps finish.
      </div>
      <div className="progress" role="progressbar" aria-label="Demo preparation" aria-valuenow={pct ?? undefined} aria-valuemin={0} aria-valuemax={100}>
        <div className={`progress-bar ${pct == null ? 'indeterminate' : ''}`} style={{ width: `${pct ?? 30}%` }} />
      </div>
    </div>
  );
}

/**
 * Where the demo's first start is: the first scrape job, then the first train job (the demo
 * steps start them in that order; see src-main/engine/demo-steps.ts).
 */
function demoPhase(jobs: JobInfo[]): { phase: Phase; job: JobInfo | null } {
  const first = (kind: string): JobInfo | null => jobs.filter((j) => j.kind === kind).sort((a, b) => a.id - b.id)[0] ?? null;
  const scrape = first('scrape');
  const train = first('train');
  if (!scrape) return { phase: null, job: null };
  if (LIVE.has(scrape.state)) return { phase: 'scrape', job: scrape };
  if (scrape.state !== 'done') return { phase: 'failed', job: scrape };
  if (!train) return { phase: 'train', job: null };
  if (LIVE.has(train.state)) return { phase: 'train', job: train };
  return { phase: train.state === 'done' ? 'ready' : 'failed', job: train };
}
