/**
 * HTTP fetching with CarStudio's retry policy, on undici 7.
 *
 * Semantics (see docs/scraper-reliability.md):
 * - `policy.retries` is the number of retries AFTER the first try: at most `retries + 1` tries.
 *   (The original scraper's "up to 15 tries" is `retries: 14`, the default below; a CLI flag that
 *   counts tries should pass `tries - 1`.)
 * - Retried: 5xx, 408, 429, connection errors (reset, refused, socket closed), timeouts (headers,
 *   or the whole request including the body, both bounded by `timeoutMs`), truncated bodies
 *   (Content-Length mismatch, chunked body cut short).
 * - Delay before retry n (1-based): full jitter, `random() * min(maxDelayMs, baseDelayMs * 2^(n-1))`;
 *   on 429/503 a parseable Retry-After (seconds, HTTP date, 0) replaces it, capped at
 *   `maxRetryAfterMs` (reported through onRetry with "capped" in the reason), and pauses the
 *   shared {@link RateLimiter} so that no request reaches the host before then. A garbage
 *   Retry-After falls back to the backoff.
 * - 404 returns immediately (a miss, not an error) unless `accept404: false`; other 4xx fail
 *   at once; a body over `maxBodyBytes` fails at once.
 * - Redirects: followed up to 5 hops, same host (and protocol) only; a loop, an off-host target
 *   or too many hops fail at once. Hops are not tries but do pass the rate limiter.
 * - `opts.guard` (host-guard.ts) checks the URL and every redirect hop before any request; a
 *   refusal, and a connection the guarded agent refuses (the address it resolved to), fail at
 *   once with a `refused: ...` reason and are never retried.
 * - `Content-Encoding` gzip (x-gzip), deflate (zlib or raw) and br are decoded (the decoded size is
 *   bounded by `maxBodyBytes`); a body that does not decode is retried, an unknown encoding fails.
 * - Every response body is either read to the end or destroyed.
 * - `opts.signal` aborts at once (the request, a backoff sleep or a rate-limiter wait) and makes
 *   the call reject with an {@link AbortError}.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { Agent, request, type Dispatcher } from 'undici';

export interface FetchPolicy {
  /** Retries after the first try: at most `retries + 1` tries in all. */
  retries: number;
  /** Backoff base (first retry waits up to this), doubling each retry. */
  baseDelayMs: number;
  /** Backoff ceiling. */
  maxDelayMs: number;
  /** Limit for one try: headers and the whole body must arrive within it. */
  timeoutMs: number;
  /** Longest Retry-After honoured; larger values are capped to it (with a warning). */
  maxRetryAfterMs: number;
  /** Largest accepted body; a larger one fails without retry. */
  maxBodyBytes: number;
}

/** The original scraper's numbers: 15 tries, 30 s timeout; backoff around its 10 s pause. */
export const DEFAULT_FETCH_POLICY: FetchPolicy = {
  retries: 14,
  baseDelayMs: 2_000,
  maxDelayMs: 30_000,
  timeoutMs: 30_000,
  maxRetryAfterMs: 300_000,
  maxBodyBytes: 32 * 1024 * 1024,
};

export const MAX_REDIRECTS = 5;

export interface RetryInfo {
  /** The try that failed (1-based); the next try is attempt + 1. */
  attempt: number;
  reason: string;
  delayMs: number;
}

export interface FetchOptions {
  signal: AbortSignal;
  limiter: RateLimiter;
  onRetry?(info: RetryInfo): void;
  /** Return a 404 as a result (default true); false makes it a FetchError (no retry). */
  accept404?: boolean;
  /** undici dispatcher; default: a shared Agent. Use {@link createFetchAgent} to bound sockets. */
  dispatcher?: Dispatcher;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Checked before the request and before each redirect hop: a reason refuses the URL (no retry). */
  guard?: (url: string) => string | null;
}

export interface FetchResult {
  status: number;
  body: Buffer;
  /** Tries used (1 = first try succeeded). */
  tries: number;
  /** URL after redirects. */
  finalUrl: string;
  contentType: string | null;
}

export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    /** Short human-readable reason, e.g. "HTTP 503", "timeout after 30000 ms", "redirect loop". */
    readonly reason: string,
    /** Last HTTP status seen, or null when no response came. */
    readonly status: number | null,
    readonly tries: number,
    readonly url: string,
  ) {
    super(`${reason} (${url}, ${tries} ${tries === 1 ? 'try' : 'tries'})`);
  }
}

export class AbortError extends Error {
  override name = 'AbortError';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A dispatcher whose sockets per origin are bounded by `concurrency`. */
export function createFetchAgent(concurrency: number): Agent {
  return new Agent({ connections: Math.max(1, concurrency), pipelining: 1, keepAliveTimeout: 10_000 });
}

let defaultAgent: Agent | null = null;
function sharedAgent(): Agent {
  defaultAgent ??= createFetchAgent(16);
  return defaultAgent;
}

function abortError(signal: AbortSignal): AbortError {
  return new AbortError('The operation was aborted', { cause: signal.reason });
}

/** Sleep that rejects with AbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Token-bucket rate limiter shared by all workers of a scrape (one per host).
 * `rps` 0 = unlimited (only pauses apply). Burst capacity is `burst` tokens (default 1).
 */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private pausedUntil = 0;
  private readonly capacity: number;

  constructor(
    readonly rps: number,
    burst = 1,
  ) {
    if (!(rps >= 0) || !Number.isFinite(rps)) throw new RangeError(`RateLimiter: bad rps ${rps}`);
    this.capacity = Math.max(1, burst);
    this.tokens = this.capacity;
  }

  /** Epoch ms before which no request may start (0 if none). */
  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  /** No request starts before `epochMs` (extends, never shortens, a pause). */
  pauseUntil(epochMs: number): void {
    if (epochMs > this.pausedUntil) this.pausedUntil = epochMs;
  }

  private refill(now: number): void {
    if (this.rps > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rps);
    }
    this.last = now;
  }

  /** Wait for permission to start one request. */
  async take(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw abortError(signal);
      const now = Date.now();
      if (now < this.pausedUntil) {
        await sleep(this.pausedUntil - now, signal);
        continue;
      }
      if (this.rps === 0) return;
      this.refill(now);
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.max(1, Math.ceil(((1 - this.tokens) / this.rps) * 1000)), signal);
    }
  }
}

/**
 * Parse a Retry-After value into a delay in ms from `now`: delta-seconds ("120", "0") or an
 * HTTP date (a past date gives 0). Returns null for anything else.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const s = Number(v);
    return Number.isFinite(s) ? s * 1000 : null;
  }
  // HTTP-date (IMF-fixdate and the obsolete forms Date.parse understands); must contain a letter
  // and a colon, so that things like "-1" or "1.5" are not taken for dates.
  if (!/[A-Za-z]/.test(v) || !v.includes(':')) return null;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) return null;
  return Math.max(0, t - now);
}

function headerValue(h: Record<string, string | string[] | undefined>, name: string): string | null {
  const v = h[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

class Retryable extends Error {
  constructor(
    readonly reason: string,
    readonly status: number | null,
    readonly retryAfterMs: number | null = null,
    readonly retryAfterNote: string | null = null,
  ) {
    super(reason);
  }
}
class Fatal extends Error {
  constructor(
    readonly reason: string,
    readonly status: number | null,
  ) {
    super(reason);
  }
}

/** The guard's refusal carried by a connection error (host-guard.ts's RefusedError), or null. */
function refusalOf(err: unknown): string | null {
  for (let e = err as { code?: string; reason?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code === 'ERR_CARSTUDIO_REFUSED' && typeof e.reason === 'string') return e.reason;
  }
  return null;
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const brotli = promisify(zlib.brotliDecompress);

/** Undo `Content-Encoding` (codings listed in the order applied, so decoded last to first). */
async function decodeBody(body: Buffer, header: string, maxBytes: number, status: number): Promise<Buffer> {
  const codings = header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  let out = body;
  for (const coding of codings.reverse()) {
    const opts = { maxOutputLength: maxBytes };
    try {
      if (coding === 'gzip' || coding === 'x-gzip') out = await gunzip(out, opts);
      else if (coding === 'br') out = await brotli(out, opts);
      else if (coding === 'deflate') {
        // RFC 9110 says zlib-wrapped; some servers send raw deflate.
        out = await inflate(out, opts).catch((e: unknown) => ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? Promise.reject(e) : inflateRaw(out, opts)));
      } else throw new Fatal(`unsupported Content-Encoding: ${coding}`, status);
    } catch (e) {
      if (e instanceof Fatal) throw e;
      const err = e as { code?: string; message?: string };
      if (err.code === 'ERR_BUFFER_TOO_LARGE') throw new Fatal(`body too large (over ${maxBytes} bytes once decoded from ${coding})`, status);
      throw new Retryable(`undecodable body (${coding}: ${err.message ?? String(e)})`, status);
    }
  }
  return out;
}

function describeError(err: unknown): string {
  const e = err as { code?: string; message?: string; name?: string };
  const code = e?.code ?? '';
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'timeout waiting for headers';
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout reading body';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect timeout';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'UND_ERR_SOCKET':
      return `connection lost (${e.message ?? 'socket error'})`;
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return 'truncated body (Content-Length mismatch)';
    default:
      return code ? `${code}: ${e.message ?? ''}`.trim() : (e?.message ?? String(err));
  }
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

type Body = Dispatcher.ResponseData['body'];

/** Destroy a body we will not read (an error listener first: undici errors a destroyed body). */
function destroyBody(body: Body): void {
  body.on('error', () => {});
  body.destroy();
}

/** Read and discard a small unwanted body (keeps the connection reusable); destroy big ones. */
async function discardBody(body: Body): Promise<void> {
  body.on('error', () => {});
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    body.destroy();
  }
}

/** One try: follows redirects; resolves on a final 2xx/404, throws Retryable/Fatal otherwise. */
async function tryOnce(
  startUrl: string,
  policy: FetchPolicy,
  opts: FetchOptions,
): Promise<{ status: number; body: Buffer; finalUrl: string; contentType: string | null }> {
  const outer = opts.signal;
  const ctl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new Error('timeout'));
  }, policy.timeoutMs);
  const onOuterAbort = (): void => ctl.abort(outer.reason);
  outer.addEventListener('abort', onOuterAbort, { once: true });
  const visited = new Set<string>();
  let url = startUrl;
  try {
    for (let hop = 0; ; hop++) {
      visited.add(url);
      const refused = opts.guard?.(url) ?? null;
      if (refused !== null) throw new Fatal(refused, null);
      if (hop > 0) {
        try {
          await opts.limiter.take(ctl.signal);
        } catch (err) {
          if (outer.aborted) throw abortError(outer);
          if (timedOut) throw new Retryable(`timeout after ${policy.timeoutMs} ms (waiting to follow a redirect)`, null);
          throw err;
        }
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: 'GET',
          signal: ctl.signal,
          dispatcher: opts.dispatcher ?? sharedAgent(),
          headersTimeout: policy.timeoutMs,
          bodyTimeout: policy.timeoutMs,
          headers: { 'user-agent': 'CarStudio/0.1 (+scraper)', accept: '*/*', 'accept-encoding': 'gzip, deflate, br', ...opts.headers },
        });
      } catch (err) {
        if (outer.aborted) throw abortError(outer);
        const refusal = refusalOf(err);
        if (refusal !== null) throw new Fatal(refusal, null);
        if (timedOut) throw new Retryable(`timeout after ${policy.timeoutMs} ms (no headers)`, null);
        throw new Retryable(describeError(err), null);
      }
      const status = res.statusCode;
      const headers = res.headers;
      const contentType = headerValue(headers, 'content-type');

      if (REDIRECT_STATUSES.has(status)) {
        await discardBody(res.body);
        const loc = headerValue(headers, 'location');
        if (!loc) throw new Fatal(`HTTP ${status} without Location`, status);
        let next: URL;
        try {
          next = new URL(loc, url);
        } catch {
          throw new Fatal(`HTTP ${status} with a bad Location: ${loc}`, status);
        }
        const cur = new URL(url);
        const refusedHop = opts.guard?.(next.href) ?? null;
        if (refusedHop !== null) throw new Fatal(`${refusedHop} (redirected from ${url})`, status);
        if (next.host !== cur.host || next.protocol !== cur.protocol) throw new Fatal(`off-host redirect to ${next.href}`, status);
        if (visited.has(next.href)) throw new Fatal(`redirect loop at ${next.href}`, status);
        if (hop + 1 > MAX_REDIRECTS) throw new Fatal(`too many redirects (over ${MAX_REDIRECTS})`, status);
        url = next.href;
        continue;
      }

      const ok = status >= 200 && status < 300;
      const is404 = status === 404 && opts.accept404 !== false;
      if (!ok && !is404) {
        await discardBody(res.body);
        if (status >= 500 || status === 408 || status === 429) {
          let retryAfterMs: number | null = null;
          let note: string | null = null;
          if (status === 429 || status === 503) {
            const raw = headerValue(headers, 'retry-after');
            const parsed = parseRetryAfter(raw);
            if (parsed !== null) {
              retryAfterMs = parsed;
              if (parsed > policy.maxRetryAfterMs) {
                note = `Retry-After ${raw} capped to ${policy.maxRetryAfterMs} ms`;
                retryAfterMs = policy.maxRetryAfterMs;
              }
            } else if (raw !== null) {
              note = `unparseable Retry-After ${JSON.stringify(raw)}, using backoff`;
            }
          }
          throw new Retryable(`HTTP ${status}`, status, retryAfterMs, note);
        }
        throw new Fatal(`HTTP ${status}`, status);
      }

      const declared = headerValue(headers, 'content-length');
      const declaredLen = declared !== null && /^\d+$/.test(declared.trim()) ? Number(declared) : null;
      if (declaredLen !== null && declaredLen > policy.maxBodyBytes) {
        destroyBody(res.body);
        throw new Fatal(`body too large (${declaredLen} bytes > ${policy.maxBodyBytes})`, status);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of res.body) {
          const b = chunk as Buffer;
          size += b.length;
          if (size > policy.maxBodyBytes) {
            destroyBody(res.body);
            throw new Fatal(`body too large (over ${policy.maxBodyBytes} bytes)`, status);
          }
          chunks.push(b);
        }
      } catch (err) {
        destroyBody(res.body);
        if (err instanceof Fatal) throw err;
        if (outer.aborted) throw abortError(outer);
        if (timedOut) throw new Retryable(`timeout after ${policy.timeoutMs} ms (body incomplete, ${size} bytes)`, status);
        const d = describeError(err);
        throw new Retryable(declaredLen !== null ? `truncated body (${size} of ${declaredLen} bytes: ${d})` : `truncated body (${d})`, status);
      }
      if (declaredLen !== null && size !== declaredLen) {
        throw new Retryable(`truncated body (${size} of ${declaredLen} bytes)`, status);
      }
      const raw = Buffer.concat(chunks, size);
      const encoding = headerValue(headers, 'content-encoding');
      const body = ok && encoding !== null ? await decodeBody(raw, encoding, policy.maxBodyBytes, status) : raw;
      return { status, body, finalUrl: url, contentType };
    }
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', onOuterAbort);
  }
}

/** Fetch `url` under `policy`. See the module comment for the exact semantics. */
export async function fetchWithRetry(url: string, policy: FetchPolicy, opts: FetchOptions): Promise<FetchResult> {
  const maxTries = Math.max(1, Math.floor(policy.retries) + 1);
  let last: Retryable | null = null;
  for (let attempt = 1; attempt <= maxTries; attempt++) {
    if (opts.signal.aborted) throw abortError(opts.signal);
    await opts.limiter.take(opts.signal);
    try {
      const r = await tryOnce(url, policy, opts);
      return { ...r, tries: attempt };
    } catch (err) {
      if (err instanceof AbortError) throw err;
      if (err instanceof Fatal) throw new FetchError(err.reason, err.status, attempt, url);
      if (!(err instanceof Retryable)) {
        if (opts.signal.aborted) throw abortError(opts.signal);
        throw err;
      }
      last = err;
      if (attempt === maxTries) break;
      let delayMs: number;
      if (err.retryAfterMs !== null) {
        delayMs = err.retryAfterMs;
        opts.limiter.pauseUntil(Date.now() + delayMs);
      } else {
        const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt - 1, 40));
        delayMs = Math.floor(Math.random() * cap);
      }
      const reason = err.retryAfterNote ? `${err.reason}; ${err.retryAfterNote}` : err.reason;
      opts.onRetry?.({ attempt, reason, delayMs });
      await sleep(delayMs, opts.signal);
    }
  }
  throw new FetchError(last?.reason ?? 'failed', last?.status ?? null, maxTries, url);
}
