import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { parseHostEntry } from './host-guard.ts';
import './scrape-stats.ts';

/** `demo` means the bundled demo listing site, started inside the job itself. */
export const DEMO_BASE_URL = 'demo';

export const scrapeParams = z
  .object({
    source: z.enum(['kbb']).default('kbb'),
    baseUrl: z.string().refine((u) => u === DEMO_BASE_URL || /^https?:\/\/[^/\s]+/i.test(u), {
      message: "must be an http(s) URL such as https://www.example.com, or 'demo' for the bundled demo site",
    }),
    minId: z.number().int().nonnegative(),
    maxId: z.number().int().nonnegative(),
    concurrency: z.number().int().min(1).max(256).default(8),
    /** Retries after the first try (15 tries in all by default, as the original). */
    retries: z.number().int().min(0).max(100).default(14),
    retryDelayMs: z.number().int().min(0).max(600_000).default(2_000),
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** Global requests-per-second cap; 0 = none. */
    rps: z.number().min(0).max(10_000).default(0),
    /** Downsample so the short side is at most this many pixels. */
    resize: z.number().int().min(16).max(4096).default(256),
    maxImageBytes: z.number().int().min(1024).default(25 * 1024 * 1024),
    /** Longest Retry-After honoured (larger ones are capped, with a log line). */
    maxRetryAfterMs: z.number().int().min(0).max(86_400_000).default(300_000),
    /** Permutation key; the default depends only on the range, so the same command resumes the same order. */
    seed: z.number().int().optional(),
    /**
     * Hosts images may also come from, besides the site's own host:port and its registrable
     * domain's subdomains (`host`, `host:port`, `*.domain`); see host-guard.ts.
     */
    allowImageHosts: z
      .array(
        z.string().superRefine((h, ctx) => {
          try {
            parseHostEntry(h);
          } catch (e) {
            ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
          }
        }),
      )
      .max(100)
      .default([]),
    /** Demo-site options (baseUrl 'demo' only). */
    demoFaults: z.boolean().default(false),
  })
  .refine((p) => p.minId <= p.maxId, { message: 'minId must not be greater than maxId', path: ['maxId'] });

export type ScrapeParams = z.infer<typeof scrapeParams>;

export const scrapeKind = defineJobKind<ScrapeParams>({
  kind: 'scrape',
  title: (p) => `Scrape ${p.baseUrl === DEMO_BASE_URL ? 'demo site' : hostOf(p.baseUrl)} ids ${p.minId}..${p.maxId}`,
  params: scrapeParams,
  module: new URL('./scrape-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});

function hostOf(u: string): string {
  try {
    return new URL(u).host;
  } catch {
    return u;
  }
}
