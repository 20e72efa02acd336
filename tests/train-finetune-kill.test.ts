// A `finetune` run of the tiny-cnn backbone in real `carstudio` processes on the pure-JS cpu
// backend (forced: this machine has no native TensorFlow, and wasm has no convolution
// gradients): it checkpoints, is killed with SIGKILL between checkpoints, shows as interrupted,
// resumes from its last checkpoint with `train --resume RUN`, and its test loss goes down.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobInfo, RunInfo } from '../src-main/engine/api/contract/index.ts';
import { readCheckpoint } from '../src-main/engine/train/checkpoint.ts';
import type { CheckpointMeta } from '../src-main/engine/train/trainer.ts';
import { CLI, runCli, untilProgress } from './helpers/processes.ts';
import { ROOT, tmpDir } from './helpers/workspace.ts';

const STEPS = 30;
const EVERY = 10;

interface MetricLine {
  t: 'train' | 'eval';
  step: number;
  loss: number;
}

const readMetrics = (file: string): { lines: MetricLine[]; torn: number } => {
  const lines: MetricLine[] = [];
  let torn = 0;
  for (const l of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    try {
      lines.push(JSON.parse(l) as MetricLine);
    } catch {
      torn++;
    }
  }
  return { lines, torn };
};

describe('tiny-cnn finetune run killed and resumed (real processes, cpu backend)', () => {
  const root = tmpDir();
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('checkpoints, is SIGKILLed, shows as interrupted, resumes from its checkpoint to the end with lower test loss', async () => {
    const t0 = Date.now();
    const dir = path.join(root, 'ws');
    const scrape = await runCli(
      ['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '80', '--retry-delay-ms', '5'],
      {
        timeoutMs: 600_000,
      },
    );
    expect(scrape.code, scrape.stderr).toBe(0);

    // heads mode has no tiny-cnn: refused up front, exit 2, no run recorded
    const bad = await runCli(['train', '--workspace', dir, '--backbone', 'tiny-cnn', '--steps', '5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--backbone tiny-cnn needs --mode finetune/);

    // --split photo: a test split of photos from all the demo's cars, so that 30 steps of the
    // tiny CNN lower its loss (by listing, the few held-out cars are a noisier measure than the
    // kill-and-resume this test is about)
    const args = ['train', '--workspace', dir, '--mode', 'finetune', '--backbone', 'tiny-cnn', '--force', '--split', 'photo'];
    const child = spawn(
      process.execPath,
      [
        CLI,
        ...args,
        '--steps',
        String(STEPS),
        '--batch-size',
        '8',
        '--eval-every',
        String(EVERY),
        '--checkpoint-every',
        String(EVERY),
        '--name',
        'kill-me',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let firstErr = '';
    child.stderr.on('data', (d) => (firstErr += d));
    child.stdout.resume();
    const exited = new Promise<NodeJS.Signals | null>((res) => child.once('exit', (_code, sig) => res(sig)));
    const runDir = path.join(dir, 'runs', '1');
    const metricsFile = path.join(runDir, 'metrics.jsonl');
    // Kill it between checkpoints: last.ckpt at step 20 (past the first evaluation, at 10) and
    // two more training steps logged after it, which the resume must drop and train again.
    try {
      // on the run's own progress, however slow the machine (a child that exits ends the wait)
      await untilProgress(child, 'a checkpoint past the first evaluation', () => {
        const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as { step: number };
        const last = readMetrics(metricsFile)
          .lines.filter((l) => l.t === 'train')
          .at(-1);
        return summary.step >= 2 * EVERY && last !== undefined && last.step >= summary.step + 2;
      }).catch((e: Error) => {
        throw new Error(`${e.message}: ${firstErr}`);
      });
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    const tKilled = Date.now();
    // the backend in use is said where the user sees it
    expect(firstErr).toMatch(/warn: fine-tuning tiny-cnn on the pure-JS cpu backend \(forced/);
    expect(firstErr).toMatch(/the wasm backend has no convolution gradients/);

    const ckpt = await readCheckpoint<CheckpointMeta>(path.join(runDir, 'last.ckpt'));
    const ckptStep = ckpt.meta.step;
    expect(ckptStep % EVERY).toBe(0);
    expect(ckptStep).toBeGreaterThanOrEqual(2 * EVERY);
    expect(ckptStep).toBeLessThan(STEPS);
    const before = readMetrics(metricsFile);
    const loggedBefore = Math.max(...before.lines.filter((l) => l.t === 'train').map((l) => l.step));
    expect(loggedBefore).toBeGreaterThan(ckptStep);

    // the killed run does not claim to be training: its job died, so it is interrupted (resumable)
    const killed = (JSON.parse((await runCli(['runs', '--workspace', dir, '--json'])).stdout) as RunInfo[])[0]!;
    expect(killed).toMatchObject({ id: 1, mode: 'finetune', backbone: 'tiny-cnn', state: 'interrupted', steps: STEPS });
    expect(killed.step).toBeGreaterThanOrEqual(ckptStep);
    const table = await runCli(['runs', '--workspace', dir]);
    expect(table.stdout).toMatch(/^1\s+finetune\s+tiny-cnn\s+\(pixels\)\s+default\s+interrupted\s/m);
    const firstJob = killed.jobId!;

    // resume: no --force, --steps or --backbone needed, the run keeps its own
    const resumed = await runCli(['train', '--workspace', dir, '--resume', '1'], { timeoutMs: 600_000 });
    expect(resumed.code, resumed.stderr).toBe(0);
    // the resumed run keeps the split it was started with
    expect(resumed.stdout).toContain(`run 1: done at step ${STEPS} (resumed from step ${ckptStep}, tiny-cnn-64px-16ch, cpu backend, split by photo);`);
    const tResumed = Date.now();

    const run = (JSON.parse((await runCli(['runs', '--workspace', dir, '--json'])).stdout) as RunInfo[])[0]!;
    expect(run).toMatchObject({ id: 1, state: 'done', step: STEPS, steps: STEPS, backbone: 'tiny-cnn' });
    expect(run.jobId).not.toBe(firstJob);
    const log = await runCli(['jobs', 'logs', String(run.jobId), '--workspace', dir]);
    expect(log.stdout).toContain(`resumed from the checkpoint at step ${ckptStep} of ${STEPS}`);
    expect(log.stdout).toMatch(/backend: cpu/);
    // the killed job was interrupted, and is superseded by the resume (an engine starting later
    // does not train the run again)
    const jobs = JSON.parse((await runCli(['jobs', '--workspace', dir, '--json'])).stdout) as JobInfo[];
    expect(jobs.find((j) => j.id === firstJob)).toMatchObject({ state: 'cancelled', message: expect.stringMatching(/superseded/) });

    // metrics.jsonl: every training step once, in order, the steps logged after the checkpoint
    // by the killed process dropped and trained again; every evaluation once
    const after = readMetrics(metricsFile);
    expect(after.torn).toBe(0);
    expect(after.lines.filter((l) => l.t === 'train').map((l) => l.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    const evals = after.lines.filter((l) => l.t === 'eval');
    expect(evals.map((l) => l.step)).toEqual(Array.from({ length: STEPS / EVERY }, (_, i) => (i + 1) * EVERY));
    // the evaluations up to the checkpoint are the killed process's own, kept as they were
    const keptEvals = before.lines.filter((l) => l.t === 'eval' && l.step <= ckptStep);
    expect(evals.slice(0, keptEvals.length)).toEqual(keptEvals);
    const first = evals[0]!.loss;
    const last = evals.at(-1)!.loss;
    console.log(
      `tiny-cnn finetune: killed after step ${loggedBefore} (checkpoint ${ckptStep}), resumed to ${STEPS}; test loss ${first.toFixed(3)} @${EVERY} -> ${last.toFixed(3)} @${STEPS}; ` +
        `scrape+first process ${((tKilled - t0) / 1000).toFixed(1)} s, resume ${((tResumed - tKilled) / 1000).toFixed(1)} s, total ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(last).toBeLessThan(first);
    expect(run.lastTest!.step).toBe(STEPS);
    expect(run.lastTest!.loss).toBeCloseTo(last, 6);
  }, 900_000);
});
