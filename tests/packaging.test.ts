/**
 * The desktop packaging: the bundled engine (scripts/build-engine.mjs) runs under plain Node with
 * no tsx and none of the TypeScript sources, serves the API and runs jobs in worker threads from
 * the bundle; electron-builder.yml is a valid configuration that ships what the packaged app
 * needs; `npm run dist` stops at once with a clear message when Electron cannot be downloaded.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tmpDir } from './helpers/workspace.ts';
import { api, waitFor } from './helpers/processes.ts';

const require = createRequire(path.join(ROOT, 'package.json'));

/** A copy of the project's node_modules (symlinks) without tsx: the bundle must not need it. */
function nodeModulesWithoutTsx(into: string): void {
  const dest = path.join(into, 'node_modules');
  fs.mkdirSync(dest);
  for (const name of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
    if (name === 'tsx' || name === '.bin') continue;
    fs.symlinkSync(path.join(ROOT, 'node_modules', name), path.join(dest, name));
  }
}

let scriptCount = 0;
/** Runs an ES module script under plain node in the bundle's folder (a file: workers inherit -e's flags). */
function runScript(script: string): { stdout: string; stderr: string } {
  const file = path.join(bundleRoot, `check-${++scriptCount}.mjs`);
  fs.writeFileSync(file, script);
  return spawnSync(process.execPath, [file], { cwd: bundleRoot, env: plainEnv(), encoding: 'utf8' });
}
let bundleRoot = '';

/** Plain node, without loaders inherited from the test runner. */
function plainEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

interface JobInfo {
  id: number;
  kind: string;
  state: string;
  error?: string | null;
}

describe('the bundled engine', () => {
  let dir: string;
  let engineDir: string;
  let child: ChildProcess | null = null;
  let served: { url: string; token: string };
  let stderr = '';

  beforeAll(async () => {
    // 1. bundle the engine into a folder outside the project, beside a node_modules without tsx
    dir = tmpDir('carstudio-bundle-');
    engineDir = path.join(dir, 'app', 'engine');
    const built = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-engine.mjs'), '--outdir', engineDir], { cwd: ROOT, encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    bundleRoot = path.join(dir, 'app');
    nodeModulesWithoutTsx(bundleRoot);
    // 2. start `serve --ready-json` from the bundle on a new workspace
    child = spawn(process.execPath, [path.join(engineDir, 'carstudio.mjs'), 'serve', '--ready-json', '--port', '0', '--workspace', path.join(dir, 'ws'), '--create'], {
      cwd: dir,
      env: plainEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stderr!.on('data', (d) => (stderr += d));
    served = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the bundled engine did not start: ${stderr}`)), 30_000);
      readline.createInterface({ input: child!.stdout! }).once('line', (line) => {
        clearTimeout(t);
        resolve(JSON.parse(line) as { url: string; token: string });
      });
      child!.once('exit', (code) => reject(new Error(`the bundled engine exited with ${code}: ${stderr}`)));
    });
  }, 60_000);

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('holds every worker and job module as plain JavaScript, with no tsx and no .ts import', () => {
    const files = fs.readdirSync(engineDir).filter((f) => f.endsWith('.mjs'));
    for (const f of ['carstudio.mjs', 'jobs-worker-host.mjs', 'predict-predict-worker.mjs', 'predict-ood-worker.mjs', 'train-augment-worker.mjs', 'scrape-scrape-job.mjs', 'train-train-job.mjs', 'dedup-dedup-job.mjs']) {
      expect(files).toContain(f);
    }
    for (const f of files) {
      const text = fs.readFileSync(path.join(engineDir, f), 'utf8');
      expect(text, f).not.toMatch(/from ["']tsx|import\(["']tsx/);
      expect(text, f).not.toMatch(/(import|from)\s*\(?["'][^"']+\.ts["']/);
      // every file loaded at run time by URL (workers, job modules) is one of the bundle's own
      for (const m of text.matchAll(/new URL\("(\.\/[^"]+)", import\.meta\.url\)/g)) expect(files, `${f} loads ${m[1]}`).toContain(m[1].slice(2));
    }
  });

  it('loads each job module from the bundle under plain node', () => {
    const jobs = fs.readdirSync(engineDir).filter((f) => /-job\.mjs$/.test(f));
    expect(jobs.length).toBeGreaterThanOrEqual(10);
    const script = `for (const f of ${JSON.stringify(jobs.map((f) => pathToFileURL(path.join(engineDir, f)).href))}) {
      const m = await import(f);
      if (typeof m.default !== 'function') throw new Error(f + ' has no default job function');
    }
    console.log('loaded');`;
    const r = runScript(script);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('loaded');
  });

  it('starts the training, prediction and distance-reference worker threads from the bundle (sharp inside a worker)', async () => {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 40, b: 40 } } }).jpeg().toBuffer();
    const script = `
      import { Worker } from 'node:worker_threads';
      const url = (f) => new URL(f, ${JSON.stringify(pathToFileURL(engineDir + '/').href)});
      // augmentation: one 16x16 sample decoded and resized by sharp in the worker
      const out = new SharedArrayBuffer(16 * 16 * 3 * 4);
      const aug = new Worker(url('train-augment-worker.mjs'));
      const reply = await new Promise((resolve, reject) => {
        aug.once('message', resolve);
        aug.once('error', reject);
        aug.postMessage({ id: 1, input: new Uint8Array(Buffer.from(${JSON.stringify(jpeg.toString('base64'))}, 'base64')), size: 16, seed: 1, augment: false, out, offset: 0 });
      });
      await aug.terminate();
      const px = new Float32Array(out);
      // prediction: the worker loads and waits for its tasks
      const pred = new Worker(url('predict-predict-worker.mjs'));
      const early = await new Promise((resolve) => {
        pred.once('error', (e) => resolve('error: ' + e.message));
        pred.once('exit', (c) => resolve('exit ' + c));
        setTimeout(() => resolve('alive'), 1500);
      });
      await pred.terminate();
      // distance reference: a heads run's check in the served workspace (no photos: no reference)
      const ood = new Worker(url('predict-ood-worker.mjs'));
      const oodReply = await new Promise((resolve, reject) => {
        ood.once('message', resolve);
        ood.once('error', reject);
        ood.postMessage({ id: 7, wsDir: ${JSON.stringify(path.join(dir, 'ws'))}, runDir: ${JSON.stringify(path.join(dir, 'ws', 'runs', '1'))}, cfg: { config: { mode: 'heads' }, extractor: 'mobilenet_v2', createdAt: 'x' } });
      });
      await ood.terminate();
      console.log(JSON.stringify({ reply, red: px[0], green: px[1], predict: early, ood: oodReply }));`;
    const r = runScript(script);
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { reply: { id: number; ok: boolean }; red: number; green: number; predict: string; ood: unknown };
    expect(got.reply).toEqual({ id: 1, ok: true });
    expect(got.red).toBeGreaterThan(0.6);
    expect(got.green).toBeLessThan(0.3);
    expect(got.predict).toBe('alive');
    expect(got.ood).toEqual({ id: 7, type: 'done', ref: null, built: true });
  });

  it('answers API methods and serves the UI folder of the project layout', async () => {
    const info = (await api(served, 'workspace.info')) as { dir: string };
    expect(fs.realpathSync(info.dir)).toBe(fs.realpathSync(path.join(dir, 'ws')));
    const kinds = ((await api(served, 'jobs.kinds')) as { kind: string }[]).map((k) => k.kind);
    expect(kinds).toEqual(expect.arrayContaining(['scrape', 'dedup', 'import', 'train', 'predict', 'calibrate']));
    // serve.ts finds the UI at <app>/out/renderer from where its source lives: in the bundle,
    // relative to out/engine, so here it points back into the project
    const res = await fetch(served.url, { headers: { Authorization: `Bearer ${served.token}`, Cookie: `carstudio_token=${served.token}` } });
    const body = await res.text();
    if (fs.existsSync(path.join(ROOT, 'out', 'renderer', 'index.html'))) expect(body).toMatch(/<html/i);
    else expect(body).toContain(path.join(ROOT, 'out', 'renderer'));
  });

  it('runs a scrape of the demo site and a dedup in job workers loaded from the bundle', async () => {
    const run = async (kind: string, params: unknown): Promise<JobInfo> => {
      const started = (await api(served, 'jobs.start', { kind, params })) as JobInfo;
      return waitFor(
        async () => {
          const j = (await api(served, 'jobs.get', { id: started.id })) as JobInfo;
          return ['done', 'failed', 'cancelled'].includes(j.state) ? j : null;
        },
        `${kind} job`,
        60_000,
        200,
      );
    };
    const scrape = await run('scrape', { baseUrl: 'demo', minId: 1, maxId: 4, retryDelayMs: 5 });
    expect(scrape, stderr).toMatchObject({ state: 'done' });
    const dedup = await run('dedup', { method: 'near' });
    expect(dedup, stderr).toMatchObject({ state: 'done' });
    const stats = (await api(served, 'stats.get')) as { listings: number; images: { stored: number } };
    expect(stats.listings).toBeGreaterThan(0);
    expect(stats.images.stored).toBeGreaterThan(0);
  }, 90_000);

  it('stops cleanly when its stdin closes, as the desktop shell does', async () => {
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (c) => resolve(c)));
    child!.stdin!.end();
    expect(await exited).toBe(0);
  }, 30_000);
});

describe('electron-builder.yml', () => {
  const yaml = require('js-yaml') as { load(s: string): unknown };
  const minimatch = require('minimatch') as (p: string, g: string, o?: { dot?: boolean }) => boolean;
  const config = yaml.load(fs.readFileSync(path.join(ROOT, 'electron-builder.yml'), 'utf8')) as {
    appId: string;
    productName: string;
    icon: string;
    files: string[];
    asar: boolean;
    npmRebuild: boolean;
    linux: { target: string[] };
    mac: { target: string[] };
  };

  it('is a configuration electron-builder accepts, and the one it loads', async () => {
    const { validateConfiguration, getConfig } = require('app-builder-lib/out/util/config/config.js');
    const { DebugLogger } = require('builder-util/out/DebugLogger.js');
    await expect(validateConfiguration(structuredClone(config), new DebugLogger(false))).resolves.toBeUndefined();
    await expect(validateConfiguration({ ...structuredClone(config), iconn: 'x' }, new DebugLogger(false))).rejects.toThrow(/unknown property 'iconn'/);
    const loaded = await getConfig(ROOT, null, null);
    expect(loaded).toMatchObject({ appId: config.appId, productName: 'CarStudio' });
  });

  it('packs the shell, preload, UI and engine bundle as plain files, rebuilding native modules for Electron', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; scripts: Record<string, string> };
    const included = (file: string): boolean => {
      let ok = false;
      for (const g of config.files) {
        if (g.startsWith('!')) {
          if (minimatch(file, g.slice(1), { dot: true })) ok = false;
        } else if (minimatch(file, g, { dot: true })) ok = true;
      }
      return ok;
    };
    for (const f of [pkg.main, 'package.json', 'out/preload/index.cjs', 'out/renderer/index.html', 'out/renderer/assets/index.js', 'out/engine/carstudio.mjs', 'out/engine/jobs-worker-host.mjs', 'out/engine/_chunk-ABC.mjs']) {
      expect(included(f), f).toBe(true);
    }
    for (const f of ['src-main/engine/engine.ts', 'tests/packaging.test.ts', 'out/engine/carstudio.mjs.map', 'bin/carstudio.mjs']) expect(included(f), f).toBe(false);
    // electron-builder adds the production node_modules itself; the exclusions keep the model files the engine reads
    const excluded = (file: string): boolean => config.files.some((g) => g.startsWith('!') && minimatch(file, g.slice(1), { dot: true }));
    for (const f of ['node_modules/nsfwjs/dist/models/mobilenet_v2/model.json', 'node_modules/@vladmandic/human/models/centernet.json', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node']) {
      expect(excluded(f), f).toBe(false);
    }
    expect(excluded('node_modules/some-package/test/fixture.js')).toBe(true);
    // worker threads cannot load modules from an asar archive: the app ships as plain files
    expect(config.asar).toBe(false);
    expect(config.npmRebuild).toBe(true);
    expect(config.linux.target).toEqual(expect.arrayContaining(['AppImage', 'deb']));
    expect(config.mac.target).toContain('dmg');
    expect(pkg.scripts).toMatchObject({ dist: expect.any(String), 'dist:linux': expect.any(String), 'dist:mac': expect.any(String) });
  });

  it('has a 512x512 PNG icon in resources/', async () => {
    const meta = await sharp(path.join(ROOT, config.icon)).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 512, height: 512 });
  });
});

describe('npm run dist', () => {
  it('fails at once with a clear message when Electron cannot be downloaded, rebuilding nothing', async () => {
    // a port with nothing listening on 127.0.0.1 stands for a machine without internet
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const cache = tmpDir('carstudio-electron-cache-');
    const sqlite = path.join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
    const before = fs.statSync(sqlite).mtimeMs;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'dist.mjs'), 'linux'], {
      cwd: ROOT,
      env: plainEnv({ ELECTRON_MIRROR: `http://127.0.0.1:${port}/`, electron_config_cache: cache }),
      encoding: 'utf8',
      timeout: 30_000,
    });
    fs.rmSync(cache, { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot download Electron \d+\.\d+\.\d+ .*Packaging needs internet access.*Nothing was rebuilt/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(fs.statSync(sqlite).mtimeMs).toBe(before);
  });
});
