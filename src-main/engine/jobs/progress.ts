/** Rate (items/s) over a sliding window of progress samples, and the ETA it implies. */
export class RateMeter {
  private samples: Array<{ t: number; done: number }> = [];

  constructor(private readonly windowMs = 10_000) {}

  reset(): void {
    this.samples = [];
  }

  add(done: number, t = Date.now()): void {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = [];
    this.samples.push({ t, done });
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    if (dt < 0.2) return null;
    return (b.done - a.done) / dt;
  }

  eta(done: number, total: number | null | undefined): number | null {
    const r = this.rate();
    if (total == null || r == null || r <= 0) return null;
    return Math.max(0, (total - done) / r);
  }
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(s / 3600);
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatRate(rate: number | null | undefined, unit = '/s'): string {
  if (rate == null || !Number.isFinite(rate)) return `--${unit}`;
  return `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)}${unit}`;
}
