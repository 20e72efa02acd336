import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import type { JobInfo } from '../src-main/engine/api/contract/index.ts';
import { JobManager } from '../src-main/engine/jobs/job-manager.ts';
import { openDb } from '../src-main/engine/workspace/db.ts';
import { migrations } from '../src-main/engine/workspace/migrations/index.ts';
import { seedStoredImages, tmpDir, tmpWorkspace, ROOT } from './helpers/workspace.ts';
import { CLI, runCli, waitFor } from './helpers/processes.ts';

describe('job runner', () => {
  it('runs a job in a worker thread with throttled progress, a result and a log', async () => {
    const ws = tmpWorkspace();
    const keys = await seedStoredImages(ws, 120);
    fs.writeFileSync(ws.store.pathFor(keys[7]!), 'not a jpeg at all');
    fs.rmSync(ws.store.pathFor(keys[9]!));
    const dir = ws.dir;
    ws.close();
    const engine = Engine.open(dir);
    const updates: JobInfo[] = [];
    engine.on((name, data) => name === 'job.updated' && updates.push(data as JobInfo));
    const job = engine.jobs.start('verify-store', {});
    const final = await engine.jobs.wait(job.id);
    expect(final.state).toBe('done');
    expect(final.result).toEqual({ checked: 120, bad: 2 });
    expect(final.done).toBe(120);
    expect(final.total).toBe(120);
    // progress arrives as a handful of throttled updates, not one per image
    expect(updates.length).toBeGreaterThan(1);
    expect(updates.length).toBeLessThan(60);
    const failed = engine.ws.db.prepare(`SELECT key, fail_reason FROM images WHERE state = 'failed' ORDER BY id`).all() as Array<{ key: string; fail_reason: string }>;
    expect(failed.map((f) => f.key)).toEqual([keys[7], keys[9]]);
    expect(failed[0]!.fail_reason).toMatch(/does not decode/);
    expect(failed[1]!.fail_reason).toMatch(/missing/);
    const log = engine.jobs.logs(job.id).map((l) => l.message);
    expect(log[0]).toBe('started');
    expect(log.some((m) => m.includes('missing'))).toBe(true);
    // the state is in SQLite for other processes
    const row = engine.ws.db.prepare(`SELECT state, result FROM jobs WHERE id = ?`).get(job.id) as { state: string; result: string };
    expect(row.state).toBe('done');
    await engine.close();
  });

  it('rejects bad parameters and a second exclusive job', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 400);
    const engine = Engine.open(ws.dir);
    ws.close();
    expect(() => engine.jobs.start('verify-store', { repair: 'yes' })).toThrow(/invalid parameters for verify-store: repair/);
    expect(() => engine.jobs.start('no-such-kind', {})).toThrow(/unknown job kind/);
    const job = engine.jobs.start('verify-store', {});
    expect(() => engine.jobs.start('verify-store', {})).toThrow(/already running/);
    engine.jobs.cancel(job.id);
    await engine.jobs.wait(job.id);
    await engine.close();
  });

  it('cancels promptly and resumes from the checkpoint', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 1200);
    const engine = Engine.open(ws.dir);
    ws.close();
    const job = engine.jobs.start('verify-store', { repair: false });
    await waitFor(() => (engine.jobs.get(job.id)!.done >= 300 ? true : null), 'progress');
    const t0 = Date.now();
    engine.jobs.cancel(job.id);
    const stopped = await engine.jobs.wait(job.id);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(stopped.state).toBe('cancelled');
    expect(stopped.resumable).toBe(true);
    expect(stopped.done).toBeLessThan(1200);
    const cp = JSON.parse((engine.ws.db.prepare(`SELECT checkpoint FROM jobs WHERE id = ?`).get(job.id) as { checkpoint: string }).checkpoint);
    expect(cp.checked).toBeGreaterThan(0);
    engine.jobs.resume(job.id);
    const final = await engine.jobs.wait(job.id);
    expect(final.state).toBe('done');
    expect(final.resumedCount).toBe(1);
    // every image checked exactly once over both runs
    expect(final.result).toEqual({ checked: 1200, bad: 0 });
    await engine.close();
  });

  it('resumes a job whose process was killed (SIGKILL) when an engine starts again', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 2500);
    const dir = ws.dir;
    const child = spawn(process.execPath, [CLI, 'verify', '--workspace', dir, '--no-repair'], { cwd: ROOT, stdio: 'ignore' });
    // kill it once a checkpoint is on disk, i.e. truly mid-job
    await waitFor(() => {
      const r = ws.db.prepare(`SELECT checkpoint FROM jobs WHERE kind = 'verify-store'`).get() as { checkpoint: string | null } | undefined;
      return r?.checkpoint ? true : null;
    }, 'a checkpoint', 60_000, 20);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = ws.db.prepare(`SELECT id, state, checkpoint FROM jobs`).get() as { id: number; state: string; checkpoint: string };
    expect(before.state).toBe('running');
    const checkedBefore = JSON.parse(before.checkpoint).checked as number;
    expect(checkedBefore).toBeLessThan(2500);
    ws.close();

    const engine = Engine.open(dir, { resumeJobs: true });
    const info = engine.jobs.get(before.id)!;
    expect(['running', 'done']).toContain(info.state);
    const final = await engine.jobs.wait(before.id);
    expect(final.state).toBe('done');
    expect(final.resumedCount).toBe(1);
    expect((final.result as { checked: number }).checked).toBe(2500);
    const log = engine.jobs.logs(before.id).map((l) => l.message);
    expect(log.some((m) => m.startsWith('interrupted'))).toBe(true);
    await engine.close();
    expect(Workspace.open(dir).store.countTemporaries()).toBe(0);
  }, 120_000);
});

/** How often `needle` occurs in `text`. */
const occurrences = (text: string, needle: string): number => text.split(needle).length - 1;
/** A stack frame line, as V8 prints them. */
const STACK_LINE = /^\s+at .+\(?.*:\d+:\d+\)?$/m;

describe('failed jobs in the CLI', () => {
  it('a user error: the progress line and `carstudio: <message>` once, no stack anywhere, exit 2; --json stdout stays JSON', async () => {
    const dir = path.join(tmpDir(), 'ws');
    expect((await runCli(['init', '--workspace', dir])).code).toBe(0);

    const fit = await runCli(['filter', 'fit', '--workspace', dir]);
    const fitMsg = 'need at least 5 good and 5 bad labels to fit the filter (have 0 good, 0 bad)';
    expect(fit.code, fit.stderr).toBe(2);
    expect(occurrences(fit.stdout + fit.stderr, fitMsg)).toBe(1);
    expect(fit.stderr).toContain(`carstudio: ${fitMsg}\n`);
    expect(fit.stdout + fit.stderr).not.toMatch(STACK_LINE);
    expect(fit.stdout + fit.stderr).not.toContain('at Module.');
    expect(fit.stderr.split('\n').filter((l) => l.startsWith('[Fit junk filter'))).toHaveLength(1);
    // the progress line comes before the message
    expect(fit.stderr.indexOf('[Fit junk filter')).toBeLessThan(fit.stderr.indexOf('carstudio: '));

    const train = await runCli(['train', '--workspace', dir, '--steps', '10', '--json'], { timeoutMs: 120_000 });
    const trainMsg = 'only 0 training images with a label (price, make/model or year)';
    expect(train.code, train.stderr).toBe(2);
    expect(occurrences(train.stdout + train.stderr, trainMsg)).toBe(1);
    expect(train.stdout + train.stderr).not.toMatch(STACK_LINE);
    expect(() => JSON.parse(train.stdout)).not.toThrow();
    expect(train.stderr.split('\n').filter((l) => l.startsWith('[train]'))).toHaveLength(1);

    // the job's record says it was the user's mistake; its log has the message and no stack
    const jobs = JSON.parse((await runCli(['jobs', '--workspace', dir, '--json'])).stdout) as JobInfo[];
    expect(jobs.map((j) => [j.kind, j.state, j.error?.user])).toEqual([
      ['train', 'failed', true],
      ['filter-fit', 'failed', true],
    ]);
    const log = await runCli(['jobs', 'logs', String(jobs[1]!.id), '--workspace', dir]);
    expect(log.stdout).toContain(`failed: ${fitMsg}`);
    expect(log.stdout).not.toMatch(STACK_LINE);
  }, 180_000);

  it('an unexpected error (a file where the features folder belongs): the message once, exit 1, the stack only in the job log', async () => {
    const dir = path.join(tmpDir(), 'ws');
    expect((await runCli(['init', '--workspace', dir])).code).toBe(0);
    fs.writeFileSync(path.join(dir, 'features'), 'not a folder');
    const r = await runCli(['features', '--workspace', dir], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(1);
    // the default extractor's folder
    const msg = `ENOTDIR: not a directory, mkdir '${path.join(dir, 'features', 'car-v1')}'`;
    expect(occurrences(r.stdout + r.stderr, msg)).toBe(1);
    expect(r.stderr).toContain(`carstudio: ${msg}\n`);
    expect(r.stdout + r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).toMatch(/job #1 failed with Error; its log has the details: carstudio jobs logs 1/);
    const [job] = JSON.parse((await runCli(['jobs', '--workspace', dir, '--json'])).stdout) as JobInfo[];
    expect(job!.error).toEqual({ name: 'Error', message: msg, user: false });
    const log = await runCli(['jobs', 'logs', '1', '--workspace', dir]);
    expect(log.stdout).toMatch(STACK_LINE);
    expect(log.stdout).toContain(`failed: ${msg}`);
  }, 180_000);

  it('jobs that failed before error_user existed are classified by their error name', () => {
    const dir = path.join(tmpDir(), 'ws');
    Workspace.open(dir, { create: true }).close();
    for (const f of ['', '-wal', '-shm']) fs.rmSync(Workspace.dbFile(dir) + f, { force: true });
    // the schema before migration 005
    const old = openDb(Workspace.dbFile(dir), { list: migrations.slice(0, 4) });
    const add = old.prepare(`INSERT INTO jobs (kind, params, state, error_name, error_message, created_at) VALUES ('verify-store', '{}', ?, ?, ?, 0)`);
    add.run('failed', 'UserError', 'a mistake');
    add.run('failed', 'WorkspaceError', 'a bad workspace');
    add.run('failed', 'TypeError', 'a bug');
    add.run('done', null, null);
    old.close();
    const ws = Workspace.open(dir);
    const jobs = new JobManager(ws);
    expect(jobs.list().reverse().map((j) => j.error)).toEqual([
      { name: 'UserError', message: 'a mistake', user: true },
      { name: 'WorkspaceError', message: 'a bad workspace', user: true },
      { name: 'TypeError', message: 'a bug', user: false },
      null,
    ]);
    jobs.close();
    ws.close();
  });
});
