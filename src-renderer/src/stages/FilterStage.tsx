import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../api/client.ts';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtPct, fmtRate } from '../format.ts';
import type { ExtractorInfo, FeatureCoverage, FilterMeter, JobInfo, LabelQueueItem, ThresholdCurvePoint } from '../../../src-main/engine/api/contract/index.ts';
import { JobProgress, LIVE } from '../components/JobProgress.tsx';
import { CarThumb } from '../components/CarBox.tsx';

const COLS = 6;
type ExtractorName = ExtractorInfo['name'];
/** The engine's default extractor, shown until features.extractors answers. */
const FALLBACK_DEFAULT: ExtractorName = 'car-v1';
/** Shown until features.extractors answers. */
const FALLBACK_EXTRACTORS: Array<Pick<ExtractorInfo, 'name' | 'dim' | 'ready'>> = [{ name: FALLBACK_DEFAULT, dim: 1996, ready: true }];
/** The jobs that extract features (the fit and apply jobs extract what the cache lacks first). */
const FEATURE_JOBS = ['features', 'filter-fit', 'filter-apply'];

/** The extractor of a feature set name as filter models record it (`mobilenet_v2.crops3` -> mobilenet_v2). */
const extractorOfSet = (set: string): ExtractorName => set.replace(/\.crops\d+$/, '') as ExtractorName;

export function FilterStage() {
  const state = useQuery('filter.state', {});
  useJobRefresh(['features', 'filter-fit', 'filter-apply', 'scrape', 'dedup'], () => void state.reload());
  const s = state.data;
  return (
    <div>
      <h1>Label &amp; Filter</h1>
      <p className="lead">
        Label whole-car photos good and close-ups, interiors and placeholders bad; an RBF SVM on image features (car-v1 by default: MobileNetV2 blocks plus a car detector; or CLIP ViT-B/16 once its
        weights are installed) learns the difference and a threshold keeps the good images you would lose under a false-negative rate you choose.
      </p>
      <section className="cards">
        <div className="metric" data-testid="count-good">
          <div className="metric-value">{fmtInt(s?.counts.good)}</div>
          <div className="metric-label">labelled good</div>
        </div>
        <div className="metric" data-testid="count-bad">
          <div className="metric-value">{fmtInt(s?.counts.bad)}</div>
          <div className="metric-label">labelled bad</div>
        </div>
        <div className="metric">
          <div className="metric-value">{fmtInt(s?.usable)}</div>
          <div className="metric-label">usable images</div>
        </div>
        <div className="metric">
          <div className="metric-value">{s?.model ? s.model.threshold.toFixed(3) : '—'}</div>
          <div className="metric-label">threshold{s?.model && !s.model.applied ? ' (not applied)' : ''}</div>
        </div>
      </section>
      <FilterJobs onChange={() => void state.reload()} modelExtractor={s?.model ? extractorOfSet(s.model.extractor) : null} />
      <LabelGrid onCounts={() => void state.reload()} hasModel={Boolean(s?.model)} />
      {s?.model ? <ThresholdPanel min={s.model.minScore} max={s.model.maxScore} initial={s.model.threshold} onSaved={() => void state.reload()} /> : null}
    </div>
  );
}

function FilterJobs({ onChange, modelExtractor }: { onChange: () => void; modelExtractor: ExtractorName | null }) {
  const call = useCall();
  const jobs = useJobs();
  const [maxFnr, setMaxFnr] = useState(1);
  const [chosen, setChosen] = useState<ExtractorName | null>(null);
  const extractors = useQuery('features.extractors', {});
  // a weights job that ends (done, failed or stopped) changes what is installed
  useJobRefresh(['weights'], () => void extractors.reload());
  // until the user picks one: the current filter's extractor, else the engine's default
  const extractor: ExtractorName = chosen ?? modelExtractor ?? extractors.data?.find((x) => x.default)?.name ?? FALLBACK_DEFAULT;
  const info = extractors.data?.find((x) => x.name === extractor);
  const ready = info?.ready ?? true;
  const coverage = useQuery('features.coverage', { extractor });
  useJobRefresh(FEATURE_JOBS, () => void coverage.reload(), 3000);
  const started = useRef<number | null>(null);
  // the newest feature-extracting job: shown while it runs, or when it was started here
  const job = jobs.find((j) => FEATURE_JOBS.includes(j.kind)) ?? null;
  const shownJob = job && (LIVE.has(job.state) || job.id === started.current) ? job : null;
  const start = async (kind: string, params: Record<string, unknown>) => {
    const j = await call('jobs.start', { kind, params });
    if (j) started.current = j.id;
    onChange();
  };
  return (
    <section className="card">
      <h3>Filter</h3>
      <div className="row">
        <label className="row">
          features
          <select data-testid="filter-extractor" value={extractor} onChange={(e) => setChosen(e.target.value as ExtractorName)}>
            {(extractors.data ?? FALLBACK_EXTRACTORS).map((x) => (
              <option key={x.name} value={x.name}>
                {x.name} ({x.dim}-d){'default' in x && x.default ? ' — default' : ''}
                {x.ready ? '' : ' — not ready'}
              </option>
            ))}
          </select>
        </label>
        <button disabled={!ready} data-testid="extract-features" onClick={() => void start('features', { extractor, scope: 'usable' })}>
          Extract features
        </button>
        <label className="row">
          max FNR %
          <input type="number" min={0} max={100} step={0.5} value={maxFnr} onChange={(e) => setMaxFnr(Number(e.target.value))} style={{ width: 70 }} />
        </label>
        <button className="primary" data-testid="fit-filter" disabled={!ready} onClick={() => void start('filter-fit', { extractor, maxFnr: maxFnr / 100 })}>
          Fit filter (10-fold CV)
        </button>
        <button data-testid="apply-filter" onClick={() => void start('filter-apply', {})}>
          Apply to all usable images
        </button>
      </div>
      {extractors.data && <ExtractorList list={extractors.data} selected={extractor} onSelect={setChosen} />}
      {info && !info.ready ? <ExtractorSetup info={info} onStarted={() => void extractors.reload()} /> : null}
      {coverage.data && coverage.data.extractor === extractor ? <CoverageNote c={coverage.data} modelExtractor={modelExtractor} /> : null}
      {shownJob && (
        <div style={{ marginTop: 10 }}>
          <FeaturesHeadline job={shownJob} modelExtractor={modelExtractor} />
          <JobProgress job={shownJob} testid="filter" unit={shownJob.step === 'cross-validation' ? 'SVM fits' : shownJob.step === 'fit' ? 'steps' : 'images'} />
        </div>
      )}
      <p className="muted small">
        {info?.runtime === 'tfjs'
          ? 'Features are extracted with tfjs (WebAssembly without a native TensorFlow): install onnxruntime-node for several times the speed; progress shows here and in the jobs panel.'
          : extractor === 'clip-vit-b16'
            ? 'CLIP features run on ONNX Runtime (CUDA where its provider is installed, else the CPU); progress shows here and in the jobs panel.'
            : 'Features are extracted on ONNX Runtime (CUDA where its provider is installed, else the CPU); progress shows here and in the jobs panel.'}
      </p>
    </section>
  );
}

/** Every extractor with what it is good for (the measured figures are in the summaries), the default marked; click one to choose it. */
function ExtractorList({ list, selected, onSelect }: { list: ExtractorInfo[]; selected: ExtractorName; onSelect: (name: ExtractorName) => void }) {
  return (
    <ul data-testid="extractor-list" style={{ listStyle: 'none', padding: 0, margin: '10px 0 0', display: 'grid', gap: 4 }}>
      {list.map((x) => (
        <li
          key={x.name}
          data-testid={`extractor-${x.name}`}
          data-selected={x.name === selected}
          onClick={() => onSelect(x.name)}
          className="small"
          style={{
            cursor: 'pointer',
            padding: '4px 8px',
            borderRadius: 4,
            borderLeft: `3px solid ${x.name === selected ? 'var(--accent)' : 'transparent'}`,
            background: x.name === selected ? 'var(--panel2)' : undefined,
          }}
        >
          <strong>{x.name}</strong>
          {x.default && (
            <span className="badge" data-testid="extractor-default" style={{ marginLeft: 6 }}>
              default
            </span>
          )}
          <span className="muted">
            {' '}
            · {x.dim}-d · {x.ready ? x.runtime : 'not ready'}
          </span>
          <div data-testid="extractor-summary">{x.summary}</div>
        </li>
      ))}
    </ul>
  );
}

/** "about 45s" at a measured rate, or null when no rate is known. */
function estimate(images: number, rate: number | null): string | null {
  return rate && rate > 0 ? `about ${fmtDuration(images / rate)} at the ${fmtRate(rate)} measured here last time` : null;
}

/**
 * What choosing this extractor costs: how many labelled (and usable) images still need its
 * features, and that the other extractors' features stay cached (the filter fitted on them keeps
 * working).
 */
function CoverageNote({ c, modelExtractor }: { c: FeatureCoverage; modelExtractor: ExtractorName | null }) {
  const missingLabelled = c.labelled - c.labelledCached;
  const missingUsable = c.usable - c.usableCached;
  if (c.labelled === 0 && c.usable === 0) return null;
  const others = c.otherCached.filter((o) => o.extractor !== c.extractor);
  const keep = others.length
    ? ` The ${others.map((o) => `${o.extractor} features (${fmtInt(o.images)} images)`).join(', ')} stay cached${
        modelExtractor && modelExtractor !== c.extractor ? `, and the current filter, fitted on ${modelExtractor}, keeps working until you fit a new one` : ''
      }.`
    : '';
  if (missingLabelled === 0 && missingUsable === 0) {
    return (
      <p className="small muted" data-testid="coverage-note" data-missing={0}>
        {c.extractor} features are cached for all {fmtInt(c.usable)} usable images: fitting starts at once.
      </p>
    );
  }
  const est = estimate(missingLabelled, c.imagesPerSecond);
  return (
    <p className="small" data-testid="coverage-note" data-missing={missingLabelled} style={{ borderLeft: '3px solid var(--accent)', paddingLeft: 8 }}>
      {missingLabelled > 0 ? (
        <>
          <strong>
            {c.extractor} features are not cached for {fmtInt(missingLabelled)} of the {fmtInt(c.labelled)} labelled images
          </strong>
          : fitting extracts them first{est ? ` (${est})` : ''}, with its progress below.
        </>
      ) : (
        <>
          {c.extractor} features are cached for every labelled image; {fmtInt(missingUsable)} of the {fmtInt(c.usable)} usable images still need them (applying the filter extracts
          them).
        </>
      )}{' '}
      Switching extractor re-extracts features once per extractor, each into its own cache.{keep}
    </p>
  );
}

/** A feature-extracting job's plain headline: which extractor, for how many images, about how long, and why. */
function FeaturesHeadline({ job, modelExtractor }: { job: JobInfo; modelExtractor: ExtractorName | null }) {
  const live = LIVE.has(job.state);
  const params = (job.params ?? {}) as { extractor?: string };
  // the apply job scores with the current filter's own features
  const ex = job.kind === 'filter-apply' ? modelExtractor : params.extractor ? extractorOfSet(params.extractor) : null;
  // (the features job reports step 'features' before its model loads, the fit and apply jobs from their first batch)
  if (!live || !ex || job.step !== 'features') return null;
  const total = job.total;
  const why =
    job.kind === 'filter-apply'
      ? 'images not scored yet need the filter’s features first'
      : modelExtractor && modelExtractor !== ex
        ? `switching from ${modelExtractor} re-extracts; the ${modelExtractor} features stay cached and keep working for the filter fitted on them`
        : `${ex} features not cached yet are extracted once, then reused`;
  return (
    <p className="small" data-testid="features-headline" data-extractor={ex} style={{ margin: '0 0 6px' }}>
      <strong>
        extracting {ex} features{total != null ? ` for ${fmtInt(total)} images` : ''} — {job.eta != null ? (job.eta < 1 ? 'almost done' : `about ${fmtDuration(job.eta)}`) : job.done === 0 ? 'loading the model…' : 'measuring the speed…'}
      </strong>{' '}
      <span className="muted">({why})</span>
    </p>
  );
}

/** Why an extractor cannot run yet and, for missing weights, a download or a copy from a path on the engine's machine. */
function ExtractorSetup({ info, onStarted }: { info: ExtractorInfo; onStarted: () => void }) {
  const call = useCall();
  const [url, setUrl] = useState(info.defaultUrl ?? '');
  const [from, setFrom] = useState('');
  const install = async (params: { url: string } | { from: string }) => {
    if (await call('jobs.start', { kind: 'weights', params: { extractor: info.name, ...params } })) onStarted();
  };
  return (
    <div data-testid="extractor-setup" style={{ marginTop: 10, borderLeft: '3px solid var(--warn)', paddingLeft: 10 }}>
      <p className="small" data-testid="extractor-help" style={{ margin: '0 0 8px', overflowWrap: 'anywhere' }}>
        <strong>{info.name} is not ready:</strong> {info.help}
      </p>
      {!info.installed && info.defaultUrl !== null ? (
        <>
          <div className="row" style={{ marginBottom: 6 }}>
            <label className="row" style={{ flex: 1 }}>
              URL
              <input data-testid="clip-url" value={url} onChange={(e) => setUrl(e.target.value)} style={{ flex: 1, minWidth: 240 }} />
            </label>
            <button className="primary" data-testid="clip-download" disabled={!url.trim()} onClick={() => void install({ url: url.trim() })}>
              Download weights
            </button>
          </div>
          <div className="row">
            <label className="row" style={{ flex: 1 }}>
              path on the server
              <input
                data-testid="clip-from"
                value={from}
                placeholder="/path/to/vision_model.onnx or a folder holding onnx/vision_model.onnx"
                onChange={(e) => setFrom(e.target.value)}
                style={{ flex: 1, minWidth: 240 }}
              />
            </label>
            <button data-testid="clip-install" disabled={!from.trim()} onClick={() => void install({ from: from.trim() })}>
              Install from path
            </button>
          </div>
          <p className="muted small" style={{ marginBottom: 0 }}>
            About 350 MB, into {info.weightsPath}. A stopped download keeps what it has and continues when started again.
          </p>
        </>
      ) : null}
    </div>
  );
}

function LabelGrid({ onCounts, hasModel }: { onCounts: () => void; hasModel: boolean }) {
  const call = useCall();
  const [items, setItems] = useState<LabelQueueItem[]>([]);
  const [cursor, setCursor] = useState(0);
  const [page, setPage] = useState(1);
  const gridRef = useRef<HTMLDivElement>(null);
  const load = useCallback(async () => {
    const q = await call('filter.queue', { limit: 36, order: 'auto', seed: page });
    if (q) {
      setItems(q);
      setCursor(0);
    }
  }, [call, page]);
  useEffect(() => {
    void load();
  }, [load]);

  // Keys arrive faster than renders: the cursor and items live in refs, the screen updates at
  // once, and API calls go out one after another in key order.
  const cursorRef = useRef(0);
  const itemsRef = useRef<LabelQueueItem[]>([]);
  itemsRef.current = items;
  const queue = useRef<Promise<unknown>>(Promise.resolve());
  const move = useCallback((to: number) => {
    cursorRef.current = Math.max(0, Math.min(itemsRef.current.length - 1, to));
    setCursor(cursorRef.current);
  }, []);
  useEffect(() => {
    cursorRef.current = 0;
  }, [items.length]);
  const label = useCallback(
    (i: number, l: 'good' | 'bad' | null) => {
      const it = itemsRef.current[i];
      if (!it) return;
      itemsRef.current = itemsRef.current.map((x, k) => (k === i ? { ...x, label: l } : x));
      setItems(itemsRef.current);
      move(i + 1);
      queue.current = queue.current.then(() => call('filter.setLabel', { imageId: it.imageId, label: l })).then(() => onCounts());
    },
    [call, onCounts, move],
  );
  const undo = useCallback(() => {
    queue.current = queue.current.then(async () => {
      const r = await call('filter.undo', {});
      if (!r?.imageId) return;
      const i = itemsRef.current.findIndex((x) => x.imageId === r.imageId);
      if (i >= 0) {
        itemsRef.current = itemsRef.current.map((x, k) => (k === i ? { ...x, label: r.label } : x));
        setItems(itemsRef.current);
        move(i);
      }
      onCounts();
    });
  }, [call, onCounts, move]);

  const onKey = (e: React.KeyboardEvent) => {
    const k = e.key;
    const c = cursorRef.current;
    if (k === 'ArrowRight') move(c + 1);
    else if (k === 'ArrowLeft') move(c - 1);
    else if (k === 'ArrowDown') move(c + COLS);
    else if (k === 'ArrowUp') move(c - COLS);
    else if (k === 'g') label(c, 'good');
    else if (k === 'b') label(c, 'bad');
    else if (k === 's') move(c + 1);
    else if (k === 'u' || k === 'Backspace') undo();
    else if (k === 'n' || k === 'Enter') setPage((p) => p + 1);
    else return;
    e.preventDefault();
  };

  return (
    <section className="card">
      <h3>Label</h3>
      <p className="muted small">
        Click the grid, then: <kbd>g</kbd> good · <kbd>b</kbd> bad · <kbd>s</kbd> skip · <kbd>u</kbd>/<kbd>⌫</kbd> undo · arrows move · <kbd>n</kbd>/<kbd>Enter</kbd>{' '}
        next page. {hasModel ? 'Images nearest the threshold come first.' : 'Random order until a filter is fitted and applied.'}
      </p>
      {items.length === 0 ? (
        <p className="muted">No unlabelled usable images. Scrape some, or import labels with `carstudio label --good DIR --bad DIR`.</p>
      ) : (
        <div ref={gridRef} className="label-grid" tabIndex={0} onKeyDown={onKey} data-testid="label-grid" style={{ gridTemplateColumns: `repeat(${COLS}, 1fr)` }}>
          {items.map((it, i) => (
            <div
              key={it.imageId}
              className={`thumb ${it.label ?? ''} ${i === cursor ? 'selected' : ''}`}
              data-testid="label-item"
              data-label={it.label ?? ''}
              data-image-id={it.imageId}
              onClick={() => {
                move(i);
                gridRef.current?.focus();
              }}
            >
              <img src={api.imageUrl(it.key)} alt="" loading="lazy" />
              <div className="label-actions">
                <button onClick={() => label(i, 'good')}>good</button>
                <button onClick={() => label(i, 'bad')}>bad</button>
              </div>
            </div>
          ))}
        </div>
      )}
      <div className="row" style={{ marginTop: 8 }}>
        <button onClick={() => undo()}>Undo</button>
        <button onClick={() => setPage((p) => p + 1)} data-testid="next-page">
          Next page
        </button>
      </div>
    </section>
  );
}

function ThresholdPanel({ min, max, initial, onSaved }: { min: number; max: number; initial: number; onSaved: () => void }) {
  const call = useCall();
  const [t, setT] = useState(initial);
  const [meter, setMeter] = useState<FilterMeter | null>(null);
  const [curve, setCurve] = useState<ThresholdCurvePoint[]>([]);
  const [near, setNear] = useState<{ above: LabelQueueItem[]; below: LabelQueueItem[] } | null>(null);
  const [fnr, setFnr] = useState(1);
  useEffect(() => {
    void call('filter.curve', { points: 120 }).then((c) => c && setCurve(c));
  }, [call, initial]);
  useEffect(() => {
    const id = setTimeout(() => {
      void call('filter.meter', { threshold: t }).then((m) => m && setMeter(m));
      void call('filter.near', { threshold: t, n: 6 }).then((n) => n && setNear(n));
    }, 60);
    return () => clearTimeout(id);
  }, [call, t]);
  // a margin past the extreme scores, so the ends of the slider keep everything / nothing
  const pad = (Math.max(max, initial) - Math.min(min, initial)) * 0.02 || 0.01;
  const lo = Math.min(min, initial) - pad;
  const hi = Math.max(max, initial) + pad;
  return (
    <section className="card" data-testid="threshold-panel">
      <h3>Threshold</h3>
      <div className="row">
        <input
          type="range"
          min={lo}
          max={hi}
          step={(hi - lo) / 500}
          value={t}
          onChange={(e) => setT(Number(e.target.value))}
          style={{ flex: 1 }}
          data-testid="threshold-slider"
          aria-label="threshold"
        />
        <code data-testid="threshold-value">{t.toFixed(3)}</code>
      </div>
      <div className="cards" data-testid="meter">
        <MeterBox label="false-negative rate (good thrown away)" value={fmtPct(meter?.falseNegativeRate, 2)} testid="meter-fnr" warn={(meter?.falseNegativeRate ?? 0) > fnr / 100} />
        <MeterBox label="bad images removed" value={fmtPct(meter?.badRemoved)} testid="meter-bad" />
        <MeterBox label="accuracy (CV)" value={fmtPct(meter?.accuracy)} testid="meter-acc" />
        <MeterBox label={`dataset kept${meter?.scored ? ` (of ${fmtInt(meter.scored)} scored)` : ' (apply to see)'}`} value={fmtPct(meter?.keptShare)} testid="meter-kept" />
      </div>
      <Curve curve={curve} t={t} />
      <div className="row">
        <label className="row">
          largest threshold with FNR under
          <input type="number" min={0} max={100} step={0.5} value={fnr} onChange={(e) => setFnr(Number(e.target.value))} style={{ width: 70 }} />%
        </label>
        <button
          data-testid="choose-threshold"
          onClick={() =>
            void call('filter.chooseThreshold', { maxFnr: fnr / 100 }).then((m) => {
              if (m) setT(m.threshold);
            })
          }
        >
          Choose
        </button>
        <button className="primary" onClick={() => void call('filter.setThreshold', { threshold: t }).then(() => onSaved())}>
          Save threshold
        </button>
      </div>
      {near && (
        <div className="grid2">
          <NearRow title="Just above (kept)" items={near.above} />
          <NearRow title="Just below (removed)" items={near.below} />
        </div>
      )}
    </section>
  );
}

function MeterBox({ label, value, testid, warn }: { label: string; value: string; testid: string; warn?: boolean }) {
  return (
    <div className="metric" data-testid={testid} style={warn ? { borderColor: 'var(--bad)' } : undefined}>
      <div className="metric-value">{value}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}

function NearRow({ title, items }: { title: string; items: LabelQueueItem[] }) {
  return (
    <div>
      <h4 className="muted">{title}</h4>
      <div className="thumbs">
        {items.map((it) => (
          <CarThumb key={it.imageId} src={api.imageUrl(it.key)} car={it.car} className={it.label ?? ''} title={`score ${it.score?.toFixed(3)}`} testid="near-thumb" />
        ))}
        {items.length === 0 && <p className="muted small">none (apply the filter to score the dataset)</p>}
      </div>
    </div>
  );
}

function Curve({ curve, t }: { curve: ThresholdCurvePoint[]; t: number }) {
  if (curve.length < 2) return null;
  const W = 640;
  const H = 180;
  const x0 = curve[0]!.threshold;
  const x1 = curve[curve.length - 1]!.threshold;
  const sx = (x: number) => ((x - x0) / (x1 - x0 || 1)) * (W - 40) + 30;
  const sy = (y: number) => H - 20 - y * (H - 30);
  const line = (f: (p: ThresholdCurvePoint) => number) => curve.map((p, i) => `${i ? 'L' : 'M'}${sx(p.threshold).toFixed(1)},${sy(f(p)).toFixed(1)}`).join('');
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" data-testid="threshold-curve">
      <path d={line((p) => p.falseNegativeRate)} stroke="var(--bad)" fill="none" strokeWidth={2} />
      <path d={line((p) => p.badRemoved)} stroke="var(--good)" fill="none" strokeWidth={2} />
      <path d={line((p) => p.accuracy)} stroke="var(--accent)" fill="none" strokeWidth={2} />
      <line x1={sx(t)} x2={sx(t)} y1={5} y2={H - 20} stroke="var(--text)" strokeDasharray="4 3" />
      <text x={30} y={H - 4} fill="var(--muted)" fontSize={11}>
        threshold {x0.toFixed(2)} … {x1.toFixed(2)} — red FNR, green bad removed, blue accuracy
      </text>
    </svg>
  );
}
