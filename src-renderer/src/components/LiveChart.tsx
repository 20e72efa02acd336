import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  dash?: boolean;
  /** [step, value] pairs, steps ascending. */
  points: Array<[number, number]>;
}

/** What the hover tooltip shows: the step under the cursor and each series' value there. */
interface Hover {
  step: number;
  left: number;
  top: number;
  rows: Array<{ label: string; color: string; dash: boolean; value: number | null; step: number | null }>;
}

/**
 * A streaming line chart (uPlot): series of (step, value) merged on one step axis. Hovering shows
 * every series' value at the step under the cursor (a series without a point there shows its
 * nearest point and that point's step); `logX` puts the steps on a log scale (steps below 1 are
 * left out there). The axes size themselves to their longest label.
 */
export function LiveChart({
  title,
  series,
  height = 220,
  testid,
  logX = false,
  format = fmtValue,
}: {
  title: string;
  series: Series[];
  height?: number;
  testid?: string;
  logX?: boolean;
  format?: (v: number) => string;
}) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useRef<Series[]>(series);
  const [hover, setHover] = useState<Hover | null>(null);
  const shape = series.map((s) => `${s.label}|${s.color}|${s.dash ? 1 : 0}`).join(';');
  const shown = logX ? series.map((s) => ({ ...s, points: s.points.filter((p) => p[0] >= 1) })) : series;
  data.current = shown;

  useEffect(() => {
    if (!el.current) return;
    const opts: uPlot.Options = {
      title,
      width: el.current.clientWidth || 600,
      height,
      scales: { x: { time: false, distr: logX ? 3 : 1 } },
      axes: [
        { stroke: '#8b95a3', grid: { stroke: '#2a323d' }, size: fitAxis, label: logX ? 'step (log)' : 'step', labelSize: 16 },
        { stroke: '#8b95a3', grid: { stroke: '#2a323d' }, size: fitAxis, values: (_u, vals) => vals.map((v) => format(v)) },
      ],
      series: [
        { label: 'step' },
        ...data.current.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, dash: s.dash ? [5, 4] : undefined, spanGaps: true })),
      ],
      legend: { live: false },
      hooks: {
        setCursor: [(u) => setHover(hoverAt(u, data.current))],
      },
    };
    plot.current = new uPlot(opts, merge(data.current), el.current);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: el.current?.clientWidth || 600, height }));
    ro.observe(el.current);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
      setHover(null);
    };
    // rebuilt when the set of series changes; data updates go through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, title, height, logX]);

  useEffect(() => {
    plot.current?.setData(merge(data.current));
  }, [series, logX]);

  const n = shown.reduce((a, s) => a + s.points.length, 0);
  return (
    <div className="live-chart" data-testid={testid} data-points={n} data-log-x={logX ? 1 : 0} style={{ position: 'relative' }}>
      <div ref={el} />
      {hover && <Tooltip hover={hover} format={format} />}
    </div>
  );
}

function Tooltip({ hover, format }: { hover: Hover; format: (v: number) => string }) {
  return (
    <div
      className="chart-tooltip"
      data-testid="chart-tooltip"
      data-step={hover.step}
      style={{
        position: 'absolute',
        left: hover.left,
        top: hover.top,
        zIndex: 5,
        pointerEvents: 'none',
        background: 'var(--panel2, #1c222b)',
        border: '1px solid var(--border, #2a323d)',
        borderRadius: 6,
        padding: '4px 8px',
        fontSize: 11,
        whiteSpace: 'nowrap',
      }}
    >
      <div>
        <strong>step {hover.step}</strong>
      </div>
      {hover.rows.map((r) => (
        <div key={r.label} data-testid="tooltip-row" data-series={r.label} data-color={r.color} data-value={r.value ?? ''} data-at-step={r.step ?? ''}>
          <span style={{ color: r.color }}>{r.dash ? '╌╌' : '──'}</span> {r.label}: <strong>{r.value == null ? '—' : format(r.value)}</strong>
          {r.step != null && r.step !== hover.step ? <span className="muted"> (step {r.step})</span> : null}
        </div>
      ))}
    </div>
  );
}

/** The tooltip for the cursor's data index: each visible series' point at that step, else its nearest. */
function hoverAt(u: uPlot, series: Series[]): Hover | null {
  const idx = u.cursor.idx;
  const xs = u.data[0];
  if (idx == null || !xs || idx >= xs.length || u.cursor.left == null || u.cursor.left < 0) return null;
  const step = xs[idx]!;
  const rows = series.flatMap((s, i) => {
    if (u.series[i + 1]?.show === false) return [];
    const near = nearest(s.points, step);
    return [{ label: s.label, color: s.color, dash: Boolean(s.dash), value: near ? near[1] : null, step: near ? near[0] : null }];
  });
  // beside the cursor, on the side with more room
  const over = u.over.getBoundingClientRect();
  const box = (u.root.parentElement?.parentElement ?? u.root).getBoundingClientRect();
  const x = over.left - box.left + u.cursor.left;
  const y = over.top - box.top + (u.cursor.top ?? 0);
  const left = u.cursor.left > over.width / 2 ? Math.max(0, x - 12 - 260) : x + 12;
  return { step, left, top: Math.max(0, y - 10), rows };
}

/** The point of `pts` (steps ascending) with the step nearest `step` (the earlier on a tie). */
function nearest(pts: Array<[number, number]>, step: number): [number, number] | null {
  if (!pts.length) return null;
  let lo = 0;
  let hi = pts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pts[mid]![0] < step) lo = mid + 1;
    else hi = mid;
  }
  const after = pts[lo]!;
  const before = lo > 0 ? pts[lo - 1]! : after;
  return step - before[0] <= after[0] - step ? before : after;
}

/** Axis room for its longest tick label, so labels are never cut. */
function fitAxis(u: uPlot, values: string[] | null, axisIdx: number, cycleNum: number): number {
  const axis = u.axes[axisIdx]!;
  // uPlot calls this until the size settles; after two rounds keep the last size
  if (cycleNum > 1) return (axis as unknown as { _size: number })._size;
  const base = (axis.ticks?.size ?? 10) + (axis.gap ?? 5) + (axisIdx === 0 ? 16 : 0);
  const longest = (values ?? []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), '');
  if (!longest) return base;
  u.ctx.font = (axis.font as unknown as [string] | undefined)?.[0] ?? '12px system-ui';
  const px = u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
  return Math.ceil(base + (axisIdx === 0 ? 14 : px + 4));
}

/** Compact tick and tooltip numbers: 0.1234, 12.3, 1.2k, 3.4M. */
export function fmtValue(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (a >= 1000) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a === 0) return '0';
  return v.toFixed(a >= 1 ? 2 : 3);
}

function merge(series: Series[]): uPlot.AlignedData {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col: Array<number | null> = new Array(xs.length).fill(null);
    for (const [x, y] of s.points) col[index.get(x)!] = y;
    return col;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}
