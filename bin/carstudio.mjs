#!/usr/bin/env node
// Entry point of the `carstudio` CLI. The engine is TypeScript run directly under plain Node
// through tsx's loader (no build step, no Electron): see docs/ARCHITECTURE.md.
import { register } from 'tsx/esm/api';

register();
// `carstudio predict --json | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../src-main/cli/main.ts');
const code = await main(process.argv.slice(2));
if (typeof code === 'number') process.exitCode = code;
