import { addDemoStep } from '../demo.ts';
import { DEMO_BASE_URL } from './scrape-kind.ts';

/** Ids of the bundled demo site that the demo workspace scrapes on first start. */
export const DEMO_RANGE = { minId: 1, maxId: 600 };

/**
 * First start of the demo workspace: scrape the bundled demo site (started inside the job, so
 * it works offline and resumes after a restart). Later starts find the job and do nothing.
 */
addDemoStep(async (engine) => {
  const any = engine.ws.db.prepare(`SELECT id FROM jobs WHERE kind = 'scrape' LIMIT 1`).get();
  if (any) return;
  engine.jobs.start('scrape', { baseUrl: DEMO_BASE_URL, ...DEMO_RANGE, concurrency: 4, retryDelayMs: 200 });
});
