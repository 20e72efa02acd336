import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useCall, useEvent, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtInt } from '../format.ts';
import { LiveChart, type Series } from '../components/LiveChart.tsx';
import { EvaluatePanel } from '../components/EvaluatePanel.tsx';
import { CalibrationPanel } from '../components/CalibrationPanel.tsx';
import { ClassLists, LabelCounts } from '../components/TrainDataset.tsx';
import { RunsTable, runColor, runLabel } from '../components/RunsTable.tsx';
import type { RunMetricPoint, TrainDatasetSummary, TrainMetrics } from '../../../src-main/engine/api/contract/index.ts';

type Head = 'total' | 'price' | 'makeModel' | 'year' | 'median';
const HEADS: Array<[Head, string]> = [
  ['total', 'total loss'],
  ['price', 'price range'],
  ['makeModel', 'make/model'],
  ['year', 'year'],
  ['median', 'median price'],
];

/** A head's loss at a point; null where the head had no labelled rows (nothing to plot). */
function lossOf(m: TrainMetrics, h: Head): number | null {
  if (h === 'total') return m.loss;
  if (h === 'median') return labelled(m.median) ? m.median.loss : null;
  return labelled(m[h]) ? m[h].loss : null;
}
/** A head's test figures mean something only where it had labelled rows (`n`, when the engine sends it). */
function labelled(h: { loss: number; n?: number } | undefined): boolean {
  return h?.n !== 0;
}
function accOf(m: TrainMetrics, h: Head): number | null {
  if (h === 'total') return labelled(m.price) ? m.price.accuracy : null;
  if (h === 'median') return null;
  return labelled(m[h]) ? m[h].accuracy : null;
}

export function TrainStage() {
  const dataset = useQuery('train.dataset', {});
  const runs = useQuery('runs.list', {});
  const [history, setHistory] = useState<Record<number, RunMetricPoint[]>>({});
  const [shown, setShown] = useState<number[]>([]);
  const [head, setHead] = useState<Head>('total');
  const [smooth, setSmooth] = useState(0.6);
  const [picked, setPicked] = useState<number | null>(null);
  const [compared, setCompared] = useState<number[]>([]);
  const [logX, setLogX] = useState(false);
  const call = useCall();
  const jobs = useJobs();
  useJobRefresh(['train', 'filter-apply', 'dedup', 'scrape'], () => {
    void runs.reload();
  });

  // load the history of runs when they are first shown
  useEffect(() => {
    for (const id of shown) {
      if (history[id]) continue;
      void call('runs.metrics', { id, maxTrainPoints: 1500 }).then((m) => m && setHistory((h) => ({ ...h, [id]: m })));
    }
  }, [shown, history, call]);
  // newest runs are shown by default
  useEffect(() => {
    if (runs.data && shown.length === 0 && runs.data.length) setShown(runs.data.slice(0, 2).map((r) => r.id));
  }, [runs.data, shown.length]);

  useEvent('train.metrics', (e) => {
    setShown((s) => (s.includes(e.runId) ? s : [e.runId, ...s]));
    setHistory((h) => ({
      ...h,
      [e.runId]: [...(h[e.runId] ?? []), { ...e.metrics, split: e.split, step: e.step, samplesPerSec: e.samplesPerSec }],
    }));
  });

  const runById = useMemo(() => new Map((runs.data ?? []).map((r) => [r.id, r])), [runs.data]);
  const series = useCallback(
    (value: (m: TrainMetrics) => number | null): Series[] =>
      shown.flatMap((id) => {
        const pts = history[id] ?? [];
        const color = runColor(id);
        const name = runLabel(runById.get(id), id);
        const train: Array<[number, number]> = [];
        let ema: number | null = null;
        for (const p of pts) {
          if (p.split !== 'train') continue;
          const v = value(p);
          if (v == null || !Number.isFinite(v)) continue;
          ema = ema == null ? v : smooth * ema + (1 - smooth) * v;
          train.push([p.step, ema]);
        }
        const test = pts
          .filter((p) => p.split === 'test')
          .flatMap((p) => {
            const v = value(p);
            return v == null ? [] : [[p.step, v] as [number, number]];
          });
        return [
          { label: `${name} train`, color, points: train },
          { label: `${name} test`, color, dash: true, points: test },
        ];
      }),
    [shown, history, smooth, runById],
  );
  const running = jobs.find((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'cancelling'));
  const lastSpeed = running ? [...(history[shown[0] ?? -1] ?? [])].reverse().find((p) => p.samplesPerSec)?.samplesPerSec : undefined;

  const d = dataset.data;
  // Total loss sums each run's heads by its loss weights: runs of different presets measure different things.
  const presets = [...new Set(shown.map((id) => runById.get(id)?.lossWeights).filter((w): w is string => Boolean(w)))];
  const mixedPresets = head === 'total' && presets.length > 1 ? presets : null;
  // the run the Evaluate panel shows: the one picked in the table, else the newest that has trained
  const selected = runById.get(picked ?? -1) ?? (runs.data ?? []).find((r) => r.step > 0 && r.state !== 'preparing') ?? null;
  return (
    <div>
      <h1>Train</h1>
      <p className="lead">
        A multi-task model: price range (10 bins), median price, make/model and year, on a pretrained MobileNetV2 backbone (or a tiny CNN,
        to smoke-test fine-tuning on this machine).
      </p>
      <section className="cards">
        <Metric label="training images (with a label)" value={fmtInt(d?.images)} />
        <Metric label={`test images (10%, split by ${d?.split === 'photo' ? 'photo' : 'listing'})`} value={fmtInt(d?.testImages)} />
        <Metric label="make/model classes" value={d ? `${d.makeModels.length} + Unknown` : '—'} />
        <Metric
          label="trains on"
          value={
            d ? (
              <>
                {trainsOn(d.backend.name)} <span className="small muted">({d.backend.name})</span>
              </>
            ) : (
              '—'
            )
          }
          testid="backend"
        />
      </section>
      {d && <BackendLine backend={d.backend} />}
      <StartForm
        canFinetune={Boolean(d?.backend.canFinetune)}
        fastFinetune={Boolean(d?.backend.fastFinetune)}
        busy={Boolean(running)}
        onStarted={() => void runs.reload()}
      />
      {running && (
        <section className="card" data-testid="train-live">
          <strong>{running.title}</strong> — {running.step}: {fmtInt(running.done)} / {fmtInt(running.total)} ·{' '}
          {lastSpeed ? `${lastSpeed.toFixed(0)} samples/s` : ''} · ETA {running.eta != null ? `${Math.round(running.eta)} s` : '—'}{' '}
          <button onClick={() => void call('jobs.cancel', { id: running.id })} data-testid="stop-train">
            Stop
          </button>
        </section>
      )}
      <Curves
        head={head}
        setHead={setHead}
        smooth={smooth}
        setSmooth={setSmooth}
        logX={logX}
        setLogX={setLogX}
        series={series}
        mixedPresets={mixedPresets}
      />
      <RunsTable
        runs={runs.data ?? []}
        shown={shown}
        setShown={setShown}
        selected={selected?.id ?? null}
        onSelect={setPicked}
        compared={compared}
        setCompared={setCompared}
        onChange={() => void runs.reload()}
        busy={Boolean(running)}
      />
      {selected && <EvaluatePanel key={selected.id} run={selected} />}
      {selected && <CalibrationPanel key={`cal-${selected.id}`} run={selected} />}
      {d && <LabelCounts d={d} />}
      {d && <ClassLists d={d} />}
    </div>
  );
}

/** Where training runs, in plain words: "GPU" only with the native CUDA backend. */
function trainsOn(backend: string): string {
  return backend === 'tensorflow-gpu' ? 'GPU' : 'CPU';
}

/**
 * The Train stage's first line about the machine, in plain words; the backend's own note and how to
 * get fine-tuning are behind "how".
 */
function BackendLine({ backend }: { backend: TrainDatasetSummary['backend'] }) {
  const where = trainsOn(backend.name);
  const native = backend.name === 'tensorflow' || backend.name === 'tensorflow-gpu';
  return (
    <div className="muted small" data-testid="backend-line" style={{ marginBottom: 10 }}>
      {backend.canFinetune && backend.fastFinetune ? (
        <span>Training on {where}; fine-tuning the whole network is available.</span>
      ) : (
        <span>Training on {where}; fine-tuning needs the native TensorFlow backend.</span>
      )}{' '}
      <details style={{ display: 'inline' }} data-testid="backend-details">
        <summary style={{ display: 'inline', cursor: 'pointer', textDecoration: 'underline' }}>{native ? 'details' : 'how'}</summary>
        <div style={{ marginTop: 4 }}>
          <p style={{ margin: '2px 0' }}>{backend.note}</p>
          {!native && (
            <p style={{ margin: '2px 0' }}>
              Heads runs (the default) train on cached features and need nothing more. To fine-tune the whole network at a usable speed,
              install the native backend in the app folder, <code>npm install @tensorflow/tfjs-node</code> (or{' '}
              <code>@tensorflow/tfjs-node-gpu</code> with CUDA), and restart the studio.
            </p>
          )}
        </div>
      </details>
    </div>
  );
}

/** The training curves: head, smoothing and log-x controls over the loss and accuracy (or MAE) charts of the plotted runs. */
function Curves({
  head,
  setHead,
  smooth,
  setSmooth,
  logX,
  setLogX,
  series,
  mixedPresets,
}: {
  head: Head;
  setHead: (h: Head) => void;
  smooth: number;
  setSmooth: (v: number) => void;
  logX: boolean;
  setLogX: (v: boolean) => void;
  series: (value: (m: TrainMetrics) => number | null) => Series[];
  mixedPresets: string[] | null;
}) {
  const headName = HEADS.find((h) => h[0] === head)![1];
  return (
    <section className="card">
      <div className="row" style={{ flexWrap: 'wrap' }}>
        <h3 style={{ margin: 0 }}>Curves</h3>
        <label className="row">
          head
          <select value={head} onChange={(e) => setHead(e.target.value as Head)} data-testid="head-select">
            {HEADS.map(([h, l]) => (
              <option key={h} value={h}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label className="row">
          smoothing
          <input
            type="range"
            min={0}
            max={0.98}
            step={0.02}
            value={smooth}
            onChange={(e) => setSmooth(Number(e.target.value))}
            data-testid="train-smoothing"
          />
          <span className="small">{smooth.toFixed(2)}</span>
        </label>
        <label className="row">
          <input type="checkbox" checked={logX} onChange={(e) => setLogX(e.target.checked)} data-testid="train-log-x" /> log-scale steps
        </label>
        <span className="muted small">solid = train (smoothed), dashed = test; hover for every run&apos;s value at a step</span>
      </div>
      {mixedPresets && (
        <p className="log-warn small" data-testid="total-loss-warning">
          The plotted runs use different loss weights ({mixedPresets.join(', ')}): their total losses sum different heads and are not
          comparable. Pick a head (price range, make/model, year, median price) to compare them.
        </p>
      )}
      <div className="grid2">
        <LiveChart title={`${headName} — loss`} series={series((m) => lossOf(m, head))} testid="chart-loss" logX={logX} />
        {head !== 'median' ? (
          <LiveChart
            title={`${head === 'total' ? 'price range' : headName} — accuracy`}
            series={series((m) => accOf(m, head))}
            testid="chart-acc"
            logX={logX}
          />
        ) : (
          <LiveChart title="median price — MAE ($)" series={series((m) => m.median.maeDollars)} testid="chart-acc" logX={logX} />
        )}
      </div>
    </section>
  );
}

function Metric({ label, value, testid }: { label: string; value: ReactNode; testid?: string }) {
  return (
    <div className="metric" data-testid={testid}>
      <div className="metric-value">{value}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}

function StartForm({
  canFinetune,
  fastFinetune,
  busy,
  onStarted,
}: {
  canFinetune: boolean;
  fastFinetune: boolean;
  busy: boolean;
  onStarted: () => void;
}) {
  const call = useCall();
  const [f, setF] = useState({
    mode: 'heads',
    backbone: 'mobilenet_v2',
    extractor: '',
    steps: 2000,
    batchSize: 64,
    lr: '',
    preset: 'default',
    custom: 'price=1,median=1,year=1,make=1',
    evalEvery: 100,
    hidden: 256,
    augment: true,
    name: '',
    force: false,
  });
  const set = (k: keyof typeof f, v: unknown) => setF((x) => ({ ...x, [k]: v }));
  const extractors = useQuery('features.extractors', {});
  const usable = (extractors.data ?? []).filter((x) => x.ready);
  const extractor = f.extractor || usable.find((x) => x.default)?.name || 'car-v1';
  // Without a native backend, fine-tuning runs only when forced, on the pure-JS cpu backend.
  const finetuneWhy = !canFinetune
    ? 'this backend has no convolution gradients (install @tensorflow/tfjs-node or -gpu); tick "force" to fine-tune on the pure-JS cpu backend anyway (MobileNetV2: minutes a step; the tiny-cnn smoke test: about 10 images a second)'
    : !fastFinetune
      ? 'the pure-JS backend takes minutes a MobileNetV2 step: tick "force" to run it anyway (the tiny-cnn smoke test trains about 10 images a second)'
      : '';
  const lrDefault = f.mode === 'heads' ? (extractor === 'mobilenet_v2' ? '1e-3' : '2e-2') : f.backbone === 'tiny-cnn' ? '3e-3' : '1e-4';
  return (
    <section className="card">
      <h3>New run</h3>
      <div className="form">
        <label>
          mode
          <select
            value={f.mode}
            onChange={(e) =>
              setF((x) => ({ ...x, mode: e.target.value, backbone: e.target.value === 'heads' ? 'mobilenet_v2' : x.backbone }))
            }
            data-testid="train-mode"
          >
            <option value="heads">heads — on cached features (fast on any CPU)</option>
            <option value="finetune">finetune — the whole network{finetuneWhy ? ' (slow here: needs force)' : ''}</option>
          </select>
        </label>
        <label>
          backbone
          <select value={f.backbone} onChange={(e) => set('backbone', e.target.value)} data-testid="train-backbone">
            <option value="mobilenet_v2">MobileNetV2 — pretrained</option>
            <option value="tiny-cnn" disabled={f.mode !== 'finetune'}>
              tiny CNN, 64 px, from scratch — a smoke test (finetune only)
            </option>
          </select>
        </label>
        {f.mode === 'heads' && (
          <label title={usable.find((x) => x.name === extractor)?.summary ?? ''}>
            features
            <select value={extractor} onChange={(e) => set('extractor', e.target.value)} data-testid="train-extractor">
              {(usable.length ? usable : [{ name: extractor, dim: 0, default: true }]).map((x) => (
                <option key={x.name} value={x.name}>
                  {x.name}
                  {x.default ? ' (default)' : ''}
                  {x.dim ? ` — ${x.dim}-d` : ''}
                </option>
              ))}
            </select>
          </label>
        )}
        <label>
          steps
          <input type="number" min={1} value={f.steps} onChange={(e) => set('steps', Number(e.target.value))} data-testid="train-steps" />
        </label>
        <label>
          batch size
          <input type="number" min={1} value={f.batchSize} onChange={(e) => set('batchSize', Number(e.target.value))} />
        </label>
        <label>
          learning rate
          <input placeholder={lrDefault} value={f.lr} onChange={(e) => set('lr', e.target.value)} />
        </label>
        <label>
          loss weights
          <select value={f.preset} onChange={(e) => set('preset', e.target.value)} data-testid="train-loss">
            <option value="default">default (all heads)</option>
            <option value="price_ce_only">price_ce_only</option>
            <option value="custom">custom…</option>
          </select>
        </label>
        {f.preset === 'custom' && (
          <label>
            custom weights
            <input value={f.custom} onChange={(e) => set('custom', e.target.value)} />
          </label>
        )}
        <label>
          eval every
          <input
            type="number"
            min={1}
            value={f.evalEvery}
            onChange={(e) => set('evalEvery', Number(e.target.value))}
            data-testid="train-eval"
          />
        </label>
        <label>
          hidden units
          <input type="number" min={0} value={f.hidden} onChange={(e) => set('hidden', Number(e.target.value))} />
        </label>
        <label>
          name
          <input value={f.name} onChange={(e) => set('name', e.target.value)} />
        </label>
        <label className="row">
          <input type="checkbox" checked={f.augment} onChange={(e) => set('augment', e.target.checked)} /> augmentation (finetune)
        </label>
        {f.mode === 'finetune' && !fastFinetune && (
          <label className="row">
            <input type="checkbox" checked={f.force} onChange={(e) => set('force', e.target.checked)} /> force on the slow backend
          </label>
        )}
      </div>
      {finetuneWhy && <p className="muted small">Finetune: {finetuneWhy}.</p>}
      {f.backbone === 'tiny-cnn' && (
        <p className="muted small" data-testid="tiny-cnn-note">
          The tiny CNN is trained from scratch at 64 px: it checks that fine-tuning (augmentation, checkpoints, resume) works on this
          machine. It is not a price model.
        </p>
      )}
      <button
        className="primary"
        disabled={busy}
        data-testid="start-train"
        onClick={() =>
          void call('jobs.start', {
            kind: 'train',
            params: {
              mode: f.mode,
              backbone: f.backbone,
              ...(f.mode === 'heads' ? { extractor } : {}),
              steps: f.steps,
              batchSize: f.batchSize,
              ...(f.lr ? { lr: Number(f.lr) } : {}),
              lossWeights: f.preset === 'custom' ? f.custom : f.preset,
              evalEvery: f.evalEvery,
              hidden: f.hidden,
              augment: f.augment,
              force: f.force,
              ...(f.name ? { name: f.name } : {}),
            },
          }).then(() => onStarted())
        }
      >
        {busy ? 'A run is training…' : 'Start run'}
      </button>
    </section>
  );
}
