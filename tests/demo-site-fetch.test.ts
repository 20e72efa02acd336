import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { startDemoSite, type DemoSite } from '../src-main/engine/demo-site/server.ts';
import { kbbSource } from '../src-main/engine/scrape/kbb.ts';
import type { ParseResult } from '../src-main/engine/scrape/source.ts';
import { IdPermutation } from '../src-main/engine/scrape/permutation.ts';
import {
  AbortError,
  FetchError,
  RateLimiter,
  createFetchAgent,
  fetchWithRetry,
  parseRetryAfter,
  type FetchPolicy,
  type RetryInfo,
} from '../src-main/engine/scrape/fetch-policy.ts';

const CONCURRENCY = 8;

async function runPool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

type PageOutcome = { kind: 'ok'; parse: ParseResult; tries: number } | { kind: 'gone'; via: '404' | 'gone-page' } | { kind: 'invalid'; reason: string } | { kind: 'failed'; error: FetchError };

/** What the scrape job does per id: fetch with retry; an invalid parse (throttle page) is refetched. */
async function scrapePage(site: DemoSite, id: number, policy: FetchPolicy, limiter: RateLimiter, dispatcher: ReturnType<typeof createFetchAgent>, retries: RetryInfo[]): Promise<PageOutcome> {
  let lastInvalid = '';
  for (let round = 0; round < 4; round++) {
    let r;
    try {
      r = await fetchWithRetry(kbbSource.listingUrl(site.url, id), policy, { signal: AbortSignal.timeout(20_000), limiter, dispatcher, onRetry: (i) => retries.push(i) });
    } catch (e) {
      if (e instanceof FetchError) return { kind: 'failed', error: e };
      throw e;
    }
    expect(r.tries).toBeLessThanOrEqual(policy.retries + 1);
    if (r.status === 404) return { kind: 'gone', via: '404' };
    const parse = kbbSource.parse(r.body.toString('utf8'), r.finalUrl, id);
    if (parse.kind === 'gone') return { kind: 'gone', via: 'gone-page' };
    if (parse.kind === 'listing') return { kind: 'ok', parse, tries: r.tries };
    lastInvalid = parse.reason;
  }
  return { kind: 'invalid', reason: lastInvalid };
}

describe('IdPermutation', () => {
  it('is a bijection of [min, max] for many sizes and not the identity', () => {
    for (const n of [1, 2, 3, 5, 7, 16, 17, 100, 1000, 1023, 1025, 4099]) {
      const p = new IdPermutation(500, 500 + n - 1, 99);
      expect(p.size).toBe(n);
      const seen = new Set<number>();
      let fixed = 0;
      for (let i = 0; i < n; i++) {
        const v = p.at(i);
        expect(v).toBeGreaterThanOrEqual(500);
        expect(v).toBeLessThanOrEqual(500 + n - 1);
        seen.add(v);
        if (v === 500 + i) fixed++;
      }
      expect(seen.size).toBe(n);
      if (n >= 100) expect(fixed).toBeLessThan(n / 10);
    }
    expect(() => new IdPermutation(0, 9, 1).at(10)).toThrow(RangeError);
    expect(() => new IdPermutation(0, 9, 1).at(-1)).toThrow(RangeError);
  });

  it('depends on the seed, is deterministic, and handles ranges up to 2^53', () => {
    const a = new IdPermutation(660_000_000, 668_000_000, 1);
    const b = new IdPermutation(660_000_000, 668_000_000, 1);
    const c = new IdPermutation(660_000_000, 668_000_000, 2);
    const sa = Array.from({ length: 50 }, (_, i) => a.at(i));
    expect(sa).toEqual(Array.from({ length: 50 }, (_, i) => b.at(i)));
    expect(sa).not.toEqual(Array.from({ length: 50 }, (_, i) => c.at(i)));
    expect(new Set(sa).size).toBe(50);
    const big = new IdPermutation(0, 2 ** 53 - 1, 7);
    expect(big.size).toBe(2 ** 53);
    const vals = new Set<number>();
    for (const i of [0, 1, 2, 2 ** 52, 2 ** 53 - 1, 123456789012345]) {
      const v = big.at(i);
      expect(Number.isSafeInteger(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(2 ** 53);
      vals.add(v);
    }
    expect(vals.size).toBe(6);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds, HTTP dates and 0, rejects garbage', () => {
    const now = Date.parse('2024-05-01T12:00:00.000Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', now)).toBe(0);
    for (const g of ['soon', '-1x', '-1', '1.5', '', null, undefined]) expect(parseRetryAfter(g, now)).toBeNull();
  });
});

describe('fetchWithRetry against the faulty demo site', () => {
  let site: DemoSite;
  const MAX_ID = 260;

  beforeAll(async () => {
    site = await startDemoSite({
      seed: 2024,
      minId: 1,
      maxId: MAX_ID,
      faults: {
        rate: 0.3,
        maxBurst: 3,
        retryAfter: { seconds: false, 'http-date': false, huge: false }, // timed forms: see the next suite
        stallMs: 3000,
        slowMs: 100,
        imageFaultRate: 0.08,
        malformedListingRate: 0.03,
        redirectLoopRate: 0.02,
        offHostRedirectRate: 0.02,
        oversizeBytes: 6 * 1024 * 1024,
      },
    });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('ends every id and image in its expected outcome, politely', async () => {
    const policy: FetchPolicy = { retries: 6, baseDelayMs: 5, maxDelayMs: 40, timeoutMs: 400, maxRetryAfterMs: 1500, maxBodyBytes: 4 * 1024 * 1024 };
    const limiter = new RateLimiter(0);
    const agent = createFetchAgent(CONCURRENCY);
    const retries: RetryInfo[] = [];
    const ids = Array.from({ length: MAX_ID }, (_, i) => i + 1);
    const outcomes = new Map<number, PageOutcome>();
    await runPool(ids, CONCURRENCY, async (id) => {
      outcomes.set(id, await scrapePage(site, id, policy, limiter, agent, retries));
    });

    const counts: Record<string, number> = {};
    const imageUrls = new Set<string>();
    for (const id of ids) {
      const exp = site.expectedOutcome(id);
      const got = outcomes.get(id)!;
      counts[exp.kind] = (counts[exp.kind] ?? 0) + 1;
      if (exp.kind === 'ok') {
        expect(got.kind, `id ${id}`).toBe('ok');
        if (got.kind === 'ok' && got.parse.kind === 'listing') {
          expect(got.parse.listing.listingId).toBe(id);
          expect(got.parse.listing.imageUrls.length).toBeGreaterThan(0);
          if (imageUrls.size < 350) for (const u of got.parse.listing.imageUrls) imageUrls.add(u);
        }
      } else if (exp.kind === 'gone') {
        expect(got, `id ${id}`).toEqual({ kind: 'gone', via: exp.via });
      } else if (exp.kind === 'invalid') {
        expect(got.kind, `id ${id}`).toBe('invalid');
        if (got.kind === 'invalid') expect(got.reason).toMatch(/^malformed data blob JSON/);
      } else {
        expect(got.kind, `id ${id}`).toBe('failed');
        if (got.kind === 'failed') {
          expect(got.error.reason).toMatch(exp.fault === 'redirect-loop' ? /^redirect loop/ : /^off-host redirect/);
          expect(got.error.tries).toBe(1);
        }
      }
    }
    expect(counts.ok).toBeGreaterThan(100);
    expect(counts.gone).toBeGreaterThan(50);
    expect(counts.invalid ?? 0).toBeGreaterThan(0);
    expect(counts.failed ?? 0).toBeGreaterThan(0);

    // Images: fetch each distinct URL, decode with sharp's defaults (failOn 'warning', pixel limit).
    const imageResults = new Map<string, { ok: true } | { ok: false; why: string }>();
    await runPool([...imageUrls], CONCURRENCY, async (url) => {
      try {
        const r = await fetchWithRetry(url, policy, { signal: AbortSignal.timeout(20_000), limiter, dispatcher: agent, accept404: false, onRetry: (i) => retries.push(i) });
        if (!(r.contentType ?? '').startsWith('image/')) return void imageResults.set(url, { ok: false, why: `not an image (${r.contentType})` });
        if (r.body.length === 0) return void imageResults.set(url, { ok: false, why: 'empty body' });
        try {
          const { info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
          expect(info.width).toBeGreaterThanOrEqual(320);
          expect(info.width).toBeLessThanOrEqual(800);
          imageResults.set(url, { ok: true });
        } catch (e) {
          imageResults.set(url, { ok: false, why: `undecodable: ${(e as Error).message}` });
        }
      } catch (e) {
        if (!(e instanceof FetchError)) throw e;
        imageResults.set(url, { ok: false, why: `fetch: ${e.reason} (${e.status})` });
      }
    });
    const failureKinds: Record<string, number> = {};
    for (const url of imageUrls) {
      const exp = site.expectedImageOutcome(url);
      const got = imageResults.get(url)!;
      if (exp.kind === 'ok') {
        expect(got, url).toEqual({ ok: true });
        continue;
      }
      failureKinds[exp.fault] = (failureKinds[exp.fault] ?? 0) + 1;
      expect(got.ok, url).toBe(false);
      if (got.ok) continue;
      const pattern = {
        '404': /^fetch: HTTP 404 \(404\)/,
        html: /^not an image \(text\/html/,
        'truncated-jpeg': /^undecodable: .*(premature|truncated|end of|warning)/i,
        empty: /^empty body/,
        'pixel-bomb': /^undecodable: .*pixel limit/i,
        corrupt: /^undecodable:/,
        oversize: /^fetch: body too large/,
      }[exp.fault];
      expect(got.why, url).toMatch(pattern);
    }
    expect(imageUrls.size).toBeGreaterThan(150);
    expect(Object.keys(failureKinds).length).toBeGreaterThanOrEqual(4);

    const stats = site.stats();
    // Politeness: never more requests in flight than the concurrency.
    expect(stats.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    expect(stats.maxInFlight).toBeGreaterThan(1);
    // Faults were actually injected, and a garbage Retry-After was reported and fell back to backoff.
    for (const f of ['status-503', 'status-429', 'reset-before-headers', 'reset-after-headers', 'stall-headers', 'stall-body', 'truncated-length', 'truncated-chunked', 'redirect', 'no-blob', 'malformed-json']) {
      expect(stats.faults[f] ?? 0, f).toBeGreaterThan(0);
    }
    expect(retries.some((r) => /unparseable Retry-After/.test(r.reason))).toBe(true);
    expect(retries.some((r) => /^truncated body/.test(r.reason))).toBe(true);
    expect(retries.some((r) => /^timeout/.test(r.reason))).toBe(true);
    expect(retries.some((r) => /^HTTP 503/.test(r.reason))).toBe(true);
    // No URL was asked for more than (retries + 1) x (parse rounds) times.
    const perPath = new Map<string, number>();
    for (const e of stats.log) perPath.set(e.path, (perPath.get(e.path) ?? 0) + 1);
    for (const [p, n] of perPath) expect(n, p).toBeLessThanOrEqual((policy.retries + 1) * 4);
    await agent.close();
  }, 30_000);
});

describe('Retry-After is honoured across workers', () => {
  it('sends no request to the host before the promised time (capped when huge)', async () => {
    const site = await startDemoSite({
      seed: 5,
      minId: 1,
      maxId: 16,
      faults: {
        rate: 0.5,
        maxBurst: 1,
        transient: { 'reset-before-headers': false, 'reset-after-headers': false, 'stall-headers': false, 'stall-body': false, 'slow-body': false, 'truncated-length': false, 'truncated-chunked': false, redirect: false, 'no-blob': false, 'malformed-json': false },
        retryAfter: { zero: false, garbage: false, none: false },
        retryAfterSeconds: 1,
        hugeRetryAfterSeconds: 86_400,
        imageFaultRate: 0,
        malformedListingRate: 0,
      },
    });
    const cap = 1500;
    const policy: FetchPolicy = { retries: 3, baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 2000, maxRetryAfterMs: cap, maxBodyBytes: 1 << 20 };
    const limiter = new RateLimiter(0);
    const agent = createFetchAgent(4);
    const retries: RetryInfo[] = [];
    const ids = Array.from({ length: 16 }, (_, i) => i + 1);
    try {
      await runPool(ids, 4, async (id) => {
        const r = await fetchWithRetry(kbbSource.listingUrl(site.url, id), policy, { signal: AbortSignal.timeout(20_000), limiter, dispatcher: agent, onRetry: (i) => retries.push(i) });
        expect([200, 404]).toContain(r.status);
      });
      const stats = site.stats();
      expect(stats.retryAfter.length).toBeGreaterThanOrEqual(3);
      const forms = new Set(stats.retryAfter.map((e) => e.form));
      expect(forms.has('huge') || forms.has('seconds') || forms.has('http-date')).toBe(true);
      for (const ev of stats.retryAfter) {
        const until = Math.min(ev.notBefore!, ev.sentAt + cap);
        // Requests already on the wire when the 429/503 was sent may land just after it; after
        // that grace period nothing may arrive before `until`.
        const early = stats.log.filter((e) => e.at > ev.sentAt + 15 && e.at < until - 2);
        expect(early, `${ev.form} ${ev.header}`).toEqual([]);
      }
      if (forms.has('huge')) expect(retries.some((r) => /capped to 1500 ms/.test(r.reason) && r.delayMs === cap)).toBe(true);
    } finally {
      await agent.close();
      await site.close();
    }
  }, 30_000);
});

describe('cancellation and hard failures', () => {
  it('aborts promptly during a stalled request, a backoff and a Retry-After pause', async () => {
    const site = await startDemoSite({
      seed: 9,
      faults: { rate: 1, maxBurst: 3, transient: { 'status-503': false, 'status-429': false, 'reset-before-headers': false, 'reset-after-headers': false, 'stall-body': false, 'slow-body': false, 'truncated-length': false, 'truncated-chunked': false, redirect: false, 'no-blob': false, 'malformed-json': false }, stallMs: 10_000 },
    });
    const agent = createFetchAgent(2);
    try {
      const policy: FetchPolicy = { retries: 5, baseDelayMs: 5000, maxDelayMs: 5000, timeoutMs: 5000, maxRetryAfterMs: 60_000, maxBodyBytes: 1 << 20 };
      // 1. During a stalled request (headers never come).
      let ctl = new AbortController();
      let p = fetchWithRetry(kbbSource.listingUrl(site.url, 3), policy, { signal: ctl.signal, limiter: new RateLimiter(0), dispatcher: agent });
      await new Promise((r) => setTimeout(r, 200));
      let t0 = Date.now();
      ctl.abort();
      await expect(p).rejects.toBeInstanceOf(AbortError);
      expect(Date.now() - t0).toBeLessThan(100);
      // 2. During a backoff sleep (short timeout so the first try fails, then a long backoff).
      ctl = new AbortController();
      const retried = new Promise<void>((resolve) => {
        p = fetchWithRetry(kbbSource.listingUrl(site.url, 4), { ...policy, timeoutMs: 100, baseDelayMs: 60_000, maxDelayMs: 60_000 }, { signal: ctl.signal, limiter: new RateLimiter(0), dispatcher: agent, onRetry: () => resolve() });
      });
      await retried;
      t0 = Date.now();
      ctl.abort();
      await expect(p).rejects.toBeInstanceOf(AbortError);
      expect(Date.now() - t0).toBeLessThan(100);
      // 3. While the rate limiter is paused.
      const limiter = new RateLimiter(0);
      limiter.pauseUntil(Date.now() + 60_000);
      ctl = new AbortController();
      p = fetchWithRetry(kbbSource.listingUrl(site.url, 5), policy, { signal: ctl.signal, limiter, dispatcher: agent });
      await new Promise((r) => setTimeout(r, 50));
      t0 = Date.now();
      ctl.abort();
      await expect(p).rejects.toBeInstanceOf(AbortError);
      expect(Date.now() - t0).toBeLessThan(100);
      // An already aborted signal never sends a request.
      const before = site.stats().requests;
      await expect(fetchWithRetry(kbbSource.listingUrl(site.url, 6), policy, { signal: AbortSignal.abort(), limiter: new RateLimiter(0), dispatcher: agent })).rejects.toBeInstanceOf(AbortError);
      expect(site.stats().requests).toBe(before);
    } finally {
      await agent.close();
      await site.close();
    }
  });

  it('fails after the last try with a clear reason when the server is down', async () => {
    const site = await startDemoSite({ seed: 1 });
    const url = kbbSource.listingUrl(site.url, 3);
    await site.close();
    const tries: number[] = [];
    const err = await fetchWithRetry(url, { retries: 2, baseDelayMs: 1, maxDelayMs: 5, timeoutMs: 500, maxRetryAfterMs: 1000, maxBodyBytes: 1 << 20 }, { signal: AbortSignal.timeout(5000), limiter: new RateLimiter(0), onRetry: (i) => tries.push(i.attempt) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).tries).toBe(3);
    expect((err as FetchError).status).toBeNull();
    expect((err as FetchError).reason).toMatch(/refused|connect|socket/i);
    expect(tries).toEqual([1, 2]);
  });

  it('the rate limiter spaces requests at the configured rate', async () => {
    const limiter = new RateLimiter(50);
    const signal = AbortSignal.timeout(5000);
    const t0 = Date.now();
    for (let i = 0; i < 11; i++) await limiter.take(signal);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(600);
  });
});
