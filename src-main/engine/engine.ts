import { Workspace } from './workspace/workspace.ts';
import { JobManager, type EngineEventListener } from './jobs/job-manager.ts';
import { methods, isMethod, type Method, type Results, type ApiResult, type ApiError } from './api/contract/index.ts';
import { handlers } from './api/handlers/index.ts';
import { UserError } from './workspace/errors.ts';
import { DiskFullError, diskFullError, isDiskFull } from './util/disk-full.ts';
import { PathPolicy } from './api/path-policy.ts';
import { PredictPool } from './predict/pool.ts';

export interface EngineOptions {
  create?: boolean;
  isDemo?: boolean;
  transport?: 'http' | 'ipc';
  /** Resume interrupted jobs on open (what `serve` does; one-shot CLI commands do not). */
  resumeJobs?: boolean;
  /** Folders the API may read besides the workspace and the folders opened for prediction (`serve --allow-path`). */
  allowPaths?: string[];
}

/**
 * The studio's engine: one workspace, its job manager and the request handlers of the API
 * contract. Runs under plain Node; both transports (HTTP/WebSocket and, through the Electron main
 * process, IPC) call `call()` and subscribe with `on()`.
 */
export class Engine {
  readonly jobs: JobManager;
  /** What paths the API may read (api/path-policy.ts). */
  readonly paths: PathPolicy;
  /** The worker thread that runs engine-side predictions. */
  readonly predictions = new PredictPool();
  readonly startedAt = Date.now();
  readonly isDemo: boolean;
  transport: 'http' | 'ipc';
  private extraListeners = new Set<EngineEventListener>();
  private cleanups: Array<() => void | Promise<void>> = [];

  private constructor(
    readonly ws: Workspace,
    opts: EngineOptions,
  ) {
    this.jobs = new JobManager(ws);
    this.paths = new PathPolicy(ws.dir, opts.allowPaths);
    this.isDemo = opts.isDemo ?? false;
    this.transport = opts.transport ?? 'http';
  }

  static open(dir: string, opts: EngineOptions = {}): Engine {
    const ws = Workspace.open(dir, { create: opts.create });
    const engine = new Engine(ws, opts);
    if (opts.resumeJobs) engine.jobs.resumeInterrupted();
    else engine.jobs.recover();
    return engine;
  }

  /** Validates the params against the contract and runs the handler; errors become values. */
  async call(method: string, params: unknown): Promise<ApiResult<unknown>> {
    try {
      if (!isMethod(method)) throw new UserError(`unknown method '${method}'`);
      const value = await this.request(method, params);
      return { ok: true, value };
    } catch (e) {
      return { ok: false, error: toApiError(this.explainWriteFailure(e)) };
    }
  }

  /**
   * A handler that writes SQLite on this thread (labels, ranges, overrides) and meets a full disk,
   * or the read-only database a full disk left at open, gets the same disk-full message as a job.
   */
  private explainWriteFailure(e: unknown): unknown {
    if (e instanceof DiskFullError) return e;
    if (isDiskFull(e)) return diskFullError(this.ws.dir);
    const code = (e as { code?: unknown } | null)?.code;
    if (this.ws.readonly && typeof code === 'string' && code.startsWith('SQLITE_READONLY')) {
      const note = this.ws.notes.find((n) => n.startsWith('disk full'));
      return new UserError(note ?? `workspace ${this.ws.dir} is open read-only; nothing can be changed`);
    }
    return e;
  }

  async request<M extends Method>(method: M, params: unknown): Promise<Results[M]> {
    const schema = methods[method];
    const parsed = schema.safeParse(params ?? {});
    if (!parsed.success) {
      throw new UserError(`invalid parameters for ${method}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}`);
    }
    const handler = handlers[method] as (p: unknown, e: Engine) => Promise<Results[M]> | Results[M];
    return await handler(parsed.data, this);
  }

  on(listener: EngineEventListener): () => void {
    const off = this.jobs.on(listener);
    this.extraListeners.add(listener);
    return () => {
      off();
      this.extraListeners.delete(listener);
    };
  }

  /** Pushes an engine-side event (not from a job) to subscribers. */
  emit(name: string, data: unknown): void {
    for (const l of this.extraListeners) l(name, data);
  }

  onClose(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  async close(): Promise<void> {
    await this.jobs.stopAll();
    this.jobs.close();
    await this.predictions.close();
    for (const fn of this.cleanups.reverse()) await fn();
    this.ws.close();
  }
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}
