import { z } from 'zod';
import type { ValueStats } from './values.ts';

// ---- Shared value types (plain data; the renderer imports this file, so no Node imports here) ----

export type JobState = 'queued' | 'running' | 'cancelling' | 'cancelled' | 'done' | 'failed' | 'interrupted';

/** A job as the API shows it. Progress fields are the last ones reported. */
export interface JobInfo {
  id: number;
  kind: string;
  title: string;
  params: unknown;
  state: JobState;
  step: string | null;
  done: number;
  total: number | null;
  /** Items per second over the last seconds, null until measurable. */
  rate: number | null;
  /** Seconds left at the current rate, null when unknown. */
  eta: number | null;
  message: string | null;
  /** Why the job failed (state 'failed'), else null. */
  error: JobError | null;
  result: unknown;
  resumedCount: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  resumable: boolean;
}

export interface JobLogEntry {
  jobId: number;
  at: number;
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface ApiError {
  name: string;
  message: string;
}

/** Why a job failed. */
export interface JobError extends ApiError {
  /**
   * True when the job stopped on a UserError: a mistake of the user's (too few labels, a bad
   * path, ...) that the message explains; no stack is logged and the CLI exits 2. False for an
   * unexpected failure (a bug, a crashed worker, an unreachable site): its stack is in the job's
   * log and the CLI exits 1.
   */
  user: boolean;
}

export type ApiResult<T> = { ok: true; value: T } | { ok: false; error: ApiError };

export interface WorkspaceInfo {
  dir: string;
  schemaVersion: number;
  isDemo: boolean;
  engine: { pid: number; node: string; platform: string; startedAt: number };
  transport: 'http' | 'ipc';
}

export interface Stats {
  attempts: number;
  listings: number;
  misses: number;
  failedAttempts: number;
  images: { referenced: number; stored: number; failed: number; pending: number };
  jobs: { running: number; interrupted: number };
  /** Price, year and odometer values stored as NULL by the value ranges, and stored ones outside them. */
  values: ValueStats;
  [domain: string]: unknown;
}

export interface JobKindInfo {
  kind: string;
  exclusive: boolean;
  autoResume: boolean;
}

// ---- Requests ----

const jobId = z.object({ id: z.number().int().positive() });

export const coreMethods = {
  'workspace.info': z.object({}),
  'stats.get': z.object({}),
  'jobs.kinds': z.object({}),
  'jobs.list': z.object({ limit: z.number().int().positive().max(1000).default(50) }),
  'jobs.get': jobId,
  'jobs.logs': z.object({ id: z.number().int().positive(), limit: z.number().int().positive().max(5000).default(200) }),
  'jobs.start': z.object({ kind: z.string().min(1), params: z.unknown().optional() }),
  'jobs.cancel': jobId,
  'jobs.resume': jobId,
} as const;

export interface CoreResults {
  'workspace.info': WorkspaceInfo;
  'stats.get': Stats;
  'jobs.kinds': JobKindInfo[];
  'jobs.list': JobInfo[];
  'jobs.get': JobInfo;
  'jobs.logs': JobLogEntry[];
  'jobs.start': JobInfo;
  'jobs.cancel': JobInfo;
  'jobs.resume': JobInfo;
}

// ---- Push events ----

export interface CoreEvents {
  'job.updated': JobInfo;
  'job.log': JobLogEntry;
}
