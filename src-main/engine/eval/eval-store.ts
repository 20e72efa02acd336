import path from 'node:path';
import { runDirOf } from '../train/train-job.ts';

/** A run's evaluation reports live in runs/<id>/eval/<report id>/ (report.json, report.html). */
export function evalReportsDir(workspaceDir: string, runId: number): string {
  return path.join(runDirOf(workspaceDir, runId), 'eval');
}

/** A report id that sorts by time: 20261201-231502-123. */
export function newReportId(now = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}-${p(now.getUTCMilliseconds(), 3)}`;
}
