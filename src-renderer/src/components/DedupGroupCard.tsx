import { api } from '../api/client.ts';
import type { DedupGroup, DedupMember } from '../../../src-main/engine/api/contract/index.ts';

type Action = 'keep' | 'drop' | null;

export interface DedupGroupActions {
  /** The whole group: keep all, drop all, or back to the policy (null). */
  onOverride: (action: Action) => void;
  /** One photo: keep, drop, or back to the group's choice (null). */
  onDecide: (imageId: number, action: Action) => void;
  onKeepBest: () => void;
  /** Opens a listing (its row id) in the studio. */
  onOpenListing: (listingRowId: number) => void;
}

const kb = (bytes: number | null) => (bytes == null ? '' : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${bytes} B`);

/**
 * One duplicate group for review: its photos side by side, the best copy (the representative)
 * first, each with its size, its distance to the best copy, whether training uses it and why
 * not, its own keep/drop, and the listings it comes from (opened inside the studio).
 */
export function DedupGroupCard({ group: g, actions }: { group: DedupGroup; actions: DedupGroupActions }) {
  const bestOnly = g.members.length === g.size && g.members.every((m) => m.excluded === !m.representative);
  return (
    <div className="dup-group" data-testid={`dup-group-${g.id}`} data-override={g.override ?? ''} data-representative={g.representative}>
      <div className="dup-head">
        <span>
          <b>{g.size} images</b> · {g.listings} listing{g.listings === 1 ? '' : 's'} · {g.method}
          {g.override && <span className={`badge dup-override-${g.override}`}> {g.override === 'keep' ? 'kept by you' : 'dropped by you'}</span>}
          {g.decisions > 0 && <span className="badge dup-decided"> {g.decisions} photo choice{g.decisions === 1 ? '' : 's'} of yours</span>}
        </span>
        <span className="row">
          <button data-testid="dup-keep-best" disabled={bestOnly && g.decisions === g.size} onClick={actions.onKeepBest} title="Keep the largest, sharpest copy and drop the others">
            Keep the best copy
          </button>
          <button data-testid="dup-keep" disabled={g.override === 'keep' && g.decisions === 0} onClick={() => actions.onOverride('keep')}>
            Keep all
          </button>
          <button data-testid="dup-drop" disabled={g.override === 'drop' && g.decisions === 0} onClick={() => actions.onOverride('drop')}>
            Drop all
          </button>
          {(g.override || g.decisions > 0) && (
            <button className="link" data-testid="dup-clear" onClick={() => actions.onOverride(null)}>
              back to policy
            </button>
          )}
        </span>
      </div>
      <div className="dup-members">
        {g.members.map((m) => (
          <MemberCard key={m.imageId} m={m} method={g.method} actions={actions} />
        ))}
        {g.size > g.members.length && <div className="muted small dup-more">+{g.size - g.members.length} more</div>}
      </div>
    </div>
  );
}

function MemberCard({ m, method, actions }: { m: DedupMember; method: DedupGroup['method']; actions: DedupGroupActions }) {
  return (
    <figure
      className={`dup-member ${m.excluded ? 'excluded' : 'kept'}${m.representative ? ' best' : ''}`}
      data-testid={`dup-member-${m.imageId}`}
      data-excluded={m.excluded ? '1' : '0'}
      data-decision={m.decision ?? ''}
      data-best={m.representative ? '1' : '0'}
      title={m.excludedReason ?? 'kept for training'}
    >
      <img src={api.imageUrl(m.key)} alt={`image ${m.imageId}`} loading="lazy" />
      <figcaption className="small">
        <div className="dup-status">
          <span className={m.excluded ? 'dup-x' : 'dup-ok'}>{m.excluded ? 'excluded' : 'kept'}</span>
          {m.representative && <span className="badge dup-best"> best copy</span>}
          {m.decision && <span className="muted"> · your choice</span>}
        </div>
        <div className="muted">
          {m.width && m.height ? `${m.width}×${m.height}` : 'size unknown'} · {kb(m.bytes)}
          {method === 'near' && !m.representative && <> · d {m.distance}</>}
        </div>
        {m.excluded && m.excludedReason && <div className="muted dup-reason">{m.excludedReason}</div>}
        <div className="row dup-photo-actions">
          <button data-testid="dup-photo-keep" disabled={m.decision === 'keep'} onClick={() => actions.onDecide(m.imageId, 'keep')}>
            Keep
          </button>
          <button data-testid="dup-photo-drop" disabled={m.decision === 'drop'} onClick={() => actions.onDecide(m.imageId, 'drop')}>
            Drop
          </button>
          {m.decision && (
            <button className="link" data-testid="dup-photo-clear" onClick={() => actions.onDecide(m.imageId, null)}>
              undo
            </button>
          )}
        </div>
        {m.listings.length === 0 && <div className="muted">no listing</div>}
        {m.listings.map((l) => (
          <div key={l.id} className="dup-listing">
            <button className="link" data-testid="dup-listing" data-listing={l.id} title={`open listing ${l.listingId} in the studio`} onClick={() => actions.onOpenListing(l.id)}>
              {l.title ?? `listing ${l.listingId}`}
            </button>
          </div>
        ))}
      </figcaption>
    </figure>
  );
}
