import type { Command } from 'commander';
import { Workspace } from '../../engine/workspace/workspace.ts';
import { integrityCheck } from '../../engine/workspace/db.ts';
import { findResumable, openEngine, printJson, resolveWorkspace, runForeground, workspaceOption } from '../common.ts';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check the database for damage (a full check, slower than the one on open) and that every stored image exists and decodes; broken ones are marked failed so a scrape fetches them again')
    .addOption(workspaceOption())
    .option('--no-repair', 'only report, change nothing')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { workspace?: string; repair: boolean; json?: boolean }) => {
      // The database's full check first, on a read-only connection: a damaged one gets the
      // recovery message and nothing is written to it (the job checks again when started by the API).
      const ro = Workspace.open(resolveWorkspace(opts), { readonly: true });
      try {
        integrityCheck(ro.db, Workspace.dbFile(ro.dir));
      } finally {
        ro.close();
      }
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
