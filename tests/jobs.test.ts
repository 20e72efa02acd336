import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import type { JobInfo } from '../src-main/engine/api/contract/index.ts';
import { seedStoredImages, tmpWorkspace, ROOT } from './helpers/workspace.ts';
import { CLI, waitFor } from './helpers/processes.ts';

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
