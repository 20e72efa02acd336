import { useCallback, useRef, useState } from 'react';
import { useCall, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtDuration, fmtInt, fmtRate } from '../format.ts';
import type { ExtractorInfo, FeatureCoverage, FilterState, JobInfo } from '../../../src-main/engine/api/contract/index.ts';
import { JobProgress, LIVE } from '../components/JobProgress.tsx';
import { LabelGrid } from './filter/LabelGrid.tsx';
import { LabelsView } from './filter/LabelsView.tsx';
import { ThresholdPanel } from './filter/ThresholdPanel.tsx';

type ExtractorName = ExtractorInfo['name'];
/** The engine's default extractor, shown until features.extractors answers. */
const FALLBACK_DEFAULT: ExtractorName = 'car-v1';
/** Shown until features.extractors answers. */
const FALLBACK_EXTRACTORS: Array<Pick<ExtractorInfo, 'name' | 'dim' | 'ready'>> = [{ name: FALLBACK_DEFAULT, dim: 1996, ready: true }];
/** The jobs that extract features (the fit and apply jobs extract what the cache lacks first). */
const FEATURE_JOBS = ['features', 'filter-fit', 'filter-apply'];

/** The extractor of a feature set name as filter models record it (`mobilenet_v2.crops3` -> mobilenet_v2). */
const extractorOfSet = (set: string): ExtractorName => set.replace(/\.crops\d+$/, '') as ExtractorName;

/**
 * Label & Filter: the counts, the filter's jobs, the labelling grid, the labels given so far and
 * the threshold panel. Every labelling action bumps `labelsVersion` so the views that show labels
 * reload.
 */
export function FilterStage() {
  const state = useQuery('filter.state', {});
  useJobRefresh(['features', 'filter-fit', 'filter-apply', 'scrape', 'dedup'], () => void state.reload());
  const [labelsVersion, setLabelsVersion] = useState(0);
  const { reload } = state;
  const onLabelled = useCallback(() => {
    void reload();
    setLabelsVersion((v) => v + 1);
  }, [reload]);
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
      {s?.model?.stale ? <StaleNote model={s.model} /> : null}
      <LabelGrid onLabelled={onLabelled} hasModel={Boolean(s?.model)} />
      {s?.model ? (
        <ThresholdPanel min={s.model.minScore} max={s.model.maxScore} initial={s.model.threshold} onSaved={() => void state.reload()} onLabelled={onLabelled} />
      ) : null}
      <LabelsView version={labelsVersion} onLabelled={onLabelled} />
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

/** The fit was made on other labels than the current ones: its CV figures describe those. */
function StaleNote({ model }: { model: NonNullable<FilterState['model']> }) {
  const st = model.stale!;
  const parts = [st.changed ? `${fmtInt(st.changed)} changed or cleared` : '', st.added ? `${fmtInt(st.added)} added` : ''].filter(Boolean).join(', ');
  return (
    <p className="small" data-testid="filter-stale" data-changed={st.changed} data-added={st.added} style={{ borderLeft: '3px solid var(--warn)', paddingLeft: 8 }}>
      <strong>The filter is stale:</strong> labels changed since it was fitted on {fmtInt(model.labelledGood)} good and {fmtInt(model.labelledBad)} bad ({parts}). Its meter
      describes the old labels; fit again to use the new ones.
    </p>
  );
}
