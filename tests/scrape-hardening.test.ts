/**
 * The scraper against hostile and broken sites (issue 11, items 2 and 6): image URLs that point
 * at other local services or at link-local/private addresses are refused before any connection;
 * compressed pages are decoded, and broken 200 pages are retryable failures, never misses.
 * Every server here is a real HTTP server on 127.0.0.1.
 */
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import diagnostics from 'node:diagnostics_channel';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { getStats } from '../src-main/engine/stats.ts';
import { FetchError, fetchWithRetry, RateLimiter, type FetchPolicy } from '../src-main/engine/scrape/fetch-policy.ts';
import { classifyAddress, createGuardedAgent, HostGuard } from '../src-main/engine/scrape/host-guard.ts';
import type { JobInfo } from '../src-main/engine/api/contract/core.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { startDemoSite } from '../src-main/engine/demo-site/server.ts';
import { runCli } from './helpers/processes.ts';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';

const LISTING_PATH = '/cars-for-sale/vehicledetails.xhtml';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface Fixture {
  url: string;
  port: number;
  /** TCP connections accepted (a refused fetch must not even connect). */
  connections: number;
  requests: string[];
  close(): Promise<void>;
}

async function serve(handler: Handler): Promise<Fixture> {
  const f = { connections: 0, requests: [] as string[] } as Fixture;
  const server = http.createServer((req, res) => {
    f.requests.push(req.url ?? '');
    handler(req, res);
  });
  server.on('connection', () => f.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  f.port = (server.address() as AddressInfo).port;
  f.url = `http://127.0.0.1:${f.port}`;
  f.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return f;
}

/** A KBB-format listing page (an <h1> and the data blob) naming `images`. */
function listingPage(id: number, images: string[]): string {
  const blob = {
    initialState: {
      birf: { pageData: { page: { vehicle: { price: 10_000 + id, makeName: 'Honda', modelName: 'Civic', car_year: 2015, odometer: '50,000' } } } },
      inventory: { [id]: { images: { sources: images.map((src) => ({ src })), primary: 0 } } },
    },
  };
  return `<!DOCTYPE html><html><head><title>Car ${id}</title></head><body><h1>2015 Honda Civic #${id}</h1><script>window.__BONNET_DATA__=${JSON.stringify(blob)};</script></body></html>`;
}

const GONE_PAGE = `<!DOCTYPE html><html><head><title>Gone</title></head><body><main><h2>This car is no longer available</h2></main></body></html>`;

function send(res: http.ServerResponse, status: number, type: string, body: Buffer | string, headers: Record<string, string> = {}): void {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(b.length), ...headers });
  res.end(b);
}

async function runScrape(engine: Engine, params: Record<string, unknown>): Promise<JobInfo> {
  const job = engine.jobs.start('scrape', { minId: 1, concurrency: 2, retries: 1, retryDelayMs: 0, timeoutMs: 5000, ...params });
  const final = await engine.jobs.wait(job.id);
  expect(final.state, final.error?.message).toBe('done');
  return final;
}

describe('scrape host guard (SSRF)', () => {
  let other: Fixture;
  let allowed: Fixture;
  let site: Fixture;
  let jpeg: Buffer;
  const imageUrls = (): Record<string, string> => ({
    own: '/img/own.jpg',
    allowed: `${allowed.url}/y.jpg`,
    otherPort: `http://127.0.0.1:${other.port}/a.jpg`,
    metadata: 'http://169.254.169.254/latest/meta-data/x.jpg',
    private10: 'http://10.0.0.1/x.jpg',
    loopback6: `http://[::1]:${other.port}/x.jpg`,
    localhostName: `http://localhost:${other.port}/x.jpg`,
    redirect: '/img/redirect.jpg',
  });

  beforeAll(async () => {
    jpeg = await makeJpeg(320, 240, 7);
    other = await serve((_req, res) => send(res, 200, 'image/jpeg', jpeg));
    allowed = await serve((_req, res) => send(res, 200, 'image/jpeg', jpeg));
    site = await serve((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname === LISTING_PATH) return send(res, 200, 'text/html; charset=utf-8', listingPage(Number(u.searchParams.get('listingId')), Object.values(imageUrls())));
      if (u.pathname === '/img/own.jpg') return send(res, 200, 'image/jpeg', jpeg);
      if (u.pathname === '/img/redirect.jpg') {
        res.writeHead(302, { Location: `http://127.0.0.1:${other.port}/r.jpg`, 'Content-Length': '0' });
        return res.end();
      }
      send(res, 200, 'text/html', '<html><body><h1>Home</h1></body></html>');
    });
  });
  afterAll(async () => {
    await Promise.all([other?.close(), allowed?.close(), site?.close()]);
  });

  it('stores images from the site and the allowed hosts, refuses the rest before connecting, and records why', async () => {
    const dir = path.join(tmpDir(), 'ws');
    const engine = Engine.open(dir, { create: true });
    try {
      // 'localhost:<other>' is allowed by name, so only the address check on connect stops it
      const final = await runScrape(engine, { baseUrl: site.url, maxId: 1, allowImageHosts: [`127.0.0.1:${allowed.port}`, `localhost:${other.port}`] });
      const result = final.result as { ok: number; imagesStored: number; imagesFailed: number; imagesRefused: number };
      expect(result.ok).toBe(1);

      const rows = engine.ws.db.prepare(`SELECT url, state, fail_reason FROM images`).all() as Array<{ url: string; state: string; fail_reason: string | null }>;
      const byUrl = new Map(rows.map((r) => [r.url, r]));
      const urls = imageUrls();
      const row = (k: string) => byUrl.get(urls[k]!);
      expect(row('own')?.state).toBe('stored');
      expect(row('allowed')?.state).toBe('stored');
      const want: Record<string, RegExp> = {
        otherPort: new RegExp(`^refused: 127\\.0\\.0\\.1:${other.port} is not an allowed image host$`),
        metadata: /^refused: 169\.254\.169\.254 is not an allowed image host$/,
        private10: /^refused: 10\.0\.0\.1 is not an allowed image host$/,
        loopback6: new RegExp(`^refused: \\[::1\\]:${other.port} is not an allowed image host$`),
        localhostName: /^refused: localhost resolves to a loopback address (127\.0\.0\.1|::1)$/,
        redirect: new RegExp(`^refused: 127\\.0\\.0\\.1:${other.port} is not an allowed image host \\(redirected from`),
      };
      for (const [k, re] of Object.entries(want)) {
        expect(row(k)?.state, k).toBe('failed');
        expect(row(k)?.fail_reason, k).toMatch(re);
      }
      expect(other.connections, `requests reached the other local service: ${other.requests.join(', ')}`).toBe(0);
      expect(result.imagesRefused).toBe(6);
      expect((getStats(engine.ws.db).scrape as { imagesRefused: number }).imagesRefused).toBe(6);
      const log = engine.jobs.logs(final.id).map((l) => l.message);
      for (const k of Object.keys(want)) expect(log.some((m) => m.startsWith(`image ${urls[k]}: refused: `)), k).toBe(true);

      // Later runs ask again (no request is made: the check comes first) and still refuse; the
      // image rows count their tries, so a refused URL is not retried forever.
      const params = { baseUrl: site.url, maxId: 1, allowImageHosts: [`127.0.0.1:${allowed.port}`, `localhost:${other.port}`] };
      const tries = () => engine.ws.db.prepare(`SELECT tries FROM images WHERE url = ?`).pluck().get(urls.metadata) as number;
      const before = tries();
      await runScrape(engine, params);
      expect(tries()).toBeGreaterThan(before);
      await runScrape(engine, params);
      await runScrape(engine, params);
      const capped = tries();
      await runScrape(engine, params);
      expect(tries()).toBe(capped);
      expect(other.connections).toBe(0);
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('carstudio scrape --allow-image-host: a bad entry is refused (exit 2), a good one lets that host in', async () => {
    const dir = path.join(tmpDir(), 'ws');
    Workspace.open(dir, { create: true }).close();
    const common = ['scrape', '--workspace', dir, '--base-url', site.url, '--min-id', '1', '--max-id', '1', '--retries', '0', '--retry-delay-ms', '0'];
    const bad = await runCli([...common, '--allow-image-host', 'http://cdn.example.com/x']);
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr).toContain('--allow-image-host: bad image host "http://cdn.example.com/x": give a host, not a URL');
    const good = await runCli([...common, '--allow-image-host', `127.0.0.1:${allowed.port}`, '--json'], { timeoutMs: 120_000 });
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: 1, imagesStored: 2, imagesRefused: 6 });
    const ws = Workspace.open(dir, { readonly: true });
    try {
      expect(ws.db.prepare(`SELECT state FROM images WHERE url = ?`).pluck().get(`${allowed.url}/y.jpg`)).toBe('stored');
      expect(ws.db.prepare(`SELECT fail_reason FROM images WHERE url = ?`).pluck().get(`http://localhost:${other.port}/x.jpg`)).toBe(`refused: localhost:${other.port} is not an allowed image host`);
    } finally {
      ws.close();
    }
    expect(other.connections).toBe(0);
  }, 120_000);

  it('jobs.start refuses a bad allowImageHosts entry with a UserError naming it, starting nothing', async () => {
    const engine = Engine.open(path.join(tmpDir(), 'ws'), { create: true });
    try {
      const r = await engine.call('jobs.start', { kind: 'scrape', params: { baseUrl: site.url, minId: 1, maxId: 1, allowImageHosts: ['cdn.example.com', 'https://cdn.example.com/', '*.10.0.0.1'] } });
      expect(r.ok).toBe(false);
      const err = (r as { error: { name: string; message: string } }).error;
      expect(err.name).toBe('UserError');
      expect(err.message).toContain('allowImageHosts.1: bad image host "https://cdn.example.com/": give a host, not a URL');
      expect(err.message).toContain('allowImageHosts.2: bad image host "*.10.0.0.1": a wildcard needs a domain, not an IP address');
      expect(engine.jobs.list()).toEqual([]);
    } finally {
      await engine.close();
    }
  });

  it('checks IP literals before undici connects and checks the resolved address of a name on connect', async () => {
    const guard = await HostGuard.create({ baseUrl: site.url, allowImageHosts: [`localhost:${other.port}`] });
    const agent = createGuardedAgent(2, guard);
    const connects: string[] = [];
    const onConnect = (m: unknown): void => void connects.push(String((m as { connectParams: { hostname: string } }).connectParams.hostname));
    diagnostics.subscribe('undici:client:beforeConnect', onConnect);
    const policy: FetchPolicy = { retries: 3, baseDelayMs: 0, maxDelayMs: 0, timeoutMs: 3000, maxRetryAfterMs: 0, maxBodyBytes: 1 << 20 };
    const get = async (url: string): Promise<FetchError> => {
      const e = await fetchWithRetry(url, policy, { signal: new AbortController().signal, limiter: new RateLimiter(0), dispatcher: agent, guard: (u) => guard.checkUrl(u, 'image') }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(FetchError);
      return e as FetchError;
    };
    try {
      // the agent alone (no URL check) refuses a local address before the socket is made
      const bare = await fetchWithRetry('http://10.0.0.1/x.jpg', policy, { signal: new AbortController().signal, limiter: new RateLimiter(0), dispatcher: agent }).catch((x: unknown) => x);
      expect((bare as FetchError).reason).toBe('refused: 10.0.0.1 is a private address');
      expect((bare as FetchError).tries).toBe(1);
      const viaName = await get(`http://localhost:${other.port}/x.jpg`);
      expect(viaName.reason).toMatch(/^refused: localhost resolves to a loopback address/);
      expect(viaName.tries).toBe(1);
      for (const u of ['http://169.254.169.254/x', 'http://[fe80::1]/x', 'http://[::ffff:10.0.0.1]/x', 'http://0.0.0.0/x']) expect((await get(u)).reason, u).toMatch(/^refused: /);
      expect(connects.filter((h) => h !== 'localhost' && h !== '10.0.0.1')).toEqual([]);
      expect(other.connections).toBe(0);
    } finally {
      diagnostics.unsubscribe('undici:client:beforeConnect', onConnect);
      await agent.close();
    }
    expect(classifyAddress('::ffff:169.254.169.254')).toBe('link-local');
    expect(classifyAddress('fc00::1')).toBe('private');
    expect(classifyAddress('239.1.1.1')).toBe('multicast');
    expect(classifyAddress('93.184.216.34')).toBe('public');
    // a public base: its domain's subdomains are image hosts by default, a private answer is refused
    const kbb = await HostGuard.create({ baseUrl: 'https://www.example.com', lookup: ((_h: string, _o: unknown, cb: (e: null, a: Array<{ address: string; family: number }>) => void) => cb(null, [{ address: '93.184.216.34', family: 4 }])) as unknown as typeof import('node:dns').lookup });
    expect(kbb.checkUrl('https://images.example.com/a.jpg', 'image')).toBeNull();
    expect(kbb.checkUrl('https://images.example.com/a.jpg', 'page')).toBe("refused: images.example.com is not the listing site's host");
    expect(kbb.checkUrl('https://example.net/a.jpg', 'image')).toBe('refused: example.net is not an allowed image host');
    expect(kbb.checkAddress('images.example.com', 443, '10.1.2.3')).toBe('refused: images.example.com resolves to a private address 10.1.2.3');
    expect(kbb.checkAddress('www.example.com', 443, '127.0.0.1')).toBe('refused: www.example.com resolves to a loopback address 127.0.0.1');
  }, 60_000);
});

describe('compressed and broken listing pages', () => {
  let site: Fixture;
  let jpeg: Buffer;
  /** Ids whose page is broken until `fixed` is set. */
  let fixed = false;
  beforeAll(async () => {
    jpeg = await makeJpeg(300, 200, 3);
    site = await serve((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname.startsWith('/img/')) return send(res, 200, 'image/jpeg', zlib.gzipSync(jpeg), { 'Content-Encoding': 'gzip' });
      if (u.pathname !== LISTING_PATH) return send(res, 200, 'text/html', '<html><body><h1>Home</h1></body></html>');
      const id = Number(u.searchParams.get('listingId'));
      const page = listingPage(id, [`/img/${id}.jpg`]);
      const html = 'text/html; charset=utf-8';
      if (fixed && id >= 4) return send(res, 200, html, page);
      switch (id) {
        case 1:
          return send(res, 200, html, zlib.gzipSync(page), { 'Content-Encoding': 'gzip' });
        case 2:
          return send(res, 200, html, zlib.deflateSync(page), { 'Content-Encoding': 'deflate' });
        case 3:
          return send(res, 200, html, zlib.brotliCompressSync(page), { 'Content-Encoding': 'br' });
        case 4:
          return send(res, 200, html, '');
        case 5: {
          const gz = zlib.gzipSync(page);
          return send(res, 200, html, gz.subarray(0, Math.floor(gz.length / 2)), { 'Content-Encoding': 'gzip' });
        }
        case 6:
          return send(res, 200, 'application/json', '{"status":"busy"}');
        case 7:
          return send(res, 200, html, '<!DOCTYPE html><html><head><title>Demo</title><script>var x=1;</script></head><body>  </body></html>');
        case 8:
          return send(res, 200, html, GONE_PAGE);
        default:
          return send(res, 404, html, '<html><body>Not found</body></html>');
      }
    });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('decodes gzip, deflate and br; records broken 200s as failed with their reason and fetches them again on the next run', async () => {
    const dir = path.join(tmpDir(), 'ws');
    const engine = Engine.open(dir, { create: true });
    const attempts = () =>
      Object.fromEntries(
        (engine.ws.db.prepare(`SELECT listing_id, outcome, reason, tries FROM attempts ORDER BY listing_id`).all() as Array<{ listing_id: number; outcome: string; reason: string | null; tries: number }>).map((a) => [a.listing_id, a]),
      );
    try {
      await runScrape(engine, { baseUrl: site.url, maxId: 9 });
      const a = attempts();
      for (const id of [1, 2, 3]) expect(a[id]?.outcome, `id ${id}`).toBe('ok');
      expect(a[8]?.outcome).toBe('gone');
      expect(a[9]?.outcome).toBe('gone');
      expect(a[4]).toMatchObject({ outcome: 'failed', reason: 'empty page (HTTP 200 with an empty body)', tries: 2 });
      expect(a[5]).toMatchObject({ outcome: 'failed', tries: 2 });
      expect(a[5]?.reason).toMatch(/^undecodable body \(gzip: /);
      expect(a[6]).toMatchObject({ outcome: 'failed', reason: 'not an HTML page (Content-Type: application/json)', tries: 2 });
      expect(a[7]).toMatchObject({ outcome: 'failed', reason: 'page without an <h1> and with an empty body', tries: 2 });
      const listings = engine.ws.db.prepare(`SELECT listing_id, title, price FROM listings ORDER BY listing_id`).all();
      expect(listings).toEqual([1, 2, 3].map((id) => ({ listing_id: id, title: `2015 Honda Civic #${id}`, price: 10_000 + id })));
      // gzip-encoded images are decoded too
      expect(engine.ws.db.prepare(`SELECT COUNT(*) FROM images WHERE state = 'stored'`).pluck().get()).toBe(3);

      // the site recovers: the failed ids are asked for again, the ok and gone ones are not
      fixed = true;
      site.requests.length = 0;
      await runScrape(engine, { baseUrl: site.url, maxId: 9 });
      const b = attempts();
      for (const id of [1, 2, 3, 4, 5, 6, 7]) expect(b[id]?.outcome, `id ${id}`).toBe('ok');
      expect([b[8]?.outcome, b[9]?.outcome]).toEqual(['gone', 'gone']);
      const asked = site.requests.filter((r) => r.startsWith(LISTING_PATH)).map((r) => Number(new URL(r, 'http://x').searchParams.get('listingId')));
      expect(asked.sort()).toEqual([4, 5, 6, 7]);
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('scrapes the demo site sending its pages gzip-, deflate- and br-encoded exactly as uncompressed', async () => {
    const demo = await startDemoSite({ seed: 11, minId: 1, maxId: 60, images: 'tiny', compressPages: true });
    const engine = Engine.open(path.join(tmpDir(), 'ws'), { create: true });
    try {
      await runScrape(engine, { baseUrl: demo.url, maxId: 60, concurrency: 4 });
      const rows = engine.ws.db.prepare(`SELECT listing_id, outcome FROM attempts ORDER BY listing_id`).all() as Array<{ listing_id: number; outcome: string }>;
      expect(rows.map((r) => [r.listing_id, r.outcome])).toEqual(rows.map((r) => [r.listing_id, demo.expectedOutcome(r.listing_id).kind]));
      expect(rows.length).toBe(60);
      expect(rows.some((r) => r.outcome === 'ok') && rows.some((r) => r.outcome === 'gone')).toBe(true);
      const enc = demo.stats().encodings;
      for (const e of ['gzip', 'deflate', 'br']) expect(enc[e] ?? 0, e).toBeGreaterThan(0);
    } finally {
      await engine.close();
      await demo.close();
    }
  }, 120_000);
});
