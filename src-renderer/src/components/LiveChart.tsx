import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  dash?: boolean;
  /** [step, value] pairs, steps ascending. */
  points: Array<[number, number]>;
}

/** A streaming line chart (uPlot): series of (step, value) merged on one step axis. */
export function LiveChart({ title, series, height = 220, testid }: { title: string; series: Series[]; height?: number; testid?: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => `${s.label}|${s.color}|${s.dash ? 1 : 0}`).join(';');

  useEffect(() => {
    if (!el.current) return;
    const opts: uPlot.Options = {
      title,
      width: el.current.clientWidth || 600,
      height,
      scales: { x: { time: false } },
      axes: [
        { stroke: '#8b95a3', grid: { stroke: '#2a323d' } },
        { stroke: '#8b95a3', grid: { stroke: '#2a323d' } },
      ],
      series: [{ label: 'step' }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, dash: s.dash ? [5, 4] : undefined, spanGaps: true }))],
      legend: { live: false },
    };
    plot.current = new uPlot(opts, merge(series), el.current);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: el.current?.clientWidth || 600, height }));
    ro.observe(el.current);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // rebuilt when the set of series changes; data updates go through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, title, height]);

  useEffect(() => {
    plot.current?.setData(merge(series));
  }, [series]);

  const n = series.reduce((a, s) => a + s.points.length, 0);
  return <div ref={el} className="live-chart" data-testid={testid} data-points={n} />;
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
