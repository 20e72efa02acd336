import { createContext, useCallback, useContext, useState, type ReactNode } from 'react';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  title: string;
  message: string;
}

interface ToastApi {
  error(title: string, e: unknown): void;
  info(title: string, message?: string): void;
}

const Ctx = createContext<ToastApi>({ error: () => {}, info: () => {} });
let nextId = 1;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((t: Omit<Toast, 'id'>) => {
    const id = nextId++;
    setToasts((all) => [...all.slice(-4), { ...t, id }]);
    setTimeout(() => setToasts((all) => all.filter((x) => x.id !== id)), t.kind === 'error' ? 10_000 : 4_000);
  }, []);
  const api: ToastApi = {
    error: (title, e) => push({ kind: 'error', title, message: e instanceof Error ? e.message : String(e) }),
    info: (title, message = '') => push({ kind: 'info', title, message }),
  };
  return (
    <Ctx.Provider value={api}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} data-testid={`toast-${t.kind}`}>
            <strong>{t.title}</strong>
            {t.message && <div>{t.message}</div>}
            <button className="link" aria-label="dismiss" onClick={() => setToasts((all) => all.filter((x) => x.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}

export const useToasts = (): ToastApi => useContext(Ctx);
