// CLI hardening (issue 11), in real `carstudio` child processes: an empty workspace path is
// refused everywhere and a workspace is created only by `init` or --create (items 11), label
// import reports every file it skips (item 10), and `train` run again after a kill continues the
// interrupted run (item 9).
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunInfo } from '../src-main/engine/api/contract/index.ts';
import { CLI, runCli, startServe, waitFor, type CliResult } from './helpers/processes.ts';
import { makeJpeg, ROOT, tmpDir } from './helpers/workspace.ts';
import { heicSupported } from '../src-main/engine/predict/decode-file.ts';

const roots: string[] = [];
const scratch = (): string => {
  const d = tmpDir('carstudio-hardening-');
  roots.push(d);
  return d;
};
afterAll(() => {
  for (const d of roots) fs.rmSync(d, { recursive: true, force: true });
});

/** runCli with its own working folder (an empty workspace path would have meant this folder). */
function runIn(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('workspace paths: empty refused, created only by init or --create', () => {
  it('refuses an empty or blank --workspace and $CARSTUDIO_WORKSPACE on every kind of command, touching nothing', async () => {
    const cwd = scratch();
    const good = path.join(cwd, 'good');
    fs.mkdirSync(good);
    fs.writeFileSync(path.join(good, 'a.jpg'), await makeJpeg(64, 48, 1));
    const commands: string[][] = [
      ['init'],
      ['stats', '--json'],
      ['jobs'],
      ['scrape', '--base-url', 'demo', '--min-id', '1', '--max-id', '2', '--create'],
      ['label', '--good', good, '--create'],
      ['train', '--steps', '1'],
      ['runs'],
      ['serve', '--port', '0', '--create'],
      ['serve', '--port', '0', '--demo'],
    ];
    const cases: Array<{ args: string[]; env?: NodeJS.ProcessEnv }> = [
      ...commands.map((c) => ({ args: [...c, '--workspace', ''] })),
      { args: ['init', '--workspace', '   '] },
      { args: ['serve', '--port', '0', '--create', '--workspace', ' '] },
      // a blank $CARSTUDIO_WORKSPACE is refused too (not read as "unset")
      ...[['stats'], ['scrape', '--base-url', 'demo', '--min-id', '1', '--max-id', '2', '--create'], ['serve', '--port', '0', '--create']].map((args) => ({
        args,
        env: { CARSTUDIO_WORKSPACE: ' ' },
      })),
    ];
    for (const c of cases) {
      const r = await runIn(cwd, c.args, c.env);
      expect(r.code, `${c.args.join(' ')} ${JSON.stringify(c.env ?? {})}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(c.env ? /\$CARSTUDIO_WORKSPACE is set but empty; unset it/ : /--workspace is empty; name a workspace folder/);
    }
    // nothing was created in the current folder
    expect(fs.readdirSync(cwd)).toEqual(['good']);
  }, 240_000);

  it('scrape and label refuse a missing workspace, naming init and --create; --create makes it', async () => {
    const root = scratch();
    const ws = path.join(root, 'typo-ws');
    const good = path.join(root, 'good');
    fs.mkdirSync(good);
    fs.writeFileSync(path.join(good, 'a.jpg'), await makeJpeg(64, 48, 2));
    const scrapeArgs = ['scrape', '--workspace', ws, '--base-url', 'demo', '--min-id', '1', '--max-id', '3', '--retry-delay-ms', '5'];
    const message = `workspace ${ws} does not exist; create it with 'carstudio init --workspace ${ws}' or pass --create`;
    for (const args of [scrapeArgs, ['label', '--workspace', ws, '--good', good]]) {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
      expect(fs.existsSync(ws)).toBe(false);
    }
    // a command without --create says only init
    const stats = await runCli(['jobs', '--workspace', ws]);
    expect(stats.code).toBe(2);
    expect(stats.stderr).toContain(`workspace ${ws} does not exist; create it with 'carstudio init --workspace ${ws}'\n`);
    // an existing folder that is no workspace is not made one either
    const plain = path.join(root, 'plain');
    fs.mkdirSync(plain);
    const intoPlain = await runCli(['label', '--workspace', plain, '--good', good]);
    expect(intoPlain.code).toBe(2);
    expect(intoPlain.stderr).toMatch(/is not a CarStudio workspace \(no studio\.db\).*or pass --create/);
    expect(fs.readdirSync(plain)).toEqual([]);

    const created = await runCli([...scrapeArgs, '--create']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse((await runCli(['stats', '--workspace', ws, '--json'])).stdout)).toMatchObject({ attempts: 3 });
    const labelled = await runCli(['label', '--workspace', path.join(root, 'labels-ws'), '--good', good, '--create']);
    expect(labelled.code, labelled.stderr).toBe(0);
    expect(labelled.stdout).toMatch(/good: 1 imported/);
  }, 120_000);

  it('serve: refuses a named missing workspace, creates the per-user default on a bare first run and the demo workspace with --demo', async () => {
    const home = scratch();
    const env = { CARSTUDIO_HOME: home, CARSTUDIO_WORKSPACE: undefined };
    const named = path.join(home, 'named');
    const refused = await runCli(['serve', '--port', '0', '--workspace', named], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`workspace ${named} does not exist; create it with 'carstudio init --workspace ${named}' or pass --create`);
    const fromEnv = await runCli(['serve', '--port', '0'], { env: { ...env, CARSTUDIO_WORKSPACE: named } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain(`workspace ${named} does not exist`);
    expect(fs.existsSync(named)).toBe(false);

    const bare = await startServe([], env);
    const def = path.join(home, 'workspace');
    try {
      expect(fs.existsSync(path.join(def, 'studio.db'))).toBe(true);
      await waitFor(() => bare.stderr().includes(`creating workspace ${def} (the default workspace; pass --workspace DIR for another)\n`), 'the line saying so');
    } finally {
      await bare.stop();
    }
    const demo = await startServe(['--demo'], env);
    try {
      expect(fs.existsSync(path.join(home, 'demo-workspace', 'studio.db'))).toBe(true);
    } finally {
      await demo.stop();
    }
  }, 120_000);
});

describe('label import reports every skipped file', () => {
  it('follows symlinked files; lists a broken symlink, a .heic and a .txt with their reasons (text and --json); exits 2 when nothing could be imported', async () => {
    const root = scratch();
    const ws = path.join(root, 'ws');
    expect((await runCli(['init', '--workspace', ws])).code).toBe(0);
    const good = path.join(root, 'good');
    const outside = path.join(root, 'elsewhere');
    fs.mkdirSync(good);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(good, 'real.jpg'), await makeJpeg(80, 60, 3));
    fs.writeFileSync(path.join(outside, 'target.jpg'), await makeJpeg(80, 60, 4));
    fs.symlinkSync(path.join(outside, 'target.jpg'), path.join(good, 'linked.jpg'));
    fs.symlinkSync(path.join(outside, 'gone.jpg'), path.join(good, 'broken.jpg'));
    fs.writeFileSync(path.join(good, 'phone.heic'), Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic'));
    fs.writeFileSync(path.join(good, 'notes.txt'), 'not a photo');

    const r = await runCli(['label', '--workspace', ws, '--good', good, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { good: { files: number; imported: number; already: number; skipped: Array<{ file: string; reason: string }> } };
    expect(out.good).toMatchObject({ files: 5, imported: 2, already: 0 });
    const reasons = Object.fromEntries(out.good.skipped.map((s) => [path.basename(s.file), s.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['broken.jpg', 'notes.txt', 'phone.heic']);
    expect(reasons['broken.jpg']).toBe(`broken symbolic link (its target ${path.join(outside, 'gone.jpg')} does not exist)`);
    // sharp's prebuilt libvips has no HEVC decoder; with one, these bytes are no image either
    expect(reasons['phone.heic']).toMatch(heicSupported() ? /./ : /^unsupported type: HEIC needs an HEVC decoder that this sharp build lacks/);
    expect(reasons['notes.txt']).toMatch(/^not an image: \.txt is not an image type/);
    const exported = path.join(root, 'labels.json');
    expect((await runCli(['label', 'export', '--workspace', ws, '--out', exported])).code).toBe(0);
    expect((JSON.parse(fs.readFileSync(exported, 'utf8')) as Array<{ label: string }>).map((l) => l.label)).toEqual(['good', 'good']);

    // the text output says the same, one line per skipped file
    const again = await runCli(['label', '--workspace', ws, '--good', good]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`good: 0 imported, 2 already in the workspace, 3 skipped (5 files in ${good})`);
    for (const name of ['broken.jpg', 'notes.txt', 'phone.heic']) expect(again.stderr).toContain(`  skipped ${path.join(good, name)}: ${reasons[name]}`);

    // nothing importable at all: exit 2, every file still listed
    const bad = path.join(root, 'bad');
    fs.mkdirSync(bad);
    fs.symlinkSync(path.join(outside, 'gone.jpg'), path.join(bad, 'broken.jpg'));
    fs.writeFileSync(path.join(bad, 'phone.heic'), 'any bytes');
    fs.writeFileSync(path.join(bad, 'notes.txt'), 'not a photo');
    const none = await runCli(['label', '--workspace', ws, '--bad', bad]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('bad: 0 imported, 0 already in the workspace, 3 skipped');
    expect(none.stderr.match(/^ {2}skipped /gm)).toHaveLength(3);
    expect(none.stderr).toMatch(/carstudio: nothing imported: none of the 3 files was an image that could be read/);
  }, 120_000);
});

describe('train run again after a kill', () => {
  it('continues the interrupted run with the same parameters; different parameters start a new run and name the interrupted one', async () => {
    const root = scratch();
    const ws = path.join(root, 'ws');
    const scrape = await runCli(['scrape', '--workspace', ws, '--create', '--base-url', 'demo', '--min-id', '1', '--max-id', '40', '--retry-delay-ms', '5'], {
      timeoutMs: 120_000,
    });
    expect(scrape.code, scrape.stderr).toBe(0);
    // small batches and few steps: the pure-JS cpu backend is slow on a busy machine
    const STEPS = 10;
    const EVERY = 2;
    const cmd = ['train', '--workspace', ws, '--mode', 'finetune', '--backbone', 'tiny-cnn', '--force', '--steps', String(STEPS), '--batch-size', '2', '--checkpoint-every', String(EVERY), '--eval-every', String(STEPS)];
    const child = spawn(process.execPath, [CLI, ...cmd], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<NodeJS.Signals | null>((res) => child.once('exit', (_c, sig) => res(sig)));
    const summary = path.join(ws, 'runs', '1', 'summary.json');
    try {
      // on the run's own progress, however slow the machine: the first checkpoint, or the child's exit
      for (;;) {
        if (child.exitCode !== null) throw new Error(`train exited before its first checkpoint (${child.exitCode}): ${err}`);
        let step = 0;
        try {
          step = (JSON.parse(fs.readFileSync(summary, 'utf8')) as { step: number }).step;
        } catch {
          /* not written yet */
        }
        if (step >= EVERY) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    const killed = (JSON.parse((await runCli(['runs', '--workspace', ws, '--json'])).stdout) as RunInfo[])[0]!;
    expect(killed).toMatchObject({ id: 1, state: 'interrupted', steps: STEPS });
    expect(killed.step).toBeLessThan(STEPS);

    // different parameters: a new run, and one line naming the interrupted one and how to continue it
    const other = await runCli(['train', '--workspace', ws, '--mode', 'finetune', '--backbone', 'tiny-cnn', '--force', '--steps', '1', '--batch-size', '2'], {
      timeoutMs: 300_000,
    });
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toMatch(/^run 2: done at step 1 /);
    expect(other.stderr).toContain(`run 1 (finetune tiny-cnn default) was interrupted at step ${killed.step} of ${STEPS}; these parameters differ, so this starts a new run (to continue run 1: carstudio train --resume 1 --workspace ${ws})\n`);

    // the same command again: run 1 continues from its checkpoint, by the job that trained it
    const same = await runCli(cmd, { timeoutMs: 400_000 });
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toContain(`continuing run 1 (interrupted at step ${killed.step} of ${STEPS}) with its parameters; pass --new-run to start a new run instead`);
    expect(same.stdout).toMatch(new RegExp(`^run 1: done at step ${STEPS} \\(resumed from step [1-9]\\d*, tiny-cnn`));
    const runs = JSON.parse((await runCli(['runs', '--workspace', ws, '--json'])).stdout) as RunInfo[];
    expect(runs.map((r) => [r.id, r.state, r.step])).toEqual([
      [2, 'done', 1],
      [1, 'done', STEPS],
    ]);
    expect(runs[1]!.jobId).toBe(killed.jobId);
  }, 900_000);
});
