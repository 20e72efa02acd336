import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Agent, request } from 'undici';
import { startDemoSite, type DemoSite } from '../src-main/engine/demo-site/server.ts';
import { kbbSource } from '../src-main/engine/scrape/kbb.ts';
import type { Benchmark } from './index.ts';

const CLI = path.resolve(import.meta.dirname, '..', 'bin', 'carstudio.mjs');

interface RunResult {
  wallS: number;
  peakRssMb: number;
  result: { ok: number; gone: number; imagesStored: number; maxInFlight: number };
}

/** Runs `carstudio scrape` in its own process (so its peak RSS is its own) and times it. */
function scrapeRun(site: DemoSite, minId: number, maxId: number): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-bench-'));
  const args = [CLI, 'scrape', '--workspace', path.join(dir, 'ws'), '--create', '--base-url', site.url, '--min-id', String(minId), '--max-id', String(maxId), '--concurrency', '8', '--retry-delay-ms', '5', '--json'];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CARSTUDIO_REPORT_RSS: '1' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      const wallS = (performance.now() - t0) / 1000;
      fs.rmSync(dir, { recursive: true, force: true });
      if (code !== 0) return reject(new Error(`scrape exited ${code}`));
      const json = JSON.parse(out) as RunResult['result'] & { peakRssMb: number };
      resolve({ wallS, peakRssMb: json.peakRssMb, result: json });
    });
  });
}

/** The same pages and images fetched with plain undici at the same concurrency: no parsing, no storage. */
async function rawFetch(site: DemoSite, minId: number, maxId: number): Promise<number> {
  const agent = new Agent({ connections: 8 });
  let next = minId;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next <= maxId) {
      const id = next++;
      const pageUrl = kbbSource.listingUrl(site.url, id);
      const res = await request(pageUrl, { dispatcher: agent });
      const html = await res.body.text();
      if (res.statusCode !== 200) continue;
      const parsed = kbbSource.parse(html, pageUrl, id);
      if (parsed.kind !== 'listing') continue;
      for (const u of new Set(parsed.listing.imageUrls)) {
        const r = await request(u, { dispatcher: agent });
        await r.body.arrayBuffer();
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await agent.close();
  return (performance.now() - t0) / 1000;
}

export const scrapeBench: Benchmark = {
  name: 'scrape',
  description: 'scraper peak RSS over 10k vs 100k ids (flat memory), and per-listing overhead at concurrency 8 against plain fetching',
  async run() {
    const out: Record<string, unknown> = {};
    // Memory: listings without images, so the crawl, ledger and parse dominate.
    const pages = await startDemoSite({ images: 'none' });
    try {
      const small = await scrapeRun(pages, 1, 10_000);
      console.log(`10k ids:  ${small.wallS.toFixed(1)} s, ${(10_000 / small.wallS).toFixed(0)} ids/s, peak RSS ${small.peakRssMb.toFixed(0)} MB`);
      const large = await scrapeRun(pages, 1, 100_000);
      console.log(`100k ids: ${large.wallS.toFixed(1)} s, ${(100_000 / large.wallS).toFixed(0)} ids/s, peak RSS ${large.peakRssMb.toFixed(0)} MB`);
      console.log(`peak RSS 100k / 10k: ${(large.peakRssMb / small.peakRssMb).toFixed(2)}x`);
      Object.assign(out, { rss10kMb: small.peakRssMb, rss100kMb: large.peakRssMb, rssRatio: large.peakRssMb / small.peakRssMb, ids10kPerS: 10_000 / small.wallS, ids100kPerS: 100_000 / large.wallS });
    } finally {
      await pages.close();
    }
    // Overhead: one small cached JPEG for every image URL, so server cost is flat.
    const tiny = await startDemoSite({ images: 'tiny' });
    try {
      const ids = 3000;
      const rawS = await rawFetch(tiny, 20_001, 20_000 + ids);
      const run = await scrapeRun(tiny, 20_001, 20_000 + ids);
      const perListingMs = ((run.wallS - rawS) * 1000) / Math.max(1, run.result.ok);
      console.log(
        `${ids} ids (${run.result.ok} listings, ${run.result.imagesStored} images): plain fetch ${rawS.toFixed(1)} s, scrape ${run.wallS.toFixed(1)} s ` +
          `(${(run.wallS / rawS).toFixed(2)}x), overhead ${perListingMs.toFixed(1)} ms per listing (decode, resize, atomic write, SQLite, process start)`,
      );
      Object.assign(out, { overheadIds: ids, rawFetchS: rawS, scrapeS: run.wallS, ratioVsRawFetch: run.wallS / rawS, overheadMsPerListing: perListingMs, maxInFlight: run.result.maxInFlight });
    } finally {
      await tiny.close();
    }
    return out;
  },
};
