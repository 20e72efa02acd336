/**
 * Fault injection for the demo site: deterministic per (seed, URL, attempt number).
 *
 * Transient faults: a URL is "faulty" with probability `rate`; a faulty URL fails its first
 * 1..maxBurst attempts (each attempt's fault drawn from the enabled kinds) and then succeeds, so
 * any client with more tries than maxBurst gets it in the end.
 *
 * Permanent faults: a deterministic, queryable set (see {@link permanentImageFault},
 * {@link permanentListingFault}): corrupt/huge/404/HTML/empty/truncated images and a few listings
 * whose data blob is malformed JSON on every attempt (and, when enabled, redirect loops and
 * off-host redirects).
 */
import { getListing, listingPresence, hash32, rand01 } from './catalog.ts';

export const TRANSIENT_FAULTS = [
  'status-503',
  'status-429',
  'reset-before-headers',
  'reset-after-headers',
  'stall-headers',
  'stall-body',
  'slow-body',
  'truncated-length',
  'truncated-chunked',
  'redirect',
  'no-blob', // pages only: a 200 captcha/maintenance page with an <h1> and no blob
  'malformed-json', // pages only
] as const;
export type TransientFault = (typeof TRANSIENT_FAULTS)[number];
const PAGE_ONLY: ReadonlySet<TransientFault> = new Set(['no-blob', 'malformed-json']);

export const RETRY_AFTER_FORMS = ['seconds', 'http-date', 'zero', 'garbage', 'huge', 'none'] as const;
export type RetryAfterForm = (typeof RETRY_AFTER_FORMS)[number];

export const PERMANENT_IMAGE_FAULTS = ['404', 'html', 'truncated-jpeg', 'empty', 'pixel-bomb', 'corrupt', 'oversize'] as const;
export type PermanentImageFault = (typeof PERMANENT_IMAGE_FAULTS)[number];

export type PermanentListingFault = 'malformed-json' | 'redirect-loop' | 'offhost-redirect';

export interface FaultOptions {
  /** Probability 0..1 that a URL gets a burst of transient faults. */
  rate: number;
  /** Longest burst of consecutive faulty attempts of one URL (default 3). */
  maxBurst?: number;
  /** Per-fault toggles (default: all on). */
  transient?: Partial<Record<TransientFault, boolean>>;
  /** Which Retry-After forms 503/429 use (default: all on). */
  retryAfter?: Partial<Record<RetryAfterForm, boolean>>;
  /** Retry-After in seconds for the 'seconds' and 'http-date' forms (default 1). */
  retryAfterSeconds?: number;
  /** Retry-After for the 'huge' form, in seconds (default 86400). */
  hugeRetryAfterSeconds?: number;
  /** How long stalled headers/bodies hang before the server gives up (default 10000 ms). */
  stallMs?: number;
  /** Total duration of a trickled ('slow-body') response (default 300 ms). */
  slowMs?: number;
  /** Fraction of image URLs with a permanent fault (default 0.05). */
  imageFaultRate?: number;
  /** Per permanent-image-fault toggles (default: all on). */
  imageFaults?: Partial<Record<PermanentImageFault, boolean>>;
  /** Fraction of existing listings whose blob is always malformed JSON (default 0.02). */
  malformedListingRate?: number;
  /** Fraction of existing listings that redirect in a loop / to another host (default 0 each). */
  redirectLoopRate?: number;
  offHostRedirectRate?: number;
  /** Size of the 'oversize' image body (default 12 MiB). */
  oversizeBytes?: number;
}

export interface ResolvedFaults {
  rate: number;
  maxBurst: number;
  transient: TransientFault[];
  retryAfter: RetryAfterForm[];
  retryAfterSeconds: number;
  hugeRetryAfterSeconds: number;
  stallMs: number;
  slowMs: number;
  imageFaultRate: number;
  imageFaults: PermanentImageFault[];
  malformedListingRate: number;
  redirectLoopRate: number;
  offHostRedirectRate: number;
  oversizeBytes: number;
}

export function resolveFaults(f: FaultOptions | undefined): ResolvedFaults | null {
  if (!f) return null;
  const on = <K extends string>(all: readonly K[], t: Partial<Record<K, boolean>> | undefined): K[] => all.filter((k) => t?.[k] !== false);
  return {
    rate: Math.max(0, Math.min(1, f.rate)),
    maxBurst: Math.max(1, f.maxBurst ?? 3),
    transient: on(TRANSIENT_FAULTS, f.transient),
    retryAfter: on(RETRY_AFTER_FORMS, f.retryAfter),
    retryAfterSeconds: f.retryAfterSeconds ?? 1,
    hugeRetryAfterSeconds: f.hugeRetryAfterSeconds ?? 86400,
    stallMs: f.stallMs ?? 10000,
    slowMs: f.slowMs ?? 300,
    imageFaultRate: f.imageFaultRate ?? 0.05,
    imageFaults: on(PERMANENT_IMAGE_FAULTS, f.imageFaults),
    malformedListingRate: f.malformedListingRate ?? 0.02,
    redirectLoopRate: f.redirectLoopRate ?? 0,
    offHostRedirectRate: f.offHostRedirectRate ?? 0,
    oversizeBytes: f.oversizeBytes ?? 12 * 1024 * 1024,
  };
}

export interface TransientDecision {
  fault: TransientFault;
  retryAfter?: RetryAfterForm;
}

/**
 * The transient fault of attempt `attempt` (0-based) of `pathAndQuery`, or null (served normally).
 * `isPage` enables the page-only faults.
 */
export function transientFault(seed: number, f: ResolvedFaults, pathAndQuery: string, attempt: number, isPage: boolean): TransientDecision | null {
  const kinds = f.transient.filter((k) => isPage || !PAGE_ONLY.has(k));
  if (kinds.length === 0 || f.rate <= 0) return null;
  if (rand01(seed, pathAndQuery, 'faulty') >= f.rate) return null;
  const burst = 1 + (hash32(seed, pathAndQuery, 'burst') % f.maxBurst);
  if (attempt >= burst) return null;
  const fault = kinds[hash32(seed, pathAndQuery, attempt, 'kind') % kinds.length];
  if ((fault === 'status-503' || fault === 'status-429') && f.retryAfter.length > 0) {
    return { fault, retryAfter: f.retryAfter[hash32(seed, pathAndQuery, attempt, 'ra') % f.retryAfter.length] };
  }
  if (fault === 'status-503' || fault === 'status-429') return { fault, retryAfter: 'none' };
  return { fault };
}

/** Permanent fault of an image path (pathname + query, e.g. `/images/e-1-2019-2-0-5x1.jpg`), or null. */
export function permanentImageFault(seed: number, f: ResolvedFaults | null, pathAndQuery: string): PermanentImageFault | null {
  if (!f || f.imageFaults.length === 0) return null;
  if (rand01(seed, pathAndQuery, 'imgfault') >= f.imageFaultRate) return null;
  return f.imageFaults[hash32(seed, pathAndQuery, 'imgkind') % f.imageFaults.length];
}

/** Permanent fault of a listing id (only existing listings have one), or null. */
export function permanentListingFault(seed: number, f: ResolvedFaults | null, id: number): PermanentListingFault | null {
  if (!f || listingPresence(seed, id) !== 'hit') return null;
  const r = rand01(seed, id, 'listingfault');
  if (r < f.malformedListingRate) return 'malformed-json';
  if (r < f.malformedListingRate + f.redirectLoopRate) return 'redirect-loop';
  if (r < f.malformedListingRate + f.redirectLoopRate + f.offHostRedirectRate) return 'offhost-redirect';
  return null;
}

export type ExpectedListingOutcome =
  | { kind: 'ok' }
  | { kind: 'gone'; via: '404' | 'gone-page' }
  | { kind: 'invalid'; fault: 'malformed-json' }
  | { kind: 'failed'; fault: 'redirect-loop' | 'offhost-redirect' };

/** What a correct scraper (with more tries than maxBurst) ends up with for listing `id`. */
export function expectedOutcome(seed: number, faults: FaultOptions | ResolvedFaults | undefined | null, id: number): ExpectedListingOutcome {
  const presence = listingPresence(seed, id);
  if (presence === 'missing-404') return { kind: 'gone', via: '404' };
  if (presence === 'missing-gone') return { kind: 'gone', via: 'gone-page' };
  const f = faults && 'transient' in faults && Array.isArray(faults.transient) ? (faults as ResolvedFaults) : resolveFaults((faults ?? undefined) as FaultOptions | undefined);
  const pf = permanentListingFault(seed, f, id);
  if (pf === 'malformed-json') return { kind: 'invalid', fault: pf };
  if (pf) return { kind: 'failed', fault: pf };
  return getListing(seed, id) ? { kind: 'ok' } : { kind: 'gone', via: '404' };
}

export type ExpectedImageOutcome = { kind: 'ok' } | { kind: 'failed'; fault: PermanentImageFault };

/** What a correct downloader ends up with for an image URL (absolute or a path). */
export function expectedImageOutcome(seed: number, faults: FaultOptions | ResolvedFaults | undefined | null, url: string): ExpectedImageOutcome {
  const u = new URL(url, 'http://x.invalid');
  const f = faults && 'transient' in faults && Array.isArray(faults.transient) ? (faults as ResolvedFaults) : resolveFaults((faults ?? undefined) as FaultOptions | undefined);
  const pf = permanentImageFault(seed, f, u.pathname + u.search);
  return pf ? { kind: 'failed', fault: pf } : { kind: 'ok' };
}
