import { useCallback, useEffect, useMemo, useState } from 'react';
import { useCall, useEvent, useJobRefresh, useJobs, useQuery } from '../hooks.ts';
import { fmtInt, fmtPct, fmtPrice } from '../format.ts';
import { LiveChart, type Series } from '../components/LiveChart.tsx';
import { EvaluatePanel } from '../components/EvaluatePanel.tsx';
import { CalibrationPanel } from '../components/CalibrationPanel.tsx';
import { ClassLists, LabelCounts } from '../components/TrainDataset.tsx';
import type { RunInfo, RunMetricPoint, TrainMetrics } from '../../../src-main/engine/api/contract/index.ts';

const COLORS = ['#4f9cf9', '#f0883e', '#3fb950', '#d2a8ff', '#f85149', '#e3b341', '#56d4dd', '#ff7b72'];
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
      shown.flatMap((id, k) => {
        const pts = history[id] ?? [];
        const color = COLORS[k % COLORS.length]!;
        const name = `#${id} ${runById.get(id)?.lossWeights ?? ''}`;
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
        <Metric label="backend" value={d?.backend.name ?? '—'} testid="backend" />
      </section>
      {d && <p className="muted small">{d.backend.note}</p>}
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
      <section className="card">
        <div className="row">
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
          <span className="muted small">solid = train (smoothed), dashed = test</span>
        </div>
        <div className="grid2">
          <LiveChart title={`${HEADS.find((h) => h[0] === head)![1]} — loss`} series={series((m) => lossOf(m, head))} testid="chart-loss" />
          {head !== 'median' ? (
            <LiveChart
              title={`${head === 'total' ? 'price range' : HEADS.find((h) => h[0] === head)![1]} — accuracy`}
              series={series((m) => accOf(m, head))}
              testid="chart-acc"
            />
          ) : (
            <LiveChart title="median price — MAE ($)" series={series((m) => m.median.maeDollars)} testid="chart-acc" />
          )}
        </div>
      </section>
      <RunsTable
        runs={runs.data ?? []}
        shown={shown}
        setShown={setShown}
        selected={selected?.id ?? null}
        onSelect={setPicked}
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

function Metric({ label, value, testid }: { label: string; value: string; testid?: string }) {
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

interface RunsTableProps {
  runs: RunInfo[];
  shown: number[];
  setShown: (f: (s: number[]) => number[]) => void;
  selected: number | null;
  onSelect: (id: number) => void;
  onChange: () => void;
  busy: boolean;
}

function RunsTable({ runs, shown, setShown, selected, onSelect, onChange, busy }: RunsTableProps) {
  const call = useCall();
  if (!runs.length) return <p className="muted">No runs yet.</p>;
  return (
    <section className="card">
      <h3>Runs</h3>
      <table data-testid="runs-table">
        <thead>
          <tr>
            <th>show</th>
            <th>run</th>
            <th>mode</th>
            <th>backbone / features</th>
            <th>loss weights</th>
            <th>state</th>
            <th>step</th>
            <th>test price acc</th>
            <th>baseline</th>
            <th>price CE</th>
            <th>make CE</th>
            <th>MAE</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr
              key={r.id}
              data-testid={`run-${r.id}`}
              data-state={r.state}
              data-selected={r.id === selected}
              style={r.id === selected ? { background: 'var(--panel2)' } : undefined}
            >
              <td>
                <input
                  type="checkbox"
                  checked={shown.includes(r.id)}
                  onChange={(e) => setShown((s) => (e.target.checked ? [...s, r.id] : s.filter((x) => x !== r.id)))}
                />
              </td>
              <td>
                <button
                  className="link"
                  style={{ whiteSpace: 'nowrap' }}
                  title="evaluate this run"
                  onClick={() => onSelect(r.id)}
                  data-testid={`select-run-${r.id}`}
                >
                  #{r.id} {r.name}
                </button>
              </td>
              <td>{r.mode}</td>
              <td>{r.mode === 'heads' && r.extractor ? r.extractor : r.backbone}</td>
              <td>{r.lossWeights}</td>
              <td
                title={
                  r.error ?? (r.state === 'interrupted' ? 'its process stopped mid-run; Resume continues from the last checkpoint' : '')
                }
              >
                {r.state}
              </td>
              <td>
                {r.step}/{r.steps}
              </td>
              <td>{labelled(r.lastTest?.price) ? fmtPct(r.lastTest?.price.accuracy) : 'no labels'}</td>
              <td>{fmtPct(r.baseline?.priceAccuracy)}</td>
              <td>{labelled(r.lastTest?.price) ? (r.lastTest?.price.loss.toFixed(3) ?? '—') : 'no labels'}</td>
              <td>{labelled(r.lastTest?.makeModel) ? (r.lastTest?.makeModel.loss.toFixed(3) ?? '—') : 'no labels'}</td>
              <td>{fmtPrice(r.lastTest?.median.maeDollars)}</td>
              <td className="row">
                {(r.state === 'stopped' || r.state === 'interrupted' || r.state === 'failed') && (
                  <button
                    disabled={busy}
                    data-testid={`resume-${r.id}`}
                    onClick={() => void call('jobs.start', { kind: 'train', params: { resumeRun: r.id, steps: r.steps } }).then(onChange)}
                  >
                    Resume
                  </button>
                )}
                <button
                  className="link"
                  data-testid={`delete-${r.id}`}
                  onClick={() => void call('runs.delete', { id: r.id }).then(onChange)}
                >
                  delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
