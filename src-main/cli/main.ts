import { Command, CommanderError } from 'commander';
import { UserError, corruptDatabaseError, isCorruptDb } from '../engine/workspace/errors.ts';
import { registerCommands } from './commands/index.ts';

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('carstudio')
    .description('CarStudio: scrape car listings, deduplicate and filter photos, train and inspect price models')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerCommands(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      // commander has printed its message already
      return 2;
    }
    if (e instanceof UserError) {
      process.stderr.write(`carstudio: ${e.message}\n`);
      return 2;
    }
    if (isCorruptDb(e)) {
      // a damaged page met after the open-time check (skipped for big files, or not covered by it)
      process.stderr.write(`carstudio: ${corruptDatabaseError(null, (e as Error).message).message}\n`);
      return 2;
    }
    process.stderr.write(`carstudio: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
