import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from 'react';
import { failureMessage } from './messages.ts';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  title: string;
  message: string;
  /** How many times the same toast was raised while it was showing. */
  count: number;
}

interface ToastApi {
  /** A failure: `title` says what could not be done; the message comes from the error, in the user's words. */
  error(title: string, e: unknown): void;
  info(title: string, message?: string): void;
}

const Ctx = createContext<ToastApi>({ error: () => {}, info: () => {} });
let nextId = 1;
/** Toasts shown at once; older ones give way. */
const MAX_TOASTS = 4;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const dismiss = useCallback((id: number) => {
    clearTimeout(timers.current.get(id));
    timers.current.delete(id);
    setToasts((all) => all.filter((x) => x.id !== id));
  }, []);
  const push = useCallback(
    (t: Omit<Toast, 'id' | 'count'>) => {
      const life = t.kind === 'error' ? 10_000 : 4_000;
      setToasts((all) => {
        // the same toast again (a retried call failing the same way) counts up instead of stacking
        const same = all.find((x) => x.kind === t.kind && x.title === t.title && x.message === t.message);
        const id = same?.id ?? nextId++;
        clearTimeout(timers.current.get(id));
        timers.current.set(
          id,
          setTimeout(() => dismiss(id), life),
        );
        if (same) return all.map((x) => (x.id === id ? { ...x, count: x.count + 1 } : x));
        return [...all.slice(-(MAX_TOASTS - 1)), { ...t, id, count: 1 }];
      });
    },
    [dismiss],
  );
  // one object for the provider's lifetime, so callbacks that depend on it stay put
  const api: ToastApi = useMemo(
    () => ({
      error: (title, e) => push({ kind: 'error', title, message: failureMessage(e) }),
      info: (title, message = '') => push({ kind: 'info', title, message }),
    }),
    [push],
  );
  return (
    <Ctx.Provider value={api}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} data-testid={`toast-${t.kind}`} data-count={t.count}>
            <strong className="toast-title">
              {t.title}
              {t.count > 1 && <span className="muted small"> ×{t.count}</span>}
            </strong>
            {t.message && <div className="toast-message">{t.message}</div>}
            <button className="link" aria-label="Dismiss this message" title="Dismiss" onClick={() => dismiss(t.id)}>
              ×
            </button>
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}

export const useToasts = (): ToastApi => useContext(Ctx);
