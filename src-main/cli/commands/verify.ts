import type { Command } from 'commander';
import { findResumable, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check that every stored image exists and decodes; broken ones are marked failed so a scrape fetches them again')
    .addOption(workspaceOption())
    .option('--no-repair', 'only report, change nothing')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { workspace?: string; repair: boolean; json?: boolean }) => {
      const engine = openEngine(opts);
      try {
        const params = { repair: opts.repair, checkSize: true };
        const prev = findResumable(engine, 'verify-store', (p) => JSON.stringify(p) === JSON.stringify(params));
        const job = prev ? engine.jobs.resume(prev.id) : engine.jobs.start('verify-store', params);
        const { code, job: final } = await runForeground(engine, job);
        if (opts.json) printJson(final.result);
        else if (final.state === 'done') process.stdout.write(`checked ${(final.result as { checked: number }).checked} images, ${(final.result as { bad: number }).bad} broken\n`);
        process.exitCode = code;
      } finally {
        await engine.close();
      }
    });
}
