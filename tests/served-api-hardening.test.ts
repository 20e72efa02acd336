import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { startServe, type Served } from './helpers/processes.ts';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The connection ended with a reset (ECONNRESET/EPIPE) rather than a clean close. */
  reset: string | null;
}

/**
 * Sends bytes exactly as given over a plain TCP socket to 127.0.0.1 (so that requests no HTTP
 * client would send can be made) and reads until the server closes the connection.
 */
function rawExchange(port: number, head: string, body?: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let reset: string | null = null;
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e: NodeJS.ErrnoException) => (reset = e.code ?? e.message));
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
      if (!m) return reject(new Error(`no HTTP answer (${reset ?? 'closed'}): ${JSON.stringify(text.slice(0, 200))}`));
      const headers: Record<string, string> = {};
      for (const line of m[2]!.split('\r\n')) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers, body: m[3]!, reset });
    });
    sock.write(head);
    if (body) sock.write(body);
  });
}

/** The status a WebSocket upgrade to /api/events gets (101 when it opens). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('error', () => {});
  });
}

describe('served studio: malformed and hostile requests', () => {
  let s: Served;
  let key: string;
  let host: string;
  beforeAll(async () => {
    const dir = tmpDir();
    const ws = Workspace.open(`${dir}/ws`, { create: true });
    [key] = await seedStoredImages(ws, 1);
    ws.close();
    s = await startServe(['--workspace', `${dir}/ws`]);
    host = `127.0.0.1:${s.port}`;
  });
  afterAll(async () => {
    expect(await s.stop()).toBe(0);
  });

  const get = (target: string, extra = ''): Promise<RawAnswer> =>
    rawExchange(s.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
  const post = (target: string, body: string, extra = ''): Promise<RawAnswer> =>
    rawExchange(
      s.port,
      `POST ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );

  it('redirects the token page load only to its own root, never to another host', async () => {
    const evil = await get(`/.//evil.com/?token=${s.token}`);
    expect(evil.status).toBe(401);
    expect(evil.headers.location).toBeUndefined();
    const protocolRelative = await get(`//evil.com/?token=${s.token}`);
    expect(protocolRelative.status).toBe(400);
    expect(protocolRelative.headers.location).toBeUndefined();
    const page = await get(`/?token=${s.token}&lang=en`);
    expect(page.status).toBe(303);
    expect(page.headers.location).toBe('/?lang=en');
    expect(page.headers['set-cookie']).toMatch(/HttpOnly; SameSite=Strict/);
    const index = await get(`/index.html?token=${s.token}`);
    expect(index.status).toBe(303);
    expect(index.headers.location).toBe('/');
  });

  it('accepts the query token only on the page load, not for API calls, images or the WebSocket', async () => {
    const q = `?token=${s.token}`;
    const apiCall = await post(`/api/stats.get${q}`, '{}');
    expect(apiCall.status).toBe(401);
    expect(JSON.parse(apiCall.body)).toMatchObject({ ok: false, error: { name: 'Forbidden' } });
    expect((await get(`/images/${key}${q}`)).status).toBe(401);
    expect((await get(`/assets/x.js${q}`)).status).toBe(401);
    expect(await upgradeStatus(`ws://${host}/api/events${q}`)).toBe(401);
    // what the renderer (cookie) and the Electron shell (Bearer) use still works
    const cookie = (await get(`/${q}`)).headers['set-cookie']!.split(';')[0]!;
    expect(await upgradeStatus(`ws://${host}/api/events`, { Cookie: cookie })).toBe(101);
    expect(await upgradeStatus(`ws://${host}/api/events`, { Authorization: `Bearer ${s.token}` })).toBe(101);
    expect((await get(`/images/${key}`, `Cookie: ${cookie}\r\n`)).status).toBe(200);
    expect((await post('/api/stats.get', '{}', `Authorization: Bearer ${s.token}\r\n`)).status).toBe(200);
  });

  it('refuses a repeated Host header and an absolute-form request target with 400', async () => {
    const auth = `Authorization: Bearer ${s.token}\r\n`;
    const twoHosts = await rawExchange(
      s.port,
      `POST /api/stats.get HTTP/1.1\r\nHost: ${host}\r\nHost: evil.example\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    expect(twoHosts.status).toBe(400);
    const twoHostsFlipped = await rawExchange(
      s.port,
      `GET / HTTP/1.1\r\nHost: evil.example\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    );
    expect(twoHostsFlipped.status).toBe(400);
    const absolute = await rawExchange(
      s.port,
      `POST http://${host}/api/stats.get HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    expect(absolute.status).toBe(400);
    const absoluteElsewhere = await rawExchange(
      s.port,
      `GET http://evil.example/ HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
    );
    expect(absoluteElsewhere.status).toBe(400);
    const upgrade = await rawExchange(
      s.port,
      `GET http://${host}/api/events HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(upgrade.status).toBe(400);
  });

  it('answers a malformed %-escape in the path with 400, not 500', async () => {
    const auth = `Authorization: Bearer ${s.token}\r\n`;
    expect((await get('/%E0%A4%A', auth)).status).toBe(400);
    expect((await get('/assets/%zz.js', auth)).status).toBe(400);
    expect((await get(`/images/%zz${key}`, auth)).status).toBe(400);
    expect((await post('/api/stats%.get', '{}', auth)).status).toBe(400);
    // a well-formed escape is still fine
    expect((await post('/api/stats%2Eget', '{}', auth)).status).toBe(200);
  });

  it('answers a body over 8 MiB with a JSON 413 the client can read, then closes', async () => {
    const auth = `Authorization: Bearer ${s.token}\r\n`;
    const size = 9 * 1024 * 1024;
    const body = Buffer.alloc(size, 0x20);
    const big = await rawExchange(
      s.port,
      `POST /api/stats.get HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
      body,
    );
    expect(big.reset).toBeNull();
    expect(big.status).toBe(413);
    expect(big.headers.connection).toBe('close');
    expect(JSON.parse(big.body)).toMatchObject({ ok: false, error: { name: 'PayloadTooLarge' } });
    // chunked, with no declared length
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const framed = Buffer.concat([
      ...Array.from({ length: 9 }, () => Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])),
      Buffer.from('0\r\n\r\n'),
    ]);
    const chunked = await rawExchange(
      s.port,
      `POST /api/stats.get HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      framed,
    );
    expect(chunked.reset).toBeNull();
    expect(chunked.status).toBe(413);
    // the engine is still serving
    expect((await post('/api/stats.get', '{}', auth)).status).toBe(200);
  });
});
