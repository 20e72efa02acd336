import { useCallback, useEffect, useMemo, useState } from 'react';
import { api } from '../api/client.ts';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtPct, fmtPrice, fmtRate } from '../format.ts';
import { BarChart } from '../components/charts.tsx';
import { Studies, type StudyRequest } from '../components/Studies.tsx';
import { FolderBrowser, nativePickFolder, recentFolders, rememberFolder } from '../components/FolderPicker.tsx';
import type { JobInfo, Prediction, PredictCar, PredictHead, PredictPage, PredictRecord, PredictRunInfo } from '../../../src-main/engine/api/contract/index.ts';
import { PhotoThumb } from '../components/PhotoThumb.tsx';

type Sort = 'path' | 'price' | 'makeConfidence';
type Rec = PredictRecord & { index?: number };

/** The thumbnails' box: 4:3, the photo cropped to fill it (object-fit: cover), as styles.css draws .predict-thumb. */
const THUMB_ASPECT = 4 / 3;

/**
 * The car box (fractions of the photo) in fractions of a `boxAspect` frame that shows a photo of
 * `photoAspect` centred with object-fit: cover (the photo's overflow cut off), clipped to the frame;
 * null when nothing of it is in view.
 */
function coverBox(b: { x1: number; y1: number; x2: number; y2: number }, photoAspect: number, boxAspect: number): { left: number; top: number; width: number; height: number } | null {
  // the displayed photo's size in frame units: it fills one side and overflows the other
  const sx = photoAspect > boxAspect ? photoAspect / boxAspect : 1;
  const sy = photoAspect > boxAspect ? 1 : boxAspect / photoAspect;
  const ox = (1 - sx) / 2;
  const oy = (1 - sy) / 2;
  const c = (v: number) => Math.min(1, Math.max(0, v));
  const x1 = c(ox + b.x1 * sx);
  const x2 = c(ox + b.x2 * sx);
  const y1 = c(oy + b.y1 * sy);
  const y2 = c(oy + b.y2 * sy);
  if (x2 - x1 <= 0 || y2 - y1 <= 0) return null;
  return { left: x1, top: y1, width: x2 - x1, height: y2 - y1 };
}

/**
 * A photo's thumbnail with the detected car's box drawn over it (and its score), or the warning
 * that no car was found. `width`/`height`: the photo's oriented size (the record's).
 */
function CarPhoto({ car, width, height, children }: { car: PredictCar | null | undefined; width?: number; height?: number; children: React.ReactNode }) {
  const aspect = width && height ? width / height : THUMB_ASPECT;
  const r = car?.box && car.hasCar ? coverBox(car.box, aspect, THUMB_ASPECT) : null;
  const pc = (v: number) => `${(v * 100).toFixed(2)}%`;
  return (
    <div className="predict-photo" style={{ position: 'relative' }} data-testid="predict-photo" data-has-car={car ? String(car.hasCar) : 'unknown'}>
      {children}
      {r && car && (
        <div
          className="predict-car-box"
          data-testid="predict-car-box"
          title={`car ${Math.round(car.score * 100)}%${car.vehicles > 1 ? ` (${car.vehicles} vehicles in view)` : ''}`}
          style={{ position: 'absolute', left: pc(r.left), top: pc(r.top), width: pc(r.width), height: pc(r.height), border: '2px solid #22c55e', boxShadow: '0 0 0 1px rgba(0,0,0,.45)', boxSizing: 'border-box', pointerEvents: 'none' }}
        >
          <span style={{ position: 'absolute', left: 0, top: 0, background: '#22c55e', color: '#052e16', fontSize: 10, fontWeight: 600, padding: '0 3px', lineHeight: '14px' }}>car {Math.round(car.score * 100)}%</span>
        </div>
      )}
      {car && !car.hasCar && (
        <div className="predict-no-car" data-testid="predict-no-car" role="note" style={{ position: 'absolute', left: 0, right: 0, bottom: 0, background: 'rgba(180,83,9,.92)', color: '#fff', fontSize: 11, fontWeight: 600, padding: '3px 6px' }}>
          No car found in this photo — the prediction is unreliable
        </div>
      )}
    </div>
  );
}

function PriceBars({ p, testid }: { p: Prediction; testid?: string }) {
  return <BarChart ariaLabel="price-range probabilities" testid={testid} bars={p.priceBins.map((b) => ({ label: b.label.replace(/\$/g, ''), value: Math.round(b.p * 1000) / 10, title: `${b.label}: ${fmtPct(b.p)}` }))} />;
}

/** A prediction's warnings about its photo (junk, far, no car) as badges, the message in the tooltip. */
function WarningBadges({ p }: { p: Prediction }) {
  const ws = (p.trust?.warnings ?? []).filter((w) => w.code !== 'untrained');
  if (!ws.length) return null;
  const short: Record<string, string> = { junk: 'not a whole car', far: 'unlike training', 'no-car': 'no car', clipped: 'clipped at $0' };
  return (
    <div className="predict-warnings" data-testid="predict-warnings">
      {ws.map((w) => (
        <span key={w.code} className="badge badge-warn" data-testid="predict-warning" data-code={w.code} title={w.message} style={{ background: '#b45309', color: '#fff', borderRadius: 4, padding: '0 4px', marginRight: 4, fontSize: 11 }}>
          ⚠ {short[w.code] ?? w.code}
        </span>
      ))}
    </div>
  );
}

const untrainedOf = (p: Prediction): PredictHead[] => p.trust?.untrained ?? [];

/** The regression head's median and the bins' own median with their 80% interval, or "not trained" per head. */
function PriceLine({ p, testid }: { p: Prediction; testid?: string }) {
  const un = untrainedOf(p);
  const reg = un.includes('median') ? 'not trained' : fmtPrice(p.medianPrice);
  const bins = un.includes('price') ? 'not trained' : p.binPrice ? `${fmtPrice(p.binPrice.median)} (80%: ${fmtPrice(p.binPrice.low)}–${fmtPrice(p.binPrice.high)})` : '—';
  return (
    <div data-testid={testid ?? 'predict-prices'} title="Regression: the median-price head's own estimate. Bins: the median and 80% interval read off the ten price-bin probabilities.">
      <div className="predict-median" data-testid="predict-median">
        <span data-testid="predict-regression">{reg}</span> <span className="muted small">regression</span>
      </div>
      <div className="small">
        <span data-testid="predict-bins-median">{bins}</span> <span className="muted">bins</span>
        {p.calibrated ? (
          <span className="muted" data-testid="predict-calibrated">
            {' '}
            · calibrated
          </span>
        ) : null}
      </div>
    </div>
  );
}

function FilterScore({ p }: { p: Prediction }) {
  const f = p.trust?.filter;
  if (!f) return null;
  return (
    <div className="muted small" data-testid="predict-filter-score" data-junk={String(f.junk)}>
      junk filter {f.score.toFixed(2)} (threshold {f.threshold.toFixed(2)})
    </div>
  );
}

function Card({ r, onOpen, selected, onSelect }: { r: Rec; onOpen: () => void; selected: boolean; onSelect: (v: boolean) => void }) {
  const p = r.prediction;
  return (
    <div className={`predict-card${r.error ? ' predict-card-error' : ''}`} data-testid="predict-card" data-path={r.path}>
      {p ? (
        <CarPhoto car={p.car} width={r.width} height={r.height}>
          <PhotoThumb path={r.path} />
        </CarPhoto>
      ) : (
        <div className="predict-thumb predict-thumb-empty" />
      )}
      <div className="predict-card-body">
        <div className="predict-name" title={r.path}>
          <label>
            <input type="checkbox" checked={selected} onChange={(e) => onSelect(e.target.checked)} data-testid="predict-select" /> {r.rel}
          </label>
        </div>
        {p ? (
          <>
            <WarningBadges p={p} />
            <PriceBars p={p} />
            <PriceLine p={p} />
            {untrainedOf(p).includes('makeModel') ? (
              <div className="muted small">make/model: not trained</div>
            ) : (
              <ol className="predict-mm">
                {p.makeModels.slice(0, 3).map((m) => (
                  <li key={m.label}>
                    {m.label} <span className="muted">{fmtPct(m.p)}</span>
                  </li>
                ))}
              </ol>
            )}
            <div className="muted small">{untrainedOf(p).includes('year') ? 'year: not trained' : `year ${p.topYears[0]?.label} (${fmtPct(p.topYears[0]?.p)})`}</div>
            <FilterScore p={p} />
            <button onClick={onOpen} data-testid="predict-open">
              Details
            </button>
          </>
        ) : (
          <div className="predict-error" data-testid="predict-error">
            {r.error}
          </div>
        )}
      </div>
    </div>
  );
}

function Detail({ r, onClose, onPan }: { r: Rec; onClose: () => void; onPan: () => void }) {
  const p = r.prediction!;
  return (
    <section className="card predict-detail" data-testid="predict-detail">
      <div className="predict-detail-head">
        <h3>{r.rel}</h3>
        <button onClick={onPan} data-testid="predict-pan-this">
          Crop pan this photo
        </button>
        <button onClick={onClose}>Close</button>
      </div>
      <div className="predict-detail-grid">
        <CarPhoto car={p.car} width={r.width} height={r.height}>
          <PhotoThumb path={r.path} size={480} />
        </CarPhoto>
        <div>
          <p>
            Median price <b data-testid="predict-detail-median">{untrainedOf(p).includes('median') ? 'not trained' : fmtPrice(p.medianPrice)}</b> · {r.width}×{r.height}
          </p>
          <PriceLine p={p} testid="predict-detail-prices" />
          <p className="small muted">Regression is the median-price head&apos;s estimate; bins is the median and 80% interval of the ten price-range probabilities below.</p>
          {(p.trust?.warnings ?? []).length > 0 && (
            <ul className="small" data-testid="predict-detail-warnings">
              {p.trust!.warnings.map((w, i) => (
                <li key={i} data-code={w.code}>
                  ⚠ {w.message}
                </li>
              ))}
            </ul>
          )}
          <p className="small" data-testid="predict-detail-trust">
            {p.trust?.filter ? `Junk filter score ${p.trust.filter.score.toFixed(2)} (threshold ${p.trust.filter.threshold.toFixed(2)}${p.trust.filter.junk ? ': below it, not a whole-car photo' : ''}). ` : 'No junk filter score (none fitted). '}
            {p.trust?.ood ? `Distance to the nearest training photo ${p.trust.ood.distance.toFixed(2)} (99% of test photos within ${p.trust.ood.threshold.toFixed(2)}).` : 'No distance to the training photos for this run.'}
            {p.calibrated ? ' Probabilities are calibrated.' : ''}
          </p>
          <p className="small" data-testid="predict-detail-car">
            {!p.car
              ? 'Where the car is was not recorded for this prediction.'
              : p.car.hasCar
                ? `Car found (${fmtPct(p.car.score, 0)} sure), covering ${fmtPct(p.car.areaShare, 0)} of the photo${p.car.vehicles > 1 ? `; ${p.car.vehicles} vehicles in view` : ''}.`
                : 'No car found in this photo — the prediction is unreliable.'}
          </p>
          <h4>Price range</h4>
          <PriceBars p={p} testid="predict-detail-price" />
        </div>
      </div>
      <h4>Make / model (top 5){untrainedOf(p).includes('makeModel') ? ' — not trained' : ''}</h4>
      <table className="table" data-testid="predict-detail-mm">
        <tbody>
          {p.makeModels.map((m) => (
            <tr key={m.label}>
              <td>{m.label}</td>
              <td>{fmtPct(m.p)}</td>
              <td className="predict-share">
                <span style={{ width: `${m.p * 100}%` }} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h4>Year{untrainedOf(p).includes('year') ? ' — not trained' : ''}</h4>
      <BarChart ariaLabel="year probabilities" testid="predict-detail-years" bars={p.years.map((y) => ({ label: y.label, value: Math.round(y.p * 1000) / 10, title: `${y.label}: ${fmtPct(y.p)}` }))} />
    </section>
  );
}

const HEAD_LABEL: Record<PredictHead, string> = { price: 'price bins', median: 'median', makeModel: 'make/model', year: 'year' };

/** An expected calibration error (null when the head was not calibrated: NaN does not survive JSON). */
const fmtEce = (v: number | null): string => (v == null || !Number.isFinite(v) ? '—' : v.toFixed(3));

/** What a run was trained on, in one line: sources and photos. */
function trainedOn(r: PredictRunInfo): string {
  if (!r.data) return 'not recorded';
  const src = r.data.sources.map((s) => `${s.source} (${fmtInt(s.images)})`).join(', ');
  return `${src || 'no sources'}; ${fmtInt(r.data.trainImages)} train / ${fmtInt(r.data.testImages)} test photos`;
}

/** The runs to choose from: what each trained on, its heads, test metrics and calibration; the recommended one marked. */
function RunPicker({ runs, selected, onSelect }: { runs: PredictRunInfo[]; selected: string; onSelect: (id: string) => void }) {
  return (
    <table className="table small" data-testid="predict-runs">
      <thead>
        <tr>
          <th>Run</th>
          <th>Trained on</th>
          <th>Heads</th>
          <th>Test</th>
          <th>Calibrated</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.id} data-testid="predict-run-row" data-run={r.id} data-recommended={String(r.recommended)} data-selected={String(r.id === selected)} onClick={() => onSelect(r.id)} style={{ cursor: 'pointer', fontWeight: r.id === selected ? 600 : undefined }}>
            <td>
              <input type="radio" name="predict-run" checked={r.id === selected} onChange={() => onSelect(r.id)} aria-label={`Predict with run #${r.id} ${r.name}`} /> #{r.id} {r.name}
              {r.recommended ? (
                <span className="badge" data-testid="predict-run-recommended" title="the best run by test price accuracy" style={{ marginLeft: 4 }}>
                  ★ recommended
                </span>
              ) : null}
            </td>
            <td data-testid="predict-run-data">{trainedOn(r)}</td>
            <td data-testid="predict-run-heads">
              {r.heads.map((h) => (
                <span key={h.head} title={h.reason ?? undefined} style={{ marginRight: 6, opacity: h.trains ? 1 : 0.6 }}>
                  {HEAD_LABEL[h.head]} {h.trains ? '✓' : `not trained (${h.reason ?? '?'})`}
                </span>
              ))}
            </td>
            <td data-testid="predict-run-test">
              {r.test
                ? `price ${fmtPct(r.test.priceAccuracy)} · MAE ${fmtPrice(r.test.medianMaeDollars)}${r.test.makeModelAccuracy != null ? ` · make/model ${fmtPct(r.test.makeModelAccuracy)}` : ''}${r.test.yearAccuracy != null ? ` · year ${fmtPct(r.test.yearAccuracy)}` : ''}`
                : 'not evaluated'}
            </td>
            <td data-testid="predict-run-calibrated">{r.calibration ? (Number.isFinite(r.calibration.priceEce.before) ? `yes (price ECE ${fmtEce(r.calibration.priceEce.before)} → ${fmtEce(r.calibration.priceEce.after)})` : 'yes (price head not calibrated)') : 'no'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * The job whose results the grid shows: the chosen (or newest) predict job, unless it failed;
 * then the newest one before it that did not fail, so the last good results stay visible.
 */
function shownJobOf(current: JobInfo | undefined, predictJobs: JobInfo[]): number | null {
  if (!current) return null;
  if (current.state !== 'failed') return current.id;
  return predictJobs.find((j) => j.id < current.id && j.state !== 'failed')?.id ?? null;
}

type ResultsQuery = { offset: number; limit: number; sort: Sort; order: 'asc' | 'desc'; make?: string; minConfidence?: number; warnings: 'all' | 'with' | 'without' };

/**
 * One page of a prediction set, fetched only when there is a set to show (an empty stage asks
 * nothing). A failure shows in the stage, not as a toast; while the job runs its set may not be
 * written yet, which is no error. The last page stays until the next one arrives.
 */
function useResults(jobId: number | null, q: ResultsQuery, running: boolean) {
  const [data, setData] = useState<PredictPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = JSON.stringify([jobId, q]);
  const reload = useCallback(async () => {
    if (jobId == null) return;
    try {
      const page = await api.request('predict.results', { jobId, ...q });
      setData(page);
      setError(null);
    } catch (e) {
      setError(running ? null : (e as Error).message);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, running]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data: jobId == null ? null : data, error: jobId == null ? null : error, reload };
}

/** Where a folder to predict was typed wrong: "folder does not exist", "not a folder" (fs.list says), else nothing. */
async function checkFolder(input: string): Promise<{ path: string; error?: string }> {
  try {
    const l = await api.request('fs.list', { path: input });
    return { path: l.path };
  } catch (e) {
    if ((e as Error).name === 'FolderError') return { path: input, error: (e as Error).message };
    // outside the folders the browser lists (or a hidden one), the predict job itself reports what
    // is wrong; `~` still means the engine's home folder
    if (input === '~' || input.startsWith('~/')) {
      const home = await api.request('fs.list', {}).then((l) => l.home, () => null);
      if (home) return { path: home + input.slice(1) };
    }
    return { path: input };
  }
}

/** Recent folders: this browser's (localStorage), then the prediction sets recorded in the workspace. */
function useRecentFolders(refresh: number): string[] {
  const [sets, setSets] = useState<string[]>([]);
  useEffect(() => {
    api.request('predict.sets', {}).then(
      (s) => setSets([...s].sort((a, b) => b.jobId - a.jobId).map((x) => x.input)),
      () => undefined,
    );
  }, [refresh]);
  return [...new Set([...recentFolders(), ...sets])].slice(0, 12);
}

export function PredictStage() {
  const runs = useQuery('predict.runs', {});
  const call = useCall();
  const jobs = useJobs();
  const [runId, setRunId] = useState('');
  const [checkpoint, setCheckpoint] = useState('');
  const [folder, setFolder] = useState('');
  const [jobId, setJobId] = useState<number | null>(null);
  const [sort, setSort] = useState<Sort>('path');
  const [order, setOrder] = useState<'asc' | 'desc'>('asc');
  const [make, setMake] = useState('');
  const [minConf, setMinConf] = useState(0);
  const [page, setPage] = useState(0);
  const [detail, setDetail] = useState<Rec | null>(null);
  const [uploads, setUploads] = useState<Rec[]>([]);
  const [selected, setSelected] = useState<string[]>([]);
  const [studyRequest, setStudyRequest] = useState<StudyRequest | null>(null);
  const PAGE = 48;

  const [warnings, setWarnings] = useState<'all' | 'with' | 'without'>('all');
  // the default run is the recommended one (the best by test price accuracy), not the newest
  const recommended = runs.data?.find((r) => r.recommended) ?? runs.data?.[0];
  const run = runs.data?.find((r) => r.id === runId) ?? recommended;
  useEffect(() => {
    if (!runId && recommended) setRunId(recommended.id);
  }, [recommended, runId]);
  const ckpt = checkpoint || run?.defaultCheckpoint || '';

  const predictJobs = jobs.filter((j) => j.kind === 'predict');
  const current = jobId ? jobs.find((j) => j.id === jobId) : predictJobs[0];
  const running = current && (current.state === 'running' || current.state === 'cancelling');
  // a failed job's reason shows in the stage; the grid keeps the last set that did not fail
  const shownJob = shownJobOf(current, predictJobs);
  const results = useResults(shownJob, { offset: page * PAGE, limit: PAGE, sort, order, make: make || undefined, minConfidence: minConf > 0 ? minConf : undefined, warnings }, !!running);
  useJobRefresh(['predict'], () => void results.reload(), 700);
  const data = shownJob ? results.data : null;

  const [stageError, setStageError] = useState<string | null>(null);
  const [browsing, setBrowsing] = useState(false);
  const recent = useRecentFolders(jobs.length);

  /** Starts a predict job on a folder: checks the folder first, so its problem shows here. */
  const startOn = async (input: string, r: { runId?: string; checkpoint?: string }) => {
    setStageError(null);
    const checked = await checkFolder(input);
    if (checked.error) return setStageError(checked.error);
    try {
      const j = await api.request('predict.start', { runId: r.runId, checkpoint: r.checkpoint, input: checked.path });
      rememberFolder(checked.path);
      setFolder(checked.path);
      setJobId(j.id);
      setPage(0);
    } catch (e) {
      setStageError((e as Error).message);
    }
  };
  const start = () => startOn(folder.trim(), { runId: run?.id, checkpoint: ckpt || undefined });
  /** The same folder, run and checkpoint as the failed job. */
  const retry = (j: JobInfo) => {
    const p = (j.params ?? {}) as { input?: string; runId?: string; checkpoint?: string };
    return startOn(p.input ?? folder, { runId: p.runId, checkpoint: p.checkpoint });
  };
  const browse = async () => {
    const pick = nativePickFolder();
    if (!pick) return setBrowsing(true);
    const chosen = await pick();
    if (chosen) setFolder(chosen);
  };
  const exportAs = async (format: 'csv' | 'json') => {
    if (!shownJob) return;
    const r = await call('predict.export', { jobId: shownJob, format });
    if (!r) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([r.content], { type: r.mime }));
    a.download = r.filename;
    a.click();
  };
  const onDrop = async (files: FileList) => {
    for (const f of Array.from(files)) {
      const buf = new Uint8Array(await f.arrayBuffer());
      let bin = '';
      for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
      const r = await call('predict.image', { runId: run?.id, checkpoint: ckpt || undefined, data: btoa(bin), name: f.name });
      if (r) setUploads((u) => [{ ...r, path: URL.createObjectURL(f) }, ...u]);
    }
  };
  const select = (path: string, on: boolean) => setSelected((s) => (on ? [...s.filter((x) => x !== path), path] : s.filter((x) => x !== path)));
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE)) : 1;
  const items = useMemo(() => data?.items ?? [], [data]);

  return (
    <div
      data-testid="predict-stage"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        if (e.dataTransfer.files.length) void onDrop(e.dataTransfer.files);
      }}
    >
      <h1>Predict</h1>
      <p className="lead">Run a trained model on a folder of your own photos, pan a crop along a wide shot, compare edited variants. Drop image files anywhere here to predict them.</p>

      <section className="card">
        <h3>Predict a folder</h3>
        {runs.data && runs.data.length === 0 && <p className="muted">No trained runs yet — train a model in the Train stage first.</p>}
        {runs.data && runs.data.length > 0 && (
          <RunPicker
            runs={runs.data}
            selected={run?.id ?? ''}
            onSelect={(id) => {
              setRunId(id);
              setCheckpoint('');
            }}
          />
        )}
        <div className="form">
          <label>
            Run
            <select data-testid="predict-run" value={run?.id ?? ''} onChange={(e) => { setRunId(e.target.value); setCheckpoint(''); }}>
              {runs.data?.map((r) => (
                <option key={r.id} value={r.id}>
                  {r.recommended ? '★ ' : ''}#{r.id} {r.name} ({r.mode}, {r.steps} steps{r.test ? `, test price ${fmtPct(r.test.priceAccuracy)}` : ''})
                </option>
              ))}
            </select>
          </label>
          <label>
            Checkpoint
            <select data-testid="predict-checkpoint" value={ckpt} onChange={(e) => setCheckpoint(e.target.value)}>
              {run?.checkpoints.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div className="predict-folder-row" data-testid="predict-folder-row" style={{ display: 'flex', gap: 8, alignItems: 'flex-end', flexWrap: 'wrap', marginBottom: 10 }}>
          <label style={{ flex: '1 1 320px', minWidth: 0, display: 'flex', flexDirection: 'column', gap: 3, fontSize: 12 }}>
            Folder (on the engine&apos;s machine; ~ is the home folder)
            <input
              data-testid="predict-folder"
              list="predict-recent-folders"
              value={folder}
              placeholder="~/Pictures/cars"
              style={{ width: '100%', minWidth: 0, boxSizing: 'border-box' }}
              onChange={(e) => {
                setFolder(e.target.value);
                setStageError(null);
              }}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && run && folder.trim() && !running) void start();
              }}
            />
            <datalist id="predict-recent-folders">
              {recent.map((f) => (
                <option key={f} value={f} />
              ))}
            </datalist>
          </label>
          <button data-testid="predict-browse" onClick={() => void browse()} title="Choose the folder in a browser of the engine machine's folders">
            Browse…
          </button>
          <button className="primary" data-testid="predict-start" disabled={!run || !folder.trim() || !!running} onClick={() => void start()}>
            {running ? 'Predicting…' : 'Predict'}
          </button>
          {running && current && (
            <button data-testid="predict-stop" onClick={() => void call('jobs.cancel', { id: current.id })}>
              Stop
            </button>
          )}
          {current && !running && current.state === 'failed' && (
            <button data-testid="predict-retry" onClick={() => void retry(current)}>
              Retry
            </button>
          )}
          {current && !running && current.state !== 'failed' && current.state !== 'done' && current.resumable && (
            <button data-testid="predict-resume" onClick={() => void call('jobs.resume', { id: current.id })}>
              Resume
            </button>
          )}
        </div>
        {browsing && (
          <FolderBrowser
            start={folder.trim()}
            recent={recent}
            onClose={() => setBrowsing(false)}
            onPick={(f) => {
              setFolder(f);
              setStageError(null);
              setBrowsing(false);
            }}
          />
        )}
        {stageError && (
          <p className="predict-stage-error" role="alert" data-testid="predict-stage-error" style={{ color: '#fca5a5', background: 'rgba(185,28,28,.15)', border: '1px solid #b91c1c', borderRadius: 6, padding: '6px 10px' }}>
            {stageError}
          </p>
        )}
        {current && current.state === 'failed' && (
          <p className="predict-stage-error" role="alert" data-testid="predict-job-error" style={{ color: '#fca5a5', background: 'rgba(185,28,28,.15)', border: '1px solid #b91c1c', borderRadius: 6, padding: '6px 10px' }}>
            The prediction failed: {current.error?.message ?? 'no reason recorded'}.{shownJob ? ` The results below are from the last prediction that did not fail (job ${shownJob}).` : ''} Retry runs it again on the same folder.
          </p>
        )}
        {current && (
          <div className="predict-progress" data-testid="predict-progress" data-state={current.state} data-done={current.done} data-total={current.total ?? ''}>
            <progress max={current.total ?? 1} value={current.done} />
            <span>
              {fmtInt(current.done)}/{fmtInt(current.total)} images · <span data-testid="predict-rate">{fmtRate(current.rate)}</span> · ETA {fmtDuration(current.eta)} · {current.state}
              {current.message ? ` · ${current.message}` : ''}
            </span>
          </div>
        )}
      </section>

      {uploads.length > 0 && (
        <section className="card">
          <h3>Dropped images</h3>
          <div className="predict-grid" data-testid="predict-uploads">
            {uploads.map((u, i) => (
              <div key={i} className="predict-card">
                <CarPhoto car={u.prediction?.car} width={u.width} height={u.height}>
                  <img className="predict-thumb" src={u.path} alt="" style={{ aspectRatio: '4 / 3', objectFit: 'cover' }} />
                </CarPhoto>
                <div className="predict-card-body">
                  <div className="predict-name">{u.rel}</div>
                  {u.prediction ? (
                    <>
                      <WarningBadges p={u.prediction} />
                      <PriceBars p={u.prediction} />
                      <PriceLine p={u.prediction} />
                      <FilterScore p={u.prediction} />
                      <div>
                        {u.prediction.makeModels[0]!.label} {fmtPct(u.prediction.makeModels[0]!.p)} · {u.prediction.topYears[0]!.label}
                      </div>
                    </>
                  ) : (
                    <div className="predict-error">{u.error}</div>
                  )}
                </div>
              </div>
            ))}
          </div>
        </section>
      )}

      {detail && detail.prediction && (
        <Detail
          r={detail}
          onClose={() => setDetail(null)}
          onPan={() => setStudyRequest({ kind: 'pan', path: detail.path, n: Date.now() })}
        />
      )}

      <section className="card">
        <h3>Results {data ? <span className="muted small" data-testid="predict-counts">{`${fmtInt(data.predicted)} predicted, ${fmtInt(data.errors)} errors, ${fmtInt(data.count)} files`}</span> : null}</h3>
        <div className="form">
          <label>
            Sort
            <select data-testid="predict-sort" value={sort} onChange={(e) => setSort(e.target.value as Sort)}>
              <option value="path">file</option>
              <option value="price">predicted price</option>
              <option value="makeConfidence">make confidence</option>
            </select>
          </label>
          <label>
            Order
            <select value={order} onChange={(e) => setOrder(e.target.value as 'asc' | 'desc')} data-testid="predict-order">
              <option value="asc">ascending</option>
              <option value="desc">descending</option>
            </select>
          </label>
          <label>
            Make
            <select data-testid="predict-make" value={make} onChange={(e) => { setMake(e.target.value); setPage(0); }}>
              <option value="">all</option>
              {data?.makes.map((m) => (
                <option key={m.make} value={m.make}>
                  {m.make} ({m.count})
                </option>
              ))}
            </select>
          </label>
          <label>
            Warnings
            <select data-testid="predict-warnings-filter" value={warnings} onChange={(e) => { setWarnings(e.target.value as 'all' | 'with' | 'without'); setPage(0); }}>
              <option value="all">all photos</option>
              <option value="with">with a warning</option>
              <option value="without">without</option>
            </select>
          </label>
          <label>
            Min. confidence {fmtPct(minConf, 0)}
            <input type="range" min={0} max={1} step={0.05} value={minConf} onChange={(e) => setMinConf(Number(e.target.value))} data-testid="predict-minconf" />
          </label>
          <div className="form-actions" style={{ gridColumn: 'span 2', gap: 6, flexWrap: 'wrap' }}>
            <button onClick={() => void exportAs('csv')} disabled={!shownJob} data-testid="predict-export-csv">
              Export CSV
            </button>
            <button onClick={() => void exportAs('json')} disabled={!shownJob} data-testid="predict-export-json">
              Export JSON
            </button>
            <button onClick={() => setStudyRequest({ kind: 'compare', paths: selected, n: Date.now() })} disabled={selected.length < 2} data-testid="predict-compare">
              Compare {selected.length} selected
            </button>
          </div>
        </div>
        {results.error && (
          <p className="predict-stage-error" role="alert" data-testid="predict-results-error" style={{ color: '#fca5a5' }}>
            {results.error}
          </p>
        )}
        {!data || data.count === 0 ? (
          <p className="muted">{shownJob ? 'no results yet' : 'no predictions yet — choose a run and a folder'}</p>
        ) : (
          <>
            <div className="predict-grid" data-testid="predict-grid" data-count={data.count}>
              {items.map((r) => (
                <Card key={r.path} r={r} onOpen={() => setDetail(r)} selected={selected.includes(r.path)} onSelect={(v) => select(r.path, v)} />
              ))}
            </div>
            {pages > 1 && (
              <div className="pager">
                <button disabled={page === 0} onClick={() => setPage(page - 1)}>
                  ‹
                </button>
                {page + 1}/{pages}
                <button disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>
                  ›
                </button>
              </div>
            )}
          </>
        )}
      </section>

      <Studies runId={run?.id} checkpoint={ckpt || undefined} request={studyRequest} />
    </div>
  );
}
