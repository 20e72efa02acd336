import { useCall } from '../hooks.ts';
import { fmtPct, fmtPrice } from '../format.ts';
import type { RunInfo, TrainMetrics } from '../../../src-main/engine/api/contract/index.ts';
import './RunsTable.css';

/** Line colours of runs on the charts: by run id, so a run keeps its colour when others are added or hidden. */
const RUN_COLORS = ['#4f9cf9', '#f0883e', '#3fb950', '#d2a8ff', '#f85149', '#e3b341', '#56d4dd', '#ff7b72', '#a5d6ff', '#bc8cff'];
export function runColor(id: number): string {
  return RUN_COLORS[(id - 1) % RUN_COLORS.length]!;
}

/** A run as its chart legends and the table name it: `#id name`. */
export function runLabel(r: Pick<RunInfo, 'id' | 'name'> | undefined, id: number): string {
  return `#${id}${r?.name ? ` ${r.name}` : ''}`;
}

/**
 * The words for a run's state, the same as the CLI's `runs` list: a run whose training was
 * stopped (its job cancelled) is "stopped" and can be resumed.
 */
export const RUN_STATE_HELP: Record<RunInfo['state'], string> = {
  preparing: 'reading the data and features before the first step',
  running: 'training now',
  stopped: 'stopped by the user before its last step (its job was cancelled); Resume continues from the last checkpoint',
  interrupted: 'its process stopped mid-run; Resume continues from the last checkpoint',
  done: 'trained all its steps',
  failed: 'training failed',
};

type HeadKey = 'price' | 'makeModel' | 'year';
/** A head's figure in the table: its value, or why there is none ("not trained", "no labels"). */
function headCell(r: RunInfo, h: HeadKey | 'median', m: TrainMetrics | null | undefined, value: (m: TrainMetrics) => string): { text: string; why: string } {
  const plan = r.heads?.[h];
  if (plan && !plan.trains) return { text: 'not trained', why: plan.reason ?? '' };
  if (!m) return { text: '—', why: 'no evaluation yet' };
  const n = h === 'median' ? m.median.n : m[h].n;
  if (n === 0) return { text: 'no labels', why: 'no test photo has this label' };
  return { text: value(m), why: '' };
}

interface RunsTableProps {
  runs: RunInfo[];
  shown: number[];
  setShown: (f: (s: number[]) => number[]) => void;
  selected: number | null;
  onSelect: (id: number) => void;
  compared: number[];
  setCompared: (f: (s: number[]) => number[]) => void;
  onChange: () => void;
  busy: boolean;
}

/**
 * The runs, one row each, fitting the stage's width: name and what it trained (mode, features,
 * loss weights), state, steps, its best test figures (at its best checkpoint), the price baseline,
 * and actions. Two runs ticked under "diff" show how their configurations differ.
 */
export function RunsTable({ runs, shown, setShown, selected, onSelect, compared, setCompared, onChange, busy }: RunsTableProps) {
  const call = useCall();
  if (!runs.length) return <p className="muted">No runs yet.</p>;
  const a = runs.find((r) => r.id === compared[0]);
  const b = runs.find((r) => r.id === compared[1]);
  return (
    <section className="card">
      <h3>Runs</h3>
      <p className="muted small">
        Figures are the test split's at each run&apos;s best checkpoint (its step in brackets); hover a cell for the last evaluation.
        Tick “plot” to draw a run on the charts, “diff” on two runs to compare their settings.
      </p>
      <div data-testid="runs-table-wrap" style={{ width: '100%', overflowX: 'auto' }}>
        <table data-testid="runs-table" className="runs-table">
          <colgroup>
            <col style={{ width: 34 }} />
            <col style={{ width: 34 }} />
            <col style={{ width: '20%' }} />
            <col style={{ width: '9%' }} />
            <col style={{ width: '7%' }} />
            <col style={{ width: '9%' }} />
            <col style={{ width: '8%' }} />
            <col style={{ width: '9%' }} />
            <col style={{ width: '8%' }} />
            <col style={{ width: '9%' }} />
            <col style={{ width: '13%' }} />
          </colgroup>
          <thead>
            <tr>
              <th title="draw on the charts">plot</th>
              <th title="compare the settings of two runs">diff</th>
              <th>run</th>
              <th>state</th>
              <th>steps</th>
              <th title="price-range accuracy on the test split">price acc</th>
              <th title="the majority class's accuracy on the test split">baseline</th>
              <th>make/ model acc</th>
              <th>year acc</th>
              <th title="median price, mean absolute error">MAE</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {runs.map((r) => (
              <RunRow
                key={r.id}
                r={r}
                shown={shown.includes(r.id)}
                onShow={(on) => setShown((s) => (on ? [...s, r.id] : s.filter((x) => x !== r.id)))}
                compared={compared.includes(r.id)}
                onCompare={(on) => setCompared((s) => (on ? [...s.filter((x) => x !== r.id), r.id].slice(-2) : s.filter((x) => x !== r.id)))}
                selected={r.id === selected}
                onSelect={() => onSelect(r.id)}
                busy={busy}
                onResume={() => void call('jobs.start', { kind: 'train', params: { resumeRun: r.id, steps: r.steps, name: r.name } }).then(onChange)}
                onDelete={() => void call('runs.delete', { id: r.id }).then(onChange)}
              />
            ))}
          </tbody>
        </table>
      </div>
      {a && b ? (
        <RunDiff a={a} b={b} />
      ) : (
        <p className="muted small" data-testid="run-diff-hint">
          Tick “diff” on two runs to see how their settings differ.
        </p>
      )}
    </section>
  );
}

function RunRow({
  r,
  shown,
  onShow,
  compared,
  onCompare,
  selected,
  onSelect,
  busy,
  onResume,
  onDelete,
}: {
  r: RunInfo;
  shown: boolean;
  onShow: (on: boolean) => void;
  compared: boolean;
  onCompare: (on: boolean) => void;
  selected: boolean;
  onSelect: () => void;
  busy: boolean;
  onResume: () => void;
  onDelete: () => void;
}) {
  const best = r.best ?? r.lastTest;
  const at = best ? ` (${best.step})` : '';
  const cell = (h: HeadKey | 'median', value: (m: TrainMetrics) => string) => {
    const c = headCell(r, h, best, value);
    const last = headCell(r, h, r.lastTest, value);
    const title = c.why || (r.lastTest ? `last evaluation (step ${r.lastTest.step}): ${last.text}` : '');
    return (
      <td title={title} data-testid={`run-${r.id}-${h}`}>
        {c.text}
        {c.why || !best ? '' : <span className="muted">{at}</span>}
      </td>
    );
  };
  const features = r.mode === 'heads' && r.extractor ? r.extractor : r.backbone;
  return (
    <tr
      data-testid={`run-${r.id}`}
      data-state={r.state}
      data-selected={selected}
      style={selected ? { background: 'var(--panel2)' } : undefined}
    >
      <td>
        <input type="checkbox" checked={shown} onChange={(e) => onShow(e.target.checked)} aria-label={`plot run ${r.id}`} data-testid={`plot-${r.id}`} />
      </td>
      <td>
        <input type="checkbox" checked={compared} onChange={(e) => onCompare(e.target.checked)} aria-label={`compare run ${r.id}`} data-testid={`diff-${r.id}`} />
      </td>
      <td>
        <button className="link" title="evaluate this run" onClick={onSelect} data-testid={`select-run-${r.id}`} style={{ textAlign: 'left' }}>
          <span style={{ display: 'inline-block', width: 10, height: 10, borderRadius: 2, background: runColor(r.id), marginRight: 6 }} />#{r.id}{' '}
          {r.name}
        </button>
        <div className="muted small">
          {r.mode} · {features} · {r.lossWeights}
        </div>
      </td>
      <td title={r.error ?? RUN_STATE_HELP[r.state]} data-testid={`run-${r.id}-state`}>
        {r.state}
      </td>
      <td>
        {r.step}/{r.steps}
      </td>
      {cell('price', (m) => fmtPct(m.price.accuracy))}
      <td>{fmtPct(r.baseline?.priceAccuracy)}</td>
      {cell('makeModel', (m) => fmtPct(m.makeModel.accuracy))}
      {cell('year', (m) => fmtPct(m.year.accuracy))}
      {cell('median', (m) => fmtPrice(m.median.maeDollars))}
      <td>
        <div className="run-actions">
          {(r.state === 'stopped' || r.state === 'interrupted' || r.state === 'failed') && (
            <button disabled={busy} data-testid={`resume-${r.id}`} onClick={onResume}>
              Resume
            </button>
          )}
          <button className="link" data-testid={`delete-${r.id}`} onClick={onDelete}>
            delete
          </button>
        </div>
      </td>
    </tr>
  );
}

/** The settings two runs were started with, side by side; only those that differ, the rest counted. */
export function configDiff(a: RunInfo, b: RunInfo): { differ: Array<{ key: string; a: string; b: string }>; same: number } {
  const flat = (r: RunInfo): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries((r.params ?? {}) as Record<string, unknown>)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
    out.mode = r.mode;
    out.backbone = r.backbone;
    out.features = r.extractor ?? '(pixels)';
    out.lossWeights = r.lossWeights;
    out.steps = String(r.steps);
    delete out.extractor;
    return out;
  };
  const fa = flat(a);
  const fb = flat(b);
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
  const differ = keys.filter((k) => fa[k] !== fb[k]).map((k) => ({ key: k, a: fa[k] ?? '(not set)', b: fb[k] ?? '(not set)' }));
  return { differ, same: keys.length - differ.length };
}

function RunDiff({ a, b }: { a: RunInfo; b: RunInfo }) {
  const { differ, same } = configDiff(a, b);
  return (
    <div data-testid="run-diff" data-differ={differ.length}>
      <h4 style={{ margin: '10px 0 4px' }}>
        Settings: {runLabel(a, a.id)} vs {runLabel(b, b.id)}
      </h4>
      {differ.length === 0 ? (
        <p className="muted small">The two runs were started with the same settings.</p>
      ) : (
        <table style={{ tableLayout: 'fixed', width: '100%', fontSize: 12 }}>
          <thead>
            <tr>
              <th>setting</th>
              <th>#{a.id}</th>
              <th>#{b.id}</th>
            </tr>
          </thead>
          <tbody>
            {differ.map((d) => (
              <tr key={d.key} data-testid={`diff-row-${d.key}`}>
                <td>{d.key}</td>
                <td style={{ overflowWrap: 'anywhere' }}>{d.a}</td>
                <td style={{ overflowWrap: 'anywhere' }}>{d.b}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted small">{same} other settings are the same.</p>
    </div>
  );
}
