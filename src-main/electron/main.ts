/**
 * The desktop shell. It owns the window and nothing else: the engine runs in a child process
 * (`carstudio serve --ready-json`). In development that is plain Node running the TypeScript
 * sources, so native modules such as better-sqlite3 are only ever built for Node's ABI and
 * `npm test` keeps working after the app has run. The packaged app has no system Node: it runs
 * the bundled engine (out/engine, scripts/build-engine.mjs) in Electron's utilityProcess, with
 * native modules rebuilt for Electron when it was packaged. Requests from
 * the renderer arrive over IPC (preload + contextBridge) and are forwarded to the engine's HTTP
 * API with the per-launch token; engine events come back over its WebSocket.
 */
import { app, BrowserWindow, ipcMain, net, protocol, dialog, utilityProcess } from 'electron';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import WebSocket from 'ws';

interface EngineHandle {
  url: string;
  token: string;
  /** Asks the engine to stop its jobs cleanly (they resume on the next start). */
  stop(): void;
  /** Calls back once the engine process has exited. */
  onExit(listener: () => void): void;
}

const root = path.resolve(__dirname, '../..');
let engine: EngineHandle | null = null;
let win: BrowserWindow | null = null;

protocol.registerSchemesAsPrivileged([{ scheme: 'carstudio-image', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The arguments of `carstudio serve` for this launch. */
function serveArgs(): string[] {
  const workspace = argValue('--workspace');
  // The desktop user owns this machine: the studio may read photos, manifests and datasets in
  // their home folder (served mode reads only the workspace and --allow-path folders).
  const args = ['serve', '--ready-json', '--port', '0', '--allow-path', os.homedir()];
  // as in served mode, a named workspace is created only when asked (`npm start -- --workspace DIR --create`)
  if (workspace) args.push('--workspace', workspace, ...(process.argv.includes('--create') ? ['--create'] : []));
  else args.push('--demo');
  return args;
}

/** Waits for the engine's first stdout line, the JSON {url, token} of `serve --ready-json`. */
function readyLine(stdout: NodeJS.ReadableStream, reject: (e: Error) => void, ready: (r: { url: string; token: string }) => void): void {
  readline.createInterface({ input: stdout }).once('line', (line) => {
    try {
      ready(JSON.parse(line) as { url: string; token: string });
    } catch {
      reject(new Error(`the engine printed an unexpected first line: ${line}`));
    }
  });
}

/** Development: plain Node runs the TypeScript engine (bin/carstudio.mjs, through tsx). */
function startEngineWithNode(): Promise<EngineHandle> {
  const nodeBin = process.env.CARSTUDIO_NODE || 'node';
  const child = spawn(nodeBin, [path.join(root, 'bin', 'carstudio.mjs'), ...serveArgs()], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
  });
  return new Promise((resolve, reject) => {
    // Closing the engine's stdin makes it stop its jobs cleanly.
    readyLine(child.stdout!, reject, (r) => resolve({ ...r, stop: () => child.stdin?.end(), onExit: (l) => child.once('exit', l) }));
    child.once('error', (e) => reject(new Error(`cannot start the engine with '${nodeBin}': ${e.message} (set CARSTUDIO_NODE to a Node 20+ binary)`)));
    child.once('exit', (code) => reject(new Error(`the engine exited with code ${code} before it was ready`)));
  });
}

/** Packaged app: Electron's utilityProcess runs the bundled engine; no system Node is needed. */
function startEngineInUtilityProcess(): Promise<EngineHandle> {
  const entry = path.join(app.getAppPath(), 'out', 'engine', 'carstudio.mjs');
  const child = utilityProcess.fork(entry, serveArgs(), { stdio: ['ignore', 'pipe', 'inherit'], serviceName: 'CarStudio engine', cwd: os.homedir() });
  return new Promise((resolve, reject) => {
    // The engine's entry turns a 'stop' message into the end of its stdin (scripts/engine-entry.mjs).
    readyLine(child.stdout!, reject, (r) => resolve({ ...r, stop: () => child.postMessage('stop'), onExit: (l) => child.once('exit', l) }));
    child.once('exit', (code) => reject(new Error(`the engine (${entry}) exited with code ${code} before it was ready`)));
  });
}

function startEngine(): Promise<EngineHandle> {
  return app.isPackaged ? startEngineInUtilityProcess() : startEngineWithNode();
}

function connectEvents(h: EngineHandle): void {
  // The engine reads the token from a cookie or this header, never from the WebSocket's query.
  const ws = new WebSocket(`${h.url.replace(/^http/, 'ws')}api/events`, { headers: { Authorization: `Bearer ${h.token}` } });
  ws.onerror = () => {};
  ws.onmessage = (m) => {
    const msg = JSON.parse(String(m.data)) as { event: string; data: unknown };
    win?.webContents.send('carstudio:event', msg.event, msg.data);
  };
  ws.onclose = () => {
    if (engine) setTimeout(() => connectEvents(h), 1000);
  };
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
  try {
    engine = await startEngine();
  } catch (e) {
    dialog.showErrorBox('CarStudio could not start its engine', (e as Error).message);
    app.exit(1);
    return;
  }
  const h = engine;
  ipcMain.handle('carstudio:request', async (_e, method: string, params: unknown) => {
    try {
      const res = await net.fetch(`${h.url}api/${encodeURIComponent(method)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${h.token}` },
        body: JSON.stringify(params ?? {}),
      });
      return await res.json();
    } catch (err) {
      return { ok: false, error: { name: 'ConnectionError', message: `cannot reach the engine: ${(err as Error).message}` } };
    }
  });
  // the Predict stage's folder picker: the native dialog, the chosen folder's path or null
  ipcMain.handle('carstudio:pickFolder', async () => {
    const opts: Electron.OpenDialogOptions = { title: 'Choose a folder of photos', properties: ['openDirectory'] };
    const r = await (win ? dialog.showOpenDialog(win, opts) : dialog.showOpenDialog(opts));
    return r.canceled ? null : (r.filePaths[0] ?? null);
  });
  protocol.handle('carstudio-image', (req) => {
    const key = new URL(req.url).pathname.replace(/^\//, '');
    return net.fetch(`${h.url}images/${key}`, { headers: { Authorization: `Bearer ${h.token}` } });
  });
  connectEvents(h);
  await createWindow();
});

app.on('window-all-closed', () => {
  const h = engine;
  engine = null;
  // The engine stops its jobs cleanly (they resume on the next start), then the app quits.
  h?.stop();
  if (h) h.onExit(() => app.quit());
  else app.quit();
});
