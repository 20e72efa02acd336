import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { Workspace } from '../engine/workspace/workspace.ts';
import { defaultWorkspaceDir } from '../engine/workspace/paths.ts';
import { UserError } from '../engine/workspace/errors.ts';
import { Engine, type EngineOptions } from '../engine/engine.ts';
import type { JobInfo } from '../engine/api/contract/core.ts';
import { formatDuration, formatRate } from '../engine/jobs/progress.ts';

export function workspaceOption(): Option {
  return new Option('-w, --workspace <dir>', 'workspace folder (default: $CARSTUDIO_WORKSPACE or the per-user data folder)');
}

/** The --create option of the commands that may create their workspace (scrape, label, serve). */
export function createOption(): Option {
  return new Option('--create', "create the workspace if it does not exist (otherwise a missing workspace is an error; 'carstudio init' creates one)");
}

/**
 * The workspace folder a command works on, absolute: --workspace, else $CARSTUDIO_WORKSPACE, else
 * the per-user default. An empty (or blank) path is refused: it would mean the current folder.
 */
export function resolveWorkspace(opts: { workspace?: string }): string {
  if (opts.workspace !== undefined) {
    if (opts.workspace.trim() === '') throw new UserError("--workspace is empty; name a workspace folder (an empty path would mean the current folder: pass '.' for that)");
    return path.resolve(opts.workspace);
  }
  return defaultWorkspaceDir();
}

/**
 * Opens the engine on the command's workspace. A workspace is created only by `init` or by a
 * command's explicit --create (`opts.create`); a missing one is an error that says how to create
 * it (naming --create when the command has it: `creatable`).
 */
export function openEngine(opts: { workspace?: string; create?: boolean }, engineOpts: EngineOptions = {}, creatable = false): Engine {
  const dir = resolveWorkspace(opts);
  const create = opts.create === true;
  if (!create) assertWorkspace(dir, creatable);
  const engine = Engine.open(dir, { ...engineOpts, create });
  // e.g. the quick check skipped for a very large database, or read-only on a full disk
  for (const note of engine.ws.notes) process.stderr.write(`note: ${note}\n`);
  return engine;
}

/** Throws a UserError saying how to create the workspace when `dir` holds none. */
export function assertWorkspace(dir: string, creatable: boolean): void {
  if (Workspace.exists(dir)) return;
  const orCreate = creatable ? ' or pass --create' : '';
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new UserError(`workspace ${dir} is not a folder`);
  throw new UserError(
    st
      ? `${dir} is not a CarStudio workspace (no studio.db); name a workspace folder, or make this one a workspace with 'carstudio init --workspace ${dir}'${orCreate}`
      : `workspace ${dir} does not exist; create it with 'carstudio init --workspace ${dir}'${orCreate}`,
  );
}

/** Parses an integer option, with a clear error. */
export function intArg(name: string, min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`${name} must be an integer, got '${value}'`);
    if (n < min || n > max) throw new UserError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

export function numArg(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`${name} must be a number, got '${value}'`);
    if (n < min || n > max) throw new UserError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function progressLine(j: JobInfo, extra = ''): string {
  const total = j.total != null ? `/${j.total}` : '';
  const pct = j.total ? ` ${((100 * j.done) / j.total).toFixed(1)}%` : '';
  return `[${j.title}] ${j.step ?? ''} ${j.done}${total}${pct}  ${formatRate(j.rate)}  ETA ${formatDuration(j.eta)}${j.message ? `  ${j.message}` : ''}${extra}`;
}

/**
 * Runs a job in this process with a live progress line on stderr. Ctrl-C (or SIGTERM) asks the
 * job to stop cleanly; a second Ctrl-C forces it. Returns the exit code, as for direct commands:
 * 0 done (or stopped by SIGTERM), 130 stopped by Ctrl-C, 2 failed on a UserError (the message is
 * printed once as `carstudio: <message>`, no stack), 1 failed unexpectedly (the message, and where
 * the job's log keeps the stack). Only stdout carries results, so `--json` output stays parseable.
 */
export async function runForeground(engine: Engine, job: JobInfo, opts: { json?: boolean; render?: (j: JobInfo) => string } = {}): Promise<{ code: number; job: JobInfo }> {
  const tty = process.stderr.isTTY;
  let last = 0;
  let lastLine = '';
  let printed = ''; // the last line written without a TTY, which is not written twice in a row
  const render = opts.render ?? ((j: JobInfo) => progressLine(j));
  const draw = (j: JobInfo, force = false): void => {
    if (j.id !== job.id) return;
    const now = Date.now();
    if (!force && now - last < (tty ? 200 : 5000)) return;
    last = now;
    lastLine = render(j);
    if (tty) process.stderr.write(`\r\x1b[2K${lastLine.slice(0, (process.stderr.columns ?? 200) - 1)}`);
    else if (lastLine !== printed) {
      printed = lastLine;
      process.stderr.write(lastLine + '\n');
    }
  };
  const off = engine.on((event, data) => {
    if (event === 'job.updated') draw(data as JobInfo);
    else if (event === 'job.log') {
      const l = data as { jobId: number; level: string; message: string };
      // Warnings while the job runs are shown as they come; the lines the manager logs once the
      // job has ended (its error, an unexpected error's stack) are not: the error is printed
      // below, once, and the stack stays in the job's log.
      if (l.jobId === job.id && l.level !== 'info' && engine.jobs.isRunning(job.id)) {
        if (tty) process.stderr.write('\r\x1b[2K');
        process.stderr.write(`${l.level}: ${l.message}\n`);
        if (tty && lastLine) process.stderr.write(lastLine.slice(0, (process.stderr.columns ?? 200) - 1));
      }
    }
  });
  let signals = 0;
  let signalName: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    signalName = sig;
    if (signals === 1) {
      process.stderr.write(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopping cleanly (finishing in-flight work; press Ctrl-C again to force)...\n`);
      try {
        engine.jobs.cancel(job.id);
      } catch {
        /* already stopping */
      }
    } else {
      process.stderr.write('forced stop; run the same command again to resume\n');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const final = await engine.jobs.wait(job.id);
    draw(final, true);
    if (tty) process.stderr.write('\n');
    // (a disk-full error's own message already says the same command continues the job)
    if (!engine.jobs.flush() && final.error?.name !== 'DiskFullError') {
      process.stderr.write(`carstudio: job #${final.id} ended ${final.state} but that could not be written to the workspace (disk full?); it shows as interrupted and the same command continues it\n`);
    }
    if (final.state === 'done') return { code: 0, job: final };
    if (final.state === 'cancelled') {
      process.stderr.write(`stopped: job #${final.id} (${final.title}) at ${final.done}${final.total != null ? `/${final.total}` : ''}; run the same command again to resume\n`);
      return { code: signalName === 'SIGINT' ? 130 : 0, job: final };
    }
    const err = final.error;
    process.stderr.write(`carstudio: ${err?.message ?? `job #${final.id} ${final.state}`}\n`);
    if (err?.user) return { code: 2, job: final };
    process.stderr.write(`carstudio: job #${final.id} failed with ${err?.name ?? 'an unknown error'}; its log has the details: carstudio jobs logs ${final.id} --workspace ${engine.ws.dir}\n`);
    return { code: 1, job: final };
  } finally {
    off();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Finds the newest stopped job of this kind with the same parameters, to continue it. */
export function findResumable(engine: Engine, kind: string, same: (params: unknown) => boolean): JobInfo | null {
  for (const j of engine.jobs.list(200)) {
    if (j.kind !== kind) continue;
    if (j.resumable && same(j.params)) return j;
  }
  return null;
}

export type CommandRegistrar = (program: Command) => void;
