import fs from 'node:fs';
import path from 'node:path';
import type { Workspace } from '../workspace/workspace.ts';
import { UserError } from '../workspace/errors.ts';
import { isAlive } from '../util/process-alive.ts';
import type { RunInfo, RunMetricPoint } from '../api/contract/train.ts';
import type { TrainParams } from './train-kind.ts';
import { DEFAULT_EXTRACTOR } from '../filter/features.ts';
import { HEAD_NAMES, RUN_FILES, runExtractor, type RunConfigFile } from './trainer.ts';

interface RunRow {
  id: number;
  name: string;
  mode: 'heads' | 'finetune';
  params: string;
  state: RunInfo['state'];
  job_id: number | null;
  step: number;
  steps: number;
  last_train: string | null;
  last_test: string | null;
  best: string | null;
  baseline: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
  /** The state of the job that last trained the run (LEFT JOIN jobs). */
  job_state: string | null;
  job_owner: number | null;
  job_heartbeat: number | null;
}

/** As the job manager's: a running job's heartbeat is written every 2 s. */
const STALE_MS = 30_000;
const SELECT = `SELECT runs.*, jobs.state AS job_state, jobs.owner_pid AS job_owner, jobs.heartbeat_at AS job_heartbeat FROM runs LEFT JOIN jobs ON jobs.id = runs.job_id`;

/**
 * A run recorded as preparing or running whose job no longer runs (its process was killed: the
 * job manager marks such jobs interrupted when an engine opens the workspace, and a job still
 * marked running whose owner process is gone, or whose heartbeat is stale, is the same) is
 * interrupted, not training.
 */
function stateOf(r: RunRow): RunInfo['state'] {
  // Without a job row there is nothing to judge by: the recorded state stands.
  if ((r.state !== 'running' && r.state !== 'preparing') || r.job_state === null) return r.state;
  const live =
    (r.job_state === 'running' || r.job_state === 'cancelling' || r.job_state === 'queued') &&
    r.job_owner != null &&
    isAlive(r.job_owner) &&
    r.job_heartbeat != null &&
    Date.now() - r.job_heartbeat < STALE_MS;
  return live ? r.state : 'interrupted';
}

const parse = <T>(s: string | null): T | null => (s ? (JSON.parse(s) as T) : null);

/** The run's config.json, or null before it exists (a run still preparing) or when it cannot be read. */
function readConfig(dir: string): Partial<RunConfigFile> | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.config), 'utf8')) as Partial<RunConfigFile>;
  } catch {
    return null;
  }
}

/**
 * The features a heads run trained on: its config.json's record (mobilenet_v2 for runs from
 * before it was recorded), else, before its config exists (a run still preparing), the extractor
 * its parameters name; null for a finetune run, which trains the backbone on pixels.
 */
function extractorOf(r: RunRow, params: { extractor?: string }, cfg: Partial<RunConfigFile> | null): string | null {
  if (r.mode !== 'heads') return null;
  if (!cfg) return params.extractor ?? 'mobilenet_v2';
  return cfg.extractor ?? params.extractor ?? runExtractor(cfg);
}

/** Per head, whether it trained and why not (config.json's plan; null for runs from before it was recorded). */
function headsOf(cfg: Partial<RunConfigFile> | null): RunInfo['heads'] {
  if (!cfg?.heads) return null;
  const out = {} as NonNullable<RunInfo['heads']>;
  for (const h of HEAD_NAMES) {
    const p = cfg.heads[h];
    out[h] = p ? { trains: p.trains, reason: p.reason } : { trains: true, reason: null };
  }
  return out;
}

function toInfo(r: RunRow, wsDir: string): RunInfo {
  const params = JSON.parse(r.params) as { lossWeights?: string; backbone?: RunInfo['backbone']; extractor?: string };
  const dir = path.join(wsDir, 'runs', String(r.id));
  const cfg = readConfig(dir);
  return {
    id: r.id,
    name: r.name,
    mode: r.mode,
    backbone: params.backbone ?? 'mobilenet_v2',
    extractor: extractorOf(r, params, cfg),
    heads: headsOf(cfg),
    lossWeights: params.lossWeights ?? 'default',
    params,
    state: stateOf(r),
    jobId: r.job_id,
    step: r.step,
    steps: r.steps,
    lastTrain: parse(r.last_train),
    lastTest: parse(r.last_test),
    best: parse(r.best),
    baseline: parse(r.baseline),
    error: r.error,
    dir,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function listRuns(ws: Workspace): RunInfo[] {
  return (ws.db.prepare(`${SELECT} ORDER BY runs.id DESC`).all() as RunRow[]).map((r) => toInfo(r, ws.dir));
}

export function getRun(ws: Workspace, id: number): RunInfo {
  const r = ws.db.prepare(`${SELECT} WHERE runs.id = ?`).get(id) as RunRow | undefined;
  if (!r) throw new UserError(`no run ${id}`);
  return toInfo(r, ws.dir);
}

/** The run's metric history from its metrics.jsonl (train steps and evaluations). */
export function runMetrics(ws: Workspace, id: number, maxTrainPoints = 2000): RunMetricPoint[] {
  getRun(ws, id);
  const file = path.join(ws.dir, 'runs', String(id), 'metrics.jsonl');
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const pts: RunMetricPoint[] = [];
  for (const l of lines) {
    try {
      const o = JSON.parse(l) as Omit<RunMetricPoint, 'split'> & { t: 'train' | 'eval' };
      const { t, ...rest } = o;
      pts.push({ ...rest, split: t === 'train' ? 'train' : 'test' });
    } catch {
      /* a line cut by a crash */
    }
  }
  const train = pts.filter((p) => p.split === 'train');
  const every = Math.max(1, Math.ceil(train.length / maxTrainPoints));
  return pts.filter((p) => p.split !== 'train' || p.step % every === 0);
}

export function deleteRun(ws: Workspace, id: number, isRunning: (jobId: number) => boolean): void {
  const r = getRun(ws, id);
  if (r.jobId && isRunning(r.jobId) && (r.state === 'running' || r.state === 'preparing')) throw new UserError(`run ${id} is training; stop it first`);
  ws.db.prepare(`DELETE FROM runs WHERE id = ?`).run(id);
  fs.rmSync(path.join(ws.dir, 'runs', String(id)), { recursive: true, force: true });
}

/** The parameters that decide what a run trains (everything but force, which only allows a backend). */
const SAME_RUN_KEYS = [
  'mode',
  'backbone',
  'extractor',
  'batchSize',
  'lr',
  'lossWeights',
  'evalEvery',
  'checkpointEvery',
  'hidden',
  'dropout',
  'augment',
  'seed',
  'name',
  'split',
  'testFraction',
  'topMakeModels',
  'weightDecay',
  'inputNorm',
] as const;
/** What runs recorded before these parameters existed were trained with. */
const OLD_RUN_DEFAULTS = { split: 'photo', testFraction: 0.1, topMakeModels: 512, inputNorm: 'none' };

/**
 * For a new training request: the newest unfinished run (stopped or interrupted) trained with the
 * same parameters and total of steps, which running the same command again continues (`match`),
 * and the newest unfinished run of any parameters (`newest`), to name when a new run starts beside it.
 */
export function unfinishedRunFor(ws: Workspace, params: TrainParams): { match: RunInfo | null; newest: RunInfo | null } {
  const unfinished = listRuns(ws).filter((r) => r.state === 'stopped' || r.state === 'interrupted');
  // A heads run's features are part of what it trains (unset: the default extractor for a new
  // run, mobilenet_v2 for a run from before extractors were recorded); finetune runs have none.
  const want: Record<string, unknown> = {
    ...params,
    backbone: params.backbone ?? 'mobilenet_v2',
    extractor: params.mode === 'heads' ? (params.extractor ?? DEFAULT_EXTRACTOR) : null,
    inputNorm: params.inputNorm ?? 'none',
  };
  const same = (r: RunInfo): boolean => {
    const had: Record<string, unknown> = { ...OLD_RUN_DEFAULTS, ...(r.params as Record<string, unknown>), extractor: r.extractor };
    return r.steps === params.steps && SAME_RUN_KEYS.every((k) => JSON.stringify(had[k] ?? null) === JSON.stringify(want[k] ?? null));
  };
  return { match: unfinished.find(same) ?? null, newest: unfinished[0] ?? null };
}
