import type { TrainDatasetSummary } from '../../../src-main/engine/api/contract/index.ts';
import { fmtInt } from '../format.ts';

const HEADS: Array<['price' | 'makeModel' | 'year', string]> = [
  ['price', 'price range + median price'],
  ['makeModel', 'make/model'],
  ['year', 'year'],
];

/** How the training set is split, and per head how many training and test photos carry its label. */
export function LabelCounts({ d }: { d: TrainDatasetSummary }) {
  // an engine from before per-head counts sends none: say nothing rather than zeros
  if (!d.labelCounts) return null;
  return (
    <section className="card" data-testid="train-labels" data-split={d.split}>
      <h3>Labels per head</h3>
      <p className="muted small" data-testid="train-split">
        {d.split === 'listing'
          ? 'Split by listing: no car in both sets (all photos of a listing are on the same side).'
          : 'Split by photo: photos of one car can be in both sets, so test figures flatter the model.'}{' '}
        <span data-testid="train-year-range">
          {d.yearRange ? `Years ${d.yearRange[0]}–${d.yearRange[1]} (the year classes span these).` : 'No photo has a year.'}
        </span>
      </p>
      <table data-testid="train-label-counts">
        <thead>
          <tr>
            <th>head</th>
            <th>training photos with the label</th>
            <th>test photos with the label</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {HEADS.map(([h, name]) => {
            const c = d.labelCounts[h];
            return (
              <tr key={h} data-testid={`train-labels-${h}`} data-train={c.train} data-test={c.test}>
                <td>{name}</td>
                <td>{fmtInt(c.train)}</td>
                <td>{fmtInt(c.test)}</td>
                <td className={c.train === 0 ? 'job-error' : 'muted small'}>
                  {c.train === 0
                    ? 'no labels — this head will not train'
                    : c.test === 0
                      ? 'no test labels: its test figures will be empty'
                      : ''}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

export function ClassLists({ d }: { d: TrainDatasetSummary }) {
  return (
    <section className="card">
      <h3>Classes</h3>
      <div className="grid3">
        <ClassTable title="Price ranges" testId="price-classes" rows={d.priceBins.map((b) => ({ label: b.label, count: b.count }))} />
        <ClassTable
          title={`Top make/models (${d.makeModels.length} classes + Unknown: ${fmtInt(d.unknownMakeModels)})`}
          rows={d.makeModels.slice(0, 15).map((m) => ({ label: `${m.make} ${m.model}`, count: m.count }))}
        />
        <ClassTable
          title={`Years (${d.years.length} with images${d.yearRange ? `, of ${d.yearRange[0]}..${d.yearRange[1]}` : ''} + unknown)`}
          testId="year-classes"
          rows={d.years}
        />
      </div>
    </section>
  );
}

/** One label space's classes with their image counts. */
function ClassTable({ title, rows, testId }: { title: string; rows: ReadonlyArray<{ label: string; count: number }>; testId?: string }) {
  return (
    <div>
      <h4 className="muted">{title}</h4>
      <table data-testid={testId}>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label}>
              <td>{r.label}</td>
              <td>{fmtInt(r.count)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
