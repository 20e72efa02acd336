import { useRef, useState } from 'react';
import { fmtPct, fmtPrice } from '../format.ts';
import type { EditStudy, FracRect, HeatTarget, OcclusionCell, OcclusionStudy, Prediction, StudyDiff, SwapStudy } from '../../../src-main/engine/api/contract/index.ts';

// The views of the intervention studies the engine makes (study.occlusion, study.edit,
// study.swap): a heat map over the photo, a rectangle drawn on it, before/after and the
// composites, every price drawn on the one price axis the panel shares (PriceAxis).

/** Downloads text or base64 bytes as a file. */
export function download(name: string, mime: string, content: string, base64 = false): void {
  const bytes = base64 ? Uint8Array.from(atob(content), (c) => c.charCodeAt(0)) : content;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: mime }));
  a.download = name;
  a.click();
}

/** A study's result as JSON without its pictures (those download as PNG). */
export function studyJson(v: unknown): string {
  return JSON.stringify(v, (k, x: unknown) => (typeof x === 'string' && (x.startsWith('data:image/') || k === 'png') ? undefined : x), 2);
}

/**
 * A chart drawn in the page (an <svg>) as PNG bytes, base64: the SVG with its stylesheet colours
 * written inline (a standalone SVG has no page CSS), drawn on a canvas at twice its size.
 */
export async function svgPng(svg: SVGSVGElement): Promise<string> {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  const from = [svg, ...Array.from(svg.querySelectorAll('*'))];
  const to = [copy, ...Array.from(copy.querySelectorAll('*'))];
  from.forEach((el, i) => {
    const cs = getComputedStyle(el);
    const t = to[i] as SVGElement;
    for (const k of ['fill', 'stroke', 'stroke-width', 'font-size', 'font-family', 'opacity']) t.style.setProperty(k, cs.getPropertyValue(k));
  });
  const box = svg.viewBox.baseVal;
  const w = box && box.width ? box.width : svg.clientWidth;
  const h = box && box.height ? box.height : svg.clientHeight;
  copy.setAttribute('width', String(w));
  copy.setAttribute('height', String(h));
  copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(copy)], { type: 'image/svg+xml' }));
  try {
    const img = new Image();
    await new Promise<void>((res, rej) => {
      img.onload = () => res();
      img.onerror = () => rej(new Error('the chart could not be drawn'));
      img.src = url;
    });
    const canvas = document.createElement('canvas');
    canvas.width = 2 * w;
    canvas.height = 2 * h;
    const ctx = canvas.getContext('2d')!;
    ctx.fillStyle = getComputedStyle(document.body).backgroundColor || '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL('image/png').split(',')[1]!;
  } finally {
    URL.revokeObjectURL(url);
  }
}

/**
 * JSON and PNG downloads of a study: `png` is the engine's picture (base64); without it, `chart`
 * names the test id of the study's chart on the page, downloaded as a PNG of that chart.
 */
export function ExportButtons({ name, result, png, chart, testid }: { name: string; result: unknown; png?: string; chart?: string; testid: string }) {
  const savePng = async () => {
    if (png) return download(`${name}.png`, 'image/png', png, true);
    const svg = chart ? document.querySelector<SVGSVGElement>(`svg[data-testid="${chart}"]`) : null;
    if (svg) download(`${name}.png`, 'image/png', await svgPng(svg), true);
  };
  return (
    <div className="form-actions">
      <button onClick={() => download(`${name}.json`, 'application/json', studyJson(result))} data-testid={`${testid}-json`}>
        Download JSON
      </button>
      {(png || chart) && (
        <button onClick={() => void savePng()} data-testid={`${testid}-png`}>
          Download PNG
        </button>
      )}
    </div>
  );
}

const signed = (v: number) => `${v >= 0 ? '+' : '−'}${fmtPrice(Math.abs(v))}`;
const pc = (v: number) => `${(v * 100).toFixed(3)}%`;

// ---- the shared price axis ----

export interface PriceMark {
  /** Which study, e.g. 'pan', 'edit'. */
  study: string;
  label: string;
  price: number;
}

/**
 * Every price the studies on screen predicted, on one horizontal axis from $0 to `max` (the same
 * scale the crop pan's chart uses), one row per study: read them side by side.
 */
export function PriceAxis({ marks, max, testid = 'study-price-axis' }: { marks: PriceMark[]; max: number; testid?: string }) {
  const studies = [...new Set(marks.map((m) => m.study))];
  const W = 600;
  const L = 120;
  const ROW = 22;
  const H = 24 + ROW * studies.length;
  const sx = (v: number) => L + (Math.max(0, v) / max) * (W - L - 12);
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} data-testid={testid} data-max={max} data-marks={marks.length} role="img" aria-label="prices across studies">
      {[0, 0.25, 0.5, 0.75, 1].map((f) => (
        <g key={f}>
          <line x1={sx(max * f)} x2={sx(max * f)} y1={4} y2={H - 18} className="chart-grid" />
          <text x={sx(max * f)} y={H - 4} textAnchor="middle" className="chart-tick">
            {fmtPrice(max * f)}
          </text>
        </g>
      ))}
      {studies.map((s, k) => (
        <g key={s} data-testid={`study-price-row-${s}`}>
          <text x={L - 6} y={14 + k * ROW + 4} textAnchor="end" className="chart-tick">
            {s}
          </text>
          {marks
            .filter((m) => m.study === s)
            .map((m, i) => (
              <circle key={i} cx={sx(m.price)} cy={14 + k * ROW} r={4} fill="#2563eb" fillOpacity={0.6}>
                <title>{`${m.label}: ${fmtPrice(m.price)}`}</title>
              </circle>
            ))}
        </g>
      ))}
    </svg>
  );
}

// ---- drawing a rectangle on the photo ----

/** The photo with a rectangle the user drags out on it (fractions of the photo). */
export function RectPicker({ image, width, height, rect, onRect, testid }: { image: string; width: number; height: number; rect: FracRect | null; onRect: (r: FracRect) => void; testid: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [from, setFrom] = useState<{ x: number; y: number } | null>(null);
  const [live, setLive] = useState<FracRect | null>(null);
  const at = (e: React.MouseEvent) => {
    const b = ref.current!.getBoundingClientRect();
    const c = (v: number) => Math.min(1, Math.max(0, v));
    return { x: c((e.clientX - b.left) / b.width), y: c((e.clientY - b.top) / b.height) };
  };
  const span = (a: { x: number; y: number }, b: { x: number; y: number }): FracRect => ({ x1: Math.min(a.x, b.x), y1: Math.min(a.y, b.y), x2: Math.max(a.x, b.x), y2: Math.max(a.y, b.y) });
  const shown = live ?? rect;
  return (
    <div
      ref={ref}
      data-testid={testid}
      style={{ position: 'relative', width: '100%', maxWidth: 480, aspectRatio: `${width} / ${height}`, cursor: 'crosshair', userSelect: 'none' }}
      onMouseDown={(e) => {
        e.preventDefault();
        setFrom(at(e));
        setLive(null);
      }}
      onMouseMove={(e) => from && setLive(span(from, at(e)))}
      onMouseUp={(e) => {
        if (!from) return;
        const r = span(from, at(e));
        setFrom(null);
        setLive(null);
        if (r.x2 - r.x1 > 0.01 && r.y2 - r.y1 > 0.01) onRect(r);
      }}
    >
      <img src={image} alt="" draggable={false} style={{ width: '100%', height: '100%', display: 'block' }} />
      {shown && (
        <div
          data-testid={`${testid}-rect`}
          style={{ position: 'absolute', left: `${shown.x1 * 100}%`, top: `${shown.y1 * 100}%`, width: `${(shown.x2 - shown.x1) * 100}%`, height: `${(shown.y2 - shown.y1) * 100}%`, border: '2px dashed #f59e0b', boxSizing: 'border-box', pointerEvents: 'none' }}
        />
      )}
    </div>
  );
}

// ---- occlusion map ----

const HEAT_VALUE: Record<HeatTarget, (c: OcclusionCell) => number> = {
  price: (c) => c.dPrice,
  makeModel: (c) => c.dropMakeModel,
  year: (c) => c.dropYear,
};

export const HEAT_LABELS: Record<HeatTarget, string> = { price: 'price change', makeModel: 'make/model probability drop', year: 'year probability drop' };

export function HeatTargetSelect({ target, setTarget }: { target: HeatTarget; setTarget: (t: HeatTarget) => void }) {
  return (
    <label>
      Heat map of{' '}
      <select value={target} onChange={(e) => setTarget(e.target.value as HeatTarget)} data-testid="study-heat-target">
        {(Object.keys(HEAT_LABELS) as HeatTarget[]).map((t) => (
          <option key={t} value={t}>
            {HEAT_LABELS[t]}
          </option>
        ))}
      </select>
    </label>
  );
}

export function OcclusionView({ s, target }: { s: OcclusionStudy; target: HeatTarget }) {
  const value = HEAT_VALUE[target];
  const max = Math.max(1e-12, ...s.cells.map((c) => Math.abs(value(c))));
  const top = [...s.cells].sort((a, b) => Math.abs(value(b)) - Math.abs(value(a))).slice(0, 5);
  const fmt = (v: number) => (target === 'price' ? signed(v) : `${v >= 0 ? '−' : '+'}${pc(Math.abs(v))}`);
  const where = (c: OcclusionCell) => `x ${fmtPct(c.rect.x1, 0)}–${fmtPct(c.rect.x2, 0)}, y ${fmtPct(c.rect.y1, 0)}–${fmtPct(c.rect.y2, 0)}`;
  // each square is drawn at 1/(overlaps) opacity so overlapping squares add up to their mean
  const overlap = Math.max(1, Math.round((s.size / s.stride) ** 2));
  return (
    <div data-testid="study-occlusion-result">
      <p className="small">
        Unoccluded: {fmtPrice(s.base.medianPrice)}
        {s.base.binMedian !== null ? ` (bins' median ${fmtPrice(s.base.binMedian)})` : ''}, {s.base.makeModel} {fmtPct(s.base.makeModelP)}, year {s.base.year} {fmtPct(s.base.yearP)} · {s.rows}×{s.cols} positions
      </p>
      <div style={{ position: 'relative', width: '100%', maxWidth: 560 }}>
        <svg viewBox={`0 0 ${s.width} ${s.height}`} style={{ width: '100%', display: 'block' }} data-testid="study-heatmap" data-cells={s.cells.length} data-target={target}>
          <image href={s.image} width={s.width} height={s.height} />
          {s.cells.map((c, i) => {
            const v = value(c) / max;
            return (
              <rect
                key={i}
                x={c.rect.x1 * s.width}
                y={c.rect.y1 * s.height}
                width={(c.rect.x2 - c.rect.x1) * s.width}
                height={(c.rect.y2 - c.rect.y1) * s.height}
                fill={v > 0 ? '#dc2626' : '#2563eb'}
                fillOpacity={(0.75 * Math.abs(v)) / overlap}
              >
                <title>{`${where(c)}: ${fmt(value(c))}`}</title>
              </rect>
            );
          })}
        </svg>
      </div>
      <p className="muted small">Red: hiding the region raised the value; blue: it lowered it. Regions outside the model's centre square change nothing.</p>
      <h4>Most influential regions</h4>
      <ol data-testid="study-regions">
        {top.map((c, i) => (
          <li key={i}>
            {where(c)}: {fmt(value(c))}
          </li>
        ))}
      </ol>
    </div>
  );
}

// ---- before / after ----

function DiffRow({ label, a, b, changed }: { label: string; a: string; b: string; changed?: boolean }) {
  return (
    <tr>
      <td>{label}</td>
      <td>{a}</td>
      <td className={changed ? 'predict-diff' : ''}>{b}</td>
    </tr>
  );
}

export function BeforeAfter({ before, after, diff, testid }: { before: Prediction; after: Prediction; diff: StudyDiff; testid: string }) {
  return (
    <table className="table" data-testid={testid}>
      <thead>
        <tr>
          <th />
          <th>before</th>
          <th>after</th>
        </tr>
      </thead>
      <tbody>
        <DiffRow label="median price" a={fmtPrice(before.medianPrice)} b={`${fmtPrice(after.medianPrice)} (${signed(diff.medianPrice)})`} changed={Math.abs(diff.medianPrice) > 1000} />
        {before.binPrice && after.binPrice && <DiffRow label="bins' median" a={fmtPrice(before.binPrice.median)} b={fmtPrice(after.binPrice.median)} changed={diff.binMedian !== null && Math.abs(diff.binMedian) > 1000} />}
        <DiffRow label="price-range shift" a="" b={fmtPct(diff.priceBinsTv)} changed={diff.priceBinsTv > 0.1} />
        <DiffRow label="top make/model" a={`${before.makeModels[0]?.label} ${fmtPct(before.makeModels[0]?.p)}`} b={`${after.makeModels[0]?.label} ${fmtPct(after.makeModels[0]?.p)}`} changed={diff.topMakeModelChanged} />
        <DiffRow label="top year" a={`${before.topYears[0]?.label} ${fmtPct(before.topYears[0]?.p)}`} b={`${after.topYears[0]?.label} ${fmtPct(after.topYears[0]?.p)}`} changed={diff.topYearChanged} />
      </tbody>
    </table>
  );
}

export function EditView({ s }: { s: EditStudy }) {
  return (
    <div data-testid="study-edit-result">
      <div style={{ display: 'grid', gridTemplateColumns: '1fr 1fr', gap: 12, maxWidth: 900 }}>
        <figure style={{ margin: 0 }}>
          <img src={s.beforeImage} alt="before" style={{ width: '100%' }} data-testid="study-edit-before" />
          <figcaption className="small">before: {fmtPrice(s.before.medianPrice)}</figcaption>
        </figure>
        <figure style={{ margin: 0 }}>
          <img src={s.afterImage} alt="after" style={{ width: '100%' }} data-testid="study-edit-after" />
          <figcaption className="small">
            after ({s.fill}
            {s.patchPath ? ` from ${s.patchPath}` : ''}): {fmtPrice(s.after.medianPrice)}
          </figcaption>
        </figure>
      </div>
      <BeforeAfter before={s.before} after={s.after} diff={s.diff} testid="study-edit-table" />
    </div>
  );
}

// ---- background swap ----

export function SwapView({ s }: { s: SwapStudy }) {
  return (
    <div data-testid="study-swap-result">
      <p className="small">
        Car box ({s.boxSource === 'detector' ? 'found by the car detector' : 'drawn'}) · original {fmtPrice(s.original.medianPrice)}, {s.original.makeModels[0]?.label}
      </p>
      {s.note && (
        <p className="muted small" data-testid="study-swap-note">
          {s.note}
        </p>
      )}
      <div className="predict-grid" data-testid="study-swap-grid" data-count={s.items.length}>
        {s.items.map((it) => (
          <div key={it.path} className="predict-card" data-testid="study-swap-item">
            {it.image ? <img src={it.image} alt="" style={{ width: '100%', display: 'block' }} /> : <div className="predict-thumb predict-thumb-empty" />}
            <div className="predict-card-body">
              <div className="predict-name" title={it.path}>
                {it.path.split(/[\\/]/).pop()}
              </div>
              {it.prediction ? (
                <>
                  <div className="predict-median" data-testid="study-swap-price">
                    {fmtPrice(it.prediction.medianPrice)}
                  </div>
                  <div className={`small${it.diff && Math.abs(it.diff.medianPrice) > 1000 ? ' predict-diff' : ''}`}>{it.diff ? signed(it.diff.medianPrice) : ''} vs original</div>
                  <div className={`small${it.diff?.topMakeModelChanged ? ' predict-diff' : ''}`}>
                    {it.prediction.makeModels[0]?.label} {fmtPct(it.prediction.makeModels[0]?.p)}
                  </div>
                </>
              ) : (
                <div className="predict-error">{it.error}</div>
              )}
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
