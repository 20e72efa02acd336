import { useCallback, useEffect, useState } from 'react';
import { api } from '../../api/client.ts';
import { useCall, useJobRefresh } from '../../hooks.ts';
import { fmtInt, fmtPct } from '../../format.ts';
import type { FilterMeter, LabelQueueItem, ThresholdCurvePoint } from '../../../../src-main/engine/api/contract/index.ts';
import { CarThumb } from '../../components/CarBox.tsx';

/**
 * The threshold: a slider over the fit's out-of-fold scores, the meter at it (CV FNR with its 90%
 * interval, bad removed, accuracy, the kept share of the applied scores), the warnings when the
 * labels are too few to trust it, "Choose" with its reason, and the images either side of it,
 * labelled right there.
 */
export function ThresholdPanel({
  min,
  max,
  initial,
  onSaved,
  onLabelled,
}: {
  min: number;
  max: number;
  initial: number;
  onSaved: () => void;
  onLabelled: () => void;
}) {
  const call = useCall();
  const [t, setT] = useState(initial);
  const [meter, setMeter] = useState<FilterMeter | null>(null);
  const [curve, setCurve] = useState<ThresholdCurvePoint[]>([]);
  const [near, setNear] = useState<{ above: LabelQueueItem[]; below: LabelQueueItem[] } | null>(null);
  const [fnr, setFnr] = useState(1);
  const [why, setWhy] = useState<string | null>(null);
  // an apply job that ends rescored the dataset: the kept share and the neighbours change, the slider stays
  const [scoredVersion, setScoredVersion] = useState(0);
  useJobRefresh(['filter-apply'], () => setScoredVersion((v) => v + 1));

  // Step 1: the curve of the fit; the meter and the neighbours at the slider (debounced).
  useEffect(() => {
    void call('filter.curve', { points: 120 }).then((c) => c && setCurve(c));
  }, [call, initial]);
  const loadNear = useCallback(() => void call('filter.near', { threshold: t, n: 6 }).then((n) => n && setNear(n)), [call, t]);
  useEffect(() => {
    const id = setTimeout(() => {
      void call('filter.meter', { threshold: t }).then((m) => m && setMeter(m));
      loadNear();
    }, 60);
    return () => clearTimeout(id);
  }, [call, t, loadNear, scoredVersion]);

  // Step 2: "Choose" moves the slider and says why it picked that threshold.
  const choose = async () => {
    const m = await call('filter.chooseThreshold', { maxFnr: fnr / 100 });
    if (!m) return;
    setT(m.threshold);
    setWhy(m.explanation);
  };
  const labelNear = async (imageId: number, label: 'good' | 'bad') => {
    if (await call('filter.setLabels', { imageIds: [imageId], label })) {
      loadNear();
      onLabelled();
    }
  };

  // a margin past the extreme scores, so the ends of the slider keep everything / nothing
  const pad = (Math.max(max, initial) - Math.min(min, initial)) * 0.02 || 0.01;
  const lo = Math.min(min, initial) - pad;
  const hi = Math.max(max, initial) + pad;
  return (
    <section className="card" data-testid="threshold-panel">
      <h3>Threshold</h3>
      <div className="row">
        <input
          type="range"
          min={lo}
          max={hi}
          step={(hi - lo) / 500}
          value={t}
          onChange={(e) => {
            setT(Number(e.target.value));
            setWhy(null);
          }}
          style={{ flex: 1 }}
          data-testid="threshold-slider"
          aria-label="threshold"
        />
        <code data-testid="threshold-value">{t.toFixed(3)}</code>
      </div>
      <Meter meter={meter} maxFnr={fnr / 100} />
      <Curve curve={curve} t={t} />
      <div className="row">
        <label className="row">
          largest threshold with FNR under
          <input
            type="number"
            min={0}
            max={100}
            step={0.5}
            value={fnr}
            onChange={(e) => setFnr(Number(e.target.value))}
            style={{ width: 70 }}
          />
          %
        </label>
        <button data-testid="choose-threshold" onClick={() => void choose()}>
          Choose
        </button>
        <button
          className="primary"
          data-testid="save-threshold"
          onClick={() => void call('filter.setThreshold', { threshold: t }).then(() => onSaved())}
        >
          Save threshold
        </button>
      </div>
      {why && (
        <p className="small" data-testid="choose-explanation" style={{ borderLeft: '3px solid var(--accent)', paddingLeft: 8 }}>
          {why}
        </p>
      )}
      {near && (
        <div className="grid2">
          <NearRow title="Just above (kept)" items={near.above} onLabel={labelNear} />
          <NearRow title="Just below (removed)" items={near.below} onLabel={labelNear} />
        </div>
      )}
    </section>
  );
}

/** The meter: each figure with how sure it is, and the warnings when it is less sure than it looks. */
function Meter({ meter, maxFnr }: { meter: FilterMeter | null; maxFnr: number }) {
  const ci = meter?.fnrInterval;
  // the interval reaching past the budget is a warning even when the estimate is inside it
  const uncertain = ci ? ci.upper > maxFnr : false;
  return (
    <>
      <div className="cards" data-testid="meter">
        <MeterBox
          label="false-negative rate (good thrown away, 10-fold CV)"
          value={fmtPct(meter?.falseNegativeRate, 2)}
          detail={
            ci ? `90% CI ${fmtPct(ci.lower, 1)}–${fmtPct(ci.upper, 1)} · ${fmtInt(ci.goodRemoved)} of ${fmtInt(ci.good)} good` : undefined
          }
          testid="meter-fnr"
          warn={(meter?.falseNegativeRate ?? 0) > maxFnr || uncertain}
        />
        <MeterBox label="bad images removed" value={fmtPct(meter?.badRemoved)} testid="meter-bad" />
        <MeterBox label="accuracy (CV)" value={fmtPct(meter?.accuracy)} testid="meter-acc" />
        <MeterBox
          label={`dataset kept${meter?.scored ? ` (of ${fmtInt(meter.scored)} scored)` : ' (apply to see)'}`}
          value={fmtPct(meter?.keptShare)}
          testid="meter-kept"
        />
      </div>
      {meter && meter.warnings.length > 0 && (
        <ul
          data-testid="meter-warnings"
          className="small"
          style={{ borderLeft: '3px solid var(--warn)', paddingLeft: 24, margin: '8px 0' }}
        >
          {meter.warnings.map((w) => (
            <li key={w} data-testid="meter-warning">
              {w}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function MeterBox({
  label,
  value,
  detail,
  testid,
  warn,
}: {
  label: string;
  value: string;
  detail?: string;
  testid: string;
  warn?: boolean;
}) {
  return (
    <div
      className="metric"
      data-testid={testid}
      data-warn={warn ? 'true' : undefined}
      style={warn ? { borderColor: 'var(--bad)' } : undefined}
    >
      <div className="metric-value">{value}</div>
      {detail && (
        <div className="small" data-testid={`${testid}-ci`}>
          {detail}
        </div>
      )}
      <div className="metric-label">{label}</div>
    </div>
  );
}

/** The scored images nearest the threshold on one side, each labelled good or bad in place. */
function NearRow({
  title,
  items,
  onLabel,
}: {
  title: string;
  items: LabelQueueItem[];
  onLabel: (imageId: number, label: 'good' | 'bad') => void;
}) {
  return (
    <div>
      <h4 className="muted">{title}</h4>
      <div className="thumbs">
        {items.map((it) => (
          <div
            key={it.imageId}
            data-testid="near-item"
            data-image-id={it.imageId}
            data-label={it.label ?? ''}
            style={{ display: 'grid', gap: 2 }}
          >
            <CarThumb
              src={api.imageUrl(it.key)}
              car={it.car}
              className={it.label ?? ''}
              title={`score ${it.score?.toFixed(3)}`}
              testid="near-thumb"
            />
            <div className="row" style={{ gap: 2 }}>
              <button className="small" data-testid="near-good" onClick={() => onLabel(it.imageId, 'good')} disabled={it.label === 'good'}>
                good
              </button>
              <button className="small" data-testid="near-bad" onClick={() => onLabel(it.imageId, 'bad')} disabled={it.label === 'bad'}>
                bad
              </button>
            </div>
          </div>
        ))}
        {items.length === 0 && <p className="muted small">none (apply the filter to score the dataset)</p>}
      </div>
    </div>
  );
}

function Curve({ curve, t }: { curve: ThresholdCurvePoint[]; t: number }) {
  if (curve.length < 2) return null;
  const W = 640;
  const H = 180;
  const x0 = curve[0]!.threshold;
  const x1 = curve[curve.length - 1]!.threshold;
  const sx = (x: number) => ((x - x0) / (x1 - x0 || 1)) * (W - 40) + 30;
  const sy = (y: number) => H - 20 - y * (H - 30);
  const line = (f: (p: ThresholdCurvePoint) => number) =>
    curve.map((p, i) => `${i ? 'L' : 'M'}${sx(p.threshold).toFixed(1)},${sy(f(p)).toFixed(1)}`).join('');
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" data-testid="threshold-curve">
      <path d={line((p) => p.falseNegativeRate)} stroke="var(--bad)" fill="none" strokeWidth={2} />
      <path d={line((p) => p.badRemoved)} stroke="var(--good)" fill="none" strokeWidth={2} />
      <path d={line((p) => p.accuracy)} stroke="var(--accent)" fill="none" strokeWidth={2} />
      <line x1={sx(t)} x2={sx(t)} y1={5} y2={H - 20} stroke="var(--text)" strokeDasharray="4 3" />
      <text x={30} y={H - 4} fill="var(--muted)" fontSize={11}>
        threshold {x0.toFixed(2)} … {x1.toFixed(2)} — red FNR, green bad removed, blue accuracy
      </text>
    </svg>
  );
}
