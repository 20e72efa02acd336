import { addDemoStep } from '../demo.ts';

/**
 * The demo workspace trains a first heads run once its scrape has finished, so a newcomer sees
 * features extracted, curves and a run to predict with. Runs again on every start until a train
 * job exists.
 */
addDemoStep(async (engine) => {
  const db = engine.ws.db;
  if (db.prepare(`SELECT 1 FROM jobs WHERE kind = 'train' LIMIT 1`).get()) return;
  const scrape = db.prepare(`SELECT id FROM jobs WHERE kind = 'scrape' ORDER BY id DESC LIMIT 1`).pluck().get() as number | undefined;
  if (scrape === undefined) return;
  const done = await engine.jobs.wait(scrape);
  if (done.state !== 'done') return;
  if (db.prepare(`SELECT 1 FROM jobs WHERE kind = 'train' LIMIT 1`).get()) return;
  engine.jobs.start('train', { name: 'demo', steps: 1500, evalEvery: 100 });
});
