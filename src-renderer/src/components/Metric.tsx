import { fmtInt } from '../format.ts';

/** One figure of a stage's header cards. */
export function Metric({
  label,
  value,
  testid,
  hint,
}: {
  label: string;
  value: number | null | undefined;
  testid?: string;
  hint?: string;
}) {
  return (
    <div className="metric" data-testid={testid} title={hint}>
      <div className="metric-value">{fmtInt(value)}</div>
      <div className="metric-label">{label}</div>
    </div>
  );
}
