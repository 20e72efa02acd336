// Calibration figures by their definitions, for the eval tests to check the engine's against.

/** Temperature scaling by its definition: q ∝ p^(1/T) per row. */
export function scaledByDefinition(p: Float32Array, C: number, T: number): Float64Array {
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length / C; i++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += out[i * C + c] = Math.pow(p[i * C + c]!, 1 / T);
    for (let c = 0; c < C; c++) out[i * C + c]! /= s;
  }
  return out;
}

/** ECE over 15 equal-width bins of top-1 confidence, and mean cross-entropy, of the labelled rows: by the definition. */
export function eceByDefinition(q: ArrayLike<number>, labels: Int32Array, C: number): { ece: number; ce: number; top1: number } {
  const bins = Array.from({ length: 15 }, () => ({ n: 0, conf: 0, right: 0 }));
  let n = 0;
  let ce = 0;
  let top1 = 0;
  labels.forEach((y, i) => {
    if (y < 0) return;
    let best = 0;
    for (let c = 1; c < C; c++) if (q[i * C + c]! > q[i * C + best]!) best = c;
    const conf = q[i * C + best]!;
    const b = bins[Math.min(14, Math.floor(conf * 15))]!;
    b.n++;
    b.conf += conf;
    b.right += best === y ? 1 : 0;
    top1 += best === y ? 1 : 0;
    ce -= Math.log(Math.max(q[i * C + y]!, 1e-7));
    n++;
  });
  return { ece: bins.reduce((a, b) => a + (b.n ? (b.n / n) * Math.abs(b.right / b.n - b.conf / b.n) : 0), 0), ce: ce / n, top1: top1 / n };
}
