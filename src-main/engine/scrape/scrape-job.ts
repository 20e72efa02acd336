import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { Agent } from 'undici';
import type { JobContext } from '../jobs/types.ts';
import { ImageStore } from '../workspace/image-store.ts';
import { IdPermutation } from './permutation.ts';
import { kbbSource } from './kbb.ts';
import type { ScrapedListing, SourceAdapter } from './source.ts';
import { createGuardedAgent, HostGuard } from './host-guard.ts';
import { AbortError, FetchError, fetchWithRetry, RateLimiter, sleep, type FetchPolicy, type RetryInfo } from './fetch-policy.ts';
import { ImageRejected, ingestImage, storedInfo, type StoredImage } from './image-ingest.ts';
import { DEMO_BASE_URL, type ScrapeParams } from './scrape-kind.ts';
import { openLedger, type ImageOutcome, type Ledger } from './ledger.ts';
import { startDemoSite, type DemoSite } from '../demo-site/server.ts';

const SOURCES: Record<string, SourceAdapter> = { kbb: kbbSource };
const CHECKPOINT_MS = 2_000;
/** Failed images are fetched again on later runs, up to this many runs. */
const MAX_IMAGE_RUNS = 5;

/** A condition that stops the whole scrape (the store cannot be written, the site is gone). */
class ScrapeFatal extends Error {
  override name = 'ScrapeFatal';
}

interface Counters {
  /** Most HTTP requests this scrape had in flight at once (never above the concurrency). */
  maxInFlight: number;
  ok: number;
  gone: number;
  failed: number;
  imagesStored: number;
  imagesReused: number;
  imagesFailed: number;
  /** Images refused by the host guard (not an allowed host, or a local/private address); part of imagesFailed. */
  imagesRefused: number;
  retries: number;
}

export interface ScrapeResult extends Counters {
  idsInRange: number;
  attemptedBefore: number;
  imagesRetried: number;
}

/**
 * Crawls listing ids in [minId, maxId] in a keyed random order with N workers. Every id ends with
 * exactly one ledger row (ok, gone, or failed with its reason); ok and gone ids are never asked
 * for again, failed ones are tried again on the next run. A listing, its image rows and its
 * attempt are committed in one transaction after its images are on disk, so a kill loses at most
 * the listings in flight, which the next run redoes (their finished image files are reused).
 */
export default async function scrape(ctx: JobContext<ScrapeParams>): Promise<ScrapeResult> {
  const p = ctx.params;
  const source = SOURCES[p.source]!;
  let demo: DemoSite | null = null;
  let baseUrl = p.baseUrl;
  if (baseUrl === DEMO_BASE_URL) {
    // Demo faults: every kind, but Retry-After kept short so a demo scrape stays quick.
    // With faults on, pages also come compressed (gzip, deflate or br), as from real sites.
    demo = await startDemoSite({ port: 0, compressPages: p.demoFaults, faults: p.demoFaults ? { rate: 0.1, retryAfterSeconds: 1, retryAfter: { huge: false }, stallMs: 3000 } : undefined });
    baseUrl = demo.url;
    ctx.log('info', `bundled demo site started at ${baseUrl}`);
  }
  const guard = await HostGuard.create({ baseUrl, allowImageHosts: p.allowImageHosts });
  ctx.log('info', `pages from ${new URL(baseUrl).host} only; images also from ${guard.imageHosts.join(', ') || 'no other host'}; never from loopback, link-local or private addresses other than those named`);
  const agent = createGuardedAgent(p.concurrency, guard);
  const internal = new AbortController();
  const onAbort = (): void => internal.abort();
  ctx.signal.addEventListener('abort', onAbort);
  const ledger = openLedger(ctx.workspace.db, p.source);
  try {
    await preflight(baseUrl, agent, guard, internal.signal);
    const counters: Counters = { maxInFlight: 0, ok: 0, gone: 0, failed: 0, imagesStored: 0, imagesReused: 0, imagesFailed: 0, imagesRefused: 0, retries: 0 };
    const policy: FetchPolicy = {
      retries: p.retries,
      baseDelayMs: p.retryDelayMs,
      maxDelayMs: Math.max(p.retryDelayMs * 16, p.retryDelayMs),
      timeoutMs: p.timeoutMs,
      maxRetryAfterMs: p.maxRetryAfterMs,
      maxBodyBytes: 8 * 1024 * 1024,
    };
    const imagePolicy: FetchPolicy = { ...policy, maxBodyBytes: p.maxImageBytes };
    const limiter = new RateLimiter(p.rps, Math.max(1, Math.ceil(p.rps)));
    const status: CrawlStatus = { done: 0, total: 0, doneAtStart: 0, startedAt: Date.now(), retry: null };
    const env: CrawlEnv = { ctx, p, source, baseUrl, agent, guard, limiter, policy, imagePolicy, ledger, counters, signal: internal.signal, stop: () => internal.abort(), inFlightImages: new Map(), inFlightRequests: 0, status };

    const attemptedBefore = ledger.countFinalInRange(p.minId, p.maxId);
    const result = await crawlIds(env, attemptedBefore);
    if (ctx.signal.aborted) return result;
    const imagesRetried = await retryFailedImages(env);
    reportSummary(env, result);
    return { ...result, imagesRetried };
  } catch (e) {
    if (e instanceof AbortError && ctx.signal.aborted) return zeroResult();
    throw e;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await agent.close().catch(() => {});
    await demo?.close();
  }
}

interface CrawlEnv {
  ctx: JobContext<ScrapeParams>;
  p: ScrapeParams;
  source: SourceAdapter;
  baseUrl: string;
  agent: Agent;
  guard: HostGuard;
  limiter: RateLimiter;
  policy: FetchPolicy;
  imagePolicy: FetchPolicy;
  ledger: Ledger;
  counters: Counters;
  signal: AbortSignal;
  /** Stops every worker (a fatal error). */
  stop(): void;
  inFlightImages: Map<string, Promise<ImageOutcome>>;
  inFlightRequests: number;
  /** Where the crawl stands, for progress lines written between ids (while a request retries). */
  status: CrawlStatus;
}

interface CrawlStatus {
  done: number;
  total: number;
  /** Ids already handled when this run started, and when it started (for this run's own rate). */
  doneAtStart: number;
  startedAt: number;
  /** The latest retry that is still waiting: progress lines mention it until its next try. */
  retry: { note: string; until: number } | null;
}

function zeroResult(): ScrapeResult {
  return { maxInFlight: 0, ok: 0, gone: 0, failed: 0, imagesStored: 0, imagesReused: 0, imagesFailed: 0, imagesRefused: 0, retries: 0, idsInRange: 0, attemptedBefore: 0, imagesRetried: 0 };
}

async function preflight(baseUrl: string, agent: Agent, guard: HostGuard, signal: AbortSignal): Promise<void> {
  try {
    await fetchWithRetry(new URL('/', baseUrl).href, { retries: 2, baseDelayMs: 300, maxDelayMs: 1000, timeoutMs: 10_000, maxRetryAfterMs: 5000, maxBodyBytes: 4 * 1024 * 1024 }, {
      signal,
      limiter: new RateLimiter(0),
      dispatcher: agent,
      accept404: true,
      guard: (u) => guard.checkUrl(u, 'page'),
    });
  } catch (e) {
    if (e instanceof FetchError && e.reason.startsWith('refused:')) {
      throw new ScrapeFatal(`${baseUrl}: ${e.reason}. Nothing was recorded.`);
    }
    if (e instanceof FetchError && e.status === null) {
      throw new ScrapeFatal(`cannot reach ${baseUrl}: ${e.reason}. Check the URL and your network; nothing was recorded.`);
    }
    if (!(e instanceof FetchError)) throw e;
    // any HTTP answer means the host is there
  }
}

async function crawlIds(env: CrawlEnv, attemptedBefore: number): Promise<ScrapeResult> {
  const { ctx, p, ledger, counters } = env;
  const seed = p.seed ?? defaultSeed(p.minId, p.maxId);
  const perm = new IdPermutation(p.minId, p.maxId, seed);
  const cp = ctx.checkpoint as { cursor?: number; seed?: number } | undefined;
  let next = cp && cp.seed === seed && typeof cp.cursor === 'number' ? cp.cursor : 0;
  const inFlight = new Set<number>();
  /** Indexes whose listing was abandoned by a cancel: the checkpoint must not move past them. */
  const abandoned = new Set<number>();
  let done = attemptedBefore;
  let fatal: Error | null = null;
  let consecutiveUnreachable = 0;
  let lastCheckpoint = Date.now();
  if (ctx.resumed) ctx.log('info', `resuming: ${attemptedBefore} of ${perm.size} ids already handled`);

  Object.assign(env.status, { done, total: perm.size, doneAtStart: attemptedBefore, startedAt: Date.now() });
  const report = (): void => {
    env.status.done = done;
    ctx.progress({ step: 'ids', done, total: perm.size, message: progressLine(env) });
  };
  const checkpoint = (force = false): void => {
    if (!force && Date.now() - lastCheckpoint < CHECKPOINT_MS) return;
    lastCheckpoint = Date.now();
    const pending = [...inFlight, ...abandoned];
    const cursor = pending.length ? Math.min(...pending) : next;
    ctx.saveCheckpoint({ cursor, seed });
  };
  report();

  const worker = async (): Promise<void> => {
    let spins = 0;
    while (!env.signal.aborted && !fatal) {
      if (next >= perm.size) return;
      const idx = next++;
      const id = perm.at(idx);
      if (ledger.isFinal(id)) {
        if (++spins % 5000 === 0) await yieldLoop();
        continue;
      }
      inFlight.add(idx);
      try {
        const outcome = await handleId(env, id);
        if (outcome === 'unreachable') consecutiveUnreachable++;
        else consecutiveUnreachable = 0;
        done++;
        if (consecutiveUnreachable >= Math.max(10, 2 * p.concurrency)) {
          fatal = new ScrapeFatal(`the site has not answered for ${consecutiveUnreachable} listings in a row; stopping. Run the same scrape again to resume.`);
        }
      } catch (e) {
        abandoned.add(idx);
        if (fatal || env.signal.aborted) return;
        fatal = e as Error;
        env.stop();
        return;
      } finally {
        inFlight.delete(idx);
      }
      report();
      checkpoint();
    }
  };
  await Promise.all(Array.from({ length: p.concurrency }, () => worker()));
  checkpoint(true);
  report();
  if (fatal) throw fatal;
  return { ...counters, idsInRange: perm.size, attemptedBefore, imagesRetried: 0 };
}

type IdOutcome = 'ok' | 'gone' | 'failed' | 'unreachable';

async function handleId(env: CrawlEnv, id: number): Promise<IdOutcome> {
  const { source, baseUrl, policy, ledger, counters, ctx } = env;
  const pageUrl = source.listingUrl(baseUrl, id);
  let triesUsed = 0;
  let lastStatus: number | null = null;
  const maxTries = policy.retries + 1;
  for (;;) {
    let res;
    try {
      res = await tracked(env, pageUrl, { ...policy, retries: maxTries - triesUsed - 1 }, {
        signal: env.signal,
        limiter: env.limiter,
        dispatcher: env.agent,
        accept404: true,
        onRetry: (r) => onRetry(env, r),
        guard: (u) => env.guard.checkUrl(u, 'page'),
      });
    } catch (e) {
      if (!(e instanceof FetchError)) throw e;
      triesUsed += e.tries;
      ledger.recordAttempt(id, 'failed', e.status, e.reason, triesUsed);
      counters.failed++;
      ctx.log('warn', `listing ${id}: ${e.reason} after ${triesUsed} tries`);
      return e.status === null ? 'unreachable' : 'failed';
    }
    triesUsed += res.tries;
    lastStatus = res.status;
    if (res.status === 404) {
      ledger.recordAttempt(id, 'gone', 404, 'HTTP 404', triesUsed);
      counters.gone++;
      return 'gone';
    }
    if (res.status !== 200) {
      ledger.recordAttempt(id, 'failed', res.status, `HTTP ${res.status}`, triesUsed);
      counters.failed++;
      ctx.log('warn', `listing ${id}: HTTP ${res.status}`);
      return 'failed';
    }
    const problem = pageProblem(res.body, res.contentType);
    const parsed = problem !== null ? ({ kind: 'invalid', reason: problem } as const) : source.parse(res.body.toString('utf8'), res.finalUrl, id);
    if (parsed.kind === 'gone') {
      ledger.recordAttempt(id, 'gone', 200, 'no longer available', triesUsed);
      counters.gone++;
      return 'gone';
    }
    if (parsed.kind === 'listing') {
      await storeListing(env, id, parsed.listing, triesUsed);
      return 'ok';
    }
    // A 200 page that is neither a listing nor the gone page (maintenance, captcha, broken JSON):
    // not a miss. Try again within the same budget, then record the failure with its reason.
    if (triesUsed >= maxTries) {
      ledger.recordAttempt(id, 'failed', lastStatus, parsed.reason, triesUsed);
      counters.failed++;
      ctx.log('warn', `listing ${id}: ${parsed.reason} (${triesUsed} tries)`);
      return 'failed';
    }
    counters.retries++;
    const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(triesUsed - 1, 20));
    await sleep(Math.random() * backoff, env.signal);
  }
}

/**
 * Why a 200 body cannot be a listing or the "no longer available" page (empty, not HTML, binary),
 * or null. Such a page is a retryable failure, never a miss.
 */
function pageProblem(body: Buffer, contentType: string | null): string | null {
  if (body.length === 0 || body.toString('utf8').trim() === '') return 'empty page (HTTP 200 with an empty body)';
  const type = contentType?.split(';')[0]!.trim().toLowerCase() ?? '';
  if (type !== '' && type !== 'text/html' && type !== 'application/xhtml+xml') return `not an HTML page (Content-Type: ${type})`;
  const head = body.subarray(0, 4096);
  if (head.includes(0) || (head[0] === 0x1f && head[1] === 0x8b)) return 'undecodable page body (binary data)';
  return null;
}

async function storeListing(env: CrawlEnv, id: number, listing: ScrapedListing, tries: number): Promise<void> {
  const outcomes: ImageOutcome[] = [];
  for (const url of listing.imageUrls) {
    if (env.signal.aborted) throw new AbortError();
    outcomes.push(await getImage(env, url));
  }
  const warnings = env.ledger.commitListing(id, listing, outcomes, tries);
  for (const w of warnings) env.ctx.log('warn', `listing ${id}: ${w.message}`);
  env.counters.ok++;
}

/** Canonical form of an image URL: same-origin URLs lose their origin, so a site that moves port keeps its keys. */
function canonicalUrl(url: string, baseUrl: string): string {
  const u = new URL(url, baseUrl);
  const b = new URL(baseUrl);
  return u.origin === b.origin ? u.pathname + u.search : u.href;
}

function getImage(env: CrawlEnv, url: string): Promise<ImageOutcome> {
  const canonical = canonicalUrl(url, env.baseUrl);
  const key = ImageStore.keyFor(canonical);
  const existing = env.ledger.imageState(key);
  if (existing === 'stored' && env.ctx.workspace.store.has(key)) {
    env.counters.imagesReused++;
    return Promise.resolve({ key, url: canonical, state: 'reused' });
  }
  const pending = env.inFlightImages.get(key);
  if (pending) return pending;
  const work = fetchImage(env, key, canonical).finally(() => env.inFlightImages.delete(key));
  env.inFlightImages.set(key, work);
  return work;
}

async function fetchImage(env: CrawlEnv, key: string, canonical: string): Promise<ImageOutcome> {
  const { counters, ctx } = env;
  const store = ctx.workspace.store;
  if (store.has(key)) {
    // Written before a crash that came ahead of its commit: reuse the file.
    const info = await storedInfo(store, key);
    if (info) {
      counters.imagesStored++;
      return { key, url: canonical, state: 'stored', ...info };
    }
    store.remove(key);
  }
  const abs = new URL(canonical, env.baseUrl).href;
  let body: Buffer;
  try {
    const res = await tracked(env, abs, env.imagePolicy, {
      signal: env.signal,
      limiter: env.limiter,
      dispatcher: env.agent,
      accept404: true,
      onRetry: (r) => onRetry(env, r),
      guard: (u) => env.guard.checkUrl(u, 'image'),
    });
    if (res.status !== 200) return imageFailed(env, key, canonical, `HTTP ${res.status}`);
    body = res.body;
  } catch (e) {
    if (e instanceof FetchError) return imageFailed(env, key, canonical, e.reason);
    throw e;
  }
  let info: StoredImage;
  try {
    info = await ingestImage(store, key, body, env.p.resize);
  } catch (e) {
    if (e instanceof ImageRejected) return imageFailed(env, key, canonical, e.message);
    const err = e as NodeJS.ErrnoException;
    throw new ScrapeFatal(`cannot write to the image store ${store.root}: ${err.code ?? ''} ${err.message}. Nothing was recorded for the listings in flight; fix it and run again.`);
  }
  counters.imagesStored++;
  return { key, url: canonical, state: 'stored', ...info };
}

/** fetchWithRetry, counting requests in flight (tries within one call are sequential). */
async function tracked(env: CrawlEnv, url: string, policy: FetchPolicy, opts: Parameters<typeof fetchWithRetry>[2]) {
  env.inFlightRequests++;
  env.counters.maxInFlight = Math.max(env.counters.maxInFlight, env.inFlightRequests);
  try {
    return await fetchWithRetry(url, policy, opts);
  } finally {
    env.inFlightRequests--;
  }
}

function onRetry(env: CrawlEnv, r: RetryInfo): void {
  env.counters.retries++;
  // Absurd Retry-After values are capped; say so once per occurrence.
  if (/capped|unparseable Retry-After/.test(r.reason)) env.ctx.log('warn', r.reason);
  // While a request waits to be tried again, the progress line says so, with the time left.
  const { done, total } = env.status;
  if (total > 0 && done < total) {
    const wait = r.delayMs >= 1000 ? `${(r.delayMs / 1000).toFixed(1)} s` : `${Math.round(r.delayMs)} ms`;
    env.status.retry = { note: `retrying (try ${r.attempt + 1}: ${r.reason}) in ${wait}`, until: Date.now() + r.delayMs };
    env.ctx.progress({ step: 'ids', done, total, message: progressLine(env) });
  }
}

/** The crawl's progress line: a retry still waiting (with the ETA) first, then the counts. */
function progressLine(env: CrawlEnv): string {
  const retry = env.status.retry;
  if (retry && Date.now() <= retry.until) return `${retry.note}; ${etaText(env.status)}; ${countsLine(env.counters)}`;
  env.status.retry = null;
  return countsLine(env.counters);
}

/** The hit rate: listings among the ids that answered (a listing or "no longer available"). */
function hitRate(c: Counters): string {
  const seen = c.ok + c.gone;
  return seen ? `${((100 * c.ok) / seen).toFixed(0)}%` : '--';
}

function countsLine(c: Counters): string {
  return `hit rate ${hitRate(c)}, listings ${c.ok}, misses ${c.gone}, errors ${c.failed}, images ${c.imagesStored + c.imagesReused} (${c.imagesFailed} failed)`;
}

/** "ETA 1m 05s" from this run's own pace so far (ids handled by earlier runs do not count). */
function etaText(s: CrawlStatus): string {
  const handled = s.done - s.doneAtStart;
  const elapsed = (Date.now() - s.startedAt) / 1000;
  if (handled <= 0 || elapsed <= 0) return 'ETA unknown until the first id is done';
  const left = ((s.total - s.done) * elapsed) / handled;
  return `ETA ${fmtSeconds(left)}`;
}

function fmtSeconds(seconds: number): string {
  const t = Math.max(0, Math.round(seconds));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h ${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** The last progress line and log line: what the scrape found, with its hit rate. */
function reportSummary(env: CrawlEnv, r: ScrapeResult): void {
  const c = env.counters;
  const line = `finished: hit rate ${hitRate(c)} (${c.ok} listings, ${c.gone} misses, ${c.failed} failed of ${r.idsInRange} ids${r.attemptedBefore ? `, ${r.attemptedBefore} handled by earlier runs` : ''}); images ${c.imagesStored} stored, ${c.imagesReused} reused, ${c.imagesFailed} failed; ${c.retries} retries`;
  env.ctx.progress({ step: 'ids', done: r.idsInRange, total: r.idsInRange, message: line });
  env.ctx.log('info', line);
}

function imageFailed(env: CrawlEnv, key: string, url: string, reason: string): ImageOutcome {
  env.counters.imagesFailed++;
  if (reason.startsWith('refused:')) env.counters.imagesRefused++;
  env.ctx.log('warn', `image ${url}: ${reason}`);
  return { key, url, state: 'failed', reason };
}

/** Images that failed on earlier runs (or were left pending) are fetched again. */
async function retryFailedImages(env: CrawlEnv): Promise<number> {
  const { ctx, ledger } = env;
  const todo = ledger.imagesToRetry(MAX_IMAGE_RUNS);
  if (todo.length === 0) return 0;
  ctx.log('info', `fetching ${todo.length} images again that failed on earlier runs`);
  let done = 0;
  let stored = 0;
  let cursor = 0;
  const worker = async (): Promise<void> => {
    while (cursor < todo.length && !env.signal.aborted) {
      const img = todo[cursor++]!;
      const outcome = await fetchImage(env, img.key, img.url).catch((e) => {
        if (e instanceof AbortError) return null;
        throw e;
      });
      if (!outcome) return;
      ledger.updateImage(outcome);
      if (outcome.state === 'stored') stored++;
      done++;
      ctx.progress({ step: 'images', done, total: todo.length, message: `${stored} recovered` });
    }
  };
  await Promise.all(Array.from({ length: env.p.concurrency }, () => worker()));
  return done;
}

function defaultSeed(min: number, max: number): number {
  let h = 2166136261;
  for (const c of `${min}:${max}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}
