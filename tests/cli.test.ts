import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';

describe('carstudio CLI', () => {
  it('prints --help for every command', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z-]+)(?: \[options\]| <|\s)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['init', 'serve', 'stats', 'jobs', 'verify']));
    for (const c of commands) {
      const r = await runCli([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(new RegExp(`Usage: carstudio ${c}`));
    }
  });

  it('stats --json reports the counts of a workspace', async () => {
    const dir = `${tmpDir()}/ws`;
    expect((await runCli(['init', '--workspace', dir])).code).toBe(0);
    const r = await runCli(['stats', '--workspace', dir, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ listings: 0, attempts: 0, images: { referenced: 0, stored: 0, failed: 0 } });
  });

  it('exits non-zero with a clear message on bad arguments and unreadable workspaces', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const badPort = await runCli(['serve', '--port', 'abc', '--workspace', tmpDir()]);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/--port must be an integer/);
    const missing = await runCli(['stats', '--workspace', '/nonexistent/carstudio-ws', '--json']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/does not exist/);
    const notWs = await runCli(['stats', '--workspace', tmpDir()]);
    expect(notWs.code).toBe(2);
    expect(notWs.stderr).toMatch(/not a CarStudio workspace/);
    const dir = tmpDir();
    fs.writeFileSync(`${dir}/studio.db`, 'this is not sqlite');
    const corrupt = await runCli(['stats', '--workspace', dir]);
    expect(corrupt.code).toBe(2);
    expect(corrupt.stderr).toMatch(/cannot use database .*not a database/);
    expect(fs.readFileSync(`${dir}/studio.db`, 'utf8')).toBe('this is not sqlite');
  });
});
