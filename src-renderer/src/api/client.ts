import type { ApiResult, ConnectionState, EventName, Events, Method, Params, Results, StudioApi } from '../../../src-main/engine/api/contract/index.ts';
import { ApiCallError, ipcApi, unwrap, type IpcBridge } from './ipc.ts';

export { ApiCallError, type IpcBridge };

declare global {
  interface Window {
    carstudio?: IpcBridge;
  }
}

type Listener = (event: EventName, data: Events[EventName]) => void;

/** Served mode: POST /api/<method> and a WebSocket at /api/events (the token is in a cookie). */
function httpApi(): StudioApi {
  const listeners = new Set<Listener>();
  const connListeners = new Set<(s: ConnectionState) => void>();
  let state: ConnectionState = 'connecting';
  let retry = 500;
  const setState = (s: ConnectionState): void => {
    state = s;
    connListeners.forEach((l) => l(s));
  };
  let socket: WebSocket | null = null;
  const connect = (): void => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/events`);
    socket = ws;
    ws.onopen = () => {
      retry = 500;
      setState('open');
    };
    ws.onmessage = (m) => {
      try {
        const { event, data } = JSON.parse(String(m.data)) as { event: EventName; data: Events[EventName] };
        listeners.forEach((l) => l(event, data));
      } catch {
        /* ignore malformed frames */
      }
    };
    ws.onclose = () => {
      setState('closed');
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  };
  connect();
  return {
    async request<M extends Method>(method: M, params: Params<M>) {
      let res: Response;
      try {
        res = await fetch(`/api/${method}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(params ?? {}),
          credentials: 'same-origin',
        });
      } catch (e) {
        // The engine is away although the event stream still looks open: drop the stream so the
        // connection state (and its banner) says so and the reconnect loop takes over.
        if (socket && socket.readyState === WebSocket.OPEN) socket.close();
        throw new ApiCallError('ConnectionError', `The studio cannot reach its engine right now (${(e as Error).message}); it keeps retrying.`);
      }
      let body: ApiResult<unknown>;
      try {
        body = (await res.json()) as ApiResult<unknown>;
      } catch {
        throw new ApiCallError('ProtocolError', `The engine's answer could not be read (HTTP ${res.status}); try again.`);
      }
      return unwrap<Results[M]>(body, method);
    },
    subscribe(l: Listener) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    imageUrl: (key) => `/images/${key}`,
    onConnection(l) {
      connListeners.add(l);
      l(state);
      return () => connListeners.delete(l);
    },
  };
}

export const api: StudioApi = window.carstudio ? ipcApi(window.carstudio) : httpApi();
