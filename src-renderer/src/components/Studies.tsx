import { useEffect, useState } from 'react';
import { useCall } from '../hooks.ts';
import { fmtPct, fmtPrice } from '../format.ts';
import type { CompareItem, CropPan, EditFill, EditStudy, FracRect, HeatTarget, OcclusionStudy, SwapStudy } from '../../../src-main/engine/api/contract/index.ts';
import { EditView, ExportButtons, HEAT_LABELS, HeatTargetSelect, OcclusionView, PriceAxis, RectPicker, SwapView, type PriceMark } from './StudyViews.tsx';
import { PhotoThumb } from './PhotoThumb.tsx';

/** What the rest of the Predict stage asks the studies panel to do (`n` makes a repeat ask new). */
export type StudyRequest = { kind: 'pan'; path: string; n: number } | { kind: 'compare'; paths: string[]; n: number };

/** The series' colours, light enough for the legend's text on the dark panel (over 6:1). */
export const COLORS = ['#60a5fa', '#f87171', '#4ade80', '#c084fc'];

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

function PanView({ pan, pos, setPos, priceMax }: { pan: CropPan; pos: number; setPos: (n: number) => void; priceMax: number }) {
  const s = pan.steps[pos]!;
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
      <MultiLine testid="predict-pan-price" n={pan.steps.length} max={priceMax} fmt={(v) => fmtPrice(v)} series={[{ label: 'median', values: pan.steps.map((x) => x.medianPrice) }]} />
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

/** A path field: two grid columns, its input as wide as the field (never under the button beside it). */
const WIDE_LABEL: React.CSSProperties = { gridColumn: 'span 2', minWidth: 0 };
const WIDE_INPUT: React.CSSProperties = { minWidth: 0, width: '100%', boxSizing: 'border-box' };

/** A changed value in the compare table: amber and bold on the dark panel (readable, not colour alone: "changed" in its title). */
const CHANGED: React.CSSProperties = { color: '#fbbf24', fontWeight: 600 };
const CELL: React.CSSProperties = { color: 'var(--text)', verticalAlign: 'middle', padding: '4px 8px' };

/** The file's name (the last part of its path), for the compare table's rows. */
const fileName = (p: string): string => p.split(/[\\/]/).pop() || p;

function CompareView({ items }: { items: CompareItem[] }) {
  const changed = (on: boolean | undefined): React.CSSProperties => (on ? { ...CELL, ...CHANGED } : CELL);
  const mark = (on: boolean | undefined): string | undefined => (on ? 'changed from the first photo' : undefined);
  return (
    <table className="table" data-testid="predict-compare-table" style={{ color: 'var(--text)' }}>
      <thead>
        <tr>
          <th>image</th>
          <th>file</th>
          <th>median price</th>
          <th>Δ vs first</th>
          <th>top make/model</th>
          <th>year</th>
          <th>price-range shift</th>
        </tr>
      </thead>
      <tbody>
        {items.map((it, i) => (
          <tr key={it.path} data-testid="predict-compare-row" data-path={it.path}>
            <td title={it.path} style={CELL}>
              <PhotoThumb path={it.path} size={96} />
            </td>
            <td title={it.path} data-testid="predict-compare-file" style={{ ...CELL, maxWidth: 220, overflowWrap: 'anywhere' }}>
              {fileName(it.path)}
              {i === 0 ? <div className="small" style={{ color: 'var(--muted)' }}>reference</div> : null}
            </td>
            {it.prediction ? (
              <>
                <td style={{ ...CELL, whiteSpace: 'nowrap' }}>{fmtPrice(it.prediction.medianPrice)}</td>
                <td style={{ ...changed(!!it.diff && Math.abs(it.diff.medianPrice) > 1000), whiteSpace: 'nowrap' }} title={mark(!!it.diff && Math.abs(it.diff.medianPrice) > 1000)}>
                  {it.diff ? `${it.diff.medianPrice >= 0 ? '+' : '−'}${fmtPrice(Math.abs(it.diff.medianPrice))}` : '—'}
                </td>
                <td style={changed(it.diff?.topMakeModelChanged)} title={mark(it.diff?.topMakeModelChanged)}>
                  {it.prediction.makeModels[0]!.label} {fmtPct(it.prediction.makeModels[0]!.p)}
                </td>
                <td style={changed(it.diff?.topYearChanged)} title={mark(it.diff?.topYearChanged)}>
                  {it.prediction.topYears[0]!.label}
                </td>
                <td style={changed(!!it.diff && it.diff.priceBinsTv > 0.1)} title={mark(!!it.diff && it.diff.priceBinsTv > 0.1)}>
                  {it.diff ? fmtPct(it.diff.priceBinsTv) : '—'}
                </td>
              </>
            ) : (
              <td colSpan={5} data-testid="predict-compare-error" style={{ ...CELL, color: '#fca5a5' }}>
                {it.error}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Every price on screen, per study, for the shared axis. */
function priceMarks(r: { pan: CropPan | null; comparison: CompareItem[] | null; occ: OcclusionStudy | null; edit: EditStudy | null; swap: SwapStudy | null }): PriceMark[] {
  const m: PriceMark[] = [];
  r.pan?.steps.forEach((s) => m.push({ study: 'crop pan', label: `position ${s.position + 1}`, price: s.medianPrice }));
  r.comparison?.forEach((c) => c.prediction && m.push({ study: 'compare', label: c.path, price: c.prediction.medianPrice }));
  r.occ?.cells.forEach((c) => m.push({ study: 'occlusion', label: `square ${c.row + 1},${c.col + 1}`, price: c.medianPrice }));
  if (r.occ) m.push({ study: 'occlusion', label: 'unoccluded', price: r.occ.base.medianPrice });
  if (r.edit) m.push({ study: 'region edit', label: 'before', price: r.edit.before.medianPrice }, { study: 'region edit', label: 'after', price: r.edit.after.medianPrice });
  if (r.swap) {
    m.push({ study: 'background swap', label: 'original', price: r.swap.original.medianPrice });
    r.swap.items.forEach((it) => it.prediction && m.push({ study: 'background swap', label: it.path, price: it.prediction.medianPrice }));
  }
  return m;
}

/** A round upper bound for the price axis: 10% above the highest price, to the next $5,000. */
function axisMax(marks: PriceMark[]): number {
  const hi = Math.max(0, ...marks.map((x) => x.price));
  return Math.max(5000, Math.ceil((hi * 1.1) / 5000) * 5000);
}

/**
 * The Predict stage's intervention studies on one run and checkpoint, as the seed made them:
 * an occlusion map, a region edit, a background swap, crop panning along a wide photo and
 * intervention sets (differences against the first image), their prices on one shared axis.
 */
export function Studies({ runId, checkpoint, request }: { runId?: string; checkpoint?: string; request: StudyRequest | null }) {
  const call = useCall();
  const [photo, setPhoto] = useState('');
  const [preview, setPreview] = useState<{ path: string; url: string; width: number; height: number } | null>(null);
  const [rect, setRect] = useState<FracRect | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [occSize, setOccSize] = useState(1 / 6);
  const [occ, setOcc] = useState<OcclusionStudy | null>(null);
  const [target, setTarget] = useState<HeatTarget>('price');
  const [fill, setFill] = useState<EditFill>('grey');
  const [patchPath, setPatchPath] = useState('');
  const [edit, setEdit] = useState<EditStudy | null>(null);
  const [bgFolder, setBgFolder] = useState('');
  const [useBox, setUseBox] = useState(false);
  const [swap, setSwap] = useState<SwapStudy | null>(null);
  const [panPath, setPanPath] = useState('');
  const [panSteps, setPanSteps] = useState(9);
  const [pan, setPan] = useState<CropPan | null>(null);
  const [panPos, setPanPos] = useState(0);
  const [panBusy, setPanBusy] = useState(false);
  const [comparison, setComparison] = useState<CompareItem[] | null>(null);
  const marks = priceMarks({ pan, comparison, occ, edit, swap });
  const priceMax = axisMax(marks);

  // 1. the photo under study, shown for drawing a rectangle on
  const loadPhoto = async (p = photo) => {
    const t = await call('predict.thumbnail', { path: p, size: 640 });
    if (t) {
      setPreview({ path: p, url: t.dataUrl, width: t.width, height: t.height });
      setRect(null);
    }
  };
  const run = runId ? { runId, checkpoint } : { checkpoint };
  // 2. the studies, each one request to the engine
  const runOcclusion = async () => {
    setBusy('occlusion');
    const r = await call('study.occlusion', { ...run, path: photo, size: occSize, png: true, target });
    setBusy(null);
    if (r) setOcc(r);
  };
  const runEdit = async () => {
    if (!rect) return;
    setBusy('edit');
    const r = await call('study.edit', { ...run, path: photo, rect, fill, patchPath: fill === 'patch' ? patchPath : undefined, png: true });
    setBusy(null);
    if (r) setEdit(r);
  };
  const runSwap = async () => {
    setBusy('swap');
    const r = await call('study.swap', { ...run, path: photo, backgrounds: bgFolder, box: useBox && rect ? rect : undefined, png: true });
    setBusy(null);
    if (r) setSwap(r);
  };
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
      setPhoto(request.path);
      void loadPhoto(request.path);
      void runPan(request.path);
    } else void runCompare(request.paths);
    // only a new request runs a study, not a change of run or steps
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [request]);

  return (
    <>
      <section className="card" data-testid="studies">
        <h3>Intervention studies</h3>
        <p className="muted small">
          What the model relies on in one photo: hide regions under a grey square (occlusion map), edit a rectangle you draw (blur, grey, or a patch of another photo), or put the car on other backgrounds. Every price lands on the shared axis below, with the crop pan's and the comparison's.
        </p>
        <div className="form">
          <label className="predict-folder" style={WIDE_LABEL}>
            Photo (path on the engine's machine)
            <input style={WIDE_INPUT} data-testid="study-path" value={photo} onChange={(e) => setPhoto(e.target.value)} placeholder="/home/me/Pictures/cars/car.jpg" />
          </label>
          <div className="form-actions">
            <button disabled={!photo} onClick={() => void loadPhoto()} data-testid="study-load">
              Show photo
            </button>
          </div>
        </div>
        {preview && (
          <>
            <p className="small">Drag on the photo to draw a rectangle (the region to edit, or the car's box for the swap).</p>
            <RectPicker image={preview.url} width={preview.width} height={preview.height} rect={rect} onRect={setRect} testid="study-rect-picker" />
            {rect && (
              <p className="small" data-testid="study-rect">
                rectangle x {fmtPct(rect.x1, 0)}–{fmtPct(rect.x2, 0)}, y {fmtPct(rect.y1, 0)}–{fmtPct(rect.y2, 0)}
              </p>
            )}
          </>
        )}

        <h4>Occlusion map</h4>
        <div className="form">
          <label>
            Square
            <select value={occSize} onChange={(e) => setOccSize(Number(e.target.value))} data-testid="study-occlusion-size">
              <option value={1 / 8}>1/8 of the shorter side</option>
              <option value={1 / 6}>1/6 of the shorter side</option>
              <option value={1 / 4}>1/4 of the shorter side</option>
            </select>
          </label>
          <HeatTargetSelect target={target} setTarget={setTarget} />
          <div className="form-actions">
            <button className="primary" disabled={!photo || !!busy} onClick={() => void runOcclusion()} data-testid="study-occlusion-run">
              {busy === 'occlusion' ? 'Mapping…' : 'Occlusion map'}
            </button>
          </div>
        </div>
        {occ && (
          <>
            <OcclusionView s={occ} target={target} />
            {occ.pngTarget && occ.pngTarget !== target && <p className="muted small">The PNG shows the {HEAT_LABELS[occ.pngTarget]} it was mapped for; map again for this one.</p>}
            <ExportButtons name="occlusion" result={occ} png={occ.png} testid="study-occlusion-export" />
          </>
        )}

        <h4>Region edit</h4>
        <div className="form">
          <label>
            Replace by
            <select value={fill} onChange={(e) => setFill(e.target.value as EditFill)} data-testid="study-edit-fill">
              <option value="grey">flat grey</option>
              <option value="blur">blur</option>
              <option value="patch">a patch of another photo</option>
            </select>
          </label>
          {fill === 'patch' && (
            <label className="predict-folder" style={WIDE_LABEL}>
              Patch photo (its same region, the photo stretched to this one's size)
              <input style={WIDE_INPUT} value={patchPath} onChange={(e) => setPatchPath(e.target.value)} data-testid="study-edit-patch" />
            </label>
          )}
          <div className="form-actions">
            <button className="primary" disabled={!photo || !rect || !!busy || (fill === 'patch' && !patchPath)} onClick={() => void runEdit()} data-testid="study-edit-run">
              {busy === 'edit' ? 'Editing…' : rect ? 'Edit the rectangle' : 'Draw a rectangle first'}
            </button>
          </div>
        </div>
        {edit && (
          <>
            <EditView s={edit} />
            <ExportButtons name="region-edit" result={edit} png={edit.png} testid="study-edit-export" />
          </>
        )}

        <h4>Background swap</h4>
        <div className="form">
          <label className="predict-folder" style={WIDE_LABEL}>
            Folder of background photos (at most 24 are used)
            <input style={WIDE_INPUT} value={bgFolder} onChange={(e) => setBgFolder(e.target.value)} data-testid="study-swap-folder" />
          </label>
          <label>
            <input type="checkbox" checked={useBox} disabled={!rect} onChange={(e) => setUseBox(e.target.checked)} data-testid="study-swap-usebox" /> the drawn rectangle is the car (else: the detector's box)
          </label>
          <div className="form-actions">
            <button className="primary" disabled={!photo || !bgFolder || !!busy} onClick={() => void runSwap()} data-testid="study-swap-run">
              {busy === 'swap' ? 'Swapping…' : 'Swap backgrounds'}
            </button>
          </div>
        </div>
        {swap && (
          <>
            <SwapView s={swap} />
            <ExportButtons name="background-swap" result={swap} png={swap.png} testid="study-swap-export" />
          </>
        )}

        {marks.length > 0 && (
          <>
            <h4>Prices across studies</h4>
            <PriceAxis marks={marks} max={priceMax} />
          </>
        )}
      </section>

      {comparison && (
        <section className="card">
          <h3>Intervention set: differences against the first image</h3>
          <CompareView items={comparison} />
          <PriceAxis testid="study-compare-prices" marks={marks.filter((m) => m.study === 'compare')} max={priceMax} />
          <ExportButtons name="compare" result={comparison} chart="study-compare-prices" testid="study-compare-export" />
        </section>
      )}

      <section className="card" data-testid="predict-pan">
        <h3>Crop panning</h3>
        <p className="muted small">A square crop (the shorter side) slid along a wide photo in N steps; how the predicted price and make/model change with what the model sees.</p>
        <div className="form">
          <label className="predict-folder" style={WIDE_LABEL}>
            Image path
            <input style={WIDE_INPUT} data-testid="predict-pan-path" value={panPath} onChange={(e) => setPanPath(e.target.value)} />
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
        {pan && (
          <>
            <PanView pan={pan} pos={panPos} setPos={setPanPos} priceMax={priceMax} />
            <ExportButtons name="crop-pan" result={pan} chart="predict-pan-price" testid="study-pan-export" />
          </>
        )}
      </section>
    </>
  );
}
