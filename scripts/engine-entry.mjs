// Entry point of the bundled engine (out/engine/carstudio.mjs, built by scripts/build-engine.mjs):
// the same CLI as bin/carstudio.mjs, with no tsx loader. The packaged desktop app runs it as
// `carstudio serve --ready-json` in Electron's utilityProcess; plain `node out/engine/carstudio.mjs`
// runs it too.
import { PassThrough } from 'node:stream';
import { main } from '../src-main/cli/main.ts';

// A utility process has no stdin pipe, yet `serve --ready-json` stops when its stdin ends (the
// shell went away). There the parent port plays the pipe's part: a 'stop' message, or the port
// closing, ends a stand-in stdin.
if (process.parentPort) {
  const stdin = new PassThrough();
  Object.defineProperty(process, 'stdin', { value: stdin, configurable: true });
  process.parentPort.on('message', (e) => {
    if (e.data === 'stop') stdin.end();
  });
  process.parentPort.on('close', () => stdin.end());
}
// `carstudio predict --json | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const code = await main(process.argv.slice(2));
if (typeof code === 'number') process.exitCode = code;
