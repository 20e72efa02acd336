import type { Command } from 'commander';
import { Workspace } from '../../engine/workspace/workspace.ts';
import { printJson, resolveWorkspace, workspaceOption } from '../common.ts';
import { rangeOption, applyRangeOptions, describeRanges, type RangeOpts } from '../value-range-options.ts';

export function registerRanges(program: Command): void {
  program
    .command('ranges')
    .description('show or set the value ranges: prices, years and odometers outside them are stored as NULL with a warning, and training drops prices outside them')
    .addOption(workspaceOption())
    .addOption(rangeOption('price'))
    .addOption(rangeOption('year'))
    .addOption(rangeOption('odometer'))
    .option('--json', 'print JSON')
    .action((opts: RangeOpts & { workspace?: string; json?: boolean }) => {
      const changing = opts.priceRange !== undefined || opts.yearRange !== undefined || opts.odometerRange !== undefined;
      const ws = Workspace.open(resolveWorkspace(opts), { readonly: !changing });
      try {
        const info = applyRangeOptions(ws.db, opts);
        if (opts.json) return printJson(info);
        process.stdout.write(`${describeRanges(info).split(', ').join('\n')}\n`);
      } finally {
        ws.close();
      }
    });
}
