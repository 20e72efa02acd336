import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT, tmpDir } from './helpers/workspace.ts';
import { runCli, waitFor } from './helpers/processes.ts';

function electronBinary(): { bin?: string; why?: string } {
  const dir = path.join(ROOT, 'node_modules', 'electron');
  try {
    const bin = path.join(dir, 'dist', fs.readFileSync(path.join(dir, 'path.txt'), 'utf8').trim());
    return fs.existsSync(bin) ? { bin } : { why: `the Electron binary ${bin} is not present` };
  } catch {
    return { why: 'the Electron binary has not been downloaded (electron fetches it on first use; this machine could not)' };
  }
}

const electron = electronBinary();
const display = process.platform !== 'linux' || Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
const skipWhy = electron.why ?? (display ? undefined : 'no display (set DISPLAY, e.g. run under xvfb-run)');
if (skipWhy) console.log(`skipping the Electron launch test: ${skipWhy}`);

describe.skipIf(Boolean(skipWhy))('desktop app', () => {
  it('opens a window whose engine runs in a plain Node child process, and leaves npm test working', async () => {
    const ws = `${tmpDir()}/ws`;
    const child = spawn(electron.bin!, [ROOT, '--workspace', ws, '--no-sandbox'], { cwd: ROOT, stdio: 'ignore' });
    try {
      // the engine it spawned creates the workspace; the database is Node's better-sqlite3 build
      await waitFor(() => fs.existsSync(path.join(ws, 'studio.db')), 'the engine to open the workspace', 60_000);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    // the same native modules still load under plain Node after the app ran
    const r = await runCli(['stats', '--workspace', ws, '--json']);
    expect(r.code).toBe(0);
  }, 90_000);
});
