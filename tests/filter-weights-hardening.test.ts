// Installing CLIP weights from a path: only a regular file that is really the CLIP image encoder is
// installed. A FIFO fails the job at once (it used to block the job's worker for ever: cancel never
// completed, `serve` hung on SIGTERM and resumed into the same block), a text file is refused
// (it used to be "installed" as a ready model), the wrong-dimension model is refused with its shape,
// and nothing is left in the models folder by a refused install.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExtractorInfo } from '../src-main/engine/api/contract/filter.ts';
import type { JobInfo } from '../src-main/engine/jobs/types.ts';
import { clipWeightsPath } from '../src-main/engine/filter/clip.ts';
import { Engine } from '../src-main/engine/engine.ts';
import { api, runCli, startServe, waitFor, type Served } from './helpers/processes.ts';
import { ROOT, seedStoredImages, tmpDir, tmpWorkspace } from './helpers/workspace.ts';
import { hasOrt } from './helpers/onnx.ts';

const FIXTURE = path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-vit-b16.onnx');
const WRONG_DIM = path.join(ROOT, 'tests', 'fixtures', 'tiny-clip-wrong-dim.onnx');

function emptyWorkspace(): string {
  const ws = tmpWorkspace();
  const dir = ws.dir;
  ws.close();
  return dir;
}

function fifo(inside = tmpDir()): string {
  const f = path.join(inside, 'vision_model.onnx');
  fs.mkdirSync(inside, { recursive: true });
  execFileSync('mkfifo', [f]);
  return f;
}

/** What is in the models folder (absent: nothing). */
const modelFiles = (dir: string): string[] => {
  try {
    return fs.readdirSync(path.dirname(clipWeightsPath(dir))).sort();
  } catch {
    return [];
  }
};

const clipInfo = async (engine: Engine): Promise<ExtractorInfo> => (await engine.request('features.extractors', {})).find((x) => x.name === 'clip-vit-b16')!;

describe('weights from a path: regular files only', () => {
  let served: Served | null = null;
  // a serve left by a failed run of the test below is not left running
  afterAll(() => void served?.child.kill('SIGKILL'));

  it('a FIFO fails the CLI at once with a clear error, and nothing is installed', async () => {
    const dir = emptyWorkspace();
    const f = fifo();
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', f]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`carstudio: ${f} is a FIFO (named pipe), not a regular file`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(modelFiles(dir)).toEqual([]);
    // a folder whose vision_model.onnx is a FIFO: looked for a regular file, found none
    const r2 = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', path.dirname(f)]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(`is a folder without vision_model.onnx`);
  }, 120_000);

  it('in `serve`: the job on a FIFO fails fast, a FIFO in place of the weights is reported invalid and fails the features job, and SIGTERM stops serve', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 2);
    const dir = ws.dir;
    ws.close();
    const s = await startServe(['--workspace', dir]);
    served = s;
    try {
      // inside the workspace: served mode reads only there (and in folders it was told of)
      const job = (await api(s, 'jobs.start', { kind: 'weights', params: { extractor: 'clip-vit-b16', from: fifo(path.join(dir, 'incoming')) } })) as JobInfo;
      const ended = await waitFor(async () => {
        const j = (await api(s, 'jobs.get', { id: job.id })) as JobInfo;
        return j.state !== 'running' && j.state !== 'cancelling' ? j : null;
      }, 'the weights job to end');
      expect(ended.state).toBe('failed');
      expect(ended.error).toMatchObject({ user: true, message: expect.stringContaining('is a FIFO (named pipe), not a regular file') });
      expect(modelFiles(dir)).toEqual([]);

      // someone made the installed weights a FIFO: reported (the engine never opens it to block), and
      // the features job fails at once instead of ONNX Runtime blocking on it
      fs.mkdirSync(path.dirname(clipWeightsPath(dir)), { recursive: true });
      execFileSync('mkfifo', [clipWeightsPath(dir)]);
      const info = ((await api(s, 'features.extractors')) as ExtractorInfo[]).find((x) => x.name === 'clip-vit-b16')!;
      expect(info).toMatchObject({ installed: false, ready: false });
      expect(info.help).toContain('invalid weights: it is a FIFO (named pipe), not a regular file');
      if (hasOrt) {
        const fj = (await api(s, 'jobs.start', { kind: 'features', params: { extractor: 'clip-vit-b16' } })) as JobInfo;
        const fEnded = await waitFor(async () => {
          const j = (await api(s, 'jobs.get', { id: fj.id })) as JobInfo;
          return j.state !== 'running' && j.state !== 'cancelling' ? j : null;
        }, 'the features job to end');
        expect(fEnded.state).toBe('failed');
        expect(fEnded.error?.message).toContain('invalid weights: it is a FIFO (named pipe), not a regular file');
      }
    } finally {
      expect(await s.stop('SIGTERM')).toBe(0);
    }
  }, 120_000);

  it('a text file (any regular file that is not an ONNX model) is refused, not reported ready, and leaves no temporary', async () => {
    const dir = emptyWorkspace();
    const text = path.join(tmpDir(), 'vision_model.onnx');
    fs.copyFileSync(path.join(ROOT, 'package.json'), text);
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', text]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${text} is not the CLIP ViT-B/16 image encoder: invalid weights: byte 0 is not a field of an ONNX ModelProto, so not an ONNX model. Nothing was installed.`);
    // a small one, like /etc/shadow
    const small = path.join(tmpDir(), 'shadow');
    fs.writeFileSync(small, 'root:*:19000:0:99999:7:::\n');
    const r2 = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', small]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('invalid weights: it is 26 bytes, too small to be an ONNX model');
    expect(modelFiles(dir)).toEqual([]);

    // and one put there by hand is reported invalid, not ready
    fs.mkdirSync(path.dirname(clipWeightsPath(dir)), { recursive: true });
    fs.copyFileSync(text, clipWeightsPath(dir));
    const engine = Engine.open(dir);
    try {
      const info = await clipInfo(engine);
      expect(info).toMatchObject({ installed: false, ready: false });
      expect(info.help).toMatch(/^invalid weights: byte 0 is not a field of an ONNX ModelProto/);
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('a download that is not an ONNX model is refused and its .part deleted; a good one replaces invalid weights', async () => {
    const good = fs.readFileSync(FIXTURE);
    const server = http.createServer((req, res) => {
      const body = req.url === '/good.onnx' ? good : Buffer.from('<html><body>' + 'Sign in to download. '.repeat(100) + '</body></html>');
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dir = emptyWorkspace();
    const engine = Engine.open(dir);
    try {
      const bad = await engine.jobs.wait(engine.jobs.start('weights', { url: `${base}/login.html` }).id);
      expect(bad.state).toBe('failed');
      expect(bad.error).toMatchObject({ user: true, message: expect.stringContaining(`${base}/login.html is not the CLIP ViT-B/16 image encoder: invalid weights: byte 0`) });
      expect(modelFiles(dir)).toEqual([]);
      // invalid weights in place are replaced by a download that passes the check
      fs.writeFileSync(clipWeightsPath(dir), Buffer.alloc(4096, 7));
      expect((await clipInfo(engine)).installed).toBe(false);
      const ok = await engine.jobs.wait(engine.jobs.start('weights', { url: `${base}/good.onnx` }).id);
      expect(ok.state, ok.error?.message).toBe('done');
      expect(fs.readFileSync(clipWeightsPath(dir)).equals(good)).toBe(true);
      expect(modelFiles(dir).filter((n) => n !== 'vision_model.check.json')).toEqual(['vision_model.onnx']);
      expect(await clipInfo(engine)).toMatchObject({ installed: true, ready: hasOrt });
    } finally {
      await engine.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }, 60_000);
});

describe.runIf(hasOrt)('weights from a path: ONNX Runtime checks the model before it is installed', () => {
  let dir: string;
  beforeAll(async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 2);
    dir = ws.dir;
    ws.close();
  });

  it('the wrong-dimension model is refused with its shape, and nothing is installed', async () => {
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', WRONG_DIM]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(
      `${WRONG_DIM} is not the CLIP ViT-B/16 image encoder: invalid weights: output pooler_output has shape [batch_size, 768], expected [N, 512] (the vision model with projection, image_embeds). Nothing was installed.`,
    );
    expect(modelFiles(dir)).toEqual([]);
  }, 60_000);

  it('the wrong-dimension model put in place by hand fails the features job, and features.extractors then reports it invalid', async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 2);
    const d = ws.dir;
    ws.close();
    fs.mkdirSync(path.dirname(clipWeightsPath(d)), { recursive: true });
    fs.copyFileSync(WRONG_DIM, clipWeightsPath(d));
    const engine = Engine.open(d);
    try {
      // the engine cannot tell without ONNX Runtime (which it never loads): it looks like a model
      expect(await clipInfo(engine)).toMatchObject({ installed: true, ready: true });
      const job = await engine.jobs.wait(engine.jobs.start('features', { extractor: 'clip-vit-b16' }).id);
      expect(job.state).toBe('failed');
      expect(job.error?.message).toContain('invalid weights: output pooler_output has shape [batch_size, 768], expected [N, 512]');
      const info = await clipInfo(engine);
      expect(info).toMatchObject({ installed: false, ready: false });
      expect(info.help).toMatch(/^invalid weights: output pooler_output has shape \[batch_size, 768\]/);
    } finally {
      await engine.close();
    }
  }, 60_000);

  it('the good fixture is installed and ready', async () => {
    const r = await runCli(['features', 'weights', 'clip-vit-b16', '--workspace', dir, '--from', FIXTURE]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(clipWeightsPath(dir)).equals(fs.readFileSync(FIXTURE))).toBe(true);
    expect(modelFiles(dir)).toEqual(['vision_model.check.json', 'vision_model.onnx']);
    const engine = Engine.open(dir);
    try {
      expect(await clipInfo(engine)).toMatchObject({ installed: true, ready: true, help: null });
    } finally {
      await engine.close();
    }
  }, 60_000);
});
