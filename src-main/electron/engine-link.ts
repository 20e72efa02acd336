/**
 * The desktop shell's link to its engine process, with no Electron import (so it runs, and is
 * tested, under plain Node): starts the engine, forwards the renderer's calls to its HTTP API
 * with the per-launch token, relays its events from the WebSocket, and keeps one connection
 * state. When the engine process dies it says 'closed' (the renderer's banner), answers calls
 * with a ConnectionError meanwhile, starts a new engine (backing off) and says 'open' again
 * once the new engine's event stream is up. A call that fails because the engine is not there
 * says 'closed' too, as served mode does.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import WebSocket from 'ws';
import type { ApiResult, ConnectionState } from '../engine/api/contract/index.ts';
import { connectionLost, restartDelay, StateCell, unreadableAnswer } from './connection.ts';

export interface EngineHandle {
  url: string;
  token: string;
  /** The engine's process id, where the platform gives one. */
  pid?: number;
  /** Asks the engine to stop its jobs cleanly (they resume on the next start). */
  stop(): void;
  /** Calls back once the engine process has exited. */
  onExit(listener: (code: number | null) => void): void;
}

/** The subset of fetch the link uses (Electron's net.fetch or Node's fetch). */
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body: string }) => Promise<{ status: number; json(): Promise<unknown> }>;

/** Waits for the engine's first stdout line, the JSON {url, token} of `serve --ready-json`. */
export function readyLine(stdout: NodeJS.ReadableStream, reject: (e: Error) => void, ready: (r: { url: string; token: string }) => void): void {
  readline.createInterface({ input: stdout }).once('line', (line) => {
    try {
      ready(JSON.parse(line) as { url: string; token: string });
    } catch {
      reject(new Error(`the engine printed an unexpected first line: ${line}`));
    }
  });
}

/** The arguments of `carstudio serve` for a launch with these command-line arguments. */
export function serveArgs(argv: string[], home: string): string[] {
  const i = argv.indexOf('--workspace');
  const workspace = i >= 0 ? argv[i + 1] : undefined;
  // The desktop user owns this machine: the studio may read photos, manifests and datasets in
  // their home folder (served mode reads only the workspace and --allow-path folders).
  const args = ['serve', '--ready-json', '--port', '0', '--allow-path', home];
  // as in served mode, a named workspace is created only when asked (`npm start -- --workspace DIR --create`)
  if (workspace) args.push('--workspace', workspace, ...(argv.includes('--create') ? ['--create'] : []));
  else args.push('--demo');
  return args;
}

/** Development (and the tests): plain Node runs the TypeScript engine (bin/carstudio.mjs, through tsx). */
export function startEngineWithNode(root: string, args: string[], nodeBin = process.env.CARSTUDIO_NODE || 'node'): Promise<EngineHandle> {
  const child = spawn(nodeBin, [path.join(root, 'bin', 'carstudio.mjs'), ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
  });
  return new Promise((resolve, reject) => {
    // Closing the engine's stdin makes it stop its jobs cleanly.
    readyLine(child.stdout!, reject, (r) =>
      resolve({ ...r, pid: child.pid, stop: () => child.stdin?.end(), onExit: (l) => (child.exitCode !== null || child.signalCode !== null ? l(child.exitCode) : child.once('exit', (code) => l(code))) }),
    );
    child.once('error', (e) => reject(new Error(`cannot start the engine with '${nodeBin}': ${e.message} (set CARSTUDIO_NODE to a Node 20+ binary)`)));
    child.once('exit', (code) => reject(new Error(`the engine exited with code ${code} before it was ready`)));
  });
}

export interface EngineLinkOptions {
  /** Starts one engine process and resolves once it is ready. */
  start: () => Promise<EngineHandle>;
  fetch?: FetchLike;
  /** Where the link says what happened to the engine (the shell's stderr by default). */
  log?: (message: string) => void;
}

export class EngineLink {
  private readonly state = new StateCell('connecting');
  private readonly eventListeners = new Set<(event: string, data: unknown) => void>();
  private handle: EngineHandle | null = null;
  private socket: WebSocket | null = null;
  private closing = false;
  private attempt = 0;
  private timers = new Set<NodeJS.Timeout>();
  private readonly fetch: FetchLike;
  private readonly log: (message: string) => void;

  constructor(private readonly opts: EngineLinkOptions) {
    this.fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.log = opts.log ?? ((m) => process.stderr.write(`carstudio: ${m}\n`));
  }

  /** Starts the first engine; rejects when it cannot start (the shell says so and quits). */
  async start(): Promise<void> {
    await this.launch();
  }

  /** The engine now serving calls, or null while it is away. */
  current(): EngineHandle | null {
    return this.handle;
  }

  connection(): ConnectionState {
    return this.state.get();
  }

  /** Calls `l` on every change of the connection state. */
  onConnection(l: (s: ConnectionState) => void): () => void {
    return this.state.on(l);
  }

  onEvent(l: (event: string, data: unknown) => void): () => void {
    this.eventListeners.add(l);
    return () => this.eventListeners.delete(l);
  }

  /** Forwards one call to the engine's HTTP API; never throws (a failure is an error result). */
  async request(method: string, params: unknown): Promise<ApiResult<unknown>> {
    const h = this.handle;
    if (!h) return connectionLost(new Error('the engine is restarting'));
    let res: { status: number; json(): Promise<unknown> };
    try {
      res = await this.fetch(`${h.url}api/${encodeURIComponent(method)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${h.token}` },
        body: JSON.stringify(params ?? {}),
      });
    } catch (err) {
      // The engine is away although its event stream may still look open: say so now and let
      // the event stream's reconnect decide when it is back (as served mode does).
      if (h === this.handle && !this.closing) {
        this.state.set('closed');
        this.socket?.terminate();
      }
      return connectionLost(err);
    }
    try {
      return (await res.json()) as ApiResult<unknown>;
    } catch {
      return unreadableAnswer(res.status);
    }
  }

  /** Stops restarting, asks the engine to stop cleanly and resolves once it has exited. */
  close(): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const h = this.handle;
    this.handle = null;
    this.socket?.close();
    this.socket = null;
    if (!h) return Promise.resolve();
    return new Promise((resolve) => {
      h.onExit(() => resolve());
      h.stop();
    });
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private async launch(): Promise<void> {
    const h = await this.opts.start();
    if (this.closing) {
      h.stop();
      return;
    }
    this.handle = h;
    h.onExit((code) => {
      if (this.handle !== h || this.closing) return;
      this.handle = null;
      this.socket?.terminate();
      this.socket = null;
      this.state.set('closed');
      this.log(`the engine exited (code ${code}); starting it again`);
      this.restart();
    });
    this.connectEvents(h);
  }

  private restart(): void {
    this.later(() => {
      if (this.closing) return;
      this.launch().catch((e: Error) => {
        this.log(`the engine did not start again: ${e.message}`);
        this.restart();
      });
    }, restartDelay(this.attempt++));
  }

  private connectEvents(h: EngineHandle): void {
    if (this.closing || this.handle !== h) return;
    // The engine reads the token from a cookie or this header, never from the WebSocket's query.
    const ws = new WebSocket(`${h.url.replace(/^http/, 'ws')}api/events`, { headers: { Authorization: `Bearer ${h.token}` } });
    this.socket = ws;
    ws.onerror = () => {};
    ws.onopen = () => {
      if (this.handle !== h || this.closing) return;
      this.attempt = 0;
      this.state.set('open');
    };
    ws.onmessage = (m) => {
      try {
        const msg = JSON.parse(String(m.data)) as { event: string; data: unknown };
        for (const l of [...this.eventListeners]) l(msg.event, msg.data);
      } catch {
        /* ignore malformed frames */
      }
    };
    ws.onclose = () => {
      if (this.socket === ws) this.socket = null;
      if (this.closing || this.handle !== h) return;
      this.state.set('closed');
      this.later(() => this.connectEvents(h), 1000);
    };
  }
}
