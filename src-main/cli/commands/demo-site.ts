import type { Command } from 'commander';
import { startDemoSite } from '../../engine/demo-site/server.ts';
import { intArg, numArg } from '../common.ts';

export function registerDemoSite(program: Command): void {
  program
    .command('demo-site')
    .description('serve the bundled KBB-format demo listing site (generated listings and photos) for offline use and fault testing')
    .option('-p, --port <port>', 'TCP port (0 picks a free one)', intArg('--port', 0, 65535), 5780)
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--seed <n>', 'catalogue seed', intArg('--seed'), 1234)
    .option('--faults', 'inject faults: 503/429 bursts with Retry-After, resets, stalls, truncated bodies, broken pages and images')
    .option('--fault-rate <r>', 'share of URLs with transient faults (with --faults)', numArg('--fault-rate', 0, 1), 0.15)
    .action(async (opts: { port: number; host: string; seed: number; faults?: boolean; faultRate: number }) => {
      const site = await startDemoSite({ port: opts.port, host: opts.host, seed: opts.seed, faults: opts.faults ? { rate: opts.faultRate } : undefined });
      process.stdout.write(`demo listing site at ${site.url}${opts.faults ? ` (faults on, rate ${opts.faultRate})` : ''}\n`);
      process.stdout.write(`try: npx carstudio scrape --workspace DIR --base-url ${site.url.replace(/\/$/, '')} --min-id 1 --max-id 500\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => void site.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
