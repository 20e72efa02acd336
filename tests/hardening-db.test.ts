// Issue 11, item 12: a database with a corrupted page. Opening runs PRAGMA quick_check (skipped
// for very large files, and said so); `verify` runs the full integrity_check. A damaged studio.db
// gets one message naming the file and how to recover, exit 2, no stack, and no write to it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { runCli } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';

const ROWS = 600;

/** A real workspace with enough attempts that their table has interior b-tree pages. */
function makeWorkspace(): string {
  const dir = path.join(tmpDir(), 'ws');
  const ws = Workspace.open(dir, { create: true });
  const ins = ws.db.prepare(`INSERT INTO attempts (source, listing_id, outcome, http_status, reason, tries, at) VALUES ('demo', ?, 'gone', 404, ?, 1, ?)`);
  ws.db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) ins.run(i, `no listing ${i} on the demo site`, Date.now());
  })();
  ws.close();
  return dir;
}

/** Overwrites the header of a b-tree's root page (with 600 rows an interior page, never page 1). */
function corruptRootPage(dir: string, btree: string): number {
  const file = Workspace.dbFile(dir);
  const db = new Database(file, { readonly: true });
  const { rootpage } = db.prepare(`SELECT rootpage FROM sqlite_master WHERE name = ?`).get(btree) as { rootpage: number };
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  expect(rootpage).toBeGreaterThan(1);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(48, 0xa5), 0, 48, (rootpage - 1) * pageSize);
  fs.closeSync(fd);
  return rootpage;
}

const sha = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function expectDamaged(r: { code: number | null; stderr: string }, file: string, check: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(`carstudio: database ${file} is damaged (`);
  expect(r.stderr).toMatch(check);
  expect(r.stderr).toContain(`sqlite3 "${file}" ".recover" | sqlite3 "${path.join(path.dirname(file), 'recovered.db')}"`);
  expect(r.stderr).toMatch(/last backup/);
  expect(r.stderr).not.toMatch(/\n\s+at .+:\d+/);
  expect(r.stderr).not.toMatch(/SqliteError/);
}

describe('a studio.db with a corrupted b-tree page', () => {
  let dir: string;
  let file: string;
  beforeAll(() => {
    dir = makeWorkspace();
    file = Workspace.dbFile(dir);
    corruptRootPage(dir, 'attempts');
  });

  it('stats and scrape exit 2 with the message naming the file and how to recover, and studio.db is not written', async () => {
    const before = sha(file);
    const stats = await runCli(['stats', '--workspace', dir]);
    expectDamaged(stats, file, /PRAGMA quick_check: /);
    expect(stats.stdout).toBe('');

    const scrape = await runCli(['scrape', '--workspace', dir, '--base-url', 'demo', '--min-id', '1', '--max-id', '5']);
    expectDamaged(scrape, file, /PRAGMA quick_check: /);
    expect(sha(file)).toBe(before);
    expect(fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0).toBe(0);
  }, 120_000);

  it('with the open-time check skipped (a large database), stats says so and still gives the message, and verify runs integrity_check', async () => {
    // stats counts attempts through this index: damage it in a workspace of its own
    const dir = makeWorkspace();
    const file = Workspace.dbFile(dir);
    corruptRootPage(dir, 'attempts_outcome');
    const before = sha(file);
    const env = { CARSTUDIO_QUICK_CHECK_MAX_MB: '0' };
    const stats = await runCli(['stats', '--workspace', dir], { env });
    expect(stats.stderr).toMatch(/note: the quick check of .*studio\.db on open was skipped .*'carstudio verify' runs the full integrity check/);
    expectDamaged(stats, file, /malformed/);

    const verify = await runCli(['verify', '--workspace', dir], { env });
    expectDamaged(verify, file, /PRAGMA integrity_check: /);
    expect(sha(file)).toBe(before);
  }, 120_000);

  it('an undamaged workspace opens and verifies as before', async () => {
    const ok = makeWorkspace();
    const stats = await runCli(['stats', '--workspace', ok, '--json']);
    expect(stats.code, stats.stderr).toBe(0);
    expect((JSON.parse(stats.stdout) as { attempts: number }).attempts).toBe(ROWS);
    const verify = await runCli(['verify', '--workspace', ok]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('checked 0 images, 0 broken');
  }, 120_000);
});
