/**
 * How the desktop shell decides and reports the engine connection's state: plain functions with
 * no Electron import, shared by the main process (engine-link.ts), the preload bridge and the
 * tests under Node. The renderer shows the same "lost the connection" banner as in served mode
 * from the state these report.
 */
import type { ApiResult, ConnectionState } from '../engine/api/contract/index.ts';

/** The IPC channels between main and preload for the connection state. */
export const CONNECTION_CHANNEL = 'carstudio:connection';
export const CONNECTION_STATE_CHANNEL = 'carstudio:connectionState';

/** How long to wait before the n-th restart (0-based) of an engine that died: 0.5 s doubling to 5 s. */
export function restartDelay(attempt: number): number {
  return Math.min(500 * 2 ** Math.max(0, attempt), 5000);
}

/**
 * The answer to a call the engine could not receive (it is gone, restarting, or not listening):
 * the error name the renderer treats as a lost connection (one banner, no toast).
 */
export function connectionLost(cause: unknown): ApiResult<never> {
  const why = cause instanceof Error ? cause.message : String(cause);
  return { ok: false, error: { name: 'ConnectionError', message: `The studio cannot reach its engine right now (${why}); it keeps retrying.` } };
}

/** The answer to a call whose reply was not the engine's JSON (a proxy page, a cut-off body). */
export function unreadableAnswer(status: number): ApiResult<never> {
  return { ok: false, error: { name: 'ProtocolError', message: `The engine's answer could not be read (HTTP ${status}); try again.` } };
}

/**
 * Feeds `listener` the connection state: the current one (asked with `current`) and every change
 * after it. A change that arrives before the answer to `current` wins over that answer, which is
 * older. Returns the function that stops it.
 */
export function followConnection(
  onChange: (listener: (s: ConnectionState) => void) => () => void,
  current: () => Promise<ConnectionState>,
  listener: (s: ConnectionState) => void,
): () => void {
  let changed = false;
  let stopped = false;
  const off = onChange((s) => {
    changed = true;
    if (!stopped) listener(s);
  });
  void current().then(
    (s) => {
      if (!changed && !stopped) listener(s);
    },
    () => {
      /* the main process is going away: the next change (if any) says so */
    },
  );
  return () => {
    stopped = true;
    off();
  };
}

/**
 * Keeps the listeners of a state told of each change, once per change (repeats are dropped, so
 * a dying engine that fails several calls shows one banner, not several).
 */
export class StateCell {
  private listeners = new Set<(s: ConnectionState) => void>();
  constructor(private value: ConnectionState = 'connecting') {}
  get(): ConnectionState {
    return this.value;
  }
  set(s: ConnectionState): void {
    if (s === this.value) return;
    this.value = s;
    for (const l of [...this.listeners]) l(s);
  }
  /** Calls `l` on every change (not with the current value: ask `get` for that). */
  on(l: (s: ConnectionState) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
