// Finding trained runs to predict with. The training stage's `runs` table (train/runs.ts) says
// which runs exist, newest first; each run's folder <workspace>/runs/<id>/ holds its config.json
// (the trainer's RunConfigFile) and one or more *.ckpt files, the source of the weights. A row
// whose folder is missing (deleted by hand) or holds no config.json yet (a run still preparing,
// or one that failed before training) cannot predict: it is left out of the list, and naming it
// says why. A folder without a row (copied in by hand) is not a run of this workspace.
// The run prediction uses unless told otherwise is the recommended one: the best by test price
// accuracy among the runs whose price head trained (ties: the newer), not simply the newest.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import type { Workspace } from '../workspace/workspace.ts';
import { RUN_FILES, type RunConfigFile, type RunSummary } from '../train/trainer.ts';
import { listRuns as listTrainRuns } from '../train/runs.ts';
import type { RunInfo } from '../api/contract/train.ts';
import type { PredictHead, PredictRunInfo } from '../api/contract/predict.ts';
import { MOBILENET_EXTRACTOR_NAME } from '../ml/mobilenet.ts';
import { readCalibration } from '../train/calibrate.ts';

export function runsDir(workspaceDir: string): string {
  return path.join(workspaceDir, 'runs');
}

export interface RunEntry {
  /** The run's id in the runs table, as a string (the name of its folder). */
  id: string;
  name: string;
  state: RunInfo['state'];
  dir: string;
  /** Why the run cannot predict (its folder is missing or holds no run yet), or null. */
  problem: string | null;
  /** The runs table's row (test metrics). */
  row: RunInfo;
}

/** Every run in the workspace's runs table, newest first, with whether its folder is usable. */
export function discoverRuns(ws: Workspace): RunEntry[] {
  return listTrainRuns(ws).map((r) => {
    let problem: string | null = null;
    if (!fs.existsSync(r.dir)) problem = `its folder ${r.dir} is missing`;
    else if (!fs.existsSync(path.join(r.dir, RUN_FILES.config)))
      problem = `its folder ${r.dir} holds no ${RUN_FILES.config} yet (run state: ${r.state})`;
    return { id: String(r.id), name: r.name, state: r.state, dir: r.dir, problem, row: r };
  });
}

const HEADS: readonly PredictHead[] = ['price', 'median', 'makeModel', 'year'];

/** Per head: whether it trained (config.json's plan; runs from before it: loss weight above 0). */
export function headsOf(cfg: RunConfigFile): PredictRunInfo['heads'] {
  return HEADS.map((head) => {
    const plan = cfg.heads?.[head];
    if (plan) return { head, trains: plan.trains, reason: plan.reason };
    const w = cfg.config.lossWeights?.[head] ?? 1;
    return { head, trains: w > 0, reason: w > 0 ? null : 'loss weight 0' };
  });
}

/** The heads that never trained. */
export function untrainedHeads(cfg: RunConfigFile): PredictHead[] {
  return headsOf(cfg)
    .filter((h) => !h.trains)
    .map((h) => h.head);
}

/** The best checkpoint's test metrics (else the last evaluation's), null per head that did not train. */
function testMetrics(row: RunInfo | undefined, heads: PredictRunInfo['heads']): PredictRunInfo['test'] {
  const m = row?.best ?? row?.lastTest ?? null;
  if (!m) return null;
  const trains = (h: PredictHead) => heads.find((x) => x.head === h)?.trains !== false;
  return {
    priceAccuracy: m.price.accuracy,
    medianMaeDollars: m.median.maeDollars,
    makeModelAccuracy: trains('makeModel') ? m.makeModel.accuracy : null,
    yearAccuracy: trains('year') ? m.year.accuracy : null,
  };
}

/** What the run was trained on, as training recorded it in config.json (`data`); null for runs from before. */
function dataOf(cfg: RunConfigFile): PredictRunInfo['data'] {
  const d = cfg.data;
  if (!d || !Array.isArray(d.sources)) return null;
  return { sources: d.sources.map((s) => ({ source: String(s.source), images: Number(s.images) })), trainImages: Number(d.trainImages), testImages: Number(d.testImages) };
}

/** The run's calibration (train/calibrate.ts calibration.json): its temperatures and the price head's ECE before and after; null when not calibrated. */
function calibrationOf(dir: string): PredictRunInfo['calibration'] {
  const c = readCalibration(dir);
  if (!c) return null;
  const price = c.heads.price;
  const priceEce = 'temperature' in price ? { before: price.before.ece, after: price.after.ece } : { before: NaN, after: NaN };
  return { temperatures: c.temperatures, priceEce };
}

export function runInfo(id: string, dir: string, name = id, row?: RunInfo): PredictRunInfo {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.config), 'utf8')) as RunConfigFile;
  const checkpoints = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.ckpt') && !f.startsWith('.'))
    .map((f) => f.slice(0, -'.ckpt'.length))
    .sort((a, b) => rankCkpt(a) - rankCkpt(b) || (a < b ? -1 : 1));
  let summary: RunSummary | null = null;
  try {
    summary = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.summary), 'utf8')) as RunSummary;
  } catch {
    /* a run still starting has no summary */
  }
  const heads = headsOf(cfg);
  return {
    id,
    name,
    dir,
    mode: cfg.config.mode,
    backbone: cfg.backbone ?? MOBILENET_EXTRACTOR_NAME,
    createdAt: cfg.createdAt,
    checkpoints,
    defaultCheckpoint: checkpoints.includes('best') ? 'best' : checkpoints.includes('last') ? 'last' : (checkpoints[0] ?? null),
    best: summary?.best ?? null,
    steps: summary?.step ?? 0,
    makeModels: cfg.space.makeModels.length + 1,
    data: dataOf(cfg),
    heads,
    test: testMetrics(row, heads),
    calibration: calibrationOf(dir),
    recommended: false,
  };
}

function rankCkpt(name: string): number {
  return name === 'best' ? 0 : name === 'last' ? 1 : 2;
}

/** The runs that can predict (a readable config.json in their folder), newest first, the recommended one marked. */
export function listRuns(ws: Workspace): PredictRunInfo[] {
  return usableRuns(discoverRuns(ws));
}

function usableRuns(entries: RunEntry[]): PredictRunInfo[] {
  const out: PredictRunInfo[] = [];
  for (const r of entries) {
    if (r.problem) continue;
    try {
      out.push(runInfo(r.id, r.dir, r.name, r.row));
    } catch {
      // An unreadable config is not a usable run; it is simply not listed.
    }
  }
  const best = recommendedRun(out);
  if (best) best.recommended = true;
  return out;
}

/**
 * The run to predict with by default: among runs with a checkpoint, the best by test price
 * accuracy of those whose price head trained and was evaluated (ties: the newer, as `runs` is
 * newest first); without any such run, the newest run with a checkpoint.
 */
export function recommendedRun(runs: readonly PredictRunInfo[]): PredictRunInfo | null {
  const ready = runs.filter((r) => r.defaultCheckpoint !== null);
  let best: PredictRunInfo | null = null;
  for (const r of ready) {
    const priceTrained = r.heads.find((h) => h.head === 'price')?.trains !== false;
    if (!priceTrained || !r.test || !Number.isFinite(r.test.priceAccuracy)) continue;
    if (!best || r.test.priceAccuracy > best.test!.priceAccuracy) best = r;
  }
  return best ?? ready[0] ?? runs[0] ?? null;
}

/** The run and checkpoint to predict with: named, or the recommended run (recommendedRun) and its best (else last) checkpoint. */
export function resolveRun(ws: Workspace, runId?: string, checkpoint?: string): { run: PredictRunInfo; checkpoint: string; file: string } {
  const entries = discoverRuns(ws);
  const runs = usableRuns(entries);
  let run: PredictRunInfo | undefined;
  if (runId) {
    if (!/^[\w.-]+$/.test(runId)) throw new UserError(`bad run id '${runId}'`);
    const entry = entries.find((r) => r.id === runId);
    if (!entry) {
      const loose = path.join(runsDir(ws.dir), runId);
      const note = fs.existsSync(path.join(loose, RUN_FILES.config)) ? `; the folder ${loose} holds a run, but not one recorded by this workspace's training` : '';
      throw new UserError(`no run '${runId}'${note} (runs: ${entries.map((r) => r.id).join(', ') || 'none'})`);
    }
    if (entry.problem) throw new UserError(`run ${entry.id} ('${entry.name}') cannot predict: ${entry.problem}`);
    run = runs.find((r) => r.id === runId);
    if (!run) throw new UserError(`run ${entry.id} ('${entry.name}') cannot predict: ${path.join(entry.dir, RUN_FILES.config)} does not read as a run config`);
  } else {
    if (runs.length === 0) {
      const unusable = entries.map((r) => `run ${r.id}: ${r.problem ?? `unreadable ${RUN_FILES.config}`}`);
      throw new UserError(`no trained runs in ${runsDir(ws.dir)}; train a model first${unusable.length ? ` (${unusable.join('; ')})` : ''}`);
    }
    run = runs.find((r) => r.recommended) ?? runs[0];
  }
  const name = checkpoint ?? run.defaultCheckpoint;
  if (!name) throw new UserError(`run '${run.id}' has no checkpoint yet`);
  if (!run.checkpoints.includes(name))
    throw new UserError(`run '${run.id}' has no checkpoint '${name}' (has: ${run.checkpoints.join(', ') || 'none'})`);
  return { run, checkpoint: name, file: path.join(run.dir, `${name}.ckpt`) };
}
