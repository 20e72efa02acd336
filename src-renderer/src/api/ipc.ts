/**
 * The Electron transport: requests, events and the engine connection's state go through the
 * preload bridge (IPC). Nothing here touches `window`, so it runs under Node in the tests.
 */
import { cleanEngineMessage } from '../messages.ts';
import type { ApiResult, ConnectionState, EventName, Events, Method, Params, Results, StudioApi } from '../../../src-main/engine/api/contract/index.ts';

/** What the Electron preload exposes on window (contextBridge); absent in a browser. */
export interface IpcBridge {
  request(method: string, params: unknown): Promise<ApiResult<unknown>>;
  subscribe(listener: (event: string, data: unknown) => void): () => void;
  /**
   * The engine connection's state now and on every change: the main process watches the engine
   * process and says 'closed' while it is gone. A preload without it has the state always open.
   */
  onConnection?(listener: (state: ConnectionState) => void): () => void;
  imageBase: string;
}

/**
 * A failed call: `name` is the engine's error name (code may test it), `message` is in the
 * user's words (no method names), `engineMessage` is the engine's own text.
 */
export class ApiCallError extends Error {
  readonly engineMessage: string;
  constructor(name: string, message: string, method?: string) {
    super(cleanEngineMessage(message, method));
    this.name = name;
    this.engineMessage = message;
  }
}

export function unwrap<T>(r: ApiResult<unknown>, method: string): T {
  if (r.ok) return r.value as T;
  throw new ApiCallError(r.error.name, r.error.message, method);
}

type Listener = (event: EventName, data: Events[EventName]) => void;

/** Electron: the same StudioApi as served mode, its connection state the main process's. */
export function ipcApi(bridge: IpcBridge): StudioApi {
  // One subscription for the whole UI, and the state kept here, so that (as in served mode) a
  // new listener hears the current state at once: a stage opened while the engine is away
  // knows it is away and starts from its last answers.
  const connListeners = new Set<(s: ConnectionState) => void>();
  let state: ConnectionState = bridge.onConnection ? 'connecting' : 'open';
  bridge.onConnection?.((s) => {
    if (s === state) return;
    state = s;
    connListeners.forEach((l) => l(s));
  });
  return {
    async request<M extends Method>(method: M, params: Params<M>) {
      return unwrap<Results[M]>(await bridge.request(method, params), method);
    },
    subscribe(listener: Listener) {
      return bridge.subscribe((event, data) => listener(event as EventName, data as Events[EventName]));
    },
    imageUrl: (key) => `${bridge.imageBase}${key}`,
    onConnection(l) {
      connListeners.add(l);
      l(state);
      return () => connListeners.delete(l);
    },
  };
}
