import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';

// The renderer gets exactly the transport-neutral bridge the UI's API client expects.
contextBridge.exposeInMainWorld('carstudio', {
  request: (method: string, params: unknown) => ipcRenderer.invoke('carstudio:request', method, params),
  subscribe(listener: (event: string, data: unknown) => void) {
    const fn = (_e: IpcRendererEvent, event: string, data: unknown) => listener(event, data);
    ipcRenderer.on('carstudio:event', fn);
    return () => ipcRenderer.removeListener('carstudio:event', fn);
  },
  imageBase: 'carstudio-image://img/',
  /** The native folder dialog: the chosen folder's path, or null when cancelled. */
  pickFolder: (): Promise<string | null> => ipcRenderer.invoke('carstudio:pickFolder'),
});
