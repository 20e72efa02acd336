import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadResumable } from '../src-main/engine/ml/download.ts';
import { clipWeightsPath, toClipInput } from '../src-main/engine/filter/clip.ts';
import { Engine } from '../src-main/engine/engine.ts';
import { runCli } from './helpers/processes.ts';
import { ROOT, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';
import { hasOrt } from './helpers/onnx.ts';

// the weights job installs only a model with the CLIP image encoder's interface: the tiny stand-in
const MODEL = fs.readFileSync(path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-vit-b16.onnx'));


describe('resumable weight download', () => {
  const body = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 2654435761) >>> 24;
  const ranges: Array<string | undefined> = [];
  let honourRange = true;
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      ranges.push(req.headers.range);
      if (req.url === '/vision_model.onnx') {
        res.writeHead(200, { 'content-length': MODEL.length });
        res.end(MODEL);
        return;
      }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = honourRange && m ? Number(m[1]) : 0;
      res.writeHead(from ? 206 : 200, {
        'content-length': body.length - from,
        ...(from ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}),
      });
      // in 64 KiB pieces, so a client can stop half-way
      let off = from;
      const pump = (): void => {
        while (off < body.length) {
          const ok = res.write(body.subarray(off, off + 65536));
          off += 65536;
          if (!ok) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('keeps the part file when stopped, continues it with a Range request, and renames into place', async () => {
    const dest = path.join(tmpDir(), 'models', 'w.onnx');
    const ac = new AbortController();
    await expect(
      downloadResumable(`${base}/w.onnx`, dest, {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.bytes >= 1024 * 1024) ac.abort();
        },
      }),
    ).rejects.toThrow();
    expect(fs.existsSync(dest)).toBe(false);
    const partial = fs.statSync(`${dest}.part`).size;
    expect(partial).toBeGreaterThanOrEqual(1024 * 1024);
    expect(partial).toBeLessThan(body.length);

    const seen: number[] = [];
    const r = await downloadResumable(`${base}/w.onnx`, dest, { onProgress: (p) => seen.push(p.bytes) });
    expect(ranges.at(-1)).toBe(`bytes=${partial}-`);
    expect(r).toEqual({ path: dest, bytes: body.length, resumedFrom: partial });
    expect(seen.at(-1)).toBe(body.length);
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
    expect(fs.existsSync(`${dest}.part`)).toBe(false);
    // already there: nothing is fetched
    const n = ranges.length;
    await downloadResumable(`${base}/w.onnx`, dest);
    expect(ranges.length).toBe(n);
  });

  it('starts over when the server ignores the Range header', async () => {
    const dest = path.join(tmpDir(), 'w.onnx');
    fs.writeFileSync(`${dest}.part`, Buffer.from('stale bytes'));
    honourRange = false;
    try {
      const r = await downloadResumable(`${base}/w.onnx`, dest);
      expect(r.resumedFrom).toBe(0);
      expect(fs.readFileSync(dest).equals(body)).toBe(true);
    } finally {
      honourRange = true;
    }
  });

  it('the CLI downloads the CLIP weights into the workspace', async () => {
    const ws = tmpWorkspace();
    const dir = ws.dir;
    ws.close();
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--url', `${base}/vision_model.onnx`]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(MODEL)).toBe(true);
    expect(r.stdout).toContain(`${MODEL.length} bytes`);
  });

  it('the weights job (what the studio starts) downloads the CLIP weights, and features.extractors reports them', async () => {
    const ws = tmpWorkspace();
    const dir = ws.dir;
    ws.close();
    const engine = Engine.open(dir);
    try {
      const before = await engine.request('features.extractors', {});
      expect(before.map((x) => x.name)).toEqual(['car-v1', 'mobilenet_v2-blocks', 'mobilenet_v2', 'clip-vit-b16']);
      for (const bundled of before.slice(0, 3)) expect(bundled).toMatchObject({ installed: true, ready: true, help: null });
      const clip0 = before.find((x) => x.name === 'clip-vit-b16')!;
      expect(clip0).toMatchObject({ installed: false, ready: false, dim: 512, weightsPath: clipWeightsPath(dir), runtimeAvailable: hasOrt });
      expect(clip0.help).toContain(clipWeightsPath(dir));
      const updates: Array<{ step: string | null; done: number; total: number | null; message: string | null }> = [];
      engine.on((event, data) => {
        if (event === 'job.updated') updates.push(data as (typeof updates)[number]);
      });
      const job = engine.jobs.start('weights', { extractor: 'clip-vit-b16', url: `${base}/vision_model.onnx` });
      const done = await engine.jobs.wait(job.id);
      expect(done.state, done.error?.message).toBe('done');
      expect(done.result).toMatchObject({ path: clipWeightsPath(dir), bytes: MODEL.length, copied: false });
      expect(done.step).toBe('download');
      expect(done.done).toBe(MODEL.length);
      expect(done.total).toBe(MODEL.length);
      expect(updates.length).toBeGreaterThan(0);
      expect(fs.readFileSync(clipWeightsPath(dir)).equals(MODEL)).toBe(true);
      const after = (await engine.request('features.extractors', {})).find((x) => x.name === 'clip-vit-b16')!;
      expect(after.installed).toBe(true);
      expect(after.ready).toBe(hasOrt);
      if (!hasOrt) expect(after.help).toContain('onnxruntime-node');
      // an unreachable server: a user error that says how to install the weights offline
      fs.rmSync(clipWeightsPath(dir));
      const off = await engine.jobs.wait(engine.jobs.start('weights', { url: 'http://127.0.0.1:1/vision_model.onnx' }).id);
      expect(off.state).toBe('failed');
      expect(off.error!.user).toBe(true);
      expect(off.error!.message).toContain('--from FILE_OR_FOLDER');
    } finally {
      await engine.close();
    }
  }, 60_000);

  it('the CLI installs the weights from a folder laid out like the Hugging Face repository, and says what it looked for', async () => {
    const ws = tmpWorkspace();
    const dir = ws.dir;
    ws.close();
    const repo = path.join(tmpDir(), 'clip-vit-base-patch16');
    fs.mkdirSync(path.join(repo, 'onnx'), { recursive: true });
    fs.writeFileSync(path.join(repo, 'onnx', 'vision_model.onnx'), MODEL);
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', repo]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(path.join(repo, 'onnx', 'vision_model.onnx'));
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(MODEL)).toBe(true);
    const empty = path.join(tmpDir(), 'empty');
    fs.mkdirSync(empty);
    const bad = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', empty]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`looked for ${path.join(empty, 'vision_model.onnx')} and ${path.join(empty, 'onnx', 'vision_model.onnx')}`);
    // the installed weights are untouched by the failed attempt
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(MODEL)).toBe(true);
  });
});

describe('clip-vit-b16 extractor', () => {
  it('converts the NHWC [0,1] batch to NCHW with CLIP normalisation', () => {
    const size = 2;
    const px = [0, 0.25, 0.5, 1];
    const nhwc = new Float32Array(size * size * 3);
    px.forEach((v, p) => nhwc.set([v, v / 2, 1 - v], p * 3));
    const out = toClipInput(nhwc, 1, size);
    expect(out[0]).toBeCloseTo((0 - 0.48145466) / 0.26862954, 5); // R plane, pixel 0
    expect(out[4 + 3]).toBeCloseTo((0.5 - 0.4578275) / 0.26130258, 5); // G plane, pixel 3
    expect(out[8 + 1]).toBeCloseTo((0.75 - 0.40821073) / 0.27577711, 5); // B plane, pixel 1
  });

  // Where onnxruntime-node is installed it is hidden from module resolution for this test (a resolve
  // hook, through NODE_OPTIONS, which the job's worker thread inherits): the same failure as where it
  // is not installed, so this path is checked on every machine.
  const withoutOrt = {
    NODE_OPTIONS:
      `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(path.join(import.meta.dirname, 'helpers', 'hide-onnxruntime.mjs')).href}`.trim(),
  };

  it('without onnxruntime-node, a features job says exactly what to install and where the weights go', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 3);
    const dir = ws.dir;
    ws.close();
    const r = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16'], { env: withoutOrt });
    expect(r.code).toBe(2);
    const out = r.stdout + r.stderr;
    expect(out).toContain('onnxruntime-node package (an optional dependency of CarStudio) is not installed');
    expect(out).toContain('ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install');
    expect(out).toContain(clipWeightsPath(dir));
    expect(out).toContain('--from FILE');
    // with weights installed (here a copy of a file: --from), only the runtime is missing
    const file = path.join(tmpDir(), 'vision_model.onnx');
    fs.writeFileSync(file, MODEL);
    expect((await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', file])).code).toBe(0);
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(MODEL)).toBe(true);
    const again = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16'], { env: withoutOrt });
    expect(again.code).toBe(2);
    expect(again.stdout + again.stderr).toContain('onnxruntime-node package (an optional dependency of CarStudio) is not installed');
    expect(again.stdout + again.stderr).not.toContain('Then: the clip-vit-b16 extractor needs');
  }, 60_000);

  if (!hasOrt) console.log('skipping the clip-vit-b16 tests with onnxruntime-node installed: it is not (an optional dependency)');
  it.runIf(hasOrt)(
    'with onnxruntime-node, a missing weights file or one that is not a model says how to install the weights',
    async () => {
      const ws = tmpWorkspace();
      await seedStoredImages(ws, 3);
      const dir = ws.dir;
      ws.close();
      const r = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16']);
      expect(r.code).toBe(2);
      const out = r.stdout + r.stderr;
      expect(out).toContain(`needs the CLIP ViT-B/16 image encoder as ONNX at ${clipWeightsPath(dir)}`);
      expect(out).toContain('--from FILE');
      expect(out).not.toContain('onnxruntime-node package');
      // a file with an ONNX model's outer structure (ir_version, a graph) that ONNX Runtime cannot
      // load: the weights job refuses it; put in place by hand, the features job says what to do
      const file = path.join(tmpDir(), 'vision_model.onnx');
      const graph = Buffer.alloc(2000, 0xff);
      fs.writeFileSync(file, Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, 0xd0, 0x0f]), graph]));
      const refused = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', file]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`${file} is not the CLIP ViT-B/16 image encoder: invalid weights: ONNX Runtime cannot load it`);
      expect(fs.existsSync(clipWeightsPath(dir))).toBe(false);
      fs.mkdirSync(path.dirname(clipWeightsPath(dir)), { recursive: true });
      fs.copyFileSync(file, clipWeightsPath(dir));
      const again = await runCli(['features', '--workspace', dir, '--extractor', 'clip-vit-b16']);
      expect(again.code).toBe(2);
      const out2 = again.stdout + again.stderr;
      expect(out2).toContain(`${clipWeightsPath(dir)}: invalid weights: ONNX Runtime cannot load it`);
      expect(out2).toContain('--from FILE');
      expect(out2).not.toMatch(/\n\s+at /); // a user error, no stack
    },
    60_000,
  );
});
