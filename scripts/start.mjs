#!/usr/bin/env node
// `npm start`: build the UI, then open the desktop app when an Electron binary is present, or
// else serve the studio to a browser. Extra arguments (e.g. `npm start -- --workspace DIR`)
// are passed on.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

const build = spawnSync(process.execPath, [path.join(root, 'node_modules', 'electron-vite', 'bin', 'electron-vite.js'), 'build', '--logLevel', 'warn'], {
  cwd: root,
  stdio: 'inherit',
});
if (build.status !== 0) {
  console.error('carstudio: building the studio failed (see above)');
  process.exit(build.status ?? 1);
}

function electronBinary() {
  const dir = path.join(root, 'node_modules', 'electron');
  try {
    const rel = fs.readFileSync(path.join(dir, 'path.txt'), 'utf8').trim();
    const bin = path.join(dir, 'dist', rel);
    return fs.existsSync(bin) ? { bin } : { why: `its binary ${bin} is missing (Electron downloads it on first use, and that download is not possible here)` };
  } catch {
    return { why: 'the electron package has not downloaded its binary (it does so on first use, and that download is not possible here)' };
  }
}

const found = electronBinary();
const headless = process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY;
if (found.bin && !headless && !process.env.CARSTUDIO_SERVE) {
  const child = spawn(found.bin, [root, ...args], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  const why = found.bin ? (headless ? 'there is no display (DISPLAY is not set)' : 'CARSTUDIO_SERVE is set') : found.why;
  console.log(`No desktop window: ${why}. Serving the studio to your browser instead.`);
  const serveArgs = ['serve', ...(args.includes('--workspace') || args.includes('-w') ? [] : ['--demo']), ...args];
  const child = spawn(process.execPath, [path.join(root, 'bin', 'carstudio.mjs'), ...serveArgs], { cwd: root, stdio: 'inherit' });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code) => process.exit(code ?? 0));
}
