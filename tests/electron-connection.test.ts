// The desktop shell's engine connection under plain Node (no Electron binary here): the main
// process's EngineLink with the real `carstudio serve` child it starts, wired straight to the
// renderer's IPC client (what preload and ipcMain carry between them, without the IPC). The
// engine is killed for real; the client must report the lost connection once, answer calls with
// the ConnectionError the banner covers, and be back on a restarted engine.
import { afterAll, describe, expect, it } from 'vitest';
import type { ConnectionState, EventName, JobInfo } from '../src-main/engine/api/contract/index.ts';
import { connectionLost, followConnection, restartDelay, StateCell, unreadableAnswer } from '../src-main/electron/connection.ts';
import { EngineLink, serveArgs, startEngineWithNode } from '../src-main/electron/engine-link.ts';
import { ApiCallError, ipcApi, type IpcBridge } from '../src-renderer/src/api/ipc.ts';
import { CONNECTION_ERRORS, failureMessage } from '../src-renderer/src/messages.ts';
import { ROOT, seedStoredImages, tmpWorkspace } from './helpers/workspace.ts';
import { waitFor } from './helpers/processes.ts';

describe('connection state decisions', () => {
  it('backs off restarts from half a second to five', () => {
    expect([0, 1, 2, 3, 4, 5, 9].map(restartDelay)).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it('answers a call the engine cannot receive with the error the banner covers, in the user\'s words', () => {
    const r = connectionLost(new Error('connect ECONNREFUSED 127.0.0.1:4321'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(CONNECTION_ERRORS.has(r.error.name)).toBe(true);
    const e = new ApiCallError(r.error.name, r.error.message, 'jobs.list');
    expect(failureMessage(e, 'jobs.list')).toBe('The studio cannot reach its engine right now; it keeps retrying.');
    const bad = unreadableAnswer(502);
    expect(!bad.ok && bad.error.name).toBe('ProtocolError');
  });

  it('tells each change once, and a change that comes before the current state wins over it', async () => {
    const cell = new StateCell('open');
    const seen: ConnectionState[] = [];
    cell.on((s) => seen.push(s));
    for (const s of ['closed', 'closed', 'closed', 'open', 'open'] as const) cell.set(s);
    expect(seen).toEqual(['closed', 'open']);

    // the main process answers "open" late; meanwhile the engine died and it said "closed"
    let answer!: (s: ConnectionState) => void;
    const fed: ConnectionState[] = [];
    const live = new StateCell('open');
    const stop = followConnection((l) => live.on(l), () => new Promise((r) => (answer = r)), (s) => fed.push(s));
    live.set('closed');
    answer('open');
    await new Promise((r) => setTimeout(r, 10));
    expect(fed).toEqual(['closed']);
    stop();
    live.set('open');
    expect(fed).toEqual(['closed']);

    // with no change in between, the current state is what the listener hears first
    const first: ConnectionState[] = [];
    followConnection((l) => live.on(l), async () => live.get(), (s) => first.push(s));
    await new Promise((r) => setTimeout(r, 10));
    expect(first).toEqual(['open']);
  });

  it('runs serve for the named workspace, or the demo, with the home folder readable', () => {
    expect(serveArgs(['electron', '.', '--workspace', '/w', '--create'], '/home/u')).toEqual(['serve', '--ready-json', '--port', '0', '--allow-path', '/home/u', '--workspace', '/w', '--create']);
    expect(serveArgs(['electron', '.'], '/home/u')).toEqual(['serve', '--ready-json', '--port', '0', '--allow-path', '/home/u', '--demo']);
  });
});

describe('the desktop shell when its engine process dies', () => {
  const links: EngineLink[] = [];
  afterAll(async () => {
    await Promise.all(links.map((l) => l.close()));
  });

  it('reports the lost connection once, answers ConnectionError meanwhile, and is back on a restarted engine', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 4);
    const dir = ws.dir;
    ws.close();
    const logged: string[] = [];
    const link = new EngineLink({ start: () => startEngineWithNode(ROOT, ['serve', '--ready-json', '--port', '0', '--workspace', dir]), log: (m) => logged.push(m) });
    links.push(link);
    await link.start();
    // what preload and ipcMain carry: the same four things, here without the IPC in between
    const bridge: IpcBridge = {
      request: (method, params) => link.request(method, params),
      subscribe: (l) => link.onEvent(l),
      onConnection: (l) => followConnection((f) => link.onConnection(f), async () => link.connection(), l),
      imageBase: 'carstudio-image://img/',
    };
    const api = ipcApi(bridge);
    const states: ConnectionState[] = [];
    api.onConnection((s) => states.push(s));
    await waitFor(() => states.at(-1) === 'open', 'the event stream to open', 30_000);
    const before = await api.request('workspace.info', {});
    expect(before.dir).toBe(dir);
    const firstPid = link.current()!.pid!;

    // the engine process dies without a word
    process.kill(firstPid, 'SIGKILL');
    await waitFor(() => states.includes('closed'), 'the client to report the lost connection', 10_000);
    const during = await api.request('workspace.info', {}).then(
      () => null,
      (e: unknown) => e,
    );
    // a call while it is away (a new engine takes seconds to start) is a ConnectionError: no
    // toast, the banner covers it
    expect(during).toBeInstanceOf(ApiCallError);
    expect((during as Error).name).toBe('ConnectionError');
    expect(states.at(-1)).toBe('closed');

    // a new engine comes up on its own, with its own port and token, and calls and events work on it
    await waitFor(() => states.at(-1) === 'open', 'the restarted engine', 60_000);
    expect(link.current()!.pid).not.toBe(firstPid);
    expect(logged.some((m) => /the engine exited .*starting it again/.test(m))).toBe(true);
    const after = await api.request('workspace.info', {});
    expect(after.dir).toBe(dir);
    const events: Array<{ event: EventName; data: unknown }> = [];
    api.subscribe((event, data) => events.push({ event, data }));
    const job = await api.request('jobs.start', { kind: 'verify-store', params: {} });
    await waitFor(() => events.some((e) => e.event === 'job.updated' && (e.data as JobInfo).id === job.id && (e.data as JobInfo).state === 'done'), 'the job events from the new engine', 30_000);
    // one lost connection: one "closed" between the two "open"s, so one banner
    expect(states.filter((s) => s !== 'connecting')).toEqual(['open', 'closed', 'open']);

    // closing the shell stops the engine cleanly and starts no other
    const lastPid = link.current()!.pid!;
    await link.close();
    expect(() => process.kill(lastPid, 0)).toThrow();
    await new Promise((r) => setTimeout(r, 700));
    expect(link.current()).toBeNull();
  }, 120_000);

  it('says the connection is lost when a call finds nothing listening although the engine process lives', async () => {
    const ws = tmpWorkspace();
    const dir = ws.dir;
    ws.close();
    const link = new EngineLink({ start: () => startEngineWithNode(ROOT, ['serve', '--ready-json', '--port', '0', '--workspace', dir]), log: () => {} });
    links.push(link);
    await link.start();
    const states: ConnectionState[] = [];
    const api = ipcApi({ request: (m, p) => link.request(m, p), subscribe: (l) => link.onEvent(l), onConnection: (l) => followConnection((f) => link.onConnection(f), async () => link.connection(), l), imageBase: '' });
    api.onConnection((s) => states.push(s));
    await waitFor(() => states.at(-1) === 'open', 'the event stream to open', 30_000);
    // the engine's HTTP server is not there although its process lives: a call to a port nothing
    // listens on (the handle's address, pointed away for one call)
    const h = link.current()!;
    const real = h.url;
    h.url = 'http://127.0.0.1:9/';
    const e = await api.request('workspace.info', {}).then(
      () => null,
      (x: unknown) => x as Error,
    );
    expect(e?.name).toBe('ConnectionError');
    expect(states.at(-1)).toBe('closed');
    // the event stream reconnects to the engine, which is still there: open again
    h.url = real;
    await waitFor(() => states.at(-1) === 'open', 'the event stream to reconnect', 30_000);
    expect(states.filter((s) => s !== 'connecting')).toEqual(['open', 'closed', 'open']);
  }, 90_000);
});
