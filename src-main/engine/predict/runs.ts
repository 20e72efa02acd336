// Finding trained runs to predict with. A run is a folder <workspace>/runs/<id>/ holding
// config.json (the trainer's RunConfigFile) and one or more *.ckpt files. `discoverRuns` is the one
// place that lists them: it scans the folder today; switch it to the training stage's `runs` table
// when that lands (the folder stays the source of the weights either way).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import { RUN_FILES, type RunConfigFile, type RunSummary } from '../train/trainer.ts';
import type { PredictRunInfo } from '../api/contract/predict.ts';
import { MOBILENET_EXTRACTOR_NAME } from '../ml/mobilenet.ts';

export function runsDir(workspaceDir: string): string {
  return path.join(workspaceDir, 'runs');
}

/** The run folders that hold a config.json, newest first. */
export function discoverRuns(workspaceDir: string): Array<{ id: string; dir: string }> {
  const root = runsDir(workspaceDir);
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.') && fs.existsSync(path.join(root, n, RUN_FILES.config)))
    .map((id) => ({ id, dir: path.join(root, id), mtime: fs.statSync(path.join(root, id, RUN_FILES.config)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.id < b.id ? 1 : -1))
    .map(({ id, dir }) => ({ id, dir }));
}

export function runInfo(id: string, dir: string): PredictRunInfo {
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
  return {
    id,
    dir,
    mode: cfg.config.mode,
    backbone: cfg.backbone ?? MOBILENET_EXTRACTOR_NAME,
    createdAt: cfg.createdAt,
    checkpoints,
    defaultCheckpoint: checkpoints.includes('best') ? 'best' : checkpoints.includes('last') ? 'last' : (checkpoints[0] ?? null),
    best: summary?.best ?? null,
    steps: summary?.step ?? 0,
    makeModels: cfg.space.makeModels.length + 1,
  };
}

function rankCkpt(name: string): number {
  return name === 'best' ? 0 : name === 'last' ? 1 : 2;
}

export function listRuns(workspaceDir: string): PredictRunInfo[] {
  const out: PredictRunInfo[] = [];
  for (const r of discoverRuns(workspaceDir)) {
    try {
      out.push(runInfo(r.id, r.dir));
    } catch {
      // An unreadable config is not a usable run; it is simply not listed.
    }
  }
  return out;
}

/** The run and checkpoint to predict with: named, or the newest run and its best (else last) checkpoint. */
export function resolveRun(
  workspaceDir: string,
  runId?: string,
  checkpoint?: string,
): { run: PredictRunInfo; checkpoint: string; file: string } {
  const runs = listRuns(workspaceDir);
  if (runs.length === 0) throw new UserError(`no trained runs in ${runsDir(workspaceDir)}; train a model first`);
  let run: PredictRunInfo | undefined;
  if (runId) {
    if (!/^[\w.-]+$/.test(runId)) throw new UserError(`bad run id '${runId}'`);
    run = runs.find((r) => r.id === runId);
    if (!run) throw new UserError(`no run '${runId}' (runs: ${runs.map((r) => r.id).join(', ')})`);
  } else {
    run = runs.find((r) => r.defaultCheckpoint !== null) ?? runs[0];
  }
  const name = checkpoint ?? run.defaultCheckpoint;
  if (!name) throw new UserError(`run '${run.id}' has no checkpoint yet`);
  if (!run.checkpoints.includes(name))
    throw new UserError(`run '${run.id}' has no checkpoint '${name}' (has: ${run.checkpoints.join(', ') || 'none'})`);
  return { run, checkpoint: name, file: path.join(run.dir, `${name}.ckpt`) };
}
