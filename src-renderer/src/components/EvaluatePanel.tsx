import { Fragment, useEffect, useMemo, useRef, useState } from 'react';
import type { RunInfo } from '../../../src-main/engine/api/contract/index.ts';
import type {
  CalibratedScores,
  ClassificationScores,
  ConfusedPair,
  EvalCalibration,
  EvalReport,
  EvalReportEntry,
  HeadScores,
  PerClassScore,
} from '../../../src-main/engine/api/contract/eval.ts';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtPct, fmtPrice } from '../format.ts';
import { JobProgress, LIVE } from './JobProgress.tsx';
import { ReliabilityChart } from './ReliabilityChart.tsx';

/**
 * Evaluate a training run: its checkpoint scored on the test split (or a manifest's rows) beside
 * two baselines, with calibration, per-class accuracy and the classes it confuses; and the run's
 * past reports.
 */
export function EvaluatePanel({ run }: { run: RunInfo }) {
  const call = useCall();
  const jobs = useJobs();
  const list = useQuery('eval.list', { runId: run.id });
  const [selected, setSelected] = useState<string | null>(null);
  const started = useRef<number | null>(null);
  useJobRefresh(['eval'], () => void list.reload());

  // the newest eval job of this run (jobs are listed newest first)
  const job = jobs.find((j) => j.kind === 'eval' && (j.params as { runId?: number } | null)?.runId === run.id) ?? null;
  const busy = job != null && LIVE.has(job.state);
  // the job started here finished: show its report
  useEffect(() => {
    if (job && job.id === started.current && job.state === 'done') {
      const r = job.result as { reportId?: string } | null;
      if (r?.reportId) setSelected(r.reportId);
      started.current = null;
    }
  }, [job]);

  const reports = list.data ?? [];
  const shown = selected ?? reports[0]?.id ?? null;
  return (
    <section className="card" data-testid="evaluate-panel" data-run={run.id}>
      <h3>
        Evaluate run #{run.id} {run.name}
      </h3>
      <p className="muted small">
        Scores a checkpoint on photos the run did not train on, beside two baselines fitted on the same training rows: <b>Majority</b> =
        always the training set&apos;s most common class (its class shares as the probabilities); <b>kNN</b> = the k most similar training
        photos (by the same backbone features) vote. When the run is calibrated (training ends by calibrating it), the{' '}
        <b>Model, calibrated</b> column scores the probabilities predictions give, beside the raw ones.
      </p>
      <EvalForm
        busy={busy}
        onStart={async (params) => {
          const j = await call('jobs.start', { kind: 'eval', params: { runId: run.id, ...params } });
          if (j) started.current = j.id;
        }}
      />
      {job && (
        <div style={{ marginTop: 10 }}>
          <JobProgress job={job} testid="eval" unit="photos" />
        </div>
      )}
      {reports.length > 0 && <ReportList reports={reports} shown={shown} onSelect={setSelected} />}
      {shown ? <ReportView runId={run.id} id={shown} /> : !list.loading && <p className="muted">No evaluation of this run yet.</p>}
    </section>
  );
}

interface EvalStartParams {
  checkpoint: 'best' | 'last';
  k: number;
  manifest?: string;
  imagesRoot?: string;
  map?: Record<string, string>;
}

/** "field=column, field=column" as a record, or a message saying what is wrong. */
function parseMap(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z_]+)\s*=\s*(.+)$/.exec(part);
    if (!m) return `"${part}" is not field=column`;
    out[m[1]!] = m[2]!.trim();
  }
  return out;
}

function EvalForm({ busy, onStart }: { busy: boolean; onStart: (p: EvalStartParams) => Promise<void> }) {
  const [checkpoint, setCheckpoint] = useState<'best' | 'last'>('best');
  const [source, setSource] = useState<'test' | 'manifest'>('test');
  const [manifest, setManifest] = useState('');
  const [imagesRoot, setImagesRoot] = useState('');
  const [mapText, setMapText] = useState('');
  const [k, setK] = useState(10);
  const map = parseMap(mapText);
  const problem =
    source === 'manifest' && !manifest.trim()
      ? 'name the manifest (a CSV or JSON Lines file, as for import)'
      : typeof map === 'string'
        ? `columns: ${map}`
        : !Number.isInteger(k) || k < 1 || k > 200
          ? 'k is a whole number from 1 to 200'
          : '';
  return (
    <div>
      <div className="form">
        <label>
          checkpoint
          <select value={checkpoint} onChange={(e) => setCheckpoint(e.target.value as 'best' | 'last')} data-testid="eval-checkpoint">
            <option value="best">best (lowest test loss)</option>
            <option value="last">last (the latest step)</option>
          </select>
        </label>
        <label>
          photos to score
          <select value={source} onChange={(e) => setSource(e.target.value as 'test' | 'manifest')} data-testid="eval-source">
            <option value="test">the run&apos;s test split</option>
            <option value="manifest">a manifest (CSV / JSON Lines)</option>
          </select>
        </label>
        {source === 'manifest' && (
          <>
            <label>
              manifest path
              <input
                value={manifest}
                onChange={(e) => setManifest(e.target.value)}
                placeholder="/data/cars.csv"
                data-testid="eval-manifest"
              />
            </label>
            <label>
              images root (optional)
              <input
                value={imagesRoot}
                onChange={(e) => setImagesRoot(e.target.value)}
                placeholder="folder the image paths are relative to"
                data-testid="eval-images-root"
              />
            </label>
            <label>
              columns (optional)
              <input
                value={mapText}
                onChange={(e) => setMapText(e.target.value)}
                placeholder="price=Price, year=Year"
                data-testid="eval-map"
              />
            </label>
          </>
        )}
        <label>
          kNN neighbours (k)
          <input type="number" min={1} max={200} value={k} onChange={(e) => setK(Number(e.target.value))} data-testid="eval-k" />
        </label>
      </div>
      {problem && <p className="muted small">{problem}</p>}
      <button
        className="primary"
        disabled={busy || Boolean(problem)}
        data-testid="eval-start"
        onClick={() =>
          void onStart({
            checkpoint,
            k,
            ...(source === 'manifest'
              ? {
                  manifest: manifest.trim(),
                  ...(imagesRoot.trim() ? { imagesRoot: imagesRoot.trim() } : {}),
                  ...(typeof map === 'object' ? { map } : {}),
                }
              : {}),
          })
        }
      >
        {busy ? 'Evaluating…' : 'Evaluate'}
      </button>
    </div>
  );
}

function sourceText(s: EvalReport['source']): string {
  return s.kind === 'test-split'
    ? `test split (${s.split === 'listing' ? 'by listing: no car in both sets' : 'by photo'})`
    : `manifest ${s.manifest}${s.rowsSkipped ? ` (${fmtInt(s.rowsSkipped)} rows skipped)` : ''}`;
}

function ReportList({ reports, shown, onSelect }: { reports: EvalReportEntry[]; shown: string | null; onSelect: (id: string) => void }) {
  return (
    <div style={{ marginTop: 12 }}>
      <h4 className="muted">Reports of this run</h4>
      <table data-testid="eval-reports">
        <thead>
          <tr>
            <th>when</th>
            <th>photos</th>
            <th>rows</th>
            <th>price top-1</th>
            <th>make/model top-1</th>
            <th>make top-1</th>
            <th>year within ±2</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {reports.map((r) => (
            <tr key={r.id} data-testid={`eval-entry-${r.id}`} style={r.id === shown ? { background: 'var(--panel2)' } : undefined}>
              <td>{new Date(r.createdAt).toLocaleString()}</td>
              <td>{sourceText(r.source)}</td>
              <td>{fmtInt(r.rows)}</td>
              <td>{fmtPct(r.headline.priceTop1)}</td>
              <td>{fmtPct(r.headline.makeModelTop1)}</td>
              <td>{fmtPct(r.headline.makeTop1)}</td>
              <td>{fmtPct(r.headline.yearWithin2)}</td>
              <td>
                {r.id === shown ? (
                  <span className="muted small">shown</span>
                ) : (
                  <button className="link" onClick={() => onSelect(r.id)} data-testid={`eval-show-${r.id}`}>
                    show
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** One stored report: a table and a reliability diagram per head, per-class accuracy, confusions. */
function ReportView({ runId, id }: { runId: number; id: string }) {
  const got = useQuery('eval.get', { runId, id });
  const html = got.data?.entry.id === id ? got.data.html : null;
  const href = useMemo(() => (html == null ? null : URL.createObjectURL(new Blob([html], { type: 'text/html' }))), [html]);
  useEffect(() => () => void (href && URL.revokeObjectURL(href)), [href]);
  const report = got.data?.entry.id === id ? got.data.report : null;
  if (!report) return <p className="muted">{got.loading ? 'Loading the report…' : 'This report could not be read.'}</p>;
  const h = report.heads;
  const untrained = (head: EvalReport['untrained'][number]['head'][]) => report.untrained.filter((u) => head.includes(u.head));
  return (
    <div data-testid="eval-report" data-report-id={id} style={{ marginTop: 12 }}>
      <div className="row">
        <h4 style={{ margin: 0 }}>
          {report.runName}: {report.checkpoint} checkpoint (step {fmtInt(report.step)})
        </h4>
        {href && (
          <a href={href} target="_blank" rel="noreferrer" data-testid="eval-open-html">
            Open full report
          </a>
        )}
      </div>
      <p className="muted small" data-testid="eval-summary">
        {fmtInt(report.rows)} photos scored from the {sourceText(report.source)}; baselines fitted on {fmtInt(report.trainRows)} training
        photos, kNN with k = {report.knnK}; took {fmtDuration(report.seconds)}; {new Date(report.createdAt).toLocaleString()}.
      </p>
      <CalibrationNote c={report.calibration} rows={report.rows} />
      {report.untrained.length > 0 && (
        <div className="job-msg" data-testid="eval-untrained">
          <b>Heads this run did not train</b> (a head trains only where it has labels and a loss weight above 0):
          <ul>
            {report.untrained.map((u) => (
              <li key={u.head} data-testid={`eval-untrained-${u.head}`}>
                {HEAD_NAMES[u.head]}: {u.reason}
              </li>
            ))}
          </ul>
        </div>
      )}
      <HeadSection
        title="Price range"
        head="price"
        scores={h.price}
        rows={PRICE_ROWS}
        none="no scored photo had a price"
        notTrained={untrained(['price', 'median'])}
        calibration={report.calibration}
      />
      <HeadSection
        title="Make / model"
        head="makeModel"
        scores={h.makeModel}
        rows={MAKE_ROWS}
        none="no scored photo had a make and model"
        notTrained={untrained(['makeModel'])}
        calibration={report.calibration}
      />
      <HeadSection
        title="Year"
        head="year"
        scores={h.year}
        rows={YEAR_ROWS}
        none="no scored photo had a year"
        notTrained={untrained(['year'])}
        calibration={report.calibration}
      />
      {h.makeModel && (
        <div className="grid2">
          <PerClass rows={h.makeModel.perClass} />
          <Confused pairs={h.makeModel.confused} />
        </div>
      )}
    </div>
  );
}

const HEAD_NAMES: Record<EvalReport['untrained'][number]['head'], string> = {
  price: 'price range',
  median: 'median price',
  makeModel: 'make/model',
  year: 'year',
};

interface MetricRow<X> {
  key: string;
  label: string;
  value: (s: ClassificationScores & X) => number;
  fmt: (v: number) => string;
  /** The calibrated figure; absent: temperature scaling does not change it. */
  cal?: (k: CalibratedScores) => number | null;
  /** The held-out (cross-fit) estimate of the calibrated figure, when the report has one. */
  held?: (k: CalibratedScores) => number | null;
}
const ce = (v: number) => v.toFixed(3);
const pct = (v: number) => fmtPct(v);
const common = {
  top1: { key: 'top1', label: 'top-1 accuracy', value: (s: ClassificationScores) => s.top1, fmt: pct },
  top5: { key: 'top5', label: 'top-5 accuracy', value: (s: ClassificationScores) => s.top5, fmt: pct },
  ce: {
    key: 'ce',
    label: 'cross-entropy (lower is better)',
    value: (s: ClassificationScores) => s.ce,
    fmt: ce,
    cal: (k: CalibratedScores) => k.ce,
    held: (k: CalibratedScores) => k.heldOut?.ce ?? null,
  },
  ece: {
    key: 'ece',
    label: 'calibration error (ECE, lower is better)',
    value: (s: ClassificationScores) => s.ece,
    fmt: pct,
    cal: (k: CalibratedScores) => k.ece,
    held: (k: CalibratedScores) => k.heldOut?.ece ?? null,
  },
};
const PRICE_ROWS: MetricRow<{ maeDollars: number }>[] = [
  common.top1,
  common.top5,
  common.ce,
  common.ece,
  { key: 'mae', label: 'median price: mean error ($)', value: (s) => s.maeDollars, fmt: fmtPrice },
];
const MAKE_ROWS: MetricRow<{ makeTop1: number }>[] = [
  common.top1,
  common.top5,
  { key: 'make', label: 'make only: top-1', value: (s) => s.makeTop1, fmt: pct, cal: (k) => k.makeTop1 ?? null },
  common.ce,
  common.ece,
];
const YEAR_ROWS: MetricRow<{ within2: number; maeYears: number }>[] = [
  common.top1,
  { key: 'within2', label: 'within ±2 years', value: (s) => s.within2, fmt: pct },
  { key: 'mae', label: 'mean error (years)', value: (s) => s.maeYears, fmt: (v) => v.toFixed(2) },
  common.ce,
  common.ece,
];

function HeadSection<X>({
  title,
  head,
  scores,
  rows,
  none,
  notTrained,
  calibration,
}: {
  title: string;
  head: 'price' | 'makeModel' | 'year';
  scores: HeadScores<X> | null;
  rows: MetricRow<X>[];
  none: string;
  notTrained: EvalReport['untrained'];
  calibration: EvalCalibration | undefined;
}) {
  const cal = scores?.calibrated ?? null;
  const cols: Array<['model' | 'majority' | 'knn', string, (ClassificationScores & X) | null]> = scores
    ? [
        ['model', 'Model', scores.model],
        ['majority', 'Majority', scores.majority],
        ['knn', 'kNN', scores.knn],
      ]
    : [];
  return (
    <div className="card" data-testid={`eval-head-${head}`} style={{ background: 'var(--panel2)' }}>
      <div className="row">
        <h4 style={{ margin: 0 }}>{title}</h4>
        {notTrained.map((u) => (
          <span key={u.head} className="badge badge-interrupted" data-testid={`eval-head-untrained-${u.head}`} title={u.reason}>
            {HEAD_NAMES[u.head]} not trained
          </span>
        ))}
      </div>
      {!scores ? (
        <p className="muted small">Not scored: {none}.</p>
      ) : (
        <div className="grid2">
          <table data-testid={`eval-table-${head}`}>
            <thead>
              <tr>
                <th />
                <th>{cols[0]![1]}</th>
                {cal && (
                  <th
                    data-testid={`eval-${head}-calibrated-col`}
                    title={`the probabilities predictions give: the raw ones scaled by T = ${cal.temperature.toFixed(3)}`}
                  >
                    Model, calibrated
                  </th>
                )}
                {cols.slice(1).map(([c, label]) => (
                  <th key={c}>{label}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              <tr>
                <td className="muted">photos scored</td>
                {cols.map(([c, , s], i) => (
                  <Fragment key={c}>
                    <td>{s ? fmtInt(s.n) : '—'}</td>
                    {i === 0 && cal && <td>{fmtInt(cal.n)}</td>}
                  </Fragment>
                ))}
              </tr>
              {rows.map((r) => (
                <tr key={r.key}>
                  <td className="muted">{r.label}</td>
                  {cols.map(([c, , s], i) => {
                    const v = s ? r.value(s) : null;
                    return (
                      <Fragment key={c}>
                        <td
                          data-testid={`eval-${head}-${r.key}-${c}`}
                          data-value={v ?? ''}
                          title={s ? undefined : 'kNN needs the backbone features, which were not available'}
                        >
                          {v == null ? '—' : r.fmt(v)}
                        </td>
                        {i === 0 && cal && <CalibratedCell head={head} row={r} k={cal} />}
                      </Fragment>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
          <div>
            <div className="muted small">
              Reliability of the model{cal ? ' (raw)' : ''}: bars = share right per confidence bin; on the dashed line = calibrated.
            </div>
            <ReliabilityChart
              bins={scores.model.reliability}
              testid={`eval-reliability-${head}`}
              ariaLabel={`${title}: reliability diagram`}
            />
            {cal && (
              <>
                <div className="muted small">
                  After calibration (T = {cal.temperature.toFixed(3)}){calibration?.inSample ? ', in-sample: optimistic' : ', held out'}:
                </div>
                <ReliabilityChart
                  bins={cal.reliability}
                  testid={`eval-reliability-${head}-calibrated`}
                  ariaLabel={`${title}: reliability diagram after calibration`}
                />
              </>
            )}
          </div>
        </div>
      )}
      {scores && calibration && <HeadCalibrationNote head={head} cal={cal} calibration={calibration} />}
    </div>
  );
}

/** A calibrated figure (with its held-out estimate), or "unchanged" where temperature scaling cannot change it. */
function CalibratedCell<X>({ head, row, k }: { head: string; row: MetricRow<X>; k: CalibratedScores }) {
  const testid = `eval-${head}-${row.key}-calibrated`;
  if (!row.cal) {
    return (
      <td
        className="muted small"
        data-testid={testid}
        data-value=""
        title="calibration changes the confidence, not which classes come first"
      >
        unchanged
      </td>
    );
  }
  const v = row.cal(k);
  const held = row.held?.(k) ?? null;
  return (
    <td data-testid={testid} data-value={v ?? ''} data-held-out={held ?? ''}>
      {v == null ? '—' : row.fmt(v)}
      {held != null && <span className="muted small"> (held out {row.fmt(held)})</span>}
    </td>
  );
}

/** Under a head's table: calibrated or not, and what does not change. */
function HeadCalibrationNote({
  head,
  cal,
  calibration,
}: {
  head: 'price' | 'makeModel' | 'year';
  cal: CalibratedScores | null;
  calibration: EvalCalibration;
}) {
  const skipped = calibration.skipped[head];
  return (
    <p className="muted small" data-testid={`eval-cal-note-${head}`} data-calibrated={cal ? 'true' : 'false'}>
      {cal
        ? 'Calibration changes how confident the model is, not which classes it ranks first: top-1, top-5 and the top-class figures are unchanged.'
        : calibration.applied
          ? `Not calibrated: ${skipped ?? 'the calibration left this head as trained'}.`
          : 'Not calibrated: raw probabilities only.'}
    </p>
  );
}

/** The report's calibration: applied (in-sample or held out, the temperatures) or why not. */
function CalibrationNote({ c, rows }: { c: EvalCalibration | undefined; rows: number }) {
  if (!c) {
    return (
      <div className="job-msg" data-testid="eval-calibration" data-applied="unknown">
        This report is from before calibrated figures were recorded: it shows the raw probabilities only. Evaluate again to see them.
      </div>
    );
  }
  const t = c.temperatures;
  return (
    <div
      className="job-msg"
      data-testid="eval-calibration"
      data-applied={c.applied ? 'true' : 'false'}
      data-in-sample={c.applied ? String(c.inSample) : ''}
      style={c.applied && c.inSample ? { borderLeft: '3px solid var(--warn, #d9534f)' } : undefined}
    >
      <b>
        {!c.applied
          ? 'Not calibrated.'
          : c.inSample
            ? c.inSampleRows < rows
              ? 'Calibrated figures are partly in-sample.'
              : 'Calibrated figures are in-sample.'
            : 'Calibrated figures are held out.'}
      </b>{' '}
      <span data-testid="eval-calibration-note">
        {c.applied ? c.note : c.note.replace(/^Not calibrated: (.)/, (_m, ch: string) => ch.toUpperCase())}
      </span>
      {c.applied && t && (
        <div className="muted small" data-testid="eval-calibration-temps">
          Temperatures: price {c.skipped.price ? 'not calibrated' : t.price.toFixed(3)}, make/model{' '}
          {c.skipped.makeModel ? 'not calibrated' : t.makeModel.toFixed(3)}, year {c.skipped.year ? 'not calibrated' : t.year.toFixed(3)}
          {c.fitted ? ` (fitted on ${fmtInt(c.fitted.rows)} test photos of the ${c.fitted.checkpoint} checkpoint)` : ''}.
        </div>
      )}
    </div>
  );
}

function PerClass({ rows }: { rows: PerClassScore[] }) {
  return (
    <div>
      <h4 className="muted">Make/model accuracy, the {rows.length} largest classes</h4>
      <table className="share-table" data-testid="eval-per-class">
        <thead>
          <tr>
            <th>class</th>
            <th className="num">photos</th>
            <th>model top-1</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label}>
              <td>{r.label}</td>
              <td className="num">{fmtInt(r.n)}</td>
              <td className="share-cell" data-value={r.accuracy}>
                <div className="share-bar" style={{ width: `${100 * r.accuracy}%` }} />
                <span>{fmtPct(r.accuracy)}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Confused({ pairs }: { pairs: ConfusedPair[] }) {
  return (
    <div>
      <h4 className="muted">Most confused make/models</h4>
      {pairs.length === 0 ? (
        <p className="muted small">No photo was mistaken for another class.</p>
      ) : (
        <table data-testid="eval-confused">
          <thead>
            <tr>
              <th>the photo was</th>
              <th>the model said</th>
              <th className="num">times</th>
            </tr>
          </thead>
          <tbody>
            {pairs.map((p) => (
              <tr key={`${p.truth}\u0000${p.predicted}`}>
                <td>{p.truth}</td>
                <td>{p.predicted}</td>
                <td className="num">{fmtInt(p.count)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
