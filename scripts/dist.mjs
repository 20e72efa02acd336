#!/usr/bin/env node
// `npm run dist` / `dist:linux` / `dist:mac`: builds the desktop packages into dist/.
//   1. electron-vite build   (the shell and preload into out/main, out/preload; the UI into out/renderer)
//   2. build-engine          (the engine and its workers into out/engine, run in utilityProcess)
//   3. electron-builder      (electron-builder.yml: downloads Electron, rebuilds native modules
//                             for Electron's ABI, writes AppImage + deb or dmg into dist/)
//   4. npm rebuild           (native modules back to Node's ABI, for the CLI and `npm test`)
// Before step 3 it checks that the Electron release can be downloaded (or is in the cache), so
// a machine without internet gets one clear line instead of a long hang.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const NATIVE = ['better-sqlite3'];
const CHECK_TIMEOUT_MS = 10_000;

const target = process.argv[2] ?? (process.platform === 'darwin' ? 'mac' : 'linux');
if (!['linux', 'mac'].includes(target)) {
  console.error(`carstudio dist: unknown target '${target}' (use linux or mac)`);
  process.exit(2);
}

/** Runs one step; a failed step ends the build with its exit code. */
function step(title, cmd, args) {
  console.log(`\n== ${title}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw Object.assign(new Error(`${title} failed`), { code: r.status ?? 1 });
}

/** Where electron-builder (@electron/get) takes the Electron zip from, and its cache folder. */
function electronSource() {
  const version = require('electron/package.json').version;
  const arch = process.arch;
  const platform = target === 'mac' ? 'darwin' : 'linux';
  const file = `electron-v${version}-${platform}-${arch}.zip`;
  const mirror = process.env.ELECTRON_MIRROR || process.env.npm_config_electron_mirror || 'https://github.com/electron/electron/releases/download/';
  const cacheRoot =
    process.env.electron_config_cache ||
    (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Caches', 'electron') : path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'electron'));
  return { version, file, url: `${mirror.replace(/\/?$/, '/')}v${version}/${file}`, cacheRoot };
}

function cached(dir, file) {
  try {
    return fs.readdirSync(dir, { recursive: true }).some((f) => path.basename(String(f)) === file);
  } catch {
    return false;
  }
}

/** Step 3's precondition: the Electron zip is cached or its download answers. */
async function checkElectronDownload() {
  const src = electronSource();
  if (cached(src.cacheRoot, src.file)) return;
  try {
    const res = await fetch(src.url, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
    if (res.ok) return;
    throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    const why = e?.name === 'TimeoutError' ? `no answer in ${CHECK_TIMEOUT_MS / 1000} s` : (e?.cause?.message ?? e.message);
    throw Object.assign(
      new Error(
        `cannot download Electron ${src.version} (${src.url}: ${why}). Packaging needs internet access, ` +
          `or the file ${src.file} in ${src.cacheRoot} (or ELECTRON_MIRROR set to a reachable mirror). Nothing was rebuilt.`,
      ),
      { code: 3 },
    );
  }
}

let code = 0;
let rebuilt = false;
try {
  await checkElectronDownload();
  step('building the shell and the UI (electron-vite)', process.execPath, [require.resolve('electron-vite/bin/electron-vite.js'), 'build']);
  step('bundling the engine (out/engine)', process.execPath, [path.join(root, 'scripts', 'build-engine.mjs')]);
  rebuilt = true;
  step(`packaging for ${target} (electron-builder)`, process.execPath, [require.resolve('electron-builder/cli.js'), `--${target}`, '--publish', 'never']);
  console.log(`\nPackages written to ${path.join(root, 'dist')}`);
} catch (e) {
  console.error(`carstudio dist: ${e.message}`);
  code = e.code ?? 1;
} finally {
  if (rebuilt) {
    // electron-builder rebuilt these in node_modules for Electron; give them back to Node.
    const r = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['rebuild', ...NATIVE], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`carstudio dist: could not rebuild ${NATIVE.join(', ')} for Node; run \`npm rebuild ${NATIVE.join(' ')}\` before using the CLI or the tests`);
      code ||= 1;
    }
  }
}
process.exit(code);
