import type { Workspace } from '../workspace/workspace.ts';
import type { JobLogEntry } from '../api/contract/core.ts';

export type { JobError, JobInfo, JobLogEntry, JobState } from '../api/contract/core.ts';

export interface ProgressUpdate {
  step?: string;
  done: number;
  total?: number | null;
  message?: string;
}

/** What a job's code receives, inside its worker thread. */
export interface JobContext<P> {
  jobId: number;
  params: P;
  workspace: Workspace;
  signal: AbortSignal;
  /** True when this run continues an earlier one (after a cancel, a failure or a killed process). */
  resumed: boolean;
  /** The value last passed to saveCheckpoint, if any. */
  checkpoint: unknown;
  /** Throttled here; call it as often as convenient. */
  progress(update: ProgressUpdate): void;
  log(level: JobLogEntry['level'], message: string): void;
  saveCheckpoint(value: unknown): void;
  /** A domain push event (e.g. training metrics) forwarded to API subscribers. */
  emit(name: string, data: unknown): void;
}

export type JobFn<P> = (ctx: JobContext<P>) => Promise<unknown>;

/** Messages from a job worker to the manager. */
export type WorkerMessage =
  | { type: 'progress'; update: ProgressUpdate }
  | { type: 'log'; level: JobLogEntry['level']; message: string }
  | { type: 'checkpoint'; value: unknown }
  | { type: 'event'; name: string; data: unknown }
  | { type: 'done'; result: unknown }
  | { type: 'cancelled'; result?: unknown }
  /** `user`: the job threw a UserError (the message says what to fix; no stack is sent). */
  | { type: 'error'; name: string; message: string; user: boolean; stack?: string };

export type ManagerMessage = { type: 'cancel' };

export interface WorkerInput {
  module: string;
  workspaceDir: string;
  jobId: number;
  params: unknown;
  checkpoint: unknown;
  resumed: boolean;
}
