import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { z } from 'zod';
import { openEngine, workspaceOption } from '../common.ts';
import { UserError } from '../../engine/workspace/errors.ts';
import { resolveRun } from '../../engine/predict/runs.ts';
import type { ReadablePath } from '../../engine/api/path-policy.ts';
import { studyMethods, type FracRect } from '../../engine/api/contract/studies.ts';
import { predictMethods } from '../../engine/api/contract/predict.ts';
import type { Prediction } from '../../engine/api/contract/predict.ts';
import { backgroundFiles } from '../../engine/predict/studies/backgrounds.ts';
import type { Engine } from '../../engine/engine.ts';

const KINDS = ['occlusion', 'edit', 'swap', 'pan', 'compare'] as const;
type Kind = (typeof KINDS)[number];

interface StudyOpts {
  workspace?: string;
  run?: string;
  checkpoint?: string;
  json?: boolean;
  png?: string;
  out?: string;
  size?: string;
  stride?: string;
  target?: string;
  rect?: string;
  fill?: string;
  patch?: string;
  backgrounds?: string;
  box?: string;
  steps?: string;
}

/** A photo named on the command line: the user's own machine, so no path policy; a missing file says so. */
function local(p: string): ReadablePath {
  const given = path.resolve(p);
  try {
    return { given, real: fs.realpathSync(given) };
  } catch {
    throw new UserError(`${given}: no such file or folder`);
  }
}

/** "x1,y1,x2,y2" in fractions of the photo. */
function rectArg(v: string | undefined, flag: string): FracRect | undefined {
  if (v === undefined) return undefined;
  const n = v.split(',').map((s) => Number(s.trim()));
  if (n.length !== 4 || n.some((x) => !Number.isFinite(x))) throw new UserError(`${flag} takes x1,y1,x2,y2 as fractions of the photo (e.g. 0.1,0.2,0.5,0.6), got '${v}'`);
  return { x1: n[0]!, y1: n[1]!, x2: n[2]!, y2: n[3]! };
}

function numArg(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserError(`${flag} takes a number, got '${v}'`);
  return n;
}

/** The API's own checks on the study's options, so the CLI and the API refuse the same things in the same words. */
function checked<S extends z.ZodTypeAny>(schema: S, params: unknown): z.output<S> {
  const r = schema.safeParse(params);
  if (!r.success) throw new UserError(r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  return r.data as z.output<S>;
}

const money = (v: number | null | undefined) => (v == null ? '—' : `${v < 0 ? '-' : ''}$${Math.round(Math.abs(v)).toLocaleString('en-US')}`);
const signed = (v: number) => `${v >= 0 ? '+' : '-'}${money(Math.abs(v))}`;
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const line = (p: Prediction) => `${money(p.medianPrice)}${p.binPrice ? ` (bins' median ${money(p.binPrice.median)})` : ''}\t${p.makeModels[0]?.label ?? '—'} ${pct(p.makeModels[0]?.p ?? 0)}\t${p.topYears[0]?.label ?? '—'}`;

/** The result without its pictures (data URLs and PNG bytes), which go to files instead. */
function withoutImages(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutImages);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!(typeof x === 'string' && (x.startsWith('data:image/') || k === 'png'))) out[k] = withoutImages(x);
    return out;
  }
  return v;
}

function dataUrlBytes(u: string): Buffer {
  return Buffer.from(u.slice(u.indexOf(',') + 1), 'base64');
}

/** Runs one study in the engine's prediction worker and returns its result. */
async function runStudy(engine: Engine, kind: Kind, photos: string[], o: StudyOpts): Promise<object> {
  const r = resolveRun(engine.ws, o.run, o.checkpoint);
  const model = { runId: r.run.id, runDir: r.run.dir, checkpoint: r.checkpoint };
  const wantPng = !!(o.png || o.out);
  if (kind === 'compare') {
    checked(predictMethods['predict.compare'], { paths: photos });
    return engine.predictions.run('compare', { files: photos.map(local) }, model);
  }
  if (photos.length !== 1) throw new UserError(`study ${kind} takes one photo, got ${photos.length}`);
  const file = local(photos[0]!);
  if (kind === 'pan') {
    const q = checked(predictMethods['predict.cropPan'], { path: file.given, steps: numArg(o.steps, '--steps') });
    return engine.predictions.run('cropPan', { file, steps: q.steps }, model);
  }
  if (kind === 'occlusion') {
    const q = checked(studyMethods['study.occlusion'], { path: file.given, size: numArg(o.size, '--size'), stride: numArg(o.stride, '--stride'), png: wantPng, target: o.target });
    return engine.predictions.run('occlusion', { file, size: q.size, stride: q.stride, png: q.png, target: q.target }, model);
  }
  if (kind === 'edit') {
    const rect = rectArg(o.rect, '--rect');
    if (!rect) throw new UserError('study edit needs --rect x1,y1,x2,y2 (fractions of the photo)');
    const q = checked(studyMethods['study.edit'], { path: file.given, rect, fill: o.fill, patchPath: o.patch, png: wantPng });
    return engine.predictions.run('edit', { file, rect: q.rect, fill: q.fill, patch: q.patchPath ? local(q.patchPath) : undefined, png: q.png }, model);
  }
  if (!o.backgrounds) throw new UserError('study swap needs --backgrounds <folder> (a folder of background photos)');
  const q = checked(studyMethods['study.swap'], { path: file.given, backgrounds: o.backgrounds, box: rectArg(o.box, '--box'), png: wantPng });
  const { files, total } = backgroundFiles(local(q.backgrounds), local);
  return engine.predictions.run('swap', { file, backgrounds: files, total, box: q.box, png: q.png }, model);
}

/** Writes the study's PNG (--png) and, with --out, its JSON, PNG and pictures into a folder; returns what was written. */
function writeFiles(kind: Kind, result: object, o: StudyOpts): string[] {
  const res = result as Record<string, unknown>;
  const written: string[] = [];
  const png = typeof res.png === 'string' ? Buffer.from(res.png, 'base64') : null;
  if (o.png) {
    if (!png) throw new UserError(`study ${kind} makes no PNG; use --out DIR for its pictures`);
    fs.writeFileSync(path.resolve(o.png), png);
    written.push(path.resolve(o.png));
  }
  if (o.out) {
    const dir = path.resolve(o.out);
    fs.mkdirSync(dir, { recursive: true });
    const put = (name: string, data: string | Buffer) => {
      fs.writeFileSync(path.join(dir, name), data);
      written.push(path.join(dir, name));
    };
    put(`${kind}.json`, JSON.stringify(withoutImages(res), null, 2) + '\n');
    if (png) put(`${kind}.png`, png);
    if (typeof res.image === 'string') put(`${kind}-photo.jpg`, dataUrlBytes(res.image));
    if (Array.isArray(res.items))
      (res.items as Array<{ image?: unknown }>).forEach((it, i) => {
        if (typeof it.image === 'string') put(`${kind}-${String(i + 1).padStart(2, '0')}.jpg`, dataUrlBytes(it.image));
      });
  }
  return written;
}

/** The human-readable summary of a study's result. */
function summary(kind: Kind, res: object): string {
  const out: string[] = [];
  if (kind === 'occlusion') {
    const s = res as unknown as import('../../engine/api/contract/studies.ts').OcclusionStudy;
    out.push(`${s.path}: ${money(s.base.medianPrice)}${s.base.binMedian !== null ? ` (bins' median ${money(s.base.binMedian)})` : ''}, ${s.base.makeModel} ${pct(s.base.makeModelP)}, year ${s.base.year} ${pct(s.base.yearP)}`);
    out.push(`grey square ${pct(s.size)} of the shorter side, stride ${pct(s.stride)}: ${s.rows}x${s.cols} positions`);
    const where = (c: (typeof s.cells)[number]) => `x ${pct(c.rect.x1)}-${pct(c.rect.x2)}, y ${pct(c.rect.y1)}-${pct(c.rect.y2)}`;
    out.push('regions that move the price most when hidden:');
    for (const c of [...s.cells].sort((a, b) => Math.abs(b.dPrice) - Math.abs(a.dPrice)).slice(0, 5)) out.push(`  ${where(c)}\t${signed(c.dPrice)}`);
    out.push(`regions the make/model relies on most (${s.base.makeModel}):`);
    for (const c of [...s.cells].sort((a, b) => b.dropMakeModel - a.dropMakeModel).slice(0, 3)) out.push(`  ${where(c)}\t-${pct(c.dropMakeModel)}`);
  } else if (kind === 'edit') {
    const s = res as unknown as import('../../engine/api/contract/studies.ts').EditStudy;
    out.push(`${s.path}: ${s.fill} over x ${pct(s.rect.x1)}-${pct(s.rect.x2)}, y ${pct(s.rect.y1)}-${pct(s.rect.y2)}${s.patchPath ? ` (patch from ${s.patchPath})` : ''}`);
    out.push(`before\t${line(s.before)}`);
    out.push(`after\t${line(s.after)}`);
    out.push(`change\t${signed(s.diff.medianPrice)}, price-range shift ${pct(s.diff.priceBinsTv)}${s.diff.topMakeModelChanged ? ', top make/model changed' : ''}${s.diff.topYearChanged ? ', top year changed' : ''}`);
  } else if (kind === 'swap') {
    const s = res as unknown as import('../../engine/api/contract/studies.ts').SwapStudy;
    out.push(`${s.path}: car box (${s.boxSource}) x ${pct(s.box.x1)}-${pct(s.box.x2)}, y ${pct(s.box.y1)}-${pct(s.box.y2)}`);
    out.push(`original\t${line(s.original)}`);
    for (const it of s.items) out.push(`${path.basename(it.path)}\t${it.prediction ? `${line(it.prediction)}\t${signed(it.diff!.medianPrice)}` : `error: ${it.error}`}`);
    if (s.note) out.push(`note: ${s.note}`);
  } else if (kind === 'pan') {
    const s = res as unknown as import('../../engine/api/contract/predict.ts').CropPan;
    out.push(`${s.path}: ${s.steps.length} square crops along the photo`);
    for (const st of s.steps) out.push(`  ${st.position + 1}\tleft ${st.crop.left} top ${st.crop.top} size ${st.crop.size}\t${money(st.medianPrice)}\t${st.top.label} ${pct(st.top.p)}`);
  } else {
    const s = res as unknown as { items: import('../../engine/api/contract/predict.ts').CompareItem[] };
    for (const it of s.items) out.push(`${path.basename(it.path)}\t${it.prediction ? `${line(it.prediction)}${it.diff ? `\t${signed(it.diff.medianPrice)}, price-range shift ${pct(it.diff.priceBinsTv)}` : ''}` : `error: ${it.error}`}`);
  }
  return out.join('\n') + '\n';
}

export function registerStudy(program: Command): void {
  program
    .command('study')
    .description('intervention studies on a photo: occlusion map, region edit, background swap, crop pan, compare (summary, or JSON with --json)')
    .argument('<kind>', `one of ${KINDS.join(', ')}`)
    .argument('<photo...>', 'the photo (compare: 2-12 photos, differences against the first)')
    .addOption(workspaceOption())
    .option('--run <id>', 'run id, as `carstudio runs` lists them (default: the run `predict` uses)')
    .option('--checkpoint <name>', 'checkpoint of the run: best (default), last, ...')
    .option('--json', 'print the result as JSON (without its pictures: write those with --png or --out)')
    .option('--png <file>', 'write the study as a PNG: the heat map over the photo (occlusion), the edited photo (edit), the composites with their prices (swap)')
    .option('--out <dir>', 'write <kind>.json, <kind>.png and the pictures into a folder')
    .option('--size <fraction>', 'occlusion: the grey square, a fraction of the shorter side (default 1/6)')
    .option('--stride <fraction>', 'occlusion: its step, a fraction of the shorter side (default half the size)')
    .option('--target <what>', "occlusion: what the PNG's heat map shows: price (default), makeModel or year (the drop of the top class's probability)")
    .option('--rect <x1,y1,x2,y2>', 'edit: the rectangle, fractions of the photo')
    .option('--fill <how>', 'edit: blur, grey (default) or patch')
    .option('--patch <photo>', "edit with --fill patch: the photo (stretched to this one's size) whose same region fills the rectangle")
    .option('--backgrounds <folder>', 'swap: a folder of background photos (at most 24 are used, by name)')
    .option('--box <x1,y1,x2,y2>', "swap: the car's box, fractions of the photo (default: where the car detector finds it)")
    .option('--steps <n>', 'pan: crop positions (2-40, default 9)')
    .action(async (kind: string, photos: string[], opts: StudyOpts) => {
      if (!(KINDS as readonly string[]).includes(kind)) throw new UserError(`unknown study '${kind}': use one of ${KINDS.join(', ')}`);
      const k = kind as Kind;
      const engine = openEngine(opts);
      try {
        const res = await runStudy(engine, k, photos, opts);
        const written = writeFiles(k, res, opts);
        process.stdout.write(opts.json ? JSON.stringify(withoutImages(res)) + '\n' : summary(k, res));
        for (const f of written) process.stderr.write(`wrote ${f}\n`);
      } finally {
        await engine.close();
      }
    });
}
