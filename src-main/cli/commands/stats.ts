import type { Command } from 'commander';
import { Workspace } from '../../engine/workspace/workspace.ts';
import { getStats } from '../../engine/stats.ts';
import { readingDamaged } from '../../engine/workspace/db.ts';
import { printJson, resolveWorkspace, workspaceOption } from '../common.ts';
import { formatRange } from '../../engine/workspace/value-ranges.ts';
import { VALUE_FIELDS, type ValueStats } from '../../engine/api/contract/values.ts';

/** The value-range lines: values stored as NULL, stored values outside the ranges, the ranges. */
function valueLines(v: ValueStats): string[] {
  const per = (c: Record<string, number>): string => VALUE_FIELDS.map((f) => `${f} ${c[f]}`).join(', ');
  return [
    `values      set to NULL: ${per(v.nulled)} (${v.listingsWithWarnings} listings with warnings); stored outside the ranges: ${per(v.outOfRange)}`,
    `ranges      ${VALUE_FIELDS.map((f) => `${f} ${formatRange(f, v.ranges[f])}`).join(', ')}`,
  ];
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('counts of what the workspace holds (listings, attempts, images, ...)')
    .addOption(workspaceOption())
    .option('--json', 'print JSON')
    .action((opts: { workspace?: string; json?: boolean }) => {
      const ws = Workspace.open(resolveWorkspace(opts), { readonly: true });
      try {
        for (const note of ws.notes) process.stderr.write(`note: ${note}\n`);
        const s = readingDamaged(Workspace.dbFile(ws.dir), () => getStats(ws.db));
        if (opts.json) return printJson(s);
        const lines = [
          `workspace   ${ws.dir}`,
          `attempts    ${s.attempts} (listings ${s.listings}, misses ${s.misses}, failed ${s.failedAttempts})`,
          `images      referenced ${s.images.referenced}, stored ${s.images.stored}, failed ${s.images.failed}, pending ${s.images.pending}`,
          `jobs        running ${s.jobs.running}, interrupted ${s.jobs.interrupted}`,
          ...valueLines(s.values),
        ];
        for (const [k, v] of Object.entries(s)) {
          if (['attempts', 'listings', 'misses', 'failedAttempts', 'images', 'jobs', 'values'].includes(k)) continue;
          lines.push(`${k.padEnd(11)} ${JSON.stringify(v)}`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        ws.close();
      }
    });
}
