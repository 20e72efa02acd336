import { useCallback, useEffect, useState } from 'react';
import { api } from '../../api/client.ts';
import { useCall } from '../../hooks.ts';
import { fmtInt } from '../../format.ts';
import type { LabelledItem } from '../../../../src-main/engine/api/contract/index.ts';
import { CarThumb } from '../../components/CarBox.tsx';

type Filter = 'all' | 'good' | 'bad' | 'imported' | 'ui';
const FILTERS: Array<{ value: Filter; text: string }> = [
  { value: 'all', text: 'all labels' },
  { value: 'good', text: 'good' },
  { value: 'bad', text: 'bad' },
  { value: 'imported', text: 'imported' },
  { value: 'ui', text: 'labelled here' },
];
const PAGE = 24;

/** The labels given so far, newest first, filtered by label or source; relabel or clear one from here (undoable like any label). */
export function LabelsView({ version, onLabelled }: { version: number; onLabelled: () => void }) {
  const call = useCall();
  const [filter, setFilter] = useState<Filter>('all');
  const [offset, setOffset] = useState(0);
  const [data, setData] = useState<{ total: number; items: LabelledItem[] } | null>(null);
  const load = useCallback(async () => {
    const r = await call('filter.labels', { filter, limit: PAGE, offset });
    if (r) setData(r);
  }, [call, filter, offset]);
  useEffect(() => {
    void load();
  }, [load, version]);
  const relabel = async (imageId: number, label: 'good' | 'bad' | null) => {
    if (await call('filter.setLabels', { imageIds: [imageId], label })) onLabelled();
  };
  const total = data?.total ?? 0;
  return (
    <section className="card" data-testid="labels-view">
      <h3>Labels given</h3>
      <div className="row">
        <label className="row">
          show
          <select
            data-testid="labels-filter"
            value={filter}
            onChange={(e) => {
              setFilter(e.target.value as Filter);
              setOffset(0);
            }}
          >
            {FILTERS.map((f) => (
              <option key={f.value} value={f.value}>
                {f.text}
              </option>
            ))}
          </select>
        </label>
        <span className="muted small" data-testid="labels-total" data-total={total}>
          {fmtInt(total)} labels{total > PAGE ? ` · ${offset + 1}–${Math.min(total, offset + PAGE)}` : ''}
        </span>
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Newer
        </button>
        <button disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
          Older
        </button>
      </div>
      <div className="thumbs" style={{ marginTop: 8 }}>
        {data?.items.map((it) => (
          <div
            key={it.imageId}
            data-testid="labels-item"
            data-image-id={it.imageId}
            data-label={it.label}
            data-source={it.source}
            style={{ display: 'grid', gap: 2 }}
          >
            <CarThumb
              src={api.imageUrl(it.key)}
              car={it.car}
              className={it.label}
              title={`${it.label} · ${it.source === 'import' ? 'imported' : 'labelled here'}`}
            />
            <div className="row" style={{ gap: 2 }}>
              <button
                className="small"
                data-testid="relabel-good"
                disabled={it.label === 'good'}
                onClick={() => void relabel(it.imageId, 'good')}
              >
                good
              </button>
              <button
                className="small"
                data-testid="relabel-bad"
                disabled={it.label === 'bad'}
                onClick={() => void relabel(it.imageId, 'bad')}
              >
                bad
              </button>
              <button className="small" data-testid="relabel-clear" onClick={() => void relabel(it.imageId, null)}>
                clear
              </button>
            </div>
          </div>
        ))}
        {total === 0 && <p className="muted small">No labels {filter === 'all' ? 'yet' : 'of this kind'}.</p>}
      </div>
    </section>
  );
}
