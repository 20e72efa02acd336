// Engine-side predictions through the real HTTP API of `carstudio serve` (issue 11, items 4 and 7):
// one path policy for every method that takes a path (a path outside the readable folders, a
// missing one and a symlink leading outside all get the same error), and predictions that run in
// a bounded worker, so the API keeps answering while crop pans of a 24 MP photo run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHeadsRun } from './helpers/predict-run.ts';
import { api, startServe, waitFor, type Served } from './helpers/processes.ts';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';

type Body = { ok: boolean; value?: unknown; error?: { name: string; message: string } };

async function call(s: Served, method: string, params: unknown): Promise<Body> {
  const res = await fetch(`${s.url}api/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${s.token}` },
    body: JSON.stringify(params),
  });
  return (await res.json()) as Body;
}

/**
 * A trivial HTTP server in its own process, pinged beside the engine: its slowest round trip is
 * what the machine's own load costs at the same moment (the engine is allowed that much more).
 */
async function controlServer(): Promise<{ url: string; stop: () => void }> {
  const src = `require('http').createServer((q, r) => { q.resume(); q.on('end', () => r.end('{"ok":true,"value":{}}')); }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout! }).once('line', resolve));
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

/** The engine process's resident memory, in MB (Linux). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

describe('engine-side predictions in served mode', () => {
  let served: Served;
  let photos: string;
  let allowed: string;
  let outside: string;
  let big: string;
  let car: string;
  beforeAll(async () => {
    const root = tmpDir('carstudio-predict-hard-');
    const wsDir = path.join(root, 'ws');
    Workspace.open(wsDir, { create: true }).close();
    await buildHeadsRun(wsDir, 'hardening', { synthetic: true, photos: 32, steps: 10 });
    photos = path.join(root, 'photos');
    allowed = path.join(root, 'allowed');
    outside = path.join(root, 'outside');
    for (const d of [photos, allowed, outside]) fs.mkdirSync(d);
    car = path.join(photos, 'car.jpg');
    fs.writeFileSync(car, await makeJpeg(320, 200, 3));
    fs.writeFileSync(path.join(allowed, 'allowed.jpg'), await makeJpeg(300, 200, 5));
    fs.writeFileSync(path.join(outside, 'secret.jpg'), await makeJpeg(640, 480, 7));
    fs.writeFileSync(path.join(outside, 'notes.jpg'), 'not a photo, but outside');
    // a 6000x4000 JPEG (24 MP): smooth, so the file is small but the decode is full size
    big = path.join(photos, 'big.jpg');
    const noise = await sharp({ create: { width: 600, height: 400, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
      .png()
      .toBuffer();
    await sharp(noise).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(big);
    served = await startServe(['--workspace', wsDir, '--allow-path', allowed]);
    // starting a prediction on a folder is what opens it for reading
    const job = (await api(served, 'predict.start', { input: photos })) as { id: number };
    await waitFor(async () => ((await api(served, 'jobs.get', { id: job.id })) as { state: string }).state === 'done', 'the predict job', 120_000, 250);
    // made after the job so that it does not predict them: links inside readable folders leading out
    fs.symlinkSync(path.join(outside, 'secret.jpg'), path.join(photos, 'link.jpg'));
    fs.symlinkSync(outside, path.join(allowed, 'link-dir'));
  }, 180_000);
  afterAll(async () => {
    await served?.stop();
  });

  it('gives one identical error for a path outside the readable folders, a missing one and a symlink leading out', async () => {
    const refused = [
      path.join(outside, 'secret.jpg'),
      path.join(outside, 'notes.jpg'),
      path.join(outside, 'missing.jpg'),
      path.join(photos, 'missing.jpg'),
      path.join(photos, 'link.jpg'),
      path.join(allowed, 'link-dir', 'secret.jpg'),
      `${photos}/../outside/secret.jpg`,
      '/etc/passwd.jpg',
    ];
    const calls: Array<[string, (f: string) => unknown]> = [
      ['predict.thumbnail', (f) => ({ path: f })],
      ['predict.image', (f) => ({ path: f })],
      ['predict.cropPan', (f) => ({ path: f, steps: 3 })],
      ['predict.compare', (f) => ({ paths: [car, f] })],
    ];
    const seen = new Set<string>();
    for (const [method, params] of calls) {
      for (const f of refused) {
        const r = await call(served, method, params(f));
        expect(r.ok, `${method} ${f}`).toBe(false);
        // the message names the path as given (resolved), nothing about the file itself
        const shown = path.resolve(f);
        expect(r.error!.message, `${method} ${f}`).toContain(shown);
        seen.add(`${r.error!.name}: ${r.error!.message.replace(shown, 'PATH')}`);
      }
    }
    expect([...seen]).toEqual(['UserError: PATH: no such file in the folders this studio may read (the workspace, folders a prediction was started on, and --allow-path folders); start a prediction on its folder, or serve with --allow-path']);
    // a weights install from such a path is refused the same way
    const w = await call(served, 'jobs.start', { kind: 'weights', params: { from: path.join(outside, 'secret.jpg') } });
    expect(w.error?.message).toBe(`${path.join(outside, 'secret.jpg')}: no such file in the folders this studio may read (the workspace, folders a prediction was started on, and --allow-path folders); start a prediction on its folder, or serve with --allow-path`);
    // so is an import or an evaluation of a manifest, a folder or an images root outside them
    // (an imported row's values are served back as listings)
    const manifest = path.join(outside, 'rows.csv');
    fs.writeFileSync(manifest, 'image,price\nsecret.jpg,5000\n');
    fs.writeFileSync(path.join(allowed, 'rows.csv'), 'image,price\nsecret.jpg,5000\n');
    const attempts: Array<[string, Record<string, unknown>, string]> = [
      ['import', { manifest }, manifest],
      ['import', { folder: outside, pattern: '{make}_*' }, outside],
      ['import', { manifest: path.join(allowed, 'rows.csv'), imagesRoot: outside }, outside],
      ['eval', { runId: 1, manifest }, manifest],
    ];
    for (const [kind, params, shown] of attempts) {
      const r = await call(served, 'jobs.start', { kind, params });
      expect(r.ok, `${kind} ${JSON.stringify(params)}`).toBe(false);
      expect(r.error?.message).toBe(`${shown}: no such file in the folders this studio may read (the workspace, folders a prediction was started on, and --allow-path folders); start a prediction on its folder, or serve with --allow-path`);
    }
    const before = ((await api(served, 'jobs.list', {})) as Array<{ kind: string }>).filter((j) => j.kind === 'import').length;
    expect(before).toBe(0);
  }, 120_000);

  it('reads photos in an opened folder and in an --allow-path folder', async () => {
    const th = (await api(served, 'predict.thumbnail', { path: car, size: 64 })) as { dataUrl: string; width: number };
    expect(th.dataUrl).toMatch(/^data:image\/jpeg;base64,/);
    expect(th.width).toBe(64);
    const one = (await api(served, 'predict.image', { path: path.join(allowed, 'allowed.jpg') })) as { prediction?: { priceBins: unknown[] }; width: number };
    expect(one.prediction?.priceBins).toHaveLength(10);
    expect(one.width).toBe(300);
    const pan = (await api(served, 'predict.cropPan', { path: big, steps: 5 })) as { width: number; height: number; steps: Array<{ crop: { left: number; size: number } }>; image: string };
    expect([pan.width, pan.height]).toEqual([6000, 4000]);
    expect(pan.steps).toHaveLength(5);
    expect(pan.steps[4].crop.left + pan.steps[4].crop.size).toBe(6000);
    expect(pan.image).toMatch(/^data:image\/jpeg;base64,/);
    const cmp = (await api(served, 'predict.compare', { paths: [car, big] })) as { items: Array<{ error: string | null; diff: unknown }> };
    expect(cmp.items.map((i) => i.error)).toEqual([null, null]);
    expect(cmp.items[1].diff).not.toBeNull();
  }, 120_000);

  it('keeps answering cheap calls while crop pans of a 24 MP photo run, with bounded memory and a clear busy error beyond the bound', async () => {
    const pid = served.child.pid!;
    const control = await controlServer();
    const ping = async (url: string, body: string, headers: Record<string, string>): Promise<number> => {
      const t = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
      expect(((await res.json()) as Body).ok).toBe(true);
      return performance.now() - t;
    };
    const info = (): Promise<number> => ping(`${served.url}api/workspace.info`, '{}', { Authorization: `Bearer ${served.token}` });
    const noise = (): Promise<number> => ping(control.url, '{}', {});
    const rssBefore = rssMb(pid);
    let rssMax = rssBefore;
    let running = true;
    const latencies: number[] = [];
    let idle = 0;
    const pinger = (async () => {
      while (running) {
        latencies.push(await info());
        idle = Math.max(idle, await noise());
        rssMax = Math.max(rssMax, rssMb(pid));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const panning = Promise.all(Array.from({ length: 8 }, () => call(served, 'predict.cropPan', { path: big, steps: 4 })));
    // a grid's thumbnails meanwhile are not refused: they have their own lane and a longer queue
    const thumbs = await Promise.all(Array.from({ length: 12 }, () => call(served, 'predict.thumbnail', { path: car, size: 96 })));
    const pans = await panning;
    running = false;
    await pinger;
    control.stop();
    const ok = pans.filter((r) => r.ok).length;
    const busy = pans.filter((r) => r.error?.name === 'Busy');
    const worst = Math.max(...latencies);
    console.log(`${ok} pans done, ${busy.length} busy; workspace.info: ${latencies.length} round trips, worst ${worst.toFixed(0)} ms (a trivial server's worst meanwhile: ${idle.toFixed(0)} ms); RSS ${rssBefore.toFixed(0)} -> max ${rssMax.toFixed(0)} MB`);
    expect(latencies.length).toBeGreaterThan(5);
    expect(worst).toBeLessThan(200 + idle);
    expect(rssMax - rssBefore).toBeLessThan(400);
    expect(ok).toBeGreaterThanOrEqual(2);
    expect(ok + busy.length).toBe(8);
    expect(thumbs.map((t) => t.error?.message ?? 'ok')).toEqual(Array(12).fill('ok'));
    for (const b of busy) expect(b.error!.message).toMatch(/^busy: \d+ predictions are already running or waiting \(at most \d+\); try again when they finish$/);
  }, 300_000);
});
