import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import type { RunInfo, JobInfo } from '../src-main/engine/api/contract/index.ts';
import { runCli, waitFor } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';

describe('train job on a demo-site workspace', () => {
  let dir: string;
  beforeAll(async () => {
    dir = `${tmpDir()}/ws`;
    const r = await runCli(['scrape', '--workspace', dir, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '120', '--retry-delay-ms', '5'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
  }, 150_000);

  it('trains heads runs (default and price_ce_only), listed with metrics and the majority baseline', async () => {
    // the first run extracts the features of every image (wasm MobileNetV2: ~20 images/s idle, a
    // few per second on a busy machine), so its bound is a generous last resort
    // --split photo: the original's per-photo split, under which photos of a test car's listing
    // also train (the default split by listing holds out ~4 of these 120 listings, too few cars
    // to tell a 200-step model from the baseline)
    // --extractor mobilenet_v2: the figures below were measured on it; heads on the other
    // extractors are tested in train-extractor.test.ts
    const a = await runCli(['train', '--workspace', dir, '--extractor', 'mobilenet_v2', '--steps', '200', '--eval-every', '50', '--split', 'photo', '--json'], { timeoutMs: 500_000 });
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.stdout);
    expect(ra.state).toBe('done');
    // test price-bin accuracy beats the majority-class baseline of the test split (120 demo ids:
    // ~45 test images; measured 41.9% vs 30.2%)
    expect(ra.lastEval.test.price.accuracy).toBeGreaterThan(ra.baselinePriceAccuracy + 0.05);
    expect(ra.split).toBe('photo');
    expect(JSON.parse(fs.readFileSync(`${dir}/runs/${ra.runId}/config.json`, 'utf8')).split).toBe('photo');
    const b = await runCli(['train', '--workspace', dir, '--extractor', 'mobilenet_v2', '--steps', '200', '--eval-every', '50', '--split', 'photo', '--loss-weights', 'price_ce_only', '--json'], { timeoutMs: 180_000 });
    expect(b.code, b.stderr).toBe(0);
    const runs = JSON.parse((await runCli(['runs', '--workspace', dir, '--json'])).stdout) as RunInfo[];
    expect(runs.map((r) => r.lossWeights).sort()).toEqual(['default', 'price_ce_only']);
    for (const r of runs) {
      expect(r.state).toBe('done');
      expect(r.step).toBe(200);
      expect(r.baseline!.priceAccuracy).toBeGreaterThan(0);
      expect(r.lastTest!.price.accuracy).toBeGreaterThan(r.baseline!.priceAccuracy);
      expect(r.best!.step).toBeGreaterThan(0);
      expect(r.dir).toMatch(/runs[\\/]\d+$/);
      expect(r.best).not.toBeNull();
    }
    // price_ce_only leaves the other heads untrained: their losses stay far above the default run's
    const def = runs.find((r) => r.lossWeights === 'default')!;
    const pce = runs.find((r) => r.lossWeights === 'price_ce_only')!;
    expect(pce.lastTest!.makeModel.loss).toBeGreaterThan(def.lastTest!.makeModel.loss);
    expect(pce.lastTest!.year.loss).toBeGreaterThan(def.lastTest!.year.loss);
  }, 700_000);

  it('stops a run at a checkpoint and resumes it to the end; refuses finetune on wasm', async () => {
    const engine = Engine.open(dir);
    const metrics: number[] = [];
    engine.on((name, data) => {
      if (name === 'train.metrics') metrics.push((data as { step: number }).step);
    });
    const job = engine.jobs.start('train', { steps: 2000, evalEvery: 500, checkpointEvery: 100, name: 'stop-and-resume' });
    await waitFor(() => (metrics.some((s) => s >= 300) ? true : null), 'training to reach step 300', 120_000);
    engine.jobs.cancel(job.id);
    const stopped = await engine.jobs.wait(job.id);
    const runId = (stopped.result as { runId: number }).runId;
    const run = (await engine.request('runs.get', { id: runId })) as RunInfo;
    expect(run.state).toBe('stopped');
    expect(run.step).toBeGreaterThanOrEqual(300);
    expect(run.step).toBeLessThan(2000);
    const resumed = engine.jobs.start('train', { resumeRun: runId, steps: 2000 });
    const done = (await engine.jobs.wait(resumed.id)) as JobInfo;
    expect(done.state, done.error?.message).toBe('done');
    expect((await engine.request('runs.get', { id: runId })).step).toBe(2000);
    const history = await engine.request('runs.metrics', { id: runId, maxTrainPoints: 100000 });
    const steps = history.filter((p) => p.split === 'train').map((p) => p.step);
    // one metric line per step, none repeated or missing across the stop
    expect(steps).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));

    const ft = engine.jobs.start('train', { mode: 'finetune', steps: 10 });
    const refused = await engine.jobs.wait(ft.id);
    expect(refused.state).toBe('failed');
    expect(refused.error!.message).toMatch(/Fine-tuning needs gradients of convolutions, which the wasm backend does not have/);
    const ftRun = (refused.result as { runId?: number } | null)?.runId ?? (await engine.request('runs.list', {})).find((r) => r.mode === 'finetune')!.id;
    expect((await engine.request('runs.get', { id: ftRun })).state).toBe('failed');
    await engine.close();

    // runs delete (CLI): the row and the run folder go
    const del = await runCli(['runs', 'delete', String(runId), '--workspace', dir]);
    expect(del.code, del.stderr).toBe(0);
    const left = JSON.parse((await runCli(['runs', '--workspace', dir, '--json'])).stdout) as RunInfo[];
    expect(left.map((r) => r.id)).not.toContain(runId);
    expect(fs.existsSync(run.dir)).toBe(false);
    const missing = await runCli(['runs', 'delete', String(runId), '--workspace', dir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`no run ${runId}`);
  }, 300_000);
});
