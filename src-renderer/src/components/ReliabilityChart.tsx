import type { ReliabilityBin } from '../../../src-main/engine/api/contract/eval.ts';
import { fmtInt, fmtPct } from '../format.ts';
import { EmptyChart } from './charts.tsx';

const S = 220;
const PAD = { left: 36, right: 14, top: 8, bottom: 30 };

/**
 * A reliability diagram: for each confidence bin, the share of predictions that were right
 * (bar, and a dot at the bin's mean confidence); a calibrated model's dots lie on the diagonal.
 */
export function ReliabilityChart({ bins, testid, ariaLabel }: { bins: ReliabilityBin[]; testid?: string; ariaLabel: string }) {
  const used = bins.filter((b) => b.count > 0);
  if (used.length === 0) return <EmptyChart>no predictions to plot</EmptyChart>;
  const plot = S - PAD.left - PAD.right;
  const plotH = S - PAD.top - PAD.bottom;
  const sx = (v: number) => PAD.left + v * plot;
  const sy = (v: number) => PAD.top + plotH - v * plotH;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <svg
      className="chart reliability"
      viewBox={`0 0 ${S} ${S}`}
      role="img"
      aria-label={ariaLabel}
      data-testid={testid}
      data-bins={used.length}
      style={{ maxWidth: 300 }}
    >
      {ticks.map((t) => (
        <g key={t}>
          <line x1={PAD.left} x2={sx(1)} y1={sy(t)} y2={sy(t)} className="chart-grid" />
          <text x={PAD.left - 4} y={sy(t) + 4} textAnchor="end" className="chart-tick">
            {Math.round(100 * t)}
          </text>
          <text x={sx(t)} y={S - PAD.bottom + 12} textAnchor="middle" className="chart-tick">
            {Math.round(100 * t)}
          </text>
        </g>
      ))}
      <text x={sx(0.5)} y={S - 4} textAnchor="middle" className="chart-tick">
        confidence %
      </text>
      <text x={4} y={PAD.top + plotH / 2} textAnchor="middle" className="chart-tick" transform={`rotate(-90 8 ${PAD.top + plotH / 2})`}>
        right %
      </text>
      <line x1={sx(0)} y1={sy(0)} x2={sx(1)} y2={sy(1)} className="chart-axis" strokeDasharray="4 3" />
      {used.map((b, i) => (
        <g key={i} data-bin={i}>
          <rect
            x={sx(b.lo) + 1}
            y={sy(b.accuracy)}
            width={Math.max(1, sx(b.hi) - sx(b.lo) - 2)}
            height={sy(0) - sy(b.accuracy)}
            className="chart-bar"
            opacity={0.75}
          >
            <title>{`confidence ${fmtPct(b.lo, 0)}–${fmtPct(b.hi, 0)}: ${fmtInt(b.count)} predictions, ${fmtPct(b.accuracy)} right at ${fmtPct(b.confidence)} mean confidence`}</title>
          </rect>
          <circle cx={sx(b.confidence)} cy={sy(b.accuracy)} r={2.5} className="chart-dot" />
        </g>
      ))}
      <line x1={PAD.left} x2={sx(1)} y1={sy(0)} y2={sy(0)} className="chart-axis" />
    </svg>
  );
}
