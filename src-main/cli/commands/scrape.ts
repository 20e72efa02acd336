import type { Command } from 'commander';
import { UserError } from '../../engine/workspace/errors.ts';
import { DEMO_BASE_URL, scrapeParams, type ScrapeParams } from '../../engine/scrape/scrape-kind.ts';
import { createOption, findResumable, intArg, numArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

interface ScrapeOpts {
  workspace?: string;
  baseUrl: string;
  minId: number;
  maxId: number;
  concurrency: number;
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  rps: number;
  resize: number;
  maxRetryAfterMs: number;
  faults?: boolean;
  allowImageHost: string[];
  json?: boolean;
  create?: boolean;
}

export function registerScrape(program: Command): void {
  program
    .command('scrape')
    .description('crawl listing ids of a KBB-format site into the workspace (resumable: run the same command again to continue)')
    .addOption(workspaceOption())
    .addOption(createOption())
    .requiredOption('--base-url <url>', `site root, e.g. https://www.example.com, or '${DEMO_BASE_URL}' for the bundled demo site`)
    .requiredOption('--min-id <n>', 'first listing id', intArg('--min-id', 0))
    .requiredOption('--max-id <n>', 'last listing id', intArg('--max-id', 0))
    .option('--concurrency <n>', 'concurrent requests', intArg('--concurrency', 1, 256), 8)
    .option('--retries <n>', 'retries after the first try of a request', intArg('--retries', 0, 100), 14)
    .option('--retry-delay-ms <ms>', 'backoff base delay (doubles each retry, with jitter)', intArg('--retry-delay-ms', 0, 600_000), 2000)
    .option('--timeout-ms <ms>', 'per-request timeout', intArg('--timeout-ms', 100, 600_000), 30_000)
    .option('--rps <r>', 'global cap on requests per second (0 = none)', numArg('--rps', 0, 10_000), 0)
    .option('--max-retry-after-ms <ms>', 'cap on a Retry-After pause (longer ones are capped and logged)', intArg('--max-retry-after-ms', 0, 86_400_000), 300_000)
    .option('--resize <px>', 'downsample images so the short side is at most this', intArg('--resize', 16, 4096), 256)
    .option(
      '--allow-image-host <host>',
      "also fetch images from this host (host, host:port or *.domain; repeatable). Always allowed: the site's own host:port and its domain's subdomains",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--faults', `inject faults (only with --base-url ${DEMO_BASE_URL})`)
    .option('--json', 'print the result as JSON when done')
    .action(async (opts: ScrapeOpts) => {
      if (opts.minId > opts.maxId) throw new UserError(`--min-id (${opts.minId}) is greater than --max-id (${opts.maxId})`);
      if (opts.faults && opts.baseUrl !== DEMO_BASE_URL) throw new UserError(`--faults only applies to --base-url ${DEMO_BASE_URL}`);
      const parsed = scrapeParams.safeParse({
        baseUrl: opts.baseUrl.replace(/\/+$/, '') || opts.baseUrl,
        minId: opts.minId,
        maxId: opts.maxId,
        concurrency: opts.concurrency,
        retries: opts.retries,
        retryDelayMs: opts.retryDelayMs,
        timeoutMs: opts.timeoutMs,
        rps: opts.rps,
        resize: opts.resize,
        maxRetryAfterMs: opts.maxRetryAfterMs,
        demoFaults: opts.faults ?? false,
        allowImageHosts: opts.allowImageHost,
      });
      if (!parsed.success) {
        const hostIssues = parsed.error.issues.filter((i) => i.path[0] === 'allowImageHosts');
        if (hostIssues.length) throw new UserError(`--allow-image-host: ${hostIssues.map((i) => i.message).join('; ')}`);
        throw new UserError(`--base-url ${parsed.error.issues.map((i) => i.message).join('; ')}`);
      }
      const params: ScrapeParams = parsed.data;
      const engine = openEngine(opts, {}, true);
      try {
        const same = (p: unknown): boolean => {
          const q = p as ScrapeParams;
          const hosts = (h: string[] | undefined): string => [...(h ?? [])].sort().join(' ');
          return (
            q.baseUrl === params.baseUrl &&
            q.minId === params.minId &&
            q.maxId === params.maxId &&
            q.source === params.source &&
            hosts(q.allowImageHosts) === hosts(params.allowImageHosts)
          );
        };
        const prev = findResumable(engine, 'scrape', same);
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('scrape', params);
        if (prev) process.stderr.write(`resuming scrape job #${prev.id}\n`);
        const { code, job: final } = await runForeground(engine, job);
        if (opts.json) {
          const peak = process.env.CARSTUDIO_REPORT_RSS ? { peakRssMb: process.resourceUsage().maxRSS / 1024 } : {};
          printJson({ ...(final.result as object), ...peak });
        }
        else if (final.state === 'done') {
          const r = final.result as { ok: number; gone: number; failed: number; imagesStored: number; imagesFailed: number; imagesReused: number };
          process.stdout.write(
            `done: ${r.ok} listings, ${r.gone} misses, ${r.failed} failed ids; images ${r.imagesStored} stored, ${r.imagesReused} reused, ${r.imagesFailed} failed\n`,
          );
        }
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });
}
