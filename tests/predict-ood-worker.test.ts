// The distance reference of a heads run (predict/trust.ts ensureOodReference) is built in the
// reference worker, not on the thread that asks for it: on a workspace with a large feature cache
// (6000 car-v1 rows of 1996 floats) this thread's timers keep firing while the build takes
// seconds; the same build done on this thread (the control) stalls them. The worker writes the
// same bytes as the build on this thread, concurrent requests share one build, and a failure
// reaches the caller as a readable error with the worker still usable afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureDir } from '../src-main/engine/filter/features.ts';
import { FeatureCache } from '../src-main/engine/filter/feature-cache.ts';
import { checkOrBuildReference } from '../src-main/engine/predict/ood-reference.ts';
import { ensureOodReference, ensureOodReferenceMeta, OOD_FILES, readOodReference } from '../src-main/engine/predict/trust.ts';
import type { RunConfigFile } from '../src-main/engine/train/trainer.ts';
import type { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { DIM, EXTRACTOR, lagMeter, largeWorkspace, ROWS, runConfig as CONFIG, runFolder, type LoopLag } from './helpers/ood-fixture.ts';

const bytes = (dir: string, f: string) => fs.readFileSync(path.join(dir, f));

describe('the distance reference, built in its worker', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await largeWorkspace();
  }, 120_000);
  afterAll(() => {
    const dir = ws.dir;
    ws.close();
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  it("keeps this thread's timers firing while it builds (the same build here stalls them), with the same bytes as the build here", { timeout: 400_000 }, async () => {
    const createdAt = '2026-01-02T03:04:05.000Z';
    const inWorker = runFolder(ws, 'w', CONFIG(createdAt));
    const here = runFolder(ws, 'h', CONFIG(createdAt));
    const logs: string[] = [];

    // two requests at once: one build, both wait for it
    const meter = lagMeter();
    const t0 = performance.now();
    const [a, b] = await Promise.all([ensureOodReference(ws, inWorker, (_l, m) => logs.push(m)), ensureOodReference(ws, inWorker)]);
    const buildMs = Math.round(performance.now() - t0);
    const lag = meter.stop();

    // the control: the same build on this thread
    const control = lagMeter();
    const c0 = performance.now();
    const { ref: c, built } = await checkOrBuildReference(ws, here, CONFIG(createdAt));
    const controlMs = Math.round(performance.now() - c0);
    const controlLag = control.stop();
    const show = (l: LoopLag) => `largest lag ${l.maxLagMs} ms (90% within ${l.p90LagMs} ms, ${l.ticks} ticks), longest busy ${l.maxBusyMs} ms, busy ${(100 * l.utilisation).toFixed(1)}% of the time`;
    console.log(`predict-ood-worker: in the worker ${buildMs} ms, ${show(lag)}; on this thread ${controlMs} ms, ${show(controlLag)}`);

    expect(a).not.toBeNull();
    expect(b).toBe(a);
    expect(logs).toEqual([expect.stringMatching(/^distance reference of run w: 4096 of \d+ training photos, 99% of 400 test photos within \d\.\d{3}$/)]);
    expect(a!.meta).toMatchObject({ version: 1, extractor: EXTRACTOR, dim: DIM, rows: 4096, cacheRows: ROWS, runCreatedAt: createdAt, testRows: 400 });
    // the build takes seconds; meanwhile this thread stays free: idle most of the time, 90% of its
    // timer ticks on time within 100 ms (late ones are the OS running other processes on a
    // loaded machine), and never busy for a second on end
    expect(buildMs).toBeGreaterThan(1000);
    expect(lag.utilisation).toBeLessThan(0.25);
    expect(lag.p90LagMs).toBeLessThan(100);
    expect(lag.maxBusyMs).toBeLessThan(1000);
    // the control: built on this thread, the same meter sees it busy nearly all the time
    expect(controlLag.utilisation).toBeGreaterThan(0.5);
    expect(controlLag.maxBusyMs).toBeGreaterThan(1000);

    expect(built).toBe(true);
    expect(c!.meta).toEqual(a!.meta);
    expect(bytes(inWorker, OOD_FILES.data).equals(bytes(here, OOD_FILES.data))).toBe(true);
    expect(bytes(inWorker, OOD_FILES.meta).equals(bytes(here, OOD_FILES.meta))).toBe(true);
    // what the worker handed back is what it wrote
    expect(Buffer.from(a!.data.buffer, a!.data.byteOffset, a!.data.byteLength).equals(bytes(inWorker, OOD_FILES.data))).toBe(true);
    expect(fs.readdirSync(inWorker).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    // checked now: the next requests read the files (the API's only their meta) without a build
    expect((await ensureOodReferenceMeta(ws, inWorker))!).toEqual(a!.meta);
    const reread = readOodReference(inWorker)!;
    expect(reread.meta).toEqual(a!.meta);
    expect(Buffer.from(reread.data.buffer).equals(Buffer.from(a!.data.buffer, a!.data.byteOffset, a!.data.byteLength))).toBe(true);
  });

  it('a stale reference is rebuilt in the worker; a failure reaches the caller in words and the worker goes on', { timeout: 400_000 }, async () => {
    // a reference from an older run in the same folder is replaced
    const older = runFolder(ws, 'old', CONFIG('2026-02-01T00:00:00.000Z'));
    expect((await ensureOodReferenceMeta(ws, older))?.runCreatedAt).toBe('2026-02-01T00:00:00.000Z');
    const dir = runFolder(ws, 'new', CONFIG('2026-02-02T00:00:00.000Z'));
    for (const f of Object.values(OOD_FILES)) fs.copyFileSync(path.join(older, f), path.join(dir, f));
    const rebuilt = await ensureOodReference(ws, dir);
    expect(rebuilt!.meta.runCreatedAt).toBe('2026-02-02T00:00:00.000Z');
    expect(readOodReference(dir)!.meta).toEqual(rebuilt!.meta);

    // a feature cache of another extractor under mobilenet_v2's folder: the build fails with what is wrong
    const wrong = await FeatureCache.open(featureDir(ws, 'mobilenet_v2'), 'car-v1', 8);
    await wrong.append([1], new Float32Array(8).fill(1));
    await wrong.close();
    const bad = runFolder(ws, 'bad', CONFIG('2026-03-01T00:00:00.000Z', 'mobilenet_v2'));
    await expect(ensureOodReference(ws, bad)).rejects.toThrow(/holds car-v1 \(dim 8\).*not mobilenet_v2 \(dim 1280\)/);
    expect(fs.existsSync(path.join(bad, OOD_FILES.meta))).toBe(false);

    // a finetune run has none, and asks no worker
    const ft = runFolder(ws, 'ft', { ...CONFIG('2026-03-02T00:00:00.000Z'), config: { mode: 'finetune' } } as unknown as RunConfigFile);
    expect(await ensureOodReference(ws, ft)).toBeNull();

    // the worker still answers after the failure: a copy of an up-to-date reference is found current
    const after = runFolder(ws, 'after', CONFIG('2026-02-01T00:00:00.000Z'));
    for (const f of Object.values(OOD_FILES)) fs.copyFileSync(path.join(older, f), path.join(after, f));
    const mtime = fs.statSync(path.join(after, OOD_FILES.data)).mtimeMs;
    expect(await ensureOodReferenceMeta(ws, after)).toEqual(readOodReference(older)!.meta);
    expect(fs.statSync(path.join(after, OOD_FILES.data)).mtimeMs).toBe(mtime); // not rebuilt
  });
});
