import { useEffect, useState } from 'react';
import { api } from '../api/client.ts';
import { useCall } from '../hooks.ts';
import { fmtPct, fmtPrice } from '../format.ts';
import type { CompareItem, CropPan } from '../../../src-main/engine/api/contract/index.ts';

/** What the rest of the Predict stage asks the studies panel to do (`n` makes a repeat ask new). */
export type StudyRequest = { kind: 'pan'; path: string; n: number } | { kind: 'compare'; paths: string[]; n: number };

const thumbs = new Map<string, string>();

function StudyThumb({ path, size = 96 }: { path: string; size?: number }) {
  const [url, setUrl] = useState<string | null>(thumbs.get(`${size}:${path}`) ?? null);
  useEffect(() => {
    const k = `${size}:${path}`;
    if (thumbs.has(k)) return setUrl(thumbs.get(k)!);
    let live = true;
    api
      .request('predict.thumbnail', { path, size })
      .then((t) => {
        thumbs.set(k, t.dataUrl);
        if (live) setUrl(t.dataUrl);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [path, size]);
  return url ? <img className="predict-thumb" src={url} alt="" style={{ aspectRatio: '4 / 3', objectFit: 'cover' }} /> : <div className="predict-thumb predict-thumb-empty" />;
}

export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea'];

/** Line chart of one or more series over n points (x: position), from 0 to `max`. */
export function MultiLine({ series, n, testid, max, fmt, xLabel = 'crop position →' }: { series: Array<{ label: string; values: number[] }>; n: number; testid: string; max: number; fmt: (v: number) => string; xLabel?: string }) {
  const W = 600;
  const H = 180;
  const L = 60;
  const top = max > 0 ? max : 1;
  const sx = (i: number) => L + (n <= 1 ? 0 : (i / (n - 1)) * (W - L - 10));
  const sy = (v: number) => 10 + (H - 40) * (1 - v / top);
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} data-testid={testid} data-points={n} role="img" aria-label={testid}>
      {[0, 0.5, 1].map((f) => (
        <g key={f}>
          <line x1={L} x2={W - 10} y1={sy(top * f)} y2={sy(top * f)} className="chart-grid" />
          <text x={L - 4} y={sy(top * f) + 4} textAnchor="end" className="chart-tick">
            {fmt(top * f)}
          </text>
        </g>
      ))}
      {series.map((s, k) => (
        <polyline key={s.label} fill="none" stroke={COLORS[k % COLORS.length]} strokeWidth={2} points={s.values.map((v, i) => `${sx(i).toFixed(1)},${sy(v).toFixed(1)}`).join(' ')} />
      ))}
      <text x={L} y={H - 8} className="chart-tick">
        {xLabel}
      </text>
    </svg>
  );
}

function PanView({ pan, pos, setPos }: { pan: CropPan; pos: number; setPos: (n: number) => void }) {
  const s = pan.steps[pos]!;
  const maxPrice = Math.max(...pan.steps.map((x) => x.medianPrice));
  return (
    <div data-testid="predict-pan-result">
      <div className="predict-pan-image">
        <svg viewBox={`0 0 ${pan.width} ${pan.height}`} data-testid="predict-pan-image">
          <image href={pan.image} width={pan.width} height={pan.height} />
          <rect x={s.crop.left} y={s.crop.top} width={s.crop.size} height={s.crop.size} className="predict-crop" data-testid="predict-crop-rect" />
        </svg>
      </div>
      <label>
        Position {pos + 1}/{pan.steps.length}: {fmtPrice(s.medianPrice)}, {s.top.label} {fmtPct(s.top.p)}
        <input type="range" min={0} max={pan.steps.length - 1} value={pos} onChange={(e) => setPos(Number(e.target.value))} data-testid="predict-pan-pos" />
      </label>
      <h4>Median price vs crop position</h4>
      <MultiLine testid="predict-pan-price" n={pan.steps.length} max={maxPrice * 1.1} fmt={(v) => fmtPrice(v)} series={[{ label: 'median', values: pan.steps.map((x) => x.medianPrice) }]} />
      <h4>Make/model probability vs crop position</h4>
      <MultiLine testid="predict-pan-mm" n={pan.steps.length} max={1} fmt={(v) => fmtPct(v, 0)} series={pan.tracked.map((label, k) => ({ label, values: pan.steps.map((x) => x.tracked[k]!) }))} />
      <div className="predict-legend">
        {pan.tracked.map((l, k) => (
          <span key={l} style={{ color: COLORS[k % COLORS.length] }}>
            ■ {l}
          </span>
        ))}
      </div>
    </div>
  );
}

function CompareView({ items }: { items: CompareItem[] }) {
  return (
    <table className="table" data-testid="predict-compare-table">
      <thead>
        <tr>
          <th>image</th>
          <th>median price</th>
          <th>Δ vs first</th>
          <th>top make/model</th>
          <th>year</th>
          <th>price-range shift</th>
        </tr>
      </thead>
      <tbody>
        {items.map((it) => (
          <tr key={it.path}>
            <td title={it.path}>
              <StudyThumb path={it.path} size={96} />
            </td>
            {it.prediction ? (
              <>
                <td>{fmtPrice(it.prediction.medianPrice)}</td>
                <td className={it.diff && Math.abs(it.diff.medianPrice) > 1000 ? 'predict-diff' : ''}>{it.diff ? `${it.diff.medianPrice >= 0 ? '+' : '−'}${fmtPrice(Math.abs(it.diff.medianPrice))}` : '—'}</td>
                <td className={it.diff?.topMakeModelChanged ? 'predict-diff' : ''}>
                  {it.prediction.makeModels[0]!.label} {fmtPct(it.prediction.makeModels[0]!.p)}
                </td>
                <td className={it.diff?.topYearChanged ? 'predict-diff' : ''}>{it.prediction.topYears[0]!.label}</td>
                <td className={it.diff && it.diff.priceBinsTv > 0.1 ? 'predict-diff' : ''}>{it.diff ? fmtPct(it.diff.priceBinsTv) : '—'}</td>
              </>
            ) : (
              <td colSpan={5} className="predict-error">
                {it.error}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * The Predict stage's intervention studies on one run and checkpoint: crop panning along a wide
 * photo and intervention sets (differences against the first image).
 */
export function Studies({ runId, checkpoint, request }: { runId?: string; checkpoint?: string; request: StudyRequest | null }) {
  const call = useCall();
  const [panPath, setPanPath] = useState('');
  const [panSteps, setPanSteps] = useState(9);
  const [pan, setPan] = useState<CropPan | null>(null);
  const [panPos, setPanPos] = useState(0);
  const [panBusy, setPanBusy] = useState(false);
  const [comparison, setComparison] = useState<CompareItem[] | null>(null);

  const runPan = async (p = panPath) => {
    setPanBusy(true);
    const r = await call('predict.cropPan', { runId, checkpoint, path: p, steps: panSteps });
    setPanBusy(false);
    if (r) {
      setPan(r);
      setPanPos(0);
    }
  };
  const runCompare = async (paths: string[]) => {
    const r = await call('predict.compare', { runId, checkpoint, paths });
    if (r) setComparison(r.items);
  };
  useEffect(() => {
    if (!request) return;
    if (request.kind === 'pan') {
      setPanPath(request.path);
      void runPan(request.path);
    } else void runCompare(request.paths);
    // only a new request runs a study, not a change of run or steps
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [request]);

  return (
    <>
      {comparison && (
        <section className="card">
          <h3>Intervention set: differences against the first image</h3>
          <CompareView items={comparison} />
        </section>
      )}

      <section className="card" data-testid="predict-pan">
        <h3>Crop panning</h3>
        <p className="muted small">A square crop (the shorter side) slid along a wide photo in N steps; how the predicted price and make/model change with what the model sees.</p>
        <div className="form">
          <label className="predict-folder">
            Image path
            <input data-testid="predict-pan-path" value={panPath} onChange={(e) => setPanPath(e.target.value)} />
          </label>
          <label>
            Steps
            <input type="number" min={2} max={40} value={panSteps} onChange={(e) => setPanSteps(Math.max(2, Math.min(40, Number(e.target.value) || 2)))} data-testid="predict-pan-steps" />
          </label>
          <div className="form-actions">
            <button className="primary" disabled={!panPath || panBusy} onClick={() => void runPan()} data-testid="predict-pan-run">
              {panBusy ? 'Panning…' : 'Pan'}
            </button>
          </div>
        </div>
        {pan && <PanView pan={pan} pos={panPos} setPos={setPanPos} />}
      </section>
    </>
  );
}
