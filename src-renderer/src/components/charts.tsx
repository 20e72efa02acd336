import type { ReactNode } from 'react';
import { fmtInt, fmtPct } from '../format.ts';

/** Simple SVG charts for the studio: real data only; with none, they say so. */

const W = 600;
const H = 190;
const PAD = { left: 44, right: 10, top: 10, bottom: 34 };

export interface Bar {
  label: string;
  value: number;
  /** Tooltip; defaults to "label: value". */
  title?: string;
}

export function EmptyChart({ children }: { children?: ReactNode }) {
  return (
    <div className="chart-empty" data-testid="chart-empty">
      {children ?? 'no listings yet — start a scrape'}
    </div>
  );
}

/** Nice round upper bound and tick step for an axis from 0 to max. */
function niceScale(max: number, ticks = 4): { top: number; step: number } {
  if (max <= 0) return { top: 1, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const top = Math.max(step, Math.ceil(max / step) * step);
  return { top, step: step < 1 ? 1 : step };
}

function YAxis({ top, step }: { top: number; step: number }) {
  const plotH = H - PAD.top - PAD.bottom;
  const lines: ReactNode[] = [];
  for (let v = 0; v <= top + 1e-9; v += step) {
    const y = PAD.top + plotH - (v / top) * plotH;
    lines.push(
      <g key={v}>
        <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} className="chart-grid" />
        <text x={PAD.left - 6} y={y + 4} textAnchor="end" className="chart-tick">
          {fmtInt(Math.round(v))}
        </text>
      </g>,
    );
  }
  return <>{lines}</>;
}

/** Vertical bars, one per bin; at most ~12 x labels are written. */
export function BarChart({ bars, testid, ariaLabel }: { bars: Bar[]; testid?: string; ariaLabel: string }) {
  if (bars.length === 0 || bars.every((b) => b.value === 0)) return <EmptyChart />;
  const max = Math.max(...bars.map((b) => b.value));
  const { top, step } = niceScale(max);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / bars.length;
  const labelEvery = Math.max(1, Math.ceil(bars.length / 12));
  const barW = Math.max(1, Math.min(bw * 0.8, 48));
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label={ariaLabel}
      data-testid={testid}
      data-bars={bars.length}
      data-sum={bars.reduce((s, b) => s + b.value, 0)}
    >
      <YAxis top={top} step={step} />
      {bars.map((b, i) => {
        const h = (b.value / top) * plotH;
        const x = PAD.left + i * bw;
        return (
          <g key={i}>
            <rect x={x + (bw - barW) / 2} y={PAD.top + plotH - h} width={barW} height={h} className="chart-bar">
              <title>{b.title ?? `${b.label}: ${fmtInt(b.value)}`}</title>
            </rect>
            {i % labelEvery === 0 && (
              <text x={x + bw / 2} y={H - PAD.bottom + 14} textAnchor="middle" className="chart-tick">
                {b.label}
              </text>
            )}
          </g>
        );
      })}
      <line x1={PAD.left} x2={W - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} className="chart-axis" />
    </svg>
  );
}

/** A line over time (or any increasing x), with its area shaded. */
export function LineChart({
  points,
  formatX,
  testid,
  ariaLabel,
}: {
  points: Array<{ x: number; y: number }>;
  formatX: (x: number) => string;
  testid?: string;
  ariaLabel: string;
}) {
  if (points.length === 0) return <EmptyChart />;
  const max = Math.max(...points.map((p) => p.y));
  const { top, step } = niceScale(max);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x0 = points[0]!.x;
  const x1 = points[points.length - 1]!.x;
  const sx = (x: number) => PAD.left + (x1 === x0 ? plotW / 2 : ((x - x0) / (x1 - x0)) * plotW);
  const sy = (y: number) => PAD.top + plotH - (y / top) * plotH;
  const line = points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
  const area = `${sx(x0).toFixed(1)},${sy(0)} ${line} ${sx(x1).toFixed(1)},${sy(0)}`;
  const labels =
    points.length === 1 ? [points[0]!] : [points[0]!, points[Math.floor((points.length - 1) / 2)]!, points[points.length - 1]!];
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label={ariaLabel}
      data-testid={testid}
      data-points={points.length}
      data-sum={points.reduce((s, p) => s + p.y, 0)}
    >
      <YAxis top={top} step={step} />
      <polygon points={area} className="chart-area" />
      <polyline points={line} className="chart-line" />
      {points.length <= 60 &&
        points.map((p, i) => (
          <circle key={i} cx={sx(p.x)} cy={sy(p.y)} r={2.5} className="chart-dot">
            <title>{`${formatX(p.x)}: ${fmtInt(p.y)}`}</title>
          </circle>
        ))}
      {labels.map((p, i) => (
        <text
          key={i}
          x={sx(p.x)}
          y={H - PAD.bottom + 14}
          textAnchor={i === 0 && labels.length > 1 ? 'start' : i === labels.length - 1 && labels.length > 1 ? 'end' : 'middle'}
          className="chart-tick"
        >
          {formatX(p.x)}
        </text>
      ))}
      <line x1={PAD.left} x2={W - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} className="chart-axis" />
    </svg>
  );
}

/** A ranked table with a share bar per row (the original write-up's make/model table). */
export function ShareTable({
  rows,
  testid,
  nameHeader,
}: {
  rows: Array<{ name: string; count: number; share: number }>;
  testid?: string;
  nameHeader: string;
}) {
  if (rows.length === 0) return <EmptyChart />;
  const maxShare = Math.max(...rows.map((r) => r.share));
  return (
    <table className="share-table" data-testid={testid}>
      <thead>
        <tr>
          <th>#</th>
          <th>{nameHeader}</th>
          <th className="num">Listings</th>
          <th>Share</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={r.name}>
            <td className="muted">{i + 1}</td>
            <td>{r.name}</td>
            <td className="num">{fmtInt(r.count)}</td>
            <td className="share-cell">
              <div className="share-bar" style={{ width: `${maxShare > 0 ? (100 * r.share) / maxShare : 0}%` }} />
              <span>{fmtPct(r.share)}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
