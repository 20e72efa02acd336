import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Engine } from '../engine.ts';

export interface ServeOptions {
  engine: Engine;
  host?: string;
  port?: number;
  /** Per-launch secret; generated when absent. */
  token?: string;
  /** The built renderer (index.html + assets). */
  staticDir: string;
  /** Extra Host names accepted (e.g. the box's DNS name when serving on 0.0.0.0). */
  allowedHosts?: string[];
}

export interface StudioServer {
  url: string;
  /** The URL to open, with the token. */
  openUrl: string;
  token: string;
  port: number;
  host: string;
  close(): Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;
/**
 * An oversized body is read and discarded up to this many bytes before the 413 is sent, so that
 * the client has finished sending and reads the status (closing on unread data makes the kernel
 * answer with a reset that swallows the response). Beyond it the connection is simply dropped.
 */
const MAX_DISCARD = 64 * 1024 * 1024;
const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
};

/**
 * The served studio: the built UI, the API contract over POST /api/<method>, push events over a
 * WebSocket at /api/events, and stored images at /images/<key>. Every request needs the
 * per-launch token: an HttpOnly SameSite=Strict cookie or an Authorization: Bearer header. The
 * query ?token= is accepted only on a GET of the page (/ or /index.html), which sets the cookie
 * and redirects to / without it; API calls, images and the WebSocket never read the query.
 * Host and Origin must name this server (DNS-rebinding defence); a request target that is not a
 * path (absolute-form), a repeated Host header or a malformed %-escape in the path is a 400.
 */
export async function startStudioServer(opts: ServeOptions): Promise<StudioServer> {
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? crypto.randomBytes(24).toString('base64url');
  const engine = opts.engine;
  let port = opts.port ?? 0;
  let cookieName = 'carstudio_token';

  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const sockets = new Set<WebSocket>();

  const allowedHostNames = (): Set<string> => {
    const names = new Set(['127.0.0.1', 'localhost', '[::1]', ...(opts.allowedHosts ?? [])].map((h) => h.toLowerCase()));
    if (host !== '127.0.0.1' && host !== 'localhost') {
      names.add(host.includes(':') ? `[${host}]` : host);
      if (host === '0.0.0.0' || host === '::') {
        names.add(os.hostname().toLowerCase());
        for (const addrs of Object.values(os.networkInterfaces())) {
          for (const a of addrs ?? []) names.add(a.family === 'IPv6' ? `[${a.address}]` : a.address);
        }
      }
    }
    return names;
  };
  const hostNames = allowedHostNames();

  const hostOk = (hostHeader: string | undefined): boolean => {
    if (!hostHeader) return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostHeader.toLowerCase());
    if (!m) return false;
    return hostNames.has(m[1]!) && (m[2] === undefined ? port === 80 : Number(m[2]) === port);
  };
  const originOk = (origin: string | undefined): boolean => {
    if (origin === undefined) return true;
    try {
      const u = new URL(origin);
      return u.protocol === 'http:' && hostOk(u.host);
    } catch {
      return false;
    }
  };
  /** The query token counts only when `queryAllowed` (the page load that turns it into the cookie). */
  const tokenOk = (req: http.IncomingMessage, url: URL, queryAllowed: boolean): boolean => {
    const candidates: string[] = [];
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) candidates.push(auth.slice(7));
    const q = queryAllowed ? url.searchParams.get('token') : null;
    if (q) candidates.push(q);
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === cookieName) candidates.push(safeDecode(v.join('=')) ?? '');
    }
    return candidates.some((c) => safeEqual(c, token));
  };
  /** Returns an error status for a request that must be refused, or 0. */
  const gate = (req: http.IncomingMessage, url: URL, queryAllowed: boolean): number => {
    if (!hostOk(req.headers.host)) return 421;
    if (!originOk(req.headers.origin as string | undefined)) return 403;
    if (!tokenOk(req, url, queryAllowed)) return 401;
    return 0;
  };

  server.on('request', (req, res) => {
    void handle(req, res).catch((e) => {
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: { name: 'InternalError', message: (e as Error).message } });
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    const malformed = malformedRequest(req);
    if (malformed) {
      req.resume();
      return sendText(res, 400, `CarStudio: bad request: ${malformed}\n`);
    }
    const url = new URL(req.url!, 'http://placeholder');
    const pageLoad = isPageLoad(req, url);
    const refused = gate(req, url, pageLoad);
    if (refused) {
      const why =
        refused === 421 ? 'this server does not answer for that Host' : refused === 403 ? 'cross-origin request refused' : 'missing or wrong access token: open the URL that `carstudio serve` printed';
      req.resume();
      if (url.pathname.startsWith('/api/')) sendJson(res, refused, { ok: false, error: { name: 'Forbidden', message: why } });
      else sendText(res, refused, `CarStudio: ${why}\n`);
      return;
    }
    // A valid ?token= on the page load: remember it in a cookie and drop it from the address bar.
    // The redirect always goes to this server's own root (never to a path such as //evil.com/).
    if (pageLoad && url.searchParams.has('token')) {
      url.searchParams.delete('token');
      res.setHeader('Set-Cookie', `${cookieName}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
      res.writeHead(303, { Location: `/${url.search}` });
      res.end();
      req.resume();
      return;
    }
    if (url.pathname.startsWith('/api/')) {
      if (req.method !== 'POST') return sendJson(res, 405, { ok: false, error: { name: 'MethodNotAllowed', message: 'use POST' } });
      const ct = req.headers['content-type'] ?? '';
      if (!ct.startsWith('application/json')) {
        req.resume();
        return sendJson(res, 415, { ok: false, error: { name: 'UnsupportedMediaType', message: 'send application/json' } });
      }
      // a declared length past what is worth discarding is answered at once (the client may still be sending)
      const declared = Number(req.headers['content-length'] ?? 0);
      const raw = declared > MAX_DISCARD ? 'too-large' : await readBody(req, MAX_BODY);
      if (raw === 'too-large') {
        return sendJson(res, 413, { ok: false, error: { name: 'PayloadTooLarge', message: `request body is over ${MAX_BODY / 1024 / 1024} MiB` } }, { Connection: 'close' });
      }
      let body: unknown;
      try {
        body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
      } catch (e) {
        return sendJson(res, 400, { ok: false, error: { name: 'BadRequest', message: `request body is not valid JSON: ${(e as Error).message}` } });
      }
      const method = decodeURIComponent(url.pathname.slice('/api/'.length));
      const result = await engine.call(method, body);
      return sendJson(res, 200, result);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed\n');
    if (url.pathname.startsWith('/images/')) {
      const key = url.pathname.slice('/images/'.length);
      let file: string;
      try {
        file = engine.ws.store.pathFor(key);
      } catch {
        return sendText(res, 400, 'bad image key\n');
      }
      return sendFile(res, file, 'image/jpeg', 'private, max-age=31536000, immutable');
    }
    // Static UI, with index.html for client-side routes.
    const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = path.join(opts.staticDir, rel);
    if (!file.startsWith(opts.staticDir)) return sendText(res, 400, 'bad path\n');
    if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(opts.staticDir, 'index.html');
    if (!fs.existsSync(file)) {
      return sendText(res, 503, `The studio UI is not built (${opts.staticDir} is missing). Run 'npm run build' (npm start does it for you).\n`);
    }
    return sendFile(res, file, MIME[path.extname(file)] ?? 'application/octet-stream', file.endsWith('index.html') ? 'no-store' : 'private, max-age=3600');
  }

  server.on('upgrade', (req, socket, head) => {
    const malformed = malformedRequest(req) !== null;
    const url = malformed ? null : new URL(req.url!, 'http://placeholder');
    const refused = !url ? 400 : url.pathname === '/api/events' ? gate(req, url, false) : 404;
    if (refused) {
      socket.write(`HTTP/1.1 ${refused} ${http.STATUS_CODES[refused]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('error', () => sockets.delete(ws));
      ws.send(JSON.stringify({ event: 'hello', data: { pid: process.pid } }));
    });
  });

  const off = engine.on((event, data) => {
    if (sockets.size === 0) return;
    const msg = JSON.stringify({ event, data });
    for (const s of sockets) if (s.readyState === s.OPEN) s.send(msg);
  });
  const ping = setInterval(() => {
    for (const s of sockets) if (s.readyState === s.OPEN) s.ping();
  }, 20_000);
  ping.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  cookieName = `carstudio_token_${port}`;
  const shownHost = host === '0.0.0.0' || host === '::' ? os.hostname() : host.includes(':') ? `[${host}]` : host;
  const base = `http://${shownHost}:${port}/`;
  return {
    url: base,
    openUrl: `${base}?token=${token}`,
    token,
    port,
    host,
    async close() {
      off();
      clearInterval(ping);
      for (const s of sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && crypto.timingSafeEqual(ba, bb);
}

function safeDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** Why a request is malformed (answered 400 before anything else looks at it), or null. */
function malformedRequest(req: http.IncomingMessage): string | null {
  const target = req.url ?? '';
  // origin-form only: an absolute-form target (GET http://host/path) would bypass the Host check
  if (!target.startsWith('/') || target.startsWith('//')) return 'the request target must be a path starting with a single /';
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  if (hosts > 1) return 'more than one Host header';
  if (safeDecode(new URL(target, 'http://placeholder').pathname) === null) return 'malformed %-escape in the path';
  return null;
}

/** A GET of the UI's page itself: the only request on which the query ?token= is accepted. */
function isPageLoad(req: http.IncomingMessage, url: URL): boolean {
  return req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html');
}

/**
 * The body, or 'too-large' once it passes `max`: the rest is then read and discarded (up to
 * MAX_DISCARD, beyond which the connection is dropped) so that the caller can answer 413.
 */
function readBody(req: http.IncomingMessage, max: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_DISCARD) {
        req.destroy();
        resolve('too-large');
      } else if (size <= max) chunks.push(c);
      else chunks.length = 0;
    });
    req.on('end', () => resolve(size > max ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendFile(res: http.ServerResponse, file: string, type: string, cache: string): void {
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) return sendText(res, 404, 'not found\n');
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': st.size, 'Cache-Control': cache });
    if (res.req.method === 'HEAD') return void res.end();
    fs.createReadStream(file).on('error', () => res.destroy()).pipe(res);
  });
}
