import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { ConnectionState } from '../engine/api/contract/index.ts';
import { CONNECTION_CHANNEL, CONNECTION_STATE_CHANNEL, followConnection } from './connection.ts';

// The renderer gets exactly the transport-neutral bridge the UI's API client expects.
contextBridge.exposeInMainWorld('carstudio', {
  request: (method: string, params: unknown) => ipcRenderer.invoke('carstudio:request', method, params),
  subscribe(listener: (event: string, data: unknown) => void) {
    const fn = (_e: IpcRendererEvent, event: string, data: unknown) => listener(event, data);
    ipcRenderer.on('carstudio:event', fn);
    return () => ipcRenderer.removeListener('carstudio:event', fn);
  },
  /** The engine connection's state now and on every change (the main process watches the engine). */
  onConnection(listener: (state: ConnectionState) => void) {
    return followConnection(
      (l) => {
        const fn = (_e: IpcRendererEvent, s: ConnectionState) => l(s);
        ipcRenderer.on(CONNECTION_CHANNEL, fn);
        return () => ipcRenderer.removeListener(CONNECTION_CHANNEL, fn);
      },
      () => ipcRenderer.invoke(CONNECTION_STATE_CHANNEL) as Promise<ConnectionState>,
      listener,
    );
  },
  imageBase: 'carstudio-image://img/',
  /** The native folder dialog: the chosen folder's path, or null when cancelled. */
  pickFolder: (): Promise<string | null> => ipcRenderer.invoke('carstudio:pickFolder'),
});
