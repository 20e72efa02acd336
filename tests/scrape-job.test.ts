import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import Database from 'better-sqlite3';
import { Engine } from '../src-main/engine/engine.ts';
import { startDemoSite, type DemoSite } from '../src-main/engine/demo-site/server.ts';
import { getListing, expectedImageUrls } from '../src-main/engine/demo-site/catalog.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { CLI, runCli, untilProgress } from './helpers/processes.ts';
import { ROOT, tmpDir } from './helpers/workspace.ts';

const FAULTS = { rate: 0.15, retryAfterSeconds: 1, stallMs: 1500, slowMs: 100 };
// Retry-After pauses are capped at 300 ms (and logged) so the suite stays quick; the pause itself
// is honoured host-wide (see tests/demo-site-fetch.test.ts for the timing checks).
const SCRAPE = ['--retry-delay-ms', '5', '--timeout-ms', '800', '--max-retry-after-ms', '300', '--concurrency', '8'];

/** A new, empty workspace (scrape creates none by itself). */
function newWorkspace(dir: string): string {
  Workspace.open(dir, { create: true }).close();
  return dir;
}

/** Committed attempts (ledger rows) in a workspace another process is writing. */
function committedAttempts(dir: string): number {
  const db = new Database(path.join(dir, 'studio.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT COUNT(*) n FROM attempts`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The final state of a workspace, without timestamps and try counts (which differ between runs). */
function snapshot(dir: string) {
  const db = new Database(path.join(dir, 'studio.db'), { readonly: true });
  const q = (sql: string) => db.prepare(sql).all();
  const snap = {
    attempts: q(`SELECT source, listing_id, outcome, http_status, reason FROM attempts ORDER BY listing_id`),
    listings: q(`SELECT source, listing_id, title, price, make, model, year, odometer, engine, exterior_color, interior_color, drive_type,
                   fuel_type, fuel_economy, vin, stock_number, description, owners FROM listings ORDER BY listing_id`),
    images: q(`SELECT key, url, state, width, height, bytes, fail_reason FROM images ORDER BY key`),
    listingImages: q(`SELECT l.listing_id, li.position, i.key FROM listing_images li JOIN listings l ON l.id = li.listing_rowid
                        JOIN images i ON i.id = li.image_id ORDER BY l.listing_id, li.position`),
  };
  db.close();
  const files: Record<string, string> = {};
  const root = path.join(dir, 'images');
  for (const shard of fs.readdirSync(root)) {
    if (shard === 'tmp') continue;
    for (const f of fs.readdirSync(path.join(root, shard))) files[f] = ImageStore.keyFor(fs.readFileSync(path.join(root, shard, f)));
  }
  return { ...snap, files, temporaries: fs.readdirSync(path.join(root, 'tmp')).length };
}

describe('scrape against the demo site with faults on', () => {
  let site: DemoSite;
  beforeAll(async () => {
    site = await startDemoSite({ faults: FAULTS });
  });
  afterAll(async () => {
    await site.close();
  });

  it('ends with one ledger row per id, every hit with all its fields, every reachable image stored once', async () => {
    const dir = newWorkspace(`${tmpDir()}/ws`);
    const min = 1000;
    const max = 1399;
    const r = await runCli(['scrape', '--workspace', dir, '--base-url', site.url, '--min-id', String(min), '--max-id', String(max), ...SCRAPE, '--json'], { timeoutMs: 500_000 });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    const expectedHits = Array.from({ length: max - min + 1 }, (_, i) => min + i).filter((id) => site.expectedOutcome(id).kind === 'ok').length;
    expect(expectedHits).toBeGreaterThan(100);
    expect(result.ok).toBe(expectedHits);
    // our own count of requests in flight; the server's count also holds requests the client
    // already gave up on (timeouts) until it sees their sockets close, so it is checked in the
    // fault-free test below
    expect(result.maxInFlight).toBeGreaterThan(1);
    expect(result.maxInFlight).toBeLessThanOrEqual(8);
    expect(Object.keys(site.stats().faults).length).toBeGreaterThan(5);

    const db = new Database(path.join(dir, 'studio.db'), { readonly: true });
    const attempts = db.prepare(`SELECT listing_id, outcome, reason FROM attempts ORDER BY listing_id`).all() as Array<{ listing_id: number; outcome: string; reason: string | null }>;
    expect(attempts.map((a) => a.listing_id)).toEqual(Array.from({ length: max - min + 1 }, (_, i) => min + i));
    for (const a of attempts) {
      const want = site.expectedOutcome(a.listing_id);
      const got = a.outcome;
      if (want.kind === 'ok') expect(got, `id ${a.listing_id}`).toBe('ok');
      else if (want.kind === 'gone') expect(got, `id ${a.listing_id}`).toBe('gone');
      else {
        // a broken page is never mistaken for a miss
        expect(got, `id ${a.listing_id}`).toBe('failed');
        expect(a.reason).toBeTruthy();
      }
    }
    // every hit with all its fields, images in page order (primary first)
    const listings = db.prepare(`SELECT * FROM listings`).all() as Array<Record<string, unknown>>;
    expect(listings.length).toBe(attempts.filter((a) => a.outcome === 'ok').length);
    const urlsOf = db.prepare(`SELECT i.url FROM listing_images li JOIN images i ON i.id = li.image_id WHERE li.listing_rowid = ? ORDER BY li.position`).pluck();
    for (const l of listings) {
      const want = getListing(site.seed, l.listing_id as number)!;
      expect(l).toMatchObject({
        price: want.price,
        make: want.make,
        model: want.model,
        year: want.year,
        odometer: want.odometer,
        engine: want.engine,
        exterior_color: want.exteriorColor,
        interior_color: want.interiorColor,
        drive_type: want.driveGroup,
        fuel_type: want.fuelType,
        vin: want.vin,
        stock_number: want.stockNumber,
      });
      expect(JSON.parse(l.fuel_economy as string)).toEqual(want.fuelEconomy);
      expect(l.title).toBeTruthy();
      expect(l.description).toBeTruthy();
      expect(JSON.parse(l.owners as string)[0].name).toBe(want.owner.name);
      const expected = expectedImageUrls(want, site.url).map((u) => {
        const x = new URL(u);
        return x.pathname + x.search;
      });
      expect(urlsOf.all(l.id)).toEqual(expected);
    }
    // images: each URL once; stored ones decode with short side <= 256; failures have reasons
    const images = db.prepare(`SELECT key, url, state, width, height, fail_reason FROM images`).all() as Array<{ key: string; url: string; state: string; width: number; height: number; fail_reason: string | null }>;
    expect(new Set(images.map((i) => i.url)).size).toBe(images.length);
    let failed = 0;
    for (const img of images) {
      const want = site.expectedImageOutcome(img.url);
      if (want.kind === 'ok') {
        expect(img.state, img.url).toBe('stored');
        const meta = await sharp(path.join(dir, 'images', img.key.slice(0, 2), `${img.key}.jpg`)).metadata();
        expect(meta.format).toBe('jpeg');
        expect(Math.min(meta.width!, meta.height!)).toBeLessThanOrEqual(256);
        expect([meta.width, meta.height]).toEqual([img.width, img.height]);
      } else {
        failed++;
        expect(img.state, `${img.url} (${want.fault})`).toBe('failed');
        expect(img.fail_reason).toBeTruthy();
        expect(fs.existsSync(path.join(dir, 'images', img.key.slice(0, 2), `${img.key}.jpg`))).toBe(false);
      }
    }
    expect(failed).toBeGreaterThan(0);
    db.close();
    expect(fs.readdirSync(path.join(dir, 'images', 'tmp'))).toEqual([]);
    const stats = JSON.parse((await runCli(['stats', '--workspace', dir, '--json'])).stdout);
    expect(stats).toMatchObject({ attempts: max - min + 1, listings: listings.length, misses: attempts.filter((a) => a.outcome === 'gone').length });
    expect(stats.images.stored + stats.images.failed).toBe(images.length);
  }, 600_000);
});

describe('kill safety', () => {
  it('a run killed twice with SIGKILL and resumed ends exactly like an uninterrupted run', async () => {
    // one small cached JPEG per image id: what is compared here is the ledger, the rows and the
    // files of two runs, not the photos (the test above checks rendered ones end to end)
    const site = await startDemoSite({ faults: { ...FAULTS, rate: 0.1 }, images: 'tiny' });
    try {
      const args = (dir: string) => ['scrape', '--workspace', dir, '--base-url', site.url, '--min-id', '5000', '--max-id', '5199', ...SCRAPE];
      const clean = newWorkspace(`${tmpDir()}/clean`);
      expect((await runCli(args(clean), { timeoutMs: 500_000 })).code).toBe(0);

      const killed = newWorkspace(`${tmpDir()}/killed`);
      const logStart = site.stats().log.length;
      const kills = 2;
      for (let k = 0; k < kills; k++) {
        const child = spawn(process.execPath, [CLI, ...args(killed)], { cwd: ROOT, stdio: 'ignore' });
        // kill once some listings are committed, at a different point each time
        const target = 40 + k * 60;
        await untilProgress(child, `${target} attempts were committed`, () => committedAttempts(killed) >= target);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      const r = await runCli(args(killed), { timeoutMs: 500_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/resuming scrape job/);
      const a = snapshot(clean);
      const b = snapshot(killed);
      for (const k of ['attempts', 'listings', 'listingImages', 'images'] as const) {
        const diff = (a[k] as unknown[]).map((row, i) => [row, (b[k] as unknown[])[i]]).filter(([x, y]) => JSON.stringify(x) !== JSON.stringify(y));
        if (diff.length) console.log(k, diff.length, 'rows differ, e.g.', JSON.stringify(diff.slice(0, 3)));
      }
      expect(b.temporaries).toBe(0);
      expect(b.attempts).toEqual(a.attempts);
      expect(b.listings).toEqual(a.listings);
      expect(b.listingImages).toEqual(a.listingImages);
      expect(b.images).toEqual(a.images);
      expect(b.files).toEqual(a.files);
      // bounded rework: successful fetches of listing pages <= ok listings + concurrency * kills
      const hitFetches = site
        .stats()
        .log.slice(logStart)
        .filter((e) => e.kind === 'listing' && e.action === 'ok')
        .filter((e) => site.expectedOutcome(Number(new URL(e.path, 'http://x').searchParams.get('listingId'))).kind === 'ok').length;
      expect(hitFetches).toBeGreaterThanOrEqual(a.listings.length);
      expect(hitFetches).toBeLessThanOrEqual(a.listings.length + 8 * kills);
    } finally {
      await site.close();
    }
  }, 900_000);

  it('SIGTERM stops cleanly within seconds with exit 0, and the same command resumes', async () => {
    const site = await startDemoSite({ images: 'tiny' });
    try {
      const dir = newWorkspace(`${tmpDir()}/ws`);
      const args = ['scrape', '--workspace', dir, '--base-url', site.url, '--min-id', '1', '--max-id', '400', ...SCRAPE];
      const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      // no faults here, so the server's own count of concurrent requests is exact
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      // real progress: some ids attempted and committed (not only the job started)
      await untilProgress(child, 'some attempts were committed', () => committedAttempts(dir) >= 20);
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(err).toMatch(/run the same command again to resume/);
      const engine = Engine.open(dir);
      const job = engine.jobs.list()[0]!;
      expect(job.state).toBe('cancelled');
      const attempted = (engine.ws.db.prepare(`SELECT COUNT(*) n FROM attempts`).get() as { n: number }).n;
      await engine.close();
      expect(attempted).toBeGreaterThan(0);
      expect(attempted).toBeLessThan(400);
      expect(site.stats().maxInFlight).toBeLessThanOrEqual(8);
      const again = await runCli([...args, '--json'], { timeoutMs: 500_000 });
      expect(again.code).toBe(0);
      expect(again.stderr).toMatch(/resuming scrape job/);
      const engine2 = Engine.open(dir);
      expect((engine2.ws.db.prepare(`SELECT COUNT(*) n FROM attempts`).get() as { n: number }).n).toBe(400);
      await engine2.close();
      expect(fs.readdirSync(path.join(dir, 'images', 'tmp'))).toEqual([]);
    } finally {
      await site.close();
    }
  }, 600_000);
});

describe('bad input', () => {
  it('refuses a bad base URL, an unreachable host and min > max with a clear message, writing nothing', async () => {
    const dir = `${tmpDir()}/ws`;
    const bad = await runCli(['scrape', '--workspace', dir, '--base-url', 'ftp://example.com', '--min-id', '1', '--max-id', '5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/must be an http\(s\) URL/);
    const range = await runCli(['scrape', '--workspace', dir, '--base-url', 'http://127.0.0.1:9', '--min-id', '10', '--max-id', '5']);
    expect(range.code).toBe(2);
    expect(range.stderr).toMatch(/--min-id \(10\) is greater than --max-id \(5\)/);
    expect(fs.existsSync(dir)).toBe(false);
    newWorkspace(dir);
    const down = await runCli(['scrape', '--workspace', dir, '--base-url', 'http://127.0.0.1:9', '--min-id', '1', '--max-id', '50', '--retry-delay-ms', '5', '--timeout-ms', '500']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
    const stats = JSON.parse((await runCli(['stats', '--workspace', dir, '--json'])).stdout);
    expect(stats.attempts).toBe(0);
  }, 300_000);

  it('stops with a clear error when the image store cannot be written, committing no listing without its images', async () => {
    const site = await startDemoSite();
    try {
      const dir = `${tmpDir()}/ws`;
      expect((await runCli(['init', '--workspace', dir])).code).toBe(0);
      // every shard folder is unusable (as a read-only or full disk would be)
      for (let i = 0; i < 256; i++) fs.writeFileSync(path.join(dir, 'images', i.toString(16).padStart(2, '0')), 'not a folder');
      const r = await runCli(['scrape', '--workspace', dir, '--base-url', site.url, '--min-id', '1', '--max-id', '200', ...SCRAPE]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot write to the image store/);
      const db = new Database(path.join(dir, 'studio.db'), { readonly: true });
      const orphan = db.prepare(`SELECT COUNT(*) n FROM listings l WHERE EXISTS (SELECT 1 FROM listing_images li JOIN images i ON i.id = li.image_id
                                  WHERE li.listing_rowid = l.id AND i.state = 'stored')`).get() as { n: number };
      expect(orphan.n).toBe(0);
      expect((db.prepare(`SELECT COUNT(*) n FROM listings`).get() as { n: number }).n).toBe(0);
      db.close();
      if (process.getuid?.() === 0) console.log('read-only workspace check skipped: running as root, which ignores file permissions');
      else {
        const ro = `${tmpDir()}/ro`;
        await runCli(['init', '--workspace', ro]);
        fs.chmodSync(ro, 0o555);
        const denied = await runCli(['scrape', '--workspace', ro, '--base-url', site.url, '--min-id', '1', '--max-id', '5']);
        fs.chmodSync(ro, 0o755);
        expect(denied.code).toBe(2);
        expect(denied.stderr).toMatch(/not writable/);
      }
    } finally {
      await site.close();
    }
  }, 300_000);
});
