// Heads training and evaluation on the features of a named extractor (issue 14): `carstudio train
// --mode heads --extractor NAME` extracts the missing NAME features into features/NAME, trains on
// them and records NAME in the run's config.json; the runs list says it; `carstudio eval` reads
// the same features for the model and the kNN (and extracts them for a manifest's own photos) and
// names the extractor; a resume keeps the run's extractor and refuses another; a run from before
// extractors were recorded (config.json without `extractor`) reads as mobilenet_v2.
// A real workspace of sharp-made JPEGs imported from a manifest, the CLI as child processes.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../src-main/engine/api/contract/eval.ts';
import type { RunInfo } from '../src-main/engine/api/contract/train.ts';
import { dimOf, openCache } from '../src-main/engine/filter/features.ts';
import { headline } from '../src-main/engine/eval/eval-job.ts';
import { listRuns } from '../src-main/engine/train/runs.ts';
import { trainParams } from '../src-main/engine/train/train-kind.ts';
import { loadRunConfig, runExtractor } from '../src-main/engine/train/trainer.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { runCli } from './helpers/processes.ts';
import { tmpDir } from './helpers/workspace.ts';
// four classes, each a colour family and a texture
import { CLASSES, classJpeg } from './helpers/trust-fixture.ts';

const T = 120_000; // last-resort bound per command on a busy machine

/** `perClass` photos of each class under dir/sub, and the manifest lines naming them (no prices). */
async function writePhotos(dir: string, sub: string, perClass: number, seed0: number): Promise<string[]> {
  fs.mkdirSync(path.join(dir, sub), { recursive: true });
  const lines = ['file,make,model,year'];
  for (let cls = 0; cls < CLASSES.length; cls++)
    for (let i = 0; i < perClass; i++) {
      const file = `${sub}/${CLASSES[cls]!.make.toLowerCase()}-${i}.jpg`;
      fs.writeFileSync(path.join(dir, file), await classJpeg(cls, seed0 + i, 80, 60));
      const c = CLASSES[cls]!;
      lines.push([file, c.make, c.model, c.year].join(','));
    }
  return lines;
}

const json = <X>(s: string): X => JSON.parse(s) as X;

describe('heads training and eval on a named extractor', () => {
  let fx: string;
  let ws: string;
  let imageIds: number[];
  let blocksRun: number;

  const cli = async (args: string[]) => {
    const r = await runCli([...args.slice(0, 1), '--workspace', ws, ...args.slice(1)], { timeoutMs: T });
    return r;
  };
  /** The runs list as runs.list / `carstudio runs --json` give it. */
  const runs = (): RunInfo[] => {
    const w = Workspace.open(ws);
    try {
      return listRuns(w);
    } finally {
      w.close();
    }
  };
  const configOf = (id: number) => loadRunConfig(path.join(ws, 'runs', String(id)));
  const SHORT = ['--mode', 'heads', '--eval-every', '10', '--checkpoint-every', '10', '--hidden', '0', '--test-fraction', '0.3', '--batch-size', '16'];

  beforeAll(async () => {
    fx = tmpDir('carstudio-trainx-fx-');
    const lines = await writePhotos(fx, 'img', 14, 0);
    fs.writeFileSync(path.join(fx, 'cars.csv'), lines.join('\n') + '\n');
    ws = path.join(tmpDir('carstudio-trainx-'), 'ws');
    expect((await runCli(['init', '--workspace', ws])).code).toBe(0);
    const imp = await cli(['import', '--manifest', path.join(fx, 'cars.csv'), '--map', 'image=file']);
    expect(imp.code, imp.stderr).toBe(0);
    const db = new Database(path.join(ws, 'studio.db'), { readonly: true });
    imageIds = db.prepare(`SELECT id FROM images WHERE state = 'stored' ORDER BY id`).pluck().all() as number[];
    db.close();
    expect(imageIds).toHaveLength(56);
  }, 2 * T);
  afterAll(() => {
    fs.rmSync(fx, { recursive: true, force: true });
  });

  it('trains a heads run on mobilenet_v2-blocks features: features/mobilenet_v2-blocks of 1984-d rows, the extractor in config.json and the runs list', { timeout: 2 * T }, async () => {
    const r = await cli(['train', ...SHORT, '--extractor', 'mobilenet_v2-blocks', '--steps', '30', '--name', 'blocks', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = json<{ runId: number; state: string; step: number; extractor: string; backbone: string }>(r.stdout);
    expect(res).toMatchObject({ state: 'done', step: 30, extractor: 'mobilenet_v2-blocks', backbone: 'mobilenet_v2-blocks features' });
    blocksRun = res.runId;
    expect(r.stderr).toMatch(/mobilenet_v2-blocks features/); // the extraction's progress names them

    const cfg = await configOf(blocksRun);
    expect(cfg.extractor).toBe('mobilenet_v2-blocks');
    expect(cfg.featureDim).toBe(1984);
    expect(dimOf('mobilenet_v2-blocks')).toBe(1984);

    // the cache of that extractor holds every image, as 1984 finite values a row; no other extractor ran
    const features = path.join(ws, 'features');
    expect(fs.readdirSync(features).sort()).toEqual(['mobilenet_v2-blocks']);
    const w = Workspace.open(ws);
    try {
      const cache = await openCache(w, 'mobilenet_v2-blocks');
      try {
        expect(cache.dim).toBe(1984);
        expect(imageIds.every((id) => cache.has(id))).toBe(true);
        const rows = await cache.rows(imageIds);
        try {
          expect(rows.ids).toHaveLength(imageIds.length);
          const x = new Float32Array(rows.ids.length * 1984);
          rows.gather(Int32Array.from(rows.ids.keys()), x);
          expect(x.every((v) => Number.isFinite(v))).toBe(true);
          // rows differ between photos (real features, not a constant)
          const a = x.subarray(0, 1984);
          const b = x.subarray(1984 * (rows.ids.length - 1));
          expect(a.some((v, i) => Math.abs(v - b[i]!) > 1e-3)).toBe(true);
        } finally {
          rows.close();
        }
      } finally {
        await cache.close();
      }
    } finally {
      w.close();
    }

    const listed = runs().find((x) => x.id === blocksRun)!;
    expect(listed).toMatchObject({ mode: 'heads', extractor: 'mobilenet_v2-blocks', state: 'done' });
    const table = await cli(['runs']);
    expect(table.stdout).toMatch(new RegExp(`^${blocksRun}\\s+heads\\s+mobilenet_v2\\s+mobilenet_v2-blocks\\s`, 'm'));
  });

  it('evaluates it on the same features: the test split and a manifest of new photos, the report naming the extractor', { timeout: 2 * T }, async () => {
    const e = await cli(['eval', '--run', String(blocksRun), '--test-split', '--checkpoint', 'last', '--json']);
    expect(e.code, e.stderr).toBe(0);
    const report = json<{ report: EvalReport }>(e.stdout).report;
    expect(report.features).toEqual({ extractor: 'mobilenet_v2-blocks', dim: 1984 });
    const mm = report.heads.makeModel!;
    expect(mm.model.n).toBe(report.rows);
    expect(report.rows).toBeGreaterThan(5);
    // four separable classes: the kNN on these features beats always answering the majority class
    expect(mm.knn!.top1).toBeGreaterThan(mm.majority.top1);
    // the headline `carstudio eval` prints
    expect(headline(report)).toMatch(/^\d+ rows; mobilenet_v2-blocks features; /);

    // photos that are not in the workspace: extracted by the run's extractor, not cached
    const lines = await writePhotos(fx, 'new', 2, 5_000);
    fs.writeFileSync(path.join(fx, 'new.csv'), lines.join('\n') + '\n');
    const m = await cli(['eval', '--run', String(blocksRun), '--checkpoint', 'last', '--manifest', path.join(fx, 'new.csv'), '--map', 'image=file', '--json']);
    expect(m.code, m.stderr).toBe(0);
    const mr = json<{ report: EvalReport }>(m.stdout).report;
    expect(mr.source).toMatchObject({ kind: 'manifest', rowsSkipped: 0 });
    expect(mr.rows).toBe(8);
    expect(mr.features).toEqual({ extractor: 'mobilenet_v2-blocks', dim: 1984 });
    expect(fs.readdirSync(path.join(ws, 'features'))).toEqual(['mobilenet_v2-blocks']);
  });

  it('resumes the run on its own extractor and refuses another', { timeout: 2 * T }, async () => {
    const refused = await cli(['train', '--resume', String(blocksRun), '--extractor', 'mobilenet_v2', '--steps', '40']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`run ${blocksRun} was trained on mobilenet_v2-blocks features; resume it without --extractor`));
    expect(fs.existsSync(path.join(ws, 'features', 'mobilenet_v2'))).toBe(false);
    expect(runs().find((x) => x.id === blocksRun)).toMatchObject({ state: 'done', error: null, step: 30 }); // the refusal left the run as it was
    const cont = await cli(['train', '--resume', String(blocksRun), '--steps', '40', '--json']);
    expect(cont.code, cont.stderr).toBe(0);
    expect(json<{ step: number; resumedFrom: number; extractor: string }>(cont.stdout)).toMatchObject({ step: 40, resumedFrom: 30, extractor: 'mobilenet_v2-blocks' });
    expect((await configOf(blocksRun)).extractor).toBe('mobilenet_v2-blocks');
    // --extractor with finetune is refused: that mode trains the backbone on pixels
    const ft = await cli(['train', '--mode', 'finetune', '--extractor', 'car-v1', '--steps', '1']);
    expect(ft.code).toBe(2);
    expect(ft.stderr).toMatch(/--extractor applies to --mode heads/);
  });

  it('reads a run recorded before extractors (no `extractor` in config.json) as mobilenet_v2: runs list, eval and resume', { timeout: 2 * T }, async () => {
    const r = await cli(['train', ...SHORT, '--extractor', 'mobilenet_v2', '--steps', '20', '--name', 'old', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const id = json<{ runId: number }>(r.stdout).runId;
    // make it a run from before: neither its config.json nor its recorded parameters name an extractor
    const file = path.join(ws, 'runs', String(id), 'config.json');
    const { extractor, ...old } = json<Record<string, unknown>>(fs.readFileSync(file, 'utf8'));
    expect(extractor).toBe('mobilenet_v2');
    fs.writeFileSync(file, JSON.stringify(old, null, 2));
    const db = new Database(path.join(ws, 'studio.db'));
    db.prepare(`UPDATE runs SET params = json_remove(params, '$.extractor') WHERE id = ?`).run(id);
    db.close();
    const cfg = await configOf(id);
    expect(cfg.extractor).toBeUndefined();
    expect(runExtractor(cfg)).toBe('mobilenet_v2');
    expect(runs().find((x) => x.id === id)!.extractor).toBe('mobilenet_v2');

    const e = await cli(['eval', '--run', String(id), '--checkpoint', 'last', '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect(json<{ report: EvalReport }>(e.stdout).report.features).toEqual({ extractor: 'mobilenet_v2', dim: 1280 });

    const refused = await cli(['train', '--resume', String(id), '--extractor', 'car-v1', '--steps', '30']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`run ${id} was trained on mobilenet_v2 features`));
    const cont = await cli(['train', '--resume', String(id), '--steps', '30', '--json']);
    expect(cont.code, cont.stderr).toBe(0);
    expect(json<{ step: number; extractor: string }>(cont.stdout)).toMatchObject({ step: 30, extractor: 'mobilenet_v2' });
    expect(fs.readdirSync(path.join(ws, 'features')).sort()).toEqual(['mobilenet_v2', 'mobilenet_v2-blocks']);

    // params of train jobs queued before the field existed still parse; a new run without one takes the default
    expect(trainParams.parse({ mode: 'heads', steps: 10 }).extractor).toBeUndefined();
    expect(() => trainParams.parse({ extractor: 'resnet' })).toThrow();
  });
});
