// A small real workspace for the trust and run-picker tests: sharp-made JPEGs of four classes (a
// colour family and a texture each, with a price, make, model and year) imported from a
// manifest, and heads runs trained on their cached mobilenet_v2 features through the CLI.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../../src-main/engine/util/random.ts';
import { runCli } from './processes.ts';
import { tmpDir } from './workspace.ts';

export const CLASSES = [
  { make: 'Audi', model: 'A3', year: 2015, price: 24_000, rgb: [205, 45, 40] },
  { make: 'BMW', model: 'X5', year: 2010, price: 45_000, rgb: [40, 170, 60] },
  { make: 'Fiat', model: 'Panda', year: 2005, price: 7_000, rgb: [45, 60, 210] },
  { make: 'Kia', model: 'Rio', year: 2020, price: 14_000, rgb: [230, 205, 40] },
] as const;

export async function classJpeg(cls: number, seed: number, width = 96, height = 72): Promise<Buffer> {
  const r = mulberry32(cls * 100_003 + seed * 7919 + 1);
  const base = CLASSES[cls]!.rgb.map((c) => c + (r() - 0.5) * 40);
  const texture = [(_x: number, y: number) => (y >> 3) & 1, (x: number) => (x >> 3) & 1, (x: number, y: number) => ((x + y) >> 3) & 1, (x: number, y: number) => ((x >> 3) ^ (y >> 3)) & 1][cls]!;
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const dark = texture(x, y) ? 0.6 : 1;
      for (let c = 0; c < 3; c++) px[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c]! * dark + (r() - 0.5) * 50)));
    }
  return sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** Per-pixel random colour: nothing like any class photo. */
export async function noiseJpeg(seed: number, width = 160, height = 120): Promise<Buffer> {
  const r = mulberry32(seed);
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(r() * 256);
  return sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
}

export interface TrustWorkspace {
  /** The workspace folder. */
  ws: string;
  /** The fixture folder: img/<make>-<i>.jpg, cars.csv. */
  fx: string;
  /** Runs CLI commands on the workspace. */
  cli(args: string[], timeoutMs?: number): ReturnType<typeof runCli>;
  /** Trains a heads run on mobilenet_v2 features and returns its id. */
  train(name: string, extra?: string[]): Promise<number>;
}

/** `perClass` photos of each class imported into a new workspace (no run yet). */
export async function trustWorkspace(perClass = 12): Promise<TrustWorkspace> {
  const fx = tmpDir('carstudio-trust-fx-');
  fs.mkdirSync(path.join(fx, 'img'));
  const lines = ['file,price,make,model,year'];
  for (let cls = 0; cls < CLASSES.length; cls++)
    for (let i = 0; i < perClass; i++) {
      const c = CLASSES[cls]!;
      const file = `img/${c.make.toLowerCase()}-${i}.jpg`;
      fs.writeFileSync(path.join(fx, file), await classJpeg(cls, i));
      lines.push([file, c.price + (i % 5) * 500, c.make, c.model, c.year].join(','));
    }
  fs.writeFileSync(path.join(fx, 'cars.csv'), lines.join('\n') + '\n');
  const ws = path.join(tmpDir('carstudio-trust-'), 'ws');
  const init = await runCli(['init', '--workspace', ws]);
  if (init.code !== 0) throw new Error(init.stderr);
  const cli = (args: string[], timeoutMs = 180_000) => runCli([...args, '--workspace', ws], { timeoutMs });
  const imp = await cli(['import', '--manifest', path.join(fx, 'cars.csv'), '--map', 'image=file']);
  if (imp.code !== 0) throw new Error(imp.stderr);
  const train = async (name: string, extra: string[] = []): Promise<number> => {
    const r = await cli([
      'train',
      '--mode',
      'heads',
      '--extractor',
      'mobilenet_v2',
      '--steps',
      '40',
      '--eval-every',
      '20',
      '--checkpoint-every',
      '20',
      '--hidden',
      '0',
      '--test-fraction',
      '0.3',
      '--split',
      'photo',
      '--batch-size',
      '16',
      '--name',
      name,
      '--new-run',
      '--json',
      ...extra,
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { runId: number }).runId;
  };
  return { ws, fx, cli, train };
}
