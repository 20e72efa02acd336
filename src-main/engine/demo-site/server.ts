/**
 * The demo listing site: a KBB-format site on 127.0.0.1 (node:http), for offline use and as the
 * fault fixture of the scraper tests.
 *
 * Routes: `/cars-for-sale/vehicledetails.xhtml?listingId=ID` (listing or gone page, or 404),
 * `/images/<imageId>.jpg` (rendered JPEG), `/` (an index page). Everything is deterministic from
 * `seed`; with `faults` set, transient faults depend on (URL, attempt number) and permanent ones
 * on the URL only (see faults.ts).
 */
import http from 'node:http';
import zlib from 'node:zlib';
import type { Socket } from 'node:net';
import { DEFAULT_DEMO_SEED, getListing, listingPresence, hash32 } from './catalog.ts';
import {
  expectedImageOutcome as expectedImageOutcomeFor,
  expectedOutcome as expectedOutcomeFor,
  permanentImageFault,
  permanentListingFault,
  resolveFaults,
  transientFault,
  type ExpectedImageOutcome,
  type ExpectedListingOutcome,
  type FaultOptions,
  type ResolvedFaults,
  type RetryAfterForm,
  type TransientDecision,
} from './faults.ts';
import { renderBlobLessPage, renderGonePage, renderListingPage, renderNotFoundPage } from './pages.ts';
import { parseImageId, pixelBombPng, renderImage } from './images.ts';

export type { FaultOptions } from './faults.ts';

export type PathKind = 'listing' | 'image' | 'other';

export interface RetryAfterEvent {
  path: string;
  /** Epoch ms when the 429/503 was sent. */
  sentAt: number;
  status: number;
  form: RetryAfterForm;
  header: string | null;
  /** Epoch ms before which the header asks for no further request (null: garbage or none). */
  notBefore: number | null;
}

export interface RequestLogEntry {
  path: string;
  kind: PathKind;
  /** Epoch ms of arrival. */
  at: number;
  /** 0-based attempt number of this path. */
  attempt: number;
  /** What the server did: 'ok', a transient fault name, or a permanent fault name. */
  action: string;
}

export interface DemoSiteStats {
  requests: number;
  byKind: Record<PathKind, number>;
  byStatus: Record<string, number>;
  inFlight: number;
  maxInFlight: number;
  /** Count of injected faults by name (transient and permanent). */
  faults: Record<string, number>;
  retryAfter: RetryAfterEvent[];
  /** Every request (capped at 200k entries). */
  log: RequestLogEntry[];
  /** Pages sent compressed, by Content-Encoding (with `compressPages`). */
  encodings: Record<string, number>;
}

export interface DemoSiteOptions {
  port?: number;
  host?: string;
  seed?: number;
  /** Ids outside [minId, maxId] are 404s. Defaults: 1 .. 2^31-1. */
  minId?: number;
  maxId?: number;
  faults?: FaultOptions;
  /**
   * 'rendered' (default): a generated photo per image id. 'tiny': one small cached JPEG for every
   * id (benchmarks of the scraper's own overhead). 'none': listings without images.
   */
  images?: 'rendered' | 'tiny' | 'none';
  /**
   * Send listing, gone and 404 pages with Content-Encoding gzip, deflate or br (chosen per URL
   * among those the request's Accept-Encoding lists), as real sites do. Default false.
   */
  compressPages?: boolean;
}

export interface DemoSite {
  url: string;
  seed: number;
  close(): Promise<void>;
  stats(): DemoSiteStats;
  /** Final outcome of listing `id` for a correct scraper (faults taken into account). */
  expectedOutcome(id: number): ExpectedListingOutcome;
  /** Final outcome of an image URL for a correct downloader. */
  expectedImageOutcome(url: string): ExpectedImageOutcome;
}

const LISTING_PATH = '/cars-for-sale/vehicledetails.xhtml';

const ENCODERS = { gzip: (b: Buffer) => zlib.gzipSync(b), deflate: (b: Buffer) => zlib.deflateSync(b), br: (b: Buffer) => zlib.brotliCompressSync(b) } as const;
type PageEncoding = keyof typeof ENCODERS;

/** A Content-Encoding the client accepts, picked per URL (so each encoding gets used), or null. */
function pageEncoding(req: http.IncomingMessage, pathAndQuery: string): PageEncoding | null {
  const header = String(req.headers['accept-encoding'] ?? '').toLowerCase();
  const accepted = (Object.keys(ENCODERS) as PageEncoding[]).filter((e) => header.split(',').some((part) => part.trim().split(';')[0] === e));
  return accepted.length ? accepted[hash32(pathAndQuery, 'encoding') % accepted.length]! : null;
}
const LOG_CAP = 200_000;

export async function startDemoSite(opts: DemoSiteOptions = {}): Promise<DemoSite> {
  const host = opts.host ?? '127.0.0.1';
  const seed = opts.seed ?? DEFAULT_DEMO_SEED;
  const minId = opts.minId ?? 1;
  const maxId = opts.maxId ?? 2 ** 31 - 1;
  const faults: ResolvedFaults | null = resolveFaults(opts.faults);
  const attempts = new Map<string, number>();
  const imageCache = new Map<string, Promise<Buffer | null>>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let baseUrl = '';

  const stats: DemoSiteStats = {
    requests: 0,
    byKind: { listing: 0, image: 0, other: 0 },
    byStatus: {},
    inFlight: 0,
    maxInFlight: 0,
    faults: {},
    retryAfter: [],
    log: [],
    encodings: {},
  };
  const countFault = (name: string): void => {
    stats.faults[name] = (stats.faults[name] ?? 0) + 1;
  };

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const imageMode = opts.images ?? 'rendered';
  let tiny: Promise<Buffer | null> | null = null;
  function image(imageId: string): Promise<Buffer | null> {
    if (imageMode === 'tiny') return (tiny ??= renderImage('s-0', seed));
    let p = imageCache.get(imageId);
    if (!p) {
      p = renderImage(imageId, seed);
      imageCache.set(imageId, p);
      if (imageCache.size > 2000) imageCache.delete(imageCache.keys().next().value as string);
    }
    return p;
  }

  function send(res: http.ServerResponse, status: number, type: string, body: Buffer, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(body.length), ...headers });
    res.end(body);
  }

  /** Serve `body` through a transient fault. */
  function serveFaulty(req: http.IncomingMessage, res: http.ServerResponse, d: TransientDecision, path: string, status: number, type: string, body: Buffer): void {
    const f = faults!;
    const socket = req.socket;
    switch (d.fault) {
      case 'status-503':
      case 'status-429': {
        const status = d.fault === 'status-503' ? 503 : 429;
        const form = d.retryAfter ?? 'none';
        const now = Date.now();
        let header: string | null = null;
        let notBefore: number | null = null;
        switch (form) {
          case 'seconds':
            header = String(f.retryAfterSeconds);
            notBefore = now + f.retryAfterSeconds * 1000;
            break;
          case 'http-date':
            header = new Date(now + f.retryAfterSeconds * 1000 + 999).toUTCString();
            notBefore = Date.parse(header);
            break;
          case 'zero':
            header = '0';
            notBefore = now;
            break;
          case 'garbage':
            header = hash32(path) % 2 ? 'soon, please' : '-1x';
            break;
          case 'huge':
            header = String(f.hugeRetryAfterSeconds);
            notBefore = now + f.hugeRetryAfterSeconds * 1000;
            break;
          case 'none':
            break;
        }
        stats.retryAfter.push({ path, sentAt: now, status, form, header, notBefore });
        const html = Buffer.from(renderBlobLessPage('maintenance'));
        send(res, status, 'text/html; charset=utf-8', html, header !== null ? { 'Retry-After': header } : {});
        return;
      }
      case 'reset-before-headers':
        socket.destroy();
        return;
      case 'reset-after-headers':
        res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        later(20, () => socket.destroy());
        return;
      case 'stall-headers':
        later(f.stallMs, () => {
          if (!res.destroyed && !socket.destroyed) send(res, status, type, body);
        });
        return;
      case 'stall-body':
        res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 3)));
        later(f.stallMs, () => socket.destroy());
        return;
      case 'slow-body': {
        const chunks = 5;
        const step = Math.ceil(body.length / chunks);
        res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(body.length) });
        stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
        let i = 0;
        const tick = (): void => {
          if (res.destroyed) return;
          const part = body.subarray(i * step, (i + 1) * step);
          i++;
          if (i >= chunks) res.end(part);
          else {
            res.write(part);
            later(f.slowMs / chunks, tick);
          }
        };
        tick();
        return;
      }
      case 'truncated-length': {
        // Raw response: Content-Length says the full size, fewer bytes follow, then the connection closes.
        const head = `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
        socket.write(head);
        socket.end(body.subarray(0, Math.floor(body.length * 0.7)));
        return;
      }
      case 'truncated-chunked':
        res.writeHead(200, { 'Content-Type': type }); // chunked
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        later(20, () => socket.destroy()); // never sends the last chunk
        return;
      case 'redirect': {
        const u = new URL(req.url ?? '/', baseUrl);
        u.searchParams.append('via', 'redirect');
        stats.byStatus[302] = (stats.byStatus[302] ?? 0) + 1;
        res.writeHead(302, { Location: u.pathname + u.search, 'Content-Length': '0' });
        res.end();
        return;
      }
      case 'no-blob':
        send(res, 200, 'text/html; charset=utf-8', Buffer.from(renderBlobLessPage(hash32(path) % 2 ? 'captcha' : 'maintenance')));
        return;
      case 'malformed-json':
        // Handled by the listing route (needs the listing); never reaches here.
        send(res, 500, 'text/plain', Buffer.from('internal error'));
        return;
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', baseUrl);
    const pathAndQuery = u.pathname + u.search;
    const kind: PathKind = u.pathname === LISTING_PATH ? 'listing' : u.pathname.startsWith('/images/') ? 'image' : 'other';
    const attempt = attempts.get(pathAndQuery) ?? 0;
    attempts.set(pathAndQuery, attempt + 1);
    stats.requests++;
    stats.byKind[kind]++;
    const logEntry: RequestLogEntry = { path: pathAndQuery, kind, at: Date.now(), attempt, action: 'ok' };
    if (stats.log.length < LOG_CAP) stats.log.push(logEntry);

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', Buffer.from('method not allowed'));
      return;
    }
    // Redirect targets (`via=redirect`) and loop hops are served without transient faults.
    const isRedirectHop = u.searchParams.has('via') || u.searchParams.has('loop');
    const original = new URL(u.href);
    original.searchParams.delete('via');
    original.searchParams.delete('loop');
    const originalPathAndQuery = original.pathname + original.search;

    if (kind === 'listing') {
      const idText = u.searchParams.get('listingId') ?? '';
      const id = /^\d{1,16}$/.test(idText) ? Number(idText) : NaN;
      const inRange = Number.isSafeInteger(id) && id >= minId && id <= maxId;
      const presence = inRange ? listingPresence(seed, id) : 'missing-404';
      const listing = presence === 'hit' ? getListing(seed, id) : null;
      const permanent = listing ? permanentListingFault(seed, faults, id) : null;
      if (permanent === 'redirect-loop') {
        logEntry.action = permanent;
        countFault(permanent);
        const next = u.searchParams.has('loop') ? `${LISTING_PATH}?listingId=${id}` : `${LISTING_PATH}?listingId=${id}&loop=1`;
        stats.byStatus[302] = (stats.byStatus[302] ?? 0) + 1;
        res.writeHead(302, { Location: next, 'Content-Length': '0' });
        res.end();
        return;
      }
      if (permanent === 'offhost-redirect') {
        logEntry.action = permanent;
        countFault(permanent);
        stats.byStatus[301] = (stats.byStatus[301] ?? 0) + 1;
        res.writeHead(301, { Location: `http://elsewhere.invalid${LISTING_PATH}?listingId=${id}`, 'Content-Length': '0' });
        res.end();
        return;
      }
      const d = faults && !isRedirectHop ? transientFault(seed, faults, pathAndQuery, attempt, true) : null;
      const malformed = permanent === 'malformed-json' || (d?.fault === 'malformed-json' && listing !== null);
      let status = 200;
      let html: string;
      if (listing) html = renderListingPage(imageMode === 'none' ? { ...listing, images: [], primary: 0 } : listing, baseUrl, { malformedJson: malformed });
      else if (presence === 'missing-gone') html = renderGonePage(id);
      else {
        status = 404;
        html = renderNotFoundPage();
      }
      const body = Buffer.from(html);
      const type = 'text/html; charset=utf-8';
      if (permanent === 'malformed-json') {
        logEntry.action = 'malformed-json (permanent)';
        countFault('malformed-json (permanent)');
      }
      if (d && !(d.fault === 'malformed-json' && listing !== null)) {
        if (d.fault === 'malformed-json') {
          // A miss cannot carry a malformed blob: serve a blob-less page instead.
          logEntry.action = 'no-blob';
          countFault('no-blob');
          send(res, 200, type, Buffer.from(renderBlobLessPage('captcha')));
          return;
        }
        logEntry.action = d.fault + (d.retryAfter ? `:${d.retryAfter}` : '');
        countFault(d.fault);
        serveFaulty(req, res, d, pathAndQuery, status, type, body);
        return;
      }
      if (d?.fault === 'malformed-json') {
        logEntry.action = 'malformed-json';
        countFault('malformed-json');
      }
      const encoding = opts.compressPages ? pageEncoding(req, pathAndQuery) : null;
      if (encoding) {
        stats.encodings[encoding] = (stats.encodings[encoding] ?? 0) + 1;
        send(res, status, type, ENCODERS[encoding](body), { 'Content-Encoding': encoding });
        return;
      }
      send(res, status, type, body);
      return;
    }

    if (kind === 'image') {
      const m = /^\/images\/([A-Za-z0-9-]+)\.jpg$/.exec(u.pathname);
      const imageId = m ? m[1] : null;
      if (!imageId || !parseImageId(imageId)) {
        send(res, 404, 'text/html; charset=utf-8', Buffer.from(renderNotFoundPage()));
        return;
      }
      const d = faults && !isRedirectHop ? transientFault(seed, faults, pathAndQuery, attempt, false) : null;
      const permanent = permanentImageFault(seed, faults, originalPathAndQuery);
      let status = 200;
      let type = 'image/jpeg';
      let body: Buffer;
      if (permanent) {
        countFault(`image-${permanent}`);
        switch (permanent) {
          case '404':
            status = 404;
            type = 'text/html; charset=utf-8';
            body = Buffer.from(renderNotFoundPage());
            break;
          case 'html':
            type = 'text/html; charset=utf-8';
            body = Buffer.from(renderBlobLessPage('captcha'));
            break;
          case 'truncated-jpeg': {
            const full = (await image(imageId))!;
            body = full.subarray(0, Math.floor(full.length * 0.55));
            break;
          }
          case 'empty':
            body = Buffer.alloc(0);
            break;
          case 'pixel-bomb':
            type = 'image/png';
            body = await pixelBombPng();
            break;
          case 'corrupt': {
            const full = (await image(imageId))!;
            body = Buffer.from(full);
            // Keep the SOI marker, scramble everything after the first 20 bytes.
            for (let i = 20; i < body.length; i++) body[i] = hash32(seed, i, imageId) & 0xff;
            break;
          }
          case 'oversize': {
            body = Buffer.alloc(faults!.oversizeBytes);
            body[0] = 0xff;
            body[1] = 0xd8;
            break;
          }
        }
      } else {
        body = (await image(imageId))!;
      }
      if (d) {
        logEntry.action = d.fault + (d.retryAfter ? `:${d.retryAfter}` : '');
        countFault(d.fault);
        serveFaulty(req, res, d, pathAndQuery, status, type, body);
        return;
      }
      if (permanent) logEntry.action = `image-${permanent}`;
      send(res, status, type, body, { 'Cache-Control': 'public, max-age=86400' });
      return;
    }

    if (u.pathname === '/') {
      const links: string[] = [];
      for (let id = minId, n = 0; id <= maxId && n < 50; id++) {
        if (listingPresence(seed, id) === 'hit') {
          links.push(`<li><a href="${LISTING_PATH}?listingId=${id}">Listing ${id}</a></li>`);
          n++;
        }
      }
      const html = `<!DOCTYPE html><html><head><title>Demo Autos</title></head><body><h1>Demo Autos</h1><p>Listing ids ${minId}..${maxId}</p><ul>${links.join('')}</ul></body></html>`;
      send(res, 200, 'text/html; charset=utf-8', Buffer.from(html));
      return;
    }
    send(res, 404, 'text/html; charset=utf-8', Buffer.from(renderNotFoundPage()));
  }

  const server = http.createServer((req, res) => {
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let done = false;
    const finish = (): void => {
      if (!done) {
        done = true;
        stats.inFlight--;
      }
    };
    res.once('close', finish);
    res.once('finish', finish);
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, 'text/plain', Buffer.from(String(err)));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('demo site: unexpected server address');
  baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;

  return {
    url: baseUrl,
    seed,
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
    stats() {
      return {
        ...stats,
        byKind: { ...stats.byKind },
        byStatus: { ...stats.byStatus },
        faults: { ...stats.faults },
        retryAfter: [...stats.retryAfter],
        log: [...stats.log],
        encodings: { ...stats.encodings },
      };
    },
    expectedOutcome(id: number) {
      if (!(Number.isSafeInteger(id) && id >= minId && id <= maxId)) return { kind: 'gone', via: '404' };
      return expectedOutcomeFor(seed, faults, id);
    },
    expectedImageOutcome(url: string) {
      return expectedImageOutcomeFor(seed, faults, url);
    },
  };
}
