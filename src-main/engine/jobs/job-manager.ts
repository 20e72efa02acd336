import { Worker } from 'node:worker_threads';
import { isAlive } from '../util/process-alive.ts';
import type { Workspace } from '../workspace/workspace.ts';
import { UserError } from '../workspace/errors.ts';
import { diskFullError, isDiskFull } from '../util/disk-full.ts';
import { jobKind } from './kinds.ts';
import { RateMeter } from './progress.ts';
import type { JobError, JobInfo, JobLogEntry, JobState, ManagerMessage, WorkerInput, WorkerMessage } from './types.ts';
import './all-kinds.ts';

const HEARTBEAT_MS = 2_000;
const STALE_MS = 30_000;
const PERSIST_MS = 1_000;
const EMIT_MS = 250;
const CANCEL_GRACE_MS = 15_000;
/** Lines of an unexpected error's stack kept in the job's log. */
const STACK_LINES = 8;

interface JobRow {
  id: number;
  kind: string;
  params: string;
  state: JobState;
  step: string | null;
  done: number;
  total: number | null;
  rate: number | null;
  eta_s: number | null;
  message: string | null;
  error_name: string | null;
  error_message: string | null;
  /** 1 when the job failed on a UserError, 0 for an unexpected failure (migration 005). */
  error_user: number | null;
  checkpoint: string | null;
  result: string | null;
  owner_pid: number | null;
  heartbeat_at: number | null;
  resumed_count: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

interface Running {
  id: number;
  worker: Worker;
  meter: RateMeter;
  row: JobRow;
  lastPersist: number;
  lastEmit: number;
  emitTimer: NodeJS.Timeout | null;
  killTimer: NodeJS.Timeout | null;
  settled: Promise<JobInfo>;
  /** Stopped because the engine shuts down: recorded as interrupted, so it resumes next start. */
  suspending: boolean;
}

export type EngineEventListener = (name: string, data: unknown) => void;

/**
 * Runs jobs in worker threads and keeps their state in the workspace's jobs table, so that
 * another process (or this one after a crash) sees what ran, how far it got and why it stopped.
 * Jobs are written to be resumable: running one again continues where it stopped.
 */
export class JobManager {
  private running = new Map<number, Running>();
  private listeners = new Set<EngineEventListener>();
  private heartbeat: NodeJS.Timeout;
  private closed = false;
  /**
   * State changes that could not be written yet (a full disk, a locked or read-only database):
   * kept here, shown by get/list as if written, and written by the heartbeat when it can.
   */
  private unsaved = new Map<number, Partial<JobRow>>();
  private unsavedLogs: JobLogEntry[] = [];

  constructor(private readonly ws: Workspace) {
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  on(listener: EngineEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(name: string, data: unknown): void {
    for (const l of this.listeners) {
      try {
        l(name, data);
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  /** Marks jobs whose owning process died as interrupted. Returns their ids. */
  recover(): number[] {
    const rows = (this.ws.db.prepare(`SELECT * FROM jobs WHERE state IN ('queued','running','cancelling')`).all() as JobRow[]).map((r) => this.merged(r));
    const now = Date.now();
    const lost: number[] = [];
    for (const r of rows) {
      if (this.running.has(r.id) || !['queued', 'running', 'cancelling'].includes(r.state)) continue;
      const ownerAlive = r.owner_pid != null && r.owner_pid !== process.pid && isAlive(r.owner_pid);
      const fresh = r.heartbeat_at != null && now - r.heartbeat_at < STALE_MS;
      if (ownerAlive && fresh) continue;
      const state: JobState = r.state === 'cancelling' ? 'cancelled' : 'interrupted';
      this.write(r.id, { state, finished_at: now, message: state === 'interrupted' ? 'the process running it stopped; it resumes when started again' : r.message });
      this.log(r.id, 'warn', state === 'interrupted' ? 'interrupted: the process running this job stopped' : 'cancelled');
      if (state === 'interrupted') lost.push(r.id);
      this.emit('job.updated', this.get(r.id));
    }
    return lost;
  }

  /** Recovers lost jobs and starts again those whose kind resumes automatically. */
  resumeInterrupted(): JobInfo[] {
    this.recover();
    const rows = (this.ws.db.prepare(`SELECT * FROM jobs WHERE state IN ('interrupted','running','queued') ORDER BY id`).all() as JobRow[])
      .map((r) => this.merged(r))
      .filter((r) => r.state === 'interrupted');
    const resumed: JobInfo[] = [];
    for (const r of rows) {
      let auto = false;
      try {
        auto = jobKind(r.kind).autoResume;
      } catch {
        continue;
      }
      if (!auto) continue;
      try {
        resumed.push(this.resume(r.id));
      } catch (e) {
        this.log(r.id, 'error', `could not resume: ${(e as Error).message}`);
      }
    }
    return resumed;
  }

  start(kind: string, paramsIn: unknown): JobInfo {
    const def = jobKind(kind);
    const parsed = def.params.safeParse(paramsIn ?? {});
    if (!parsed.success) {
      throw new UserError(`invalid parameters for ${kind}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}`);
    }
    this.assertWritable();
    this.assertNotBusy(kind);
    const now = Date.now();
    // run(), not RETURNING with get(): get() hands back the row before the commit, whose failure
    // (a full disk) better-sqlite3 then drops, leaving an id with no row.
    const id = this.orDiskFull(() =>
      Number(
        this.ws.db
          .prepare(`INSERT INTO jobs (kind, params, state, owner_pid, heartbeat_at, created_at, started_at) VALUES (?, ?, 'running', ?, ?, ?, ?)`)
          .run(kind, JSON.stringify(parsed.data), process.pid, now, now, now).lastInsertRowid,
      ),
    );
    return this.launch(id, false);
  }

  /** Starts a stopped job again, with its parameters and last checkpoint. */
  resume(id: number): JobInfo {
    this.recover();
    const row = this.row(id);
    if (!row) throw new UserError(`no job ${id}`);
    if (this.running.has(id) || row.state === 'running' || row.state === 'cancelling') throw new UserError(`job ${id} is already running`);
    if (row.state === 'done') throw new UserError(`job ${id} has finished; start a new one`);
    this.assertWritable();
    this.assertNotBusy(row.kind);
    const now = Date.now();
    // A job is started again only once that is on record (state unsaved earlier is written first).
    const pending = this.unsaved.get(id);
    try {
      this.orDiskFull(() =>
        this.ws.db.transaction(() => {
          this.flushRow(id, true);
          this.ws.db
            .prepare(
              `UPDATE jobs SET state = 'running', owner_pid = ?, heartbeat_at = ?, started_at = ?, finished_at = NULL,
                 error_name = NULL, error_message = NULL, error_user = NULL, message = NULL, resumed_count = resumed_count + 1 WHERE id = ?`,
            )
            .run(process.pid, now, now, id);
        })(),
      );
    } catch (e) {
      if (pending) this.unsaved.set(id, pending); // rolled back: still unsaved
      throw e;
    }
    this.log(id, 'info', `resumed (run ${row.resumed_count + 2})`);
    return this.launch(id, true);
  }

  cancel(id: number): JobInfo {
    const r = this.running.get(id);
    if (!r) {
      const row = this.row(id);
      if (!row) throw new UserError(`no job ${id}`);
      if (row.state === 'interrupted') {
        this.write(id, { state: 'cancelled' });
        this.emit('job.updated', this.get(id));
        return this.get(id)!;
      }
      if (row.state === 'running' || row.state === 'cancelling') {
        throw new UserError(`job ${id} is run by another process (pid ${row.owner_pid}); cancel it there`);
      }
      return this.toInfo(row);
    }
    if (r.row.state !== 'cancelling') {
      r.row.state = 'cancelling';
      this.write(id, { state: 'cancelling' });
      this.log(id, 'info', 'cancel requested');
      r.worker.postMessage({ type: 'cancel' } satisfies ManagerMessage);
      r.killTimer = setTimeout(() => {
        this.log(id, 'warn', `did not stop within ${CANCEL_GRACE_MS / 1000}s; terminated`);
        void r.worker.terminate();
      }, CANCEL_GRACE_MS);
      this.emit('job.updated', this.toInfo(r.row));
    }
    return this.toInfo(r.row);
  }

  /** Resolves when the job's worker has stopped, with its final state. */
  wait(id: number): Promise<JobInfo> {
    const r = this.running.get(id);
    if (r) return r.settled;
    const info = this.get(id);
    if (!info) return Promise.reject(new UserError(`no job ${id}`));
    return Promise.resolve(info);
  }

  get(id: number): JobInfo | null {
    const r = this.running.get(id);
    if (r) return this.toInfo(r.row);
    const row = this.row(id);
    return row ? this.toInfo(row) : null;
  }

  list(limit = 50): JobInfo[] {
    // A job another process ran and died with (SIGKILL, crash) is shown as interrupted, not running.
    if (!this.closed) this.recover();
    const rows = (this.ws.db.prepare(`SELECT * FROM jobs ORDER BY id DESC LIMIT ?`).all(limit) as JobRow[]).map((r) => this.merged(r));
    return rows.map((row) => (this.running.has(row.id) ? this.toInfo(this.running.get(row.id)!.row) : this.toInfo(row)));
  }

  logs(id: number, limit = 200): JobLogEntry[] {
    const rows = this.ws.db
      .prepare(`SELECT job_id AS jobId, at, level, message FROM job_log WHERE job_id = ? ORDER BY id DESC LIMIT ?`)
      .all(id, limit) as JobLogEntry[];
    return rows.reverse();
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  /**
   * Stops every running job cleanly and waits for them (used on shutdown). They are recorded as
   * interrupted, so an engine started later resumes them.
   */
  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    for (const r of all) {
      r.suspending = true;
      this.cancel(r.id);
    }
    await Promise.all(all.map((r) => r.settled));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.flush();
    for (const r of this.running.values()) void r.worker.terminate();
  }

  /** Jobs write: none starts on a workspace opened read-only (e.g. on a full disk). */
  private assertWritable(): void {
    if (this.ws.readonly) throw new UserError(this.ws.notes.find((n) => n.startsWith('disk full')) ?? `workspace ${this.ws.dir} is open read-only; no job can run`);
  }

  private assertNotBusy(kind: string): void {
    if (!jobKind(kind).exclusive) return;
    this.recover();
    const other = (this.ws.db.prepare(`SELECT * FROM jobs WHERE kind = ? AND state IN ('running','cancelling','queued')`).all(kind) as JobRow[])
      .map((r) => this.merged(r))
      .find((r) => ['running', 'cancelling', 'queued'].includes(r.state));
    if (other) {
      throw new UserError(
        `a ${kind} job (#${other.id}) is already running on this workspace${other.owner_pid !== process.pid ? ` in process ${other.owner_pid}` : ''}; cancel it or wait for it`,
      );
    }
  }

  private row(id: number): JobRow | undefined {
    const row = this.ws.db.prepare(`SELECT * FROM jobs WHERE id = ?`).get(id) as JobRow | undefined;
    return row && this.merged(row);
  }

  /** A row as stored, with the changes not written yet on top. */
  private merged(row: JobRow): JobRow {
    const patch = this.unsaved.get(row.id);
    return patch ? { ...row, ...patch } : row;
  }

  /** Runs a write that starts something; a full disk becomes the user's disk-full message. */
  private orDiskFull<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (isDiskFull(e)) throw diskFullError(this.ws.dir);
      throw e;
    }
  }

  /**
   * Records a change of a job's row. Never throws: when the database cannot be written (a full
   * disk), the change is kept in memory, shown as if written, and written by the heartbeat.
   */
  private write(id: number, patch: Partial<JobRow>): void {
    this.unsaved.set(id, { ...this.unsaved.get(id), ...patch });
    this.flushRow(id);
  }

  /** Writes a job's unsaved changes; false (and kept) when that fails, unless `raise`. */
  private flushRow(id: number, raise = false): boolean {
    const patch = this.unsaved.get(id);
    if (!patch) return true;
    const cols = Object.keys(patch) as Array<keyof JobRow>;
    try {
      this.ws.db.prepare(`UPDATE jobs SET ${cols.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`).run(...cols.map((c) => patch[c] ?? null), id);
    } catch (e) {
      if (raise) throw e;
      return false;
    }
    if (this.unsaved.get(id) === patch) this.unsaved.delete(id);
    return true;
  }

  /** Writes every unsaved change and log line it can; true when nothing is left unsaved. */
  flush(): boolean {
    if (!this.ws.db.open) return this.unsaved.size === 0 && this.unsavedLogs.length === 0;
    for (const id of [...this.unsaved.keys()]) this.flushRow(id);
    while (this.unsavedLogs.length > 0) {
      const l = this.unsavedLogs[0]!;
      try {
        this.ws.db.prepare(`INSERT INTO job_log (job_id, at, level, message) VALUES (?, ?, ?, ?)`).run(l.jobId, l.at, l.level, l.message);
      } catch {
        break;
      }
      this.unsavedLogs.shift();
    }
    return this.unsaved.size === 0 && this.unsavedLogs.length === 0;
  }

  private log(jobId: number, level: JobLogEntry['level'], message: string): void {
    const entry: JobLogEntry = { jobId, at: Date.now(), level, message };
    if (this.unsavedLogs.length > 0) this.unsavedLogs.push(entry);
    else {
      try {
        this.ws.db.prepare(`INSERT INTO job_log (job_id, at, level, message) VALUES (?, ?, ?, ?)`).run(jobId, entry.at, level, message);
      } catch {
        // kept in order, written by the heartbeat once the database takes writes again
        this.unsavedLogs.push(entry);
      }
    }
    this.emit('job.log', entry);
  }

  private launch(id: number, resumed: boolean): JobInfo {
    const row = this.row(id)!;
    const def = jobKind(row.kind);
    const input: WorkerInput = {
      module: def.module,
      workspaceDir: this.ws.dir,
      jobId: id,
      params: JSON.parse(row.params),
      checkpoint: row.checkpoint ? JSON.parse(row.checkpoint) : undefined,
      resumed,
    };
    const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: input });
    let resolveSettled!: (i: JobInfo) => void;
    const settled = new Promise<JobInfo>((res) => (resolveSettled = res));
    const r: Running = { id, worker, meter: new RateMeter(), row, lastPersist: 0, lastEmit: 0, emitTimer: null, killTimer: null, settled, suspending: false };
    this.running.set(id, r);
    // stack: an unexpected error's, for the log (a UserError's message says it all)
    let final: { state: JobState; error?: JobError; stack?: string; result?: unknown } | null = null;

    worker.on('message', (m: WorkerMessage) => {
      switch (m.type) {
        case 'progress':
          this.onProgress(r, m.update);
          break;
        case 'log':
          this.log(id, m.level, m.message);
          break;
        case 'checkpoint':
          r.row.checkpoint = JSON.stringify(m.value ?? null);
          this.write(id, { checkpoint: r.row.checkpoint });
          break;
        case 'event':
          this.emit(m.name, m.data);
          break;
        case 'done':
          final = { state: 'done', result: m.result };
          break;
        case 'cancelled':
          // what a job returns when stopped (e.g. the run it was training) is kept too
          final = { state: 'cancelled', result: m.result };
          break;
        case 'error':
          final = { state: 'failed', error: { name: m.name, message: m.message, user: m.user }, stack: m.user ? undefined : m.stack };
          break;
      }
    });
    worker.on('error', (e) => {
      // an error the job's code did not catch (e.g. thrown in a callback): never a user's mistake
      final ??= { state: r.row.state === 'cancelling' ? 'cancelled' : 'failed', error: { name: e.name, message: e.message, user: false }, stack: e.stack };
    });
    worker.on('exit', (code) => {
      if (r.killTimer) clearTimeout(r.killTimer);
      if (r.emitTimer) clearTimeout(r.emitTimer);
      this.running.delete(id);
      if (this.closed) return;
      let f =
        final ??
        (r.row.state === 'cancelling'
          ? { state: 'cancelled' as const }
          : { state: 'failed' as const, error: { name: 'WorkerExit', message: `job worker exited with code ${code}`, user: false } });
      if (r.suspending && f.state === 'cancelled') f = { state: 'interrupted', result: f.result };
      const now = Date.now();
      this.write(id, {
        state: f.state, done: r.row.done, total: r.row.total, step: r.row.step, message: r.row.message, rate: null, eta_s: null,
        error_name: f.error?.name ?? null, error_message: f.error?.message ?? null, error_user: f.error ? Number(f.error.user) : null,
        result: f.result === undefined ? null : JSON.stringify(f.result), finished_at: now, owner_pid: null,
      });
      // The record of how the job ended is logged once it is no longer running (isRunning is
      // false), so a foreground runner that prints the error itself can leave these lines out.
      if (f.state === 'failed' && f.stack) this.log(id, 'error', f.stack.split('\n').slice(0, STACK_LINES).join('\n'));
      this.log(
        id,
        f.state === 'failed' ? 'error' : 'info',
        f.state === 'failed' ? `failed: ${f.error?.message}` : f.state === 'interrupted' ? 'interrupted: the engine shut down; it resumes when started again' : f.state,
      );
      const info = this.get(id)!;
      this.emit('job.updated', info);
      resolveSettled(info);
    });
    this.log(id, 'info', resumed ? 'started again' : 'started');
    const info = this.toInfo(row);
    this.emit('job.updated', info);
    return info;
  }

  private onProgress(r: Running, u: { step?: string; done: number; total?: number | null; message?: string }): void {
    if (u.step !== undefined && u.step !== r.row.step) r.meter.reset();
    if (u.step !== undefined) r.row.step = u.step;
    r.row.done = u.done;
    if (u.total !== undefined) r.row.total = u.total;
    if (u.message !== undefined) r.row.message = u.message;
    r.meter.add(u.done);
    r.row.rate = r.meter.rate();
    r.row.eta_s = r.meter.eta(r.row.done, r.row.total);
    const now = Date.now();
    if (now - r.lastPersist >= PERSIST_MS) {
      r.lastPersist = now;
      this.persistProgress(r);
    }
    if (now - r.lastEmit >= EMIT_MS) {
      r.lastEmit = now;
      this.emit('job.updated', this.toInfo(r.row));
    } else if (!r.emitTimer) {
      r.emitTimer = setTimeout(() => {
        r.emitTimer = null;
        r.lastEmit = Date.now();
        if (this.running.has(r.id)) this.emit('job.updated', this.toInfo(r.row));
      }, EMIT_MS);
    }
  }

  private persistProgress(r: Running): void {
    try {
      this.ws.db
        .prepare(`UPDATE jobs SET step = ?, done = ?, total = ?, rate = ?, eta_s = ?, message = ?, heartbeat_at = ? WHERE id = ?`)
        .run(r.row.step, r.row.done, r.row.total, r.row.rate, r.row.eta_s, r.row.message, Date.now(), r.id);
    } catch {
      // progress is also in memory (r.row); a full disk must not stop the engine
    }
  }

  private beat(): void {
    if (!this.ws.db.open) return;
    this.flush();
    if (this.running.size === 0) return;
    const ids = [...this.running.keys()];
    const now = Date.now();
    const stmt = this.ws.db.prepare(`UPDATE jobs SET heartbeat_at = ? WHERE id = ?`);
    try {
      this.ws.db.transaction(() => ids.forEach((id) => stmt.run(now, id)))();
    } catch {
      /* retried on the next beat */
    }
    for (const r of this.running.values()) this.persistProgress(r);
  }

  private toInfo(row: JobRow): JobInfo {
    let title = row.kind;
    let params: unknown = null;
    try {
      params = JSON.parse(row.params);
      title = jobKind(row.kind).title(params as never);
    } catch {
      /* unknown kind (written by a newer build): show its raw name */
    }
    return {
      id: row.id,
      kind: row.kind,
      title,
      params,
      state: row.state,
      step: row.step,
      done: row.done,
      total: row.total,
      rate: row.rate,
      eta: row.eta_s,
      message: row.message,
      error: row.error_name ? { name: row.error_name, message: row.error_message ?? '', user: row.error_user === 1 } : null,
      result: row.result ? JSON.parse(row.result) : null,
      resumedCount: row.resumed_count,
      createdAt: row.created_at,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      resumable: ['cancelled', 'failed', 'interrupted'].includes(row.state),
    };
  }
}
