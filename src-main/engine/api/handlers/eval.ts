import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../workspace/errors.ts';
import { evalReportsDir } from '../../eval/eval-store.ts';
import { readReport, reportEntry } from '../../eval/report-html.ts';
import type { EvalResults } from '../contract/eval.ts';
import type { Handlers } from './types.ts';

export const evalHandlers: Handlers<keyof EvalResults> = {
  'eval.list': (p, e) => {
    if (!e.ws.db.prepare(`SELECT 1 FROM runs WHERE id = ?`).get(p.runId)) throw new UserError(`no run ${p.runId}`);
    const root = evalReportsDir(e.ws.dir, p.runId);
    if (!fs.existsSync(root)) return [];
    const entries = [];
    for (const id of fs.readdirSync(root)) {
      const dir = path.join(root, id);
      if (!fs.existsSync(path.join(dir, 'report.json'))) continue;
      try {
        entries.push(reportEntry(id, readReport(dir).report));
      } catch {
        // a report being written, or damaged: not listed
      }
    }
    return entries.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  },
  'eval.get': (p, e) => {
    const dir = path.join(evalReportsDir(e.ws.dir, p.runId), p.id);
    if (!fs.existsSync(path.join(dir, 'report.json'))) throw new UserError(`run ${p.runId} has no evaluation report ${p.id}`);
    const { report, html } = readReport(dir);
    return { entry: reportEntry(p.id, report), report, html };
  },
};
