/**
 * The desktop shell. It owns the window and nothing else: the engine runs in a child process
 * (`carstudio serve --ready-json`). In development that is plain Node running the TypeScript
 * sources, so native modules such as better-sqlite3 are only ever built for Node's ABI and
 * `npm test` keeps working after the app has run. The packaged app has no system Node: it runs
 * the bundled engine (out/engine, scripts/build-engine.mjs) in Electron's utilityProcess, with
 * native modules rebuilt for Electron when it was packaged. Requests from
 * the renderer arrive over IPC (preload + contextBridge) and are forwarded to the engine's HTTP
 * API with the per-launch token; engine events come back over its WebSocket. EngineLink
 * (engine-link.ts, plain Node) does the forwarding and watches the engine: when its process dies
 * the renderer gets 'closed' on the connection channel (the same banner as served mode) and a
 * new engine is started.
 */
import { app, BrowserWindow, ipcMain, net, protocol, dialog, utilityProcess } from 'electron';
import os from 'node:os';
import path from 'node:path';
import { CONNECTION_CHANNEL, CONNECTION_STATE_CHANNEL } from './connection.ts';
import { EngineLink, readyLine, serveArgs, startEngineWithNode, type EngineHandle } from './engine-link.ts';

const root = path.resolve(__dirname, '../..');
let link: EngineLink | null = null;
let win: BrowserWindow | null = null;

protocol.registerSchemesAsPrivileged([{ scheme: 'carstudio-image', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

/** Packaged app: Electron's utilityProcess runs the bundled engine; no system Node is needed. */
function startEngineInUtilityProcess(): Promise<EngineHandle> {
  const entry = path.join(app.getAppPath(), 'out', 'engine', 'carstudio.mjs');
  const child = utilityProcess.fork(entry, serveArgs(process.argv, os.homedir()), { stdio: ['ignore', 'pipe', 'inherit'], serviceName: 'CarStudio engine', cwd: os.homedir() });
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  return new Promise((resolve, reject) => {
    // The engine's entry turns a 'stop' message into the end of its stdin (scripts/engine-entry.mjs).
    readyLine(child.stdout!, reject, (r) =>
      resolve({ ...r, pid: child.pid, stop: () => child.postMessage('stop'), onExit: (l) => (exited !== undefined ? l(exited) : child.once('exit', (code) => l(code))) }),
    );
    child.once('exit', (code) => reject(new Error(`the engine (${entry}) exited with code ${code} before it was ready`)));
  });
}

function startEngine(): Promise<EngineHandle> {
  return app.isPackaged ? startEngineInUtilityProcess() : startEngineWithNode(root, serveArgs(process.argv, os.homedir()));
}

async function createWindow(): Promise<void> {
  win = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'CarStudio',
    // the window icon on Linux (macOS takes the bundle's): resources/icon.png, copied beside the packaged app
    icon: app.isPackaged ? path.join(process.resourcesPath, 'icon.png') : path.join(root, 'resources', 'icon.png'),
    webPreferences: {
      preload: path.join(__dirname, '../preload/index.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
    },
  });
  if (process.env.ELECTRON_RENDERER_URL) await win.loadURL(process.env.ELECTRON_RENDERER_URL);
  else await win.loadFile(path.join(__dirname, '../renderer/index.html'));
}

app.whenReady().then(async () => {
  // The engine is supervised by the link: when its process dies the renderer is told the
  // connection is lost (its banner), calls answer ConnectionError, and a new engine is started.
  const l = new EngineLink({ start: startEngine, fetch: (url, init) => net.fetch(url, init) });
  try {
    await l.start();
  } catch (e) {
    dialog.showErrorBox('CarStudio could not start its engine', (e as Error).message);
    app.exit(1);
    return;
  }
  link = l;
  ipcMain.handle('carstudio:request', (_e, method: string, params: unknown) => l.request(method, params));
  ipcMain.handle(CONNECTION_STATE_CHANNEL, () => l.connection());
  l.onConnection((s) => win?.webContents.send(CONNECTION_CHANNEL, s));
  l.onEvent((event, data) => win?.webContents.send('carstudio:event', event, data));
  // the Predict stage's folder picker: the native dialog, the chosen folder's path or null
  ipcMain.handle('carstudio:pickFolder', async () => {
    const opts: Electron.OpenDialogOptions = { title: 'Choose a folder of photos', properties: ['openDirectory'] };
    const r = await (win ? dialog.showOpenDialog(win, opts) : dialog.showOpenDialog(opts));
    return r.canceled ? null : (r.filePaths[0] ?? null);
  });
  protocol.handle('carstudio-image', (req) => {
    const key = new URL(req.url).pathname.replace(/^\//, '');
    const h = l.current();
    if (!h) return new Response('the engine is restarting', { status: 503 });
    return net.fetch(`${h.url}images/${key}`, { headers: { Authorization: `Bearer ${h.token}` } });
  });
  await createWindow();
});

app.on('window-all-closed', () => {
  const l = link;
  link = null;
  // The engine stops its jobs cleanly (they resume on the next start), then the app quits.
  if (l) void l.close().then(() => app.quit());
  else app.quit();
});
