import type { Command } from 'commander';
import { formatDuration } from '../../engine/jobs/progress.ts';
import { intArg, openEngine, printJson, runForeground, workspaceOption } from '../common.ts';

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('list, resume and cancel jobs recorded in a workspace');
  jobs
    .command('list', { isDefault: true })
    .description('list recent jobs')
    .addOption(workspaceOption())
    .option('--json', 'print JSON')
    .option('--limit <n>', 'how many', intArg('--limit', 1, 10000), 30)
    .action(async (opts: { workspace?: string; json?: boolean; limit: number }) => {
      const engine = openEngine(opts);
      try {
        const list = engine.jobs.list(opts.limit);
        if (opts.json) return printJson(list);
        if (list.length === 0) return void process.stdout.write('no jobs yet\n');
        for (const j of list) {
          const took = j.startedAt ? formatDuration(((j.finishedAt ?? Date.now()) - j.startedAt) / 1000) : '';
          process.stdout.write(
            `#${String(j.id).padEnd(5)} ${j.state.padEnd(11)} ${j.title.padEnd(28)} ${j.done}${j.total != null ? `/${j.total}` : ''} ${took}${j.error ? `  ${j.error.message}` : ''}\n`,
          );
        }
      } finally {
        await engine.close();
      }
    });
  jobs
    .command('resume <id>')
    .description('continue a cancelled, failed or interrupted job in the foreground')
    .addOption(workspaceOption())
    .action(async (id: string, opts: { workspace?: string }) => {
      const engine = openEngine(opts);
      try {
        const job = engine.jobs.resume(intArg('id', 1)(id));
        process.exitCode = (await runForeground(engine, job)).code;
      } finally {
        await engine.close();
      }
    });
  jobs
    .command('cancel <id>')
    .description('mark an interrupted job as cancelled (a running job is cancelled where it runs)')
    .addOption(workspaceOption())
    .action(async (id: string, opts: { workspace?: string }) => {
      const engine = openEngine(opts);
      try {
        const j = engine.jobs.cancel(intArg('id', 1)(id));
        process.stdout.write(`job #${j.id}: ${j.state}\n`);
      } finally {
        await engine.close();
      }
    });
  jobs
    .command('logs <id>')
    .description("print a job's log")
    .addOption(workspaceOption())
    .option('--limit <n>', 'last N entries', intArg('--limit', 1, 100000), 200)
    .action(async (id: string, opts: { workspace?: string; limit: number }) => {
      const engine = openEngine(opts);
      try {
        for (const l of engine.jobs.logs(intArg('id', 1)(id), opts.limit)) {
          process.stdout.write(`${new Date(l.at).toISOString()} ${l.level.padEnd(5)} ${l.message}\n`);
        }
      } finally {
        await engine.close();
      }
    });
}
