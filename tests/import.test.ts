// `carstudio import`: a manifest (CSV or JSON Lines) or a labelled folder becomes listings of
// source `import:<name>` whose images went through the scrape's ingest. Every bad row is reported
// with its line and reason and nothing else is lost; importing again adds nothing; a SIGKILLed
// import resumes to the same counts as an uninterrupted one. Real CLI child processes, real JPEGs.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/engine.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import type { ImportSummary } from '../src-main/engine/import/import-job.ts';
import { CLI, runCli, untilProgress } from './helpers/processes.ts';
import { makeJpeg, ROOT, SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const T = 120_000; // last-resort bound for a busy machine; the tests wait on the processes themselves

async function newWorkspace(): Promise<string> {
  const ws = path.join(tmpDir('carstudio-import-'), 'ws');
  const r = await runCli(['init', '--workspace', ws]);
  expect(r.code, r.stderr).toBe(0);
  return ws;
}

async function importJson(args: string[]): Promise<ImportSummary> {
  const r = await runCli(['import', ...args, '--json'], { timeoutMs: T });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ImportSummary;
}

interface ListingRec {
  id: number;
  listing_id: number;
  external_id: string | null;
  source: string;
  price: number | null;
  make: string | null;
  model: string | null;
  year: number | null;
  metadata: string | null;
  warnings: string | null;
  images: number;
}

function listings(ws: string): ListingRec[] {
  const db = new Database(path.join(ws, 'studio.db'), { readonly: true });
  try {
    return db
      .prepare(
        `SELECT l.id, l.listing_id, l.external_id, l.source, l.price, l.make, l.model, l.year, l.metadata, l.warnings,
           (SELECT COUNT(*) FROM listing_images li WHERE li.listing_rowid = l.id) images
         FROM listings l ORDER BY l.id`,
      )
      .all() as ListingRec[];
  } finally {
    db.close();
  }
}

function imageRows(ws: string): Array<{ key: string; state: string; exact_hash: string | null; phash: string | null; height: number }> {
  const db = new Database(path.join(ws, 'studio.db'), { readonly: true });
  try {
    return db.prepare(`SELECT key, state, exact_hash, phash, height FROM images ORDER BY key`).all() as ReturnType<typeof imageRows>;
  } finally {
    db.close();
  }
}

/** What two imports must agree on, whatever happened on the way. */
function counts(s: ImportSummary, ws: string): unknown {
  return {
    rowsRead: s.rowsRead,
    rowsImported: s.rowsImported,
    skippedByReason: s.skippedByReason,
    errors: s.errors,
    warnings: s.warnings,
    listings: s.listings,
    listingsAdded: s.listingsAdded,
    imagesAdded: s.imagesAdded,
    images: s.images,
    stored: imageRows(ws).map((i) => i.key),
    rows: listings(ws).map((l) => [l.listing_id, l.make, l.model, l.year, l.price, l.images]),
  };
}

let fx: string; // fixture folder: images and manifests

beforeAll(async () => {
  fx = tmpDir('carstudio-import-fx-');
  fs.mkdirSync(path.join(fx, 'img'));
  for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(fx, 'img', `car${i}.jpg`), await makeJpeg(480 + i * 8, 360, i + 1));
  fs.writeFileSync(path.join(fx, 'img', 'notes.jpg'), 'this is text, not a JPEG\n');
});

describe('import: CSV manifest', () => {
  it('imports the good rows, reports each bad one by line and reason, and a second import adds nothing', { timeout: T }, async () => {
    const ws = await newWorkspace();
    const manifest = path.join(fx, 'cars.csv');
    fs.writeFileSync(
      manifest,
      [
        'image,listing_id,price,make,model,year,color', // line 1
        'img/car0.jpg,L1,"12,500",Audi,A3,2015,red', // 2: listing L1 ...
        'img/car1.jpg,L1,,,,,red', // 3: ... its second photo
        'img/car2.jpg,,abc,BMW,X5,2012,"blue, dark"', // 4: price unparsable -> NULL + warning
        'img/car3.jpg,,9000,Fiat,Panda,1850,white', // 5: year out of range -> NULL + warning
        'img/missing.jpg,,1000,Opel,Astra,2001,', // 6: missing file
        'img/notes.jpg,,1000,Opel,Corsa,2002,', // 7: a text file named .jpg
        'img/car0.jpg,L1,"12,500",Audi,A3,2015,red', // 8: line 2 repeated
        '', // a blank line is no row
      ].join('\r\n'),
    );
    const s = await importJson(['--workspace', ws, '--manifest', manifest]);
    expect(s.source).toBe('import:cars.csv');
    expect(s.rowsRead).toBe(7);
    expect(s.rowsImported).toBe(4);
    expect(s.errors.map((e) => [e.line, e.category])).toEqual([
      [6, 'missing file'],
      [7, 'not an image'],
      [8, 'duplicate row'],
    ]);
    expect(s.errors[0]!.reason).toContain(path.join(fx, 'img', 'missing.jpg'));
    expect(s.errors[2]!.reason).toContain('line 2');
    expect(s.skippedByReason).toEqual({ 'missing file': 1, 'not an image': 1, 'duplicate row': 1 });
    expect(s.warnings.map((w) => [w.line, w.category])).toEqual([
      [4, 'unparsable price'],
      [5, 'out of range year'],
    ]);
    expect(s).toMatchObject({ listings: 3, listingsAdded: 3, imagesAdded: 4, images: 4 });

    const ls = listings(ws);
    expect(ls.map((l) => [l.source, l.external_id, l.make, l.model, l.year, l.price, l.images])).toEqual([
      ['import:cars.csv', 'L1', 'Audi', 'A3', 2015, 12500, 2],
      ['import:cars.csv', null, 'BMW', 'X5', 2012, null, 1],
      ['import:cars.csv', null, 'Fiat', 'Panda', null, 9000, 1],
    ]);
    expect(JSON.parse(ls[1]!.metadata!)).toEqual({ color: 'blue, dark' });
    expect(JSON.parse(ls[1]!.warnings!)[0]).toMatchObject({ field: 'price', problem: 'unparsable' });
    // the scrape's ingest: downsampled to a 256 px short side, stored by content, both dedup hashes
    const store = new ImageStore(path.join(ws, 'images'));
    const imgs = imageRows(ws);
    expect(imgs).toHaveLength(4);
    for (const im of imgs) {
      expect(im).toMatchObject({ state: 'stored', height: 256 }); // 360 px tall, never upscaled
      expect(im.exact_hash).toMatch(/^[0-9a-f]+$/);
      expect(im.phash).toMatch(/^[0-9a-f]+$/);
      expect(fs.existsSync(store.pathFor(im.key))).toBe(true);
    }

    // the source is in stats and in the dataset API's listing records
    const st = await runCli(['stats', '--workspace', ws, '--json']);
    expect((JSON.parse(st.stdout) as { sources: Record<string, number> }).sources).toEqual({ 'import:cars.csv': 3 });
    const engine = Engine.open(ws);
    try {
      const page = await engine.request('listings.query', {});
      expect(page.rows.map((r) => r.source)).toEqual(['import:cars.csv', 'import:cars.csv', 'import:cars.csv']);
    } finally {
      await engine.close();
    }

    const again = await importJson(['--workspace', ws, '--manifest', manifest]);
    expect(again).toMatchObject({ listings: 3, listingsAdded: 0, imagesAdded: 0, images: 4, rowsImported: 4 });
    expect(again.errors).toEqual(s.errors);
    expect(listings(ws).map((l) => [l.id, l.images])).toEqual(ls.map((l) => [l.id, l.images]));
    expect(imageRows(ws)).toHaveLength(4);
  });

  it('refuses a manifest without an image column, naming --map', { timeout: T }, async () => {
    const ws = await newWorkspace();
    const manifest = path.join(fx, 'nocol.csv');
    fs.writeFileSync(manifest, 'file,price\nimg/car0.jpg,100\n');
    const r = await runCli(['import', '--workspace', ws, '--manifest', manifest]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no 'image' column.*--map image=/);
  });
});

describe('import: JSON Lines and folders', () => {
  it('a JSON Lines manifest with --map and --images-root', { timeout: T }, async () => {
    const ws = await newWorkspace();
    const manifest = path.join(tmpDir(), 'cars.jsonl');
    fs.writeFileSync(
      manifest,
      [
        JSON.stringify({ file: 'car0.jpg', Price_USD: 7000, make: 'Audi', model: 'A4', year: 2010, listing_id: 7 }),
        JSON.stringify({ file: 'car1.jpg', listing_id: 7 }),
        'not json',
        JSON.stringify({ file: 'car2.jpg', Price_USD: '8100', make: 'Kia', model: 'Rio', year: '2019', trim: 'LX' }),
      ].join('\n') + '\n',
    );
    const s = await importJson([
      '--workspace',
      ws,
      '--manifest',
      manifest,
      '--images-root',
      path.join(fx, 'img'),
      '--map',
      'image=file,price=Price_USD',
    ]);
    expect(s.source).toBe('import:cars.jsonl');
    expect(s.errors.map((e) => [e.line, e.category])).toEqual([[3, 'unreadable row']]);
    expect(s).toMatchObject({ rowsRead: 4, rowsImported: 3, listingsAdded: 2, imagesAdded: 3 });
    const ls = listings(ws);
    expect(ls.map((l) => [l.external_id, l.make, l.model, l.year, l.price, l.images])).toEqual([
      ['7', 'Audi', 'A4', 2010, 7000, 2],
      [null, 'Kia', 'Rio', 2019, 8100, 1],
    ]);
    expect(JSON.parse(ls[1]!.metadata!)).toEqual({ trim: 'LX' });
  });

  it("a folder by --pattern '{make}_{model}_{year}_*' and by --class-from folder --as make_model", { timeout: T }, async () => {
    const ws = await newWorkspace();
    const byName = path.join(tmpDir(), 'named');
    fs.mkdirSync(byName);
    fs.copyFileSync(path.join(fx, 'img', 'car0.jpg'), path.join(byName, 'Audi_A3_2005_0421.jpg'));
    fs.copyFileSync(path.join(fx, 'img', 'car1.jpg'), path.join(byName, 'BMW_1-Series_2009_25e7.jpg'));
    fs.copyFileSync(path.join(fx, 'img', 'car2.jpg'), path.join(byName, 'no-labels-here.jpg'));
    fs.writeFileSync(path.join(byName, 'README.txt'), 'not an image');
    const s = await importJson(['--workspace', ws, '--folder', byName, '--pattern', '{make}_{model}_{year}_*']);
    expect(s.source).toBe('import:named');
    expect(s.errors.map((e) => [e.where, e.category])).toEqual([
      ['README.txt', 'not an image'],
      ['no-labels-here.jpg', 'no labels'],
    ]);
    expect(listings(ws).map((l) => [l.make, l.model, l.year, l.images])).toEqual([
      ['Audi', 'A3', 2005, 1],
      ['BMW', '1-Series', 2009, 1],
    ]);

    const byClass = path.join(tmpDir(), 'classes');
    fs.mkdirSync(path.join(byClass, 'Audi_A3'), { recursive: true });
    fs.mkdirSync(path.join(byClass, 'Land Rover_Range Rover_Sport'), { recursive: true });
    fs.copyFileSync(path.join(fx, 'img', 'car0.jpg'), path.join(byClass, 'Audi_A3', 'a.jpg'));
    fs.copyFileSync(path.join(fx, 'img', 'car3.jpg'), path.join(byClass, 'Audi_A3', 'b.jpg'));
    fs.copyFileSync(path.join(fx, 'img', 'car1.jpg'), path.join(byClass, 'Land Rover_Range Rover_Sport', 'c.jpg'));
    fs.copyFileSync(path.join(fx, 'img', 'car2.jpg'), path.join(byClass, 'loose.jpg'));
    const c = await importJson(['--workspace', ws, '--folder', byClass, '--class-from', 'folder', '--as', 'make_model']);
    expect(c.errors.map((e) => [e.where, e.category])).toEqual([['loose.jpg', 'no labels']]);
    // car0 and car1 are already stored (same bytes as the pattern import): only car3 is new
    expect(c).toMatchObject({ source: 'import:classes', listingsAdded: 3, imagesAdded: 1, images: 3 });
    expect(
      listings(ws)
        .filter((l) => l.source === 'import:classes')
        .map((l) => [l.make, l.model, l.year]),
    ).toEqual([
      ['Audi', 'A3', null],
      ['Audi', 'A3', null],
      ['Land Rover', 'Range Rover_Sport', null],
    ]);
    const y = await importJson(['--workspace', ws, '--folder', byClass, '--class-from', 'folder', '--as', 'make']);
    expect(y.listingsAdded).toBe(0); // same folder, same files: the same listings, relabelled
    expect(listings(ws).find((l) => l.source === 'import:classes')).toMatchObject({ make: 'Audi_A3', model: null });
  });
});

describe('import: SIGKILL', () => {
  const ROWS = 200;
  it('a SIGKILLed import, run again, ends with the counts of an uninterrupted one', { timeout: 3 * T }, async () => {
    const dir = tmpDir('carstudio-import-kill-');
    fs.mkdirSync(path.join(dir, 'img'));
    const lines = ['image,listing_id,price,make,model,year'];
    for (let i = 0; i < ROWS; i++) {
      if (i % 40 === 7) lines.push(`img/gone${i}.jpg,,100,Opel,Astra,2001`);
      else {
        fs.writeFileSync(path.join(dir, 'img', `${i}.jpg`), await makeJpeg(320, 240, i + 11));
        lines.push(`img/${i}.jpg,${i % 3 === 0 ? `L${Math.floor(i / 6)}` : ''},${1000 + i},Make${i % 5},Model${i % 7},${2000 + (i % 20)}`);
      }
    }
    const manifest = path.join(dir, 'big.csv');
    fs.writeFileSync(manifest, lines.join('\n') + '\n');

    const killed = await newWorkspace();
    const child = spawn(process.execPath, [CLI, 'import', '--workspace', killed, '--manifest', manifest, '--json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.resume();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const db = new Database(path.join(killed, 'studio.db'), { readonly: true, fileMustExist: true });
    let done = 0;
    let total = 0;
    try {
      // progress as the engine persists it: some listings committed, not all
      await untilProgress(child, 'the import reports listings done', () => {
        const j = db.prepare(`SELECT done, total FROM jobs WHERE kind = 'import' ORDER BY id DESC LIMIT 1`).get() as
          { done: number; total: number | null } | undefined;
        done = j?.done ?? 0;
        total = j?.total ?? 0;
        return done >= 10;
      });
      child.kill('SIGKILL');
      await exited;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${stderr}`);
    } finally {
      db.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(done).toBeLessThan(total);
    const partial = listings(killed).length;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(total);
    console.log(`import-kill: killed at ${done}/${total} listings reported, ${partial} committed`);

    const resumed = await importJson(['--workspace', killed, '--manifest', manifest]);
    const clean = await newWorkspace();
    const straight = await importJson(['--workspace', clean, '--manifest', manifest]);
    expect(straight.errors).toHaveLength(ROWS / 40);
    expect(counts(resumed, killed)).toEqual(counts(straight, clean));
  });
});

describe('import: URL images', () => {
  let server: http.Server;
  let base = '';
  let served = 0;
  beforeAll(async () => {
    const jpeg = await makeJpeg(300, 200, 99);
    server = http.createServer((req, res) => {
      served++;
      if (req.url === '/car.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('refuses a loopback URL unless --allow-private-hosts, then fetches it with the fetch policy', { timeout: T }, async () => {
    const ws = await newWorkspace();
    const manifest = path.join(tmpDir(), 'urls.csv');
    fs.writeFileSync(manifest, `image,make\n${base}/car.jpg,Audi\n${base}/nothing.jpg,BMW\n`);
    const refused = await importJson(['--workspace', ws, '--manifest', manifest]);
    expect(served).toBe(0);
    expect(refused.errors.map((e) => [e.line, e.category])).toEqual([
      [2, 'refused URL'],
      [3, 'refused URL'],
    ]);
    expect(refused.errors[0]!.reason).toMatch(/loopback.*--allow-private-hosts/);
    const allowed = await importJson(['--workspace', ws, '--manifest', manifest, '--allow-private-hosts']);
    expect(allowed.errors.map((e) => [e.line, e.category])).toEqual([[3, 'fetch failed']]);
    expect(allowed.errors[0]!.reason).toContain('HTTP 404');
    expect(allowed).toMatchObject({ listingsAdded: 1, imagesAdded: 1 });
  });
});

describe('import: the labelled-cars photos', () => {
  const dataDir = path.join(SHARED_DATA, 'labelled-cars');
  const labels = path.join(dataDir, 'labels.csv');
  const have = fs.existsSync(labels);
  if (!have)
    console.log(`import: skipping the labelled-cars test: ${labels} does not exist (the shared test data is not in this checkout)`);
  it.skipIf(!have)(
    'a 60-row slice imports through a manifest and through the folder pattern with the same make/model/year listings',
    { timeout: 2 * T },
    async () => {
      const all = fs.readFileSync(labels, 'utf8').trim().split(/\r?\n/);
      // every 15th row: many makes, not only the first ones alphabetically
      const slice = all
        .slice(1)
        .filter((_, i) => i % 15 === 0)
        .slice(0, 60);
      expect(slice).toHaveLength(60);
      const dir = tmpDir('carstudio-import-real-');
      const manifest = path.join(dir, 'slice.csv');
      fs.writeFileSync(manifest, [all[0]!, ...slice].join('\n') + '\n');
      // the folder form sees the same 60 files through symbolic links (the photos are never copied)
      const folder = path.join(dir, 'slice');
      fs.mkdirSync(folder);
      for (const row of slice) {
        const file = row.split(',')[0]!;
        fs.symlinkSync(path.join(dataDir, file), path.join(folder, file));
      }
      const a = await newWorkspace();
      const viaManifest = await importJson(['--workspace', a, '--manifest', manifest, '--images-root', dataDir, '--map', 'image=file']);
      const b = await newWorkspace();
      const viaFolder = await importJson(['--workspace', b, '--folder', folder, '--pattern', '{make}_{model}_{year}_*']);
      expect(viaManifest.errors).toEqual([]);
      expect(viaFolder.errors).toEqual([]);
      expect(viaManifest.listingsAdded).toBe(60);
      expect(viaFolder.listingsAdded).toBe(60);
      // labels.csv writes a space where some file names have a hyphen ("RAM 1500" / RAM-1500)
      const norm = (ws: string): string[] =>
        listings(ws)
          .map((l) => `${l.make}|${(l.model ?? '').replace(/-/g, ' ')}|${l.year}`)
          .sort();
      expect(norm(b)).toEqual(norm(a));
      expect(imageRows(b).map((i) => i.key)).toEqual(imageRows(a).map((i) => i.key));
    },
  );
});
