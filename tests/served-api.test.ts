import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';

/** A raw request, so that Host and Origin can be set freely. */
function raw(port: number, opts: { path: string; method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: opts.path, method: opts.method ?? 'GET', headers: opts.headers, setHost: !opts.headers?.Host }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('served studio', () => {
  let s: Served;
  let key: string;
  beforeAll(async () => {
    const dir = tmpDir();
    const ws = Workspace.open(`${dir}/ws`, { create: true });
    [key] = await seedStoredImages(ws, 3);
    ws.close();
    s = await startServe(['--workspace', `${dir}/ws`]);
  });
  afterAll(async () => {
    expect(await s.stop()).toBe(0);
  });

  const json = { 'Content-Type': 'application/json' };

  it('answers API calls with the token and refuses them without it', async () => {
    const stats = (await api(s, 'stats.get')) as { images: { stored: number } };
    expect(stats.images.stored).toBe(3);
    const none = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: json, body: '{}' });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ ok: false, error: { name: 'Forbidden' } });
    const wrong = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: { ...json, Authorization: 'Bearer nope' }, body: '{}' });
    expect(wrong.status).toBe(401);
    // pages and images need it too
    expect((await raw(s.port, { path: '/' })).status).toBe(401);
    expect((await raw(s.port, { path: `/images/${key}` })).status).toBe(401);
  });

  it('refuses a foreign Host (DNS rebinding) and a foreign Origin even with the token', async () => {
    const auth = { ...json, Authorization: `Bearer ${s.token}` };
    const rebound = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: { ...auth, Host: `evil.example:${s.port}` }, body: '{}' });
    expect(rebound.status).toBe(421);
    const wrongPort = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: { ...auth, Host: `127.0.0.1:1` }, body: '{}' });
    expect(wrongPort.status).toBe(421);
    const cors = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: { ...auth, Origin: 'http://evil.example' }, body: '{}' });
    expect(cors.status).toBe(403);
    const same = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: { ...auth, Origin: `http://localhost:${s.port}`, Host: `localhost:${s.port}` }, body: '{}' });
    expect(same.status).toBe(200);
  });

  it('turns ?token= into an HttpOnly cookie and serves the UI and images with it', async () => {
    const first = await raw(s.port, { path: `/?token=${s.token}` });
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/');
    const cookie = first.headers['set-cookie']![0]!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const c = cookie.split(';')[0]!;
    const page = await raw(s.port, { path: '/', headers: { Cookie: c } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<div id="root">');
    const img = await raw(s.port, { path: `/images/${key}`, headers: { Cookie: c } });
    expect(img.status).toBe(200);
    expect(img.headers['content-type']).toBe('image/jpeg');
  });

  it('validates requests against the contract and returns errors as values', async () => {
    const auth = { ...json, Authorization: `Bearer ${s.token}` };
    const bad = await raw(s.port, { path: '/api/jobs.get', method: 'POST', headers: auth, body: '{"id":"x"}' });
    expect(JSON.parse(bad.body)).toMatchObject({ ok: false, error: { name: 'UserError', message: expect.stringMatching(/invalid parameters for jobs.get/) } });
    const unknown = await raw(s.port, { path: '/api/nope', method: 'POST', headers: auth, body: '{}' });
    expect(JSON.parse(unknown.body).error.message).toMatch(/unknown method/);
    const garbage = await raw(s.port, { path: '/api/stats.get', method: 'POST', headers: auth, body: '{' });
    expect(garbage.status).toBe(400);
  });

  it('pushes job events over a WebSocket that requires the token', async () => {
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    expect(refused).toBe(401);
    const foreign = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`, { headers: { Origin: 'http://evil.example', Authorization: `Bearer ${s.token}` } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    expect(foreign).toBe(403);
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`, { headers: { Authorization: `Bearer ${s.token}` } });
    const events: Array<{ event: string; data: { state?: string } }> = [];
    await new Promise((r) => ws.once('open', r));
    ws.on('message', (m) => events.push(JSON.parse(String(m))));
    const job = (await api(s, 'jobs.start', { kind: 'verify-store', params: {} })) as { id: number };
    const end = Date.now() + 15_000;
    while (!events.some((e) => e.event === 'job.updated' && e.data.state === 'done') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    ws.close();
    expect(events.some((e) => e.event === 'job.updated' && e.data.state === 'done')).toBe(true);
    expect(events.some((e) => e.event === 'job.log')).toBe(true);
    const final = (await api(s, 'jobs.get', { id: job.id })) as { result: unknown };
    expect(final.result).toEqual({ checked: 3, bad: 0 });
  });
});
