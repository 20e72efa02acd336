import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../../api/client.ts';
import { useCall } from '../../hooks.ts';
import type { LabelHistoryResult, LabelQueueItem } from '../../../../src-main/engine/api/contract/index.ts';

export const COLS = 6;
const PAGE = 36;
/** How long the pointer rests on a thumbnail before its large preview opens. */
const HOVER_PREVIEW_MS = 600;
type Label = 'good' | 'bad';

/** Whether a key press belongs to a text field, a select or a button being typed into (not a labelling key). */
function typing(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return Boolean(t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable));
}

/**
 * The labelling grid: one page of unlabelled images, a cursor, a selection (shift-click a range,
 * Ctrl/Cmd-click one, Ctrl-A the page) labelled at once, "mark the rest of this page good", a large
 * preview (space, then hover), undo/redo of whole actions. Keys work as soon as the stage opens.
 */
export function LabelGrid({ onLabelled, hasModel }: { onLabelled: () => void; hasModel: boolean }) {
  const call = useCall();
  const [items, setItems] = useState<LabelQueueItem[]>([]);
  const [cursor, setCursor] = useState(0);
  const [picked, setPicked] = useState<ReadonlySet<number>>(new Set());
  const [page, setPage] = useState(1);
  const [preview, setPreview] = useState(false);
  const [hover, setHover] = useState<number | null>(null);
  // hovering a thumbnail a moment opens the preview too (space pins it open)
  const [hoverPreview, setHoverPreview] = useState(false);
  useEffect(() => {
    setHoverPreview(false);
    if (hover === null) return;
    const id = setTimeout(() => setHoverPreview(true), HOVER_PREVIEW_MS);
    return () => clearTimeout(id);
  }, [hover]);
  const [history, setHistory] = useState({ canUndo: false, canRedo: false });
  const gridRef = useRef<HTMLDivElement>(null);

  // Step 1: the page of unlabelled images.
  const load = useCallback(async () => {
    const q = await call('filter.queue', { limit: PAGE, order: 'auto', seed: page });
    if (q) {
      itemsRef.current = q;
      setItems(q);
      cursorRef.current = 0;
      setCursor(0);
      pickedRef.current = new Set();
      setPicked(pickedRef.current);
    }
  }, [call, page]);
  useEffect(() => {
    void load();
  }, [load]);

  // Step 2: keys arrive faster than renders: cursor, items and selection live in refs, the
  // screen updates at once, and API calls go out one after another in key order.
  const cursorRef = useRef(0);
  const anchorRef = useRef(0);
  const itemsRef = useRef<LabelQueueItem[]>([]);
  const pickedRef = useRef<ReadonlySet<number>>(new Set());
  const queue = useRef<Promise<unknown>>(Promise.resolve());
  const send = useCallback(
    (fn: () => Promise<unknown>) => {
      queue.current = queue.current.then(fn).then(() => onLabelled());
    },
    [onLabelled],
  );
  const move = useCallback((to: number) => {
    cursorRef.current = Math.max(0, Math.min(itemsRef.current.length - 1, to));
    setCursor(cursorRef.current);
  }, []);
  const pick = useCallback((next: ReadonlySet<number>) => {
    pickedRef.current = next;
    setPicked(next);
  }, []);
  // the cursor stays in view
  useEffect(() => {
    const el = gridRef.current?.children[cursor] as HTMLElement | undefined;
    el?.scrollIntoView?.({ block: 'nearest' });
  }, [cursor]);

  // Step 3: labelling: the screen at once, the engine in one call per action (one undo step).
  const apply = useCallback(
    (indexes: number[], l: Label | null) => {
      const ids = indexes.map((i) => itemsRef.current[i]?.imageId).filter((x): x is number => x !== undefined);
      if (ids.length === 0) return;
      const set = new Set(ids);
      itemsRef.current = itemsRef.current.map((x) => (set.has(x.imageId) ? { ...x, label: l } : x));
      setItems(itemsRef.current);
      send(async () => {
        const r = await call('filter.setLabels', { imageIds: ids, label: l });
        if (r) setHistory({ canUndo: r.canUndo, canRedo: r.canRedo });
      });
    },
    [call, send],
  );
  /** g/b: the selection when there is one (then cleared), else the image under the cursor. */
  const label = useCallback(
    (l: Label) => {
      const sel = [...pickedRef.current].sort((a, b) => a - b);
      if (sel.length) {
        apply(sel, l);
        pick(new Set());
        move(sel[sel.length - 1]! + 1);
      } else {
        apply([cursorRef.current], l);
        move(cursorRef.current + 1);
      }
    },
    [apply, move, pick],
  );
  const restGood = useCallback(() => {
    apply(
      itemsRef.current.flatMap((x, i) => (x.label === null ? [i] : [])),
      'good',
    );
    pick(new Set());
  }, [apply, pick]);
  const selectAll = useCallback(() => pick(new Set(itemsRef.current.map((_, i) => i))), [pick]);

  // Step 4: undo/redo: the engine reverts a whole action; the page shows each image it touched.
  const step = useCallback(
    (method: 'filter.undo' | 'filter.redo') =>
      send(async () => {
        const r: LabelHistoryResult | null = await call(method, {});
        if (!r) return;
        setHistory({ canUndo: r.canUndo, canRedo: r.canRedo });
        const now = new Map(r.items.map((x) => [x.imageId, x.label]));
        let first = -1;
        itemsRef.current = itemsRef.current.map((x, k) => {
          if (!now.has(x.imageId)) return x;
          if (first < 0) first = k;
          return { ...x, label: now.get(x.imageId)! };
        });
        setItems(itemsRef.current);
        if (first >= 0) move(first);
      }),
    [call, send, move],
  );
  const undo = useCallback(() => step('filter.undo'), [step]);
  const redo = useCallback(() => step('filter.redo'), [step]);

  // Step 5: the keys, on the whole stage (no click needed first).
  const nextPage = useCallback(() => setPage((p) => p + 1), []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (typing(e) || e.altKey) return;
      // a focused button keeps its own Enter and space
      if ((e.key === 'Enter' || e.key === ' ') && (e.target as HTMLElement | null)?.tagName === 'BUTTON') return;
      const k = e.key;
      const mod = e.ctrlKey || e.metaKey;
      const c = cursorRef.current;
      if (mod && (k === 'z' || k === 'Z')) (e.shiftKey ? redo : undo)();
      else if (mod && (k === 'y' || k === 'Y')) redo();
      else if (mod && (k === 'a' || k === 'A')) selectAll();
      else if (mod) return;
      else if (k === 'ArrowRight') move(c + 1);
      else if (k === 'ArrowLeft') move(c - 1);
      else if (k === 'ArrowDown') move(c + COLS);
      else if (k === 'ArrowUp') move(c - COLS);
      else if (k === 'G') restGood();
      else if (k === 'g') label('good');
      else if (k === 'b') label('bad');
      else if (k === 's') move(c + 1);
      else if (k === 'u' || k === 'Backspace') undo();
      else if (k === 'r') redo();
      else if (k === ' ') setPreview((p) => !p);
      else if (k === 'Escape') {
        pick(new Set());
        setPreview(false);
      } else if (k === 'n' || k === 'Enter') nextPage();
      else return;
      e.preventDefault();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [label, move, nextPage, pick, redo, restGood, selectAll, undo]);

  // Step 6: clicks: plain moves the cursor, shift picks a range from the last click, Ctrl/Cmd one image.
  const onThumbClick = (i: number, e: React.MouseEvent) => {
    if (e.shiftKey) {
      const [a, b] = [Math.min(anchorRef.current, i), Math.max(anchorRef.current, i)];
      pick(new Set(Array.from({ length: b - a + 1 }, (_, k) => a + k)));
    } else if (e.ctrlKey || e.metaKey) {
      const next = new Set(pickedRef.current);
      if (next.has(i)) next.delete(i);
      else next.add(i);
      pick(next);
      anchorRef.current = i;
    } else {
      pick(new Set());
      anchorRef.current = i;
    }
    move(i);
  };

  const unlabelled = items.filter((x) => x.label === null).length;
  // space: the image under the cursor (it follows the arrows); else the one the pointer rests on
  const shown = preview ? items[cursor] : hoverPreview && hover !== null ? items[hover] : undefined;
  return (
    <section className="card" data-testid="label-card">
      <h3>Label</h3>
      <KeyLegend hasModel={hasModel} picked={picked.size} />
      {items.length === 0 ? (
        <p className="muted">No unlabelled usable images. Scrape some, or import labels with `carstudio label --good DIR --bad DIR`.</p>
      ) : (
        <>
          <div ref={gridRef} className="label-grid" tabIndex={0} data-testid="label-grid" style={{ gridTemplateColumns: `repeat(${COLS}, 1fr)` }}>
            {items.map((it, i) => (
              <div
                key={it.imageId}
                className={`thumb ${it.label ?? ''} ${i === cursor ? 'selected' : ''}`}
                data-testid="label-item"
                data-label={it.label ?? ''}
                data-picked={picked.has(i) ? 'true' : undefined}
                data-image-id={it.imageId}
                style={picked.has(i) ? { outline: '3px dashed var(--accent)', outlineOffset: -3 } : undefined}
                onMouseEnter={() => setHover(i)}
                onMouseLeave={() => setHover((h) => (h === i ? null : h))}
                onClick={(e) => onThumbClick(i, e)}
              >
                <img src={api.imageUrl(it.key)} alt="" loading="lazy" />
                <div className="label-actions">
                  <button
                    onClick={(e) => {
                      e.stopPropagation();
                      apply([i], 'good');
                    }}
                  >
                    good
                  </button>
                  <button
                    onClick={(e) => {
                      e.stopPropagation();
                      apply([i], 'bad');
                    }}
                  >
                    bad
                  </button>
                </div>
              </div>
            ))}
          </div>
          {shown && (
            <figure
              data-testid="label-preview"
              data-image-id={shown.imageId}
              data-pinned={preview}
              style={{
                margin: 0,
                width: 'min(40vw, 560px)',
                position: 'fixed',
                right: 16,
                bottom: 16,
                zIndex: 20,
                padding: 8,
                background: 'var(--panel)',
                border: '1px solid var(--border)',
                borderRadius: 8,
                boxShadow: '0 6px 24px rgba(0,0,0,0.45)',
                pointerEvents: 'none',
              }}
            >
              <img src={api.imageUrl(shown.key)} alt="" style={{ width: '100%', borderRadius: 6, display: 'block' }} />
              <figcaption className="muted small">
                image {shown.imageId}
                {shown.label ? ` · labelled ${shown.label}` : ' · unlabelled'} · <kbd>space</kbd> {preview ? 'closes' : 'keeps it open'}
              </figcaption>
            </figure>
          )}
        </>
      )}
      <div className="row" style={{ marginTop: 8 }}>
        <button data-testid="label-undo" data-available={history.canUndo} onClick={() => undo()}>
          Undo
        </button>
        <button data-testid="label-redo" data-available={history.canRedo} onClick={() => redo()}>
          Redo
        </button>
        <button data-testid="label-picked-good" disabled={picked.size === 0} onClick={() => label('good')}>
          Selected good ({picked.size})
        </button>
        <button data-testid="label-picked-bad" disabled={picked.size === 0} onClick={() => label('bad')}>
          Selected bad ({picked.size})
        </button>
        <button data-testid="label-rest-good" disabled={unlabelled === 0} onClick={() => restGood()}>
          Mark the rest of this page good ({unlabelled})
        </button>
        <button onClick={() => nextPage()} data-testid="next-page">
          Next page
        </button>
      </div>
    </section>
  );
}

/** The keys, always in view at the top of the window while labelling. */
function KeyLegend({ hasModel, picked }: { hasModel: boolean; picked: number }) {
  return (
    <p
      className="small"
      data-testid="key-legend"
      style={{
        position: 'sticky',
        top: 0,
        zIndex: 3,
        background: 'var(--panel)',
        padding: '6px 0',
        margin: '0 0 8px',
        borderBottom: '1px solid var(--border)',
      }}
    >
      <kbd>g</kbd> good · <kbd>b</kbd> bad{picked ? ` (the ${picked} selected)` : ''} · <kbd>G</kbd> rest of page good · <kbd>s</kbd> skip ·
      arrows move · shift-click range · <kbd>Ctrl</kbd>-click one · <kbd>Ctrl</kbd>+<kbd>A</kbd> whole page · <kbd>space</kbd> preview ·{' '}
      <kbd>Ctrl</kbd>+<kbd>Z</kbd>/<kbd>u</kbd> undo · <kbd>Ctrl</kbd>+<kbd>Y</kbd>/<kbd>r</kbd> redo · <kbd>n</kbd>/<kbd>Enter</kbd> next
      page.{' '}
      <span className="muted">
        {hasModel ? 'Images nearest the threshold come first.' : 'Random order until a filter is fitted and applied.'}
      </span>
    </p>
  );
}
