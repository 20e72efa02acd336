import { UserError } from '../../workspace/errors.ts';
import { latestVersion } from '../../workspace/db.ts';
import { getStats } from '../../stats.ts';
import { jobKinds } from '../../jobs/kinds.ts';
import type { CoreResults } from '../contract/core.ts';
import type { Handlers } from './types.ts';

export const coreHandlers: Handlers<keyof CoreResults> = {
  'workspace.info': (_p, e) => ({
    dir: e.ws.dir,
    schemaVersion: latestVersion(),
    isDemo: e.isDemo,
    engine: { pid: process.pid, node: process.version, platform: process.platform, startedAt: e.startedAt },
    transport: e.transport,
  }),
  'stats.get': (_p, e) => getStats(e.ws.db),
  'jobs.kinds': () => jobKinds().map((k) => ({ kind: k.kind, exclusive: k.exclusive, autoResume: k.autoResume })),
  'jobs.list': (p, e) => e.jobs.list(p.limit),
  'jobs.get': (p, e) => {
    const j = e.jobs.get(p.id);
    if (!j) throw new UserError(`no job ${p.id}`);
    return j;
  },
  'jobs.logs': (p, e) => e.jobs.logs(p.id, p.limit),
  // a predict job opens its folder for reading; a weights job's `from` must be readable (api/path-policy.ts)
  'jobs.start': (p, e) => e.jobs.start(p.kind, e.paths.jobParams(p.kind, p.params)),
  'jobs.cancel': (p, e) => e.jobs.cancel(p.id),
  'jobs.resume': (p, e) => e.jobs.resume(p.id),
};
