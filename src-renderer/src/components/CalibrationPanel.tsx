import { useRef } from 'react';
import type { RunInfo } from '../../../src-main/engine/api/contract/index.ts';
import type { CalibratedHead, CalibrationReport, HeadCalibration } from '../../../src-main/engine/api/contract/train.ts';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtInt } from '../format.ts';
import { JobProgress, LIVE } from './JobProgress.tsx';
import { ReliabilityChart } from './ReliabilityChart.tsx';

const HEADS: Array<[CalibratedHead, string]> = [
  ['price', 'price range'],
  ['makeModel', 'make/model'],
  ['year', 'year'],
];

const f3 = (x: number): string => x.toFixed(3);

/**
 * A run's calibration: one temperature per classification head fitted on its test split (train
 * does it at the end, the Calibrate button again), ECE before and after, in-sample and held out,
 * and the reliability diagrams before and after.
 */
export function CalibrationPanel({ run }: { run: RunInfo }) {
  const call = useCall();
  const jobs = useJobs();
  const cal = useQuery('runs.calibration', { id: run.id });
  const started = useRef<number | null>(null);
  useJobRefresh(['calibrate', 'train'], () => void cal.reload());
  const job = jobs.find((j) => j.kind === 'calibrate' && (j.params as { runId?: number } | null)?.runId === run.id) ?? null;
  const busy = job != null && LIVE.has(job.state);
  const trained = run.state === 'done' || run.state === 'stopped';
  const r = cal.data ?? null;
  return (
    <section className="card" data-testid="calibration-panel" data-run={run.id} data-calibrated={r ? 'yes' : 'no'}>
      <div className="row">
        <h3 style={{ margin: 0 }}>Calibration of run #{run.id}</h3>
        <button
          data-testid="calibrate"
          disabled={busy || !trained}
          title={trained ? 'fit the temperatures again on the test split' : 'the run has not finished training'}
          onClick={async () => {
            const j = await call('jobs.start', { kind: 'calibrate', params: { runId: run.id, checkpoint: 'best' } });
            if (j) started.current = j.id;
          }}
        >
          {busy ? 'Calibrating…' : 'Calibrate'}
        </button>
      </div>
      <p className="muted small">
        Temperature scaling: each classification head&apos;s logits are divided by one number T fitted on the test split (T &gt; 1 softens
        over-confident probabilities; the top class never changes). Prediction applies it. <b>ECE</b> = expected calibration error (how far
        confidence is from accuracy); <b>held out</b> = each half of the test rows scored with the T fitted on the other half.
      </p>
      {job && <JobProgress job={job} testid="calibrate" unit="photos" />}
      {r ? <CalibrationView r={r} /> : !cal.loading && <p className="muted" data-testid="calibration-none">This run is not calibrated yet.</p>}
    </section>
  );
}

function CalibrationView({ r }: { r: CalibrationReport }) {
  const fitted = HEADS.filter(([h]) => !('skipped' in r.heads[h])) as Array<[CalibratedHead, string]>;
  return (
    <div>
      <p className="small">
        {r.checkpoint} checkpoint at step {fmtInt(r.step)}, {fmtInt(r.rows)} test photos (split by {r.split}), {new Date(r.createdAt).toLocaleString()}
      </p>
      <table data-testid="calibration-table">
        <thead>
          <tr>
            <th>head</th>
            <th>T</th>
            <th>rows</th>
            <th>ECE before → after</th>
            <th>held out</th>
            <th>NLL before → after</th>
          </tr>
        </thead>
        <tbody>
          {HEADS.map(([h, label]) => {
            const c = r.heads[h];
            if ('skipped' in c)
              return (
                <tr key={h} data-head={h}>
                  <td>{label}</td>
                  <td colSpan={5} className="muted">
                    not calibrated: {c.skipped}
                  </td>
                </tr>
              );
            return (
              <tr key={h} data-head={h} data-testid={`calibration-${h}`}>
                <td>{label}</td>
                <td data-testid={`temperature-${h}`}>{c.temperature.toFixed(3)}</td>
                <td>{fmtInt(c.n)}</td>
                <td data-testid={`ece-${h}`}>
                  {f3(c.before.ece)} → {f3(c.after.ece)}
                </td>
                <td>{c.heldOut ? `${f3(c.heldOut.ece.before)} → ${f3(c.heldOut.ece.after)}` : '—'}</td>
                <td>
                  {f3(c.before.nll)} → {f3(c.after.nll)}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {fitted.map(([h, label]) => {
        const c = r.heads[h] as HeadCalibration;
        return (
          <div key={h} className="row" style={{ alignItems: 'flex-start', marginTop: 8 }}>
            <figure style={{ margin: 0 }}>
              <figcaption className="small">{label}: before (T = 1)</figcaption>
              <ReliabilityChart bins={c.before.reliability} testid={`reliability-${h}-before`} ariaLabel={`${label} reliability before calibration`} />
            </figure>
            <figure style={{ margin: 0 }}>
              <figcaption className="small">
                {label}: after (T = {c.temperature.toFixed(2)})
              </figcaption>
              <ReliabilityChart bins={c.after.reliability} testid={`reliability-${h}-after`} ariaLabel={`${label} reliability after calibration`} />
            </figure>
          </div>
        );
      })}
    </div>
  );
}
