import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Agent } from 'undici';
import type { JobContext } from '../jobs/types.ts';
import type { Db } from '../workspace/db.ts';
import { ImageStore } from '../workspace/image-store.ts';
import { checkValues, readValueRanges } from '../workspace/value-ranges.ts';
import { ImageRejected, ingestImage } from '../scrape/image-ingest.ts';
import { classifyAddress, createGuardedAgent, HostGuard } from '../scrape/host-guard.ts';
import { DEFAULT_FETCH_POLICY, fetchWithRetry, RateLimiter } from '../scrape/fetch-policy.ts';
import { readImageBytes } from '../predict/decode-file.ts';
import { importSource, type ImportParams } from './import-kind.ts';
import { readFolder, readManifest, type ImportRow, type ReadRows } from './manifest.ts';

// The job's row issues and result are plain data of the API contract (the Import panel shows them).
import { IMPORT_FIELDS, type ImportSummary, type RowIssue } from '../api/contract/import.ts';
export type { ImportSummary, RowIssue };

interface Checkpoint {
  /** Listings (in manifest order) already committed. */
  next: number;
  issues: RowIssue[];
}

/** Known listing fields; every other column is kept as listing metadata. */
const LISTING_FIELDS = new Set<string>(IMPORT_FIELDS);
const CHECKPOINT_EVERY_MS = 1000;

export interface Listing {
  key: string;
  rows: ImportRow[];
}

/**
 * Imports a manifest or a labelled folder: each row's image goes through the scrape's ingest
 * (downsampled, stored atomically by content hash, both dedup hashes) and rows sharing a
 * listing_id form one listing of source `import:<name>`. Idempotent (listings are keyed by source
 * and listing key, images by content), so a resumed or repeated import adds nothing twice; the
 * checkpoint is the number of listings committed, with the row issues found so far.
 */
export default async function importJob(ctx: JobContext<ImportParams>): Promise<ImportSummary> {
  const p = ctx.params;
  const source = importSource(p);
  const read = await readRows(p);
  const { listings, issues: readIssues } = groupRows(read, p);
  const cp = (ctx.checkpoint as Checkpoint | undefined) ?? { next: 0, issues: [] };
  const issues = [...cp.issues];
  if (ctx.resumed && cp.next > 0) ctx.log('info', `continuing after listing ${cp.next} of ${listings.length}`);
  else for (const i of readIssues) logIssue(ctx, i);
  const root = imagesRootOf(p);
  const fetcher = new UrlFetcher(p.allowPrivateHosts, ctx.signal);
  const writer = listingWriter(ctx.workspace.db, source, ctx.jobId);
  let lastSave = Date.now();
  let next = cp.next;
  try {
    for (; next < listings.length; next++) {
      if (ctx.signal.aborted) break;
      const l = listings[next]!;
      const found = await ingestListing(ctx, l, root, fetcher);
      for (const i of found.issues) {
        issues.push(i);
        logIssue(ctx, i);
      }
      const warnings = found.images.length ? writer.commit(l, found.images) : [];
      for (const w of warnings) {
        issues.push(w);
        logIssue(ctx, w);
      }
      ctx.progress({ step: 'import', done: next + 1, total: listings.length });
      if (Date.now() - lastSave > CHECKPOINT_EVERY_MS) {
        ctx.saveCheckpoint({ next: next + 1, issues } satisfies Checkpoint);
        lastSave = Date.now();
      }
    }
  } finally {
    ctx.saveCheckpoint({ next, issues } satisfies Checkpoint);
    await fetcher.close();
  }
  return summarize(ctx.workspace.db, ctx.jobId, source, read.rows.length + read.problems.length, [...readIssues, ...issues]);
}

async function readRows(p: ImportParams): Promise<ReadRows> {
  if (p.manifest) return readManifest(p.manifest, p.map);
  return readFolder(p.folder!, { pattern: p.pattern, classAs: p.classAs });
}

/** Rows grouped into listings (in order of first appearance), with the rows refused before any file is read. */
export function groupRows(read: ReadRows, p: Pick<ImportParams, 'map'>): { listings: Listing[]; issues: RowIssue[] } {
  const issues: RowIssue[] = read.problems.map((pr) => ({
    ...pr,
    category:
      pr.reason.startsWith('file name') || pr.reason.startsWith('not in a class')
        ? 'no labels'
        : pr.reason.startsWith('not an image')
          ? 'not an image'
          : 'unreadable row',
  }));
  const byKey = new Map<string, Listing>();
  const seen = new Map<string, ImportRow>();
  for (const row of read.rows) {
    const image = (row.fields.image ?? '').trim();
    if (!image) {
      issues.push({
        line: row.line,
        where: row.where,
        category: 'no image',
        reason: `the ${p.map.image ? `'${p.map.image}' (image)` : 'image'} column is empty`,
      });
      continue;
    }
    const key = (row.fields.listing_id ?? '').trim() || `image:${image}`;
    const dupKey = `${key}\0${image}`;
    const first = seen.get(dupKey);
    if (first) {
      issues.push({
        line: row.line,
        where: row.where,
        category: 'duplicate row',
        reason: `duplicate row: the same image and listing as ${first.where}`,
      });
      continue;
    }
    seen.set(dupKey, row);
    let l = byKey.get(key);
    if (!l) byKey.set(key, (l = { key, rows: [] }));
    l.rows.push(row);
  }
  return { listings: [...byKey.values()], issues };
}

function logIssue(ctx: JobContext<ImportParams>, i: RowIssue): void {
  ctx.log('warn', `${i.where}: ${i.reason}`);
}

interface IngestedImage {
  key: string;
  row: ImportRow;
}

/** Stores a listing's images (each row's file or URL); a row whose image cannot be used is an issue. */
async function ingestListing(
  ctx: JobContext<ImportParams>,
  l: Listing,
  root: string,
  fetcher: UrlFetcher,
): Promise<{ images: IngestedImage[]; issues: RowIssue[] }> {
  const { db, store } = ctx.workspace;
  const images: IngestedImage[] = [];
  const issues: RowIssue[] = [];
  const byUrl = db.prepare(`SELECT id FROM images WHERE url = ? AND state = 'stored'`).pluck();
  const insert = db.prepare(
    `INSERT INTO images (key, url, state, width, height, bytes, exact_hash, phash, thumb, hash_error, tries, updated_at, import_job)
     VALUES (?, ?, 'stored', ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
     ON CONFLICT (key) DO UPDATE SET state = 'stored', width = excluded.width, height = excluded.height, bytes = excluded.bytes,
       exact_hash = excluded.exact_hash, phash = excluded.phash, thumb = excluded.thumb, hash_error = excluded.hash_error,
       fail_reason = NULL, updated_at = excluded.updated_at`,
  );
  const seen = new Map<string, ImportRow>();
  for (const row of l.rows) {
    const ref = row.fields.image!.trim();
    const issue = (category: string, reason: string): void => void issues.push({ line: row.line, where: row.where, category, reason });
    let bytes: Buffer;
    const at = imageRef(root, ref);
    if (at.kind === 'url') {
      const got = await fetcher.get(ref);
      if ('refused' in got) {
        issue(got.category, got.refused);
        continue;
      }
      bytes = got.body;
    } else if (at.kind === 'unsupported') {
      issue('unsupported image', `image ${ref}: only file paths and http(s) URLs can be imported`);
      continue;
    } else {
      const file = at.file;
      if (!fs.existsSync(file)) {
        issue('missing file', missingFileReason(file));
        continue;
      }
      try {
        bytes = await readImageBytes(file);
      } catch (e) {
        issue('unreadable file', `${file}: ${(e as Error).message}`);
        continue;
      }
    }
    const key = ImageStore.keyFor(bytes);
    const dup = seen.get(key);
    if (dup) {
      issue('duplicate row', `duplicate image: the same picture as ${dup.where} in the same listing`);
      continue;
    }
    if (byUrl.get(`file:${key}`) === undefined) {
      try {
        const info = await ingestImage(store, key, bytes, ctx.params.resize);
        const h = info.hashes;
        const ok = h && 'exact' in h ? h : null;
        insert.run(
          key,
          `file:${key}`,
          info.width,
          info.height,
          info.bytes,
          ok?.exact ?? null,
          ok?.phash ?? null,
          ok?.thumb ?? null,
          h && 'error' in h ? h.error : null,
          Date.now(),
          ctx.jobId,
        );
      } catch (e) {
        if (e instanceof ImageRejected) {
          issue('not an image', `${ref}: ${e.message}`);
          continue;
        }
        throw e;
      }
    }
    seen.set(key, row);
    images.push({ key, row });
  }
  return { images, issues };
}

/** Where relative image paths resolve: the images root, else the manifest's folder, or the labelled folder. */
export function imagesRootOf(p: Pick<ImportParams, 'imagesRoot' | 'manifest' | 'folder'>): string {
  return p.imagesRoot ?? (p.manifest ? path.dirname(p.manifest) : p.folder!);
}

/** What a row's image cell names: an http(s) URL, another scheme (refused), or a file resolved against the images root. */
export function imageRef(root: string, ref: string): { kind: 'url' } | { kind: 'unsupported' } | { kind: 'file'; file: string } {
  if (/^https?:\/\//i.test(ref)) return { kind: 'url' };
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(ref)) return { kind: 'unsupported' };
  return { kind: 'file', file: path.resolve(root, ref) };
}

export function missingFileReason(file: string): string {
  return `missing file: ${file} does not exist`;
}

/** A listing's number: its key hashed into a safe integer (listings are unique by source and number). */
export function listingNumber(source: string, key: string): number {
  return parseInt(crypto.createHash('sha256').update(`${source}\0${key}`).digest('hex').slice(0, 12), 16);
}

/** A manifest's number: `$12,500`, `12 500` and `12_500` are 12500; empty or unreadable is null. */
export function parseNumber(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text
    .trim()
    .replace(/^\$/, '')
    .replace(/[,\s_]/g, '');
  if (t === '') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

export function parseInteger(text: string | undefined): number | null {
  const n = parseNumber(text);
  return n !== null && Number.isInteger(n) ? n : null;
}

/** The SQL of an import: one transaction per listing (the listing, its metadata and its images). */
function listingWriter(db: Db, source: string, jobId: number): { commit(l: Listing, images: IngestedImage[]): RowIssue[] } {
  const { ranges } = readValueRanges(db);
  const upsert = db.prepare(
    `INSERT INTO listings (source, listing_id, external_id, url, title, price, make, model, year, odometer, metadata, scraped_at, warnings, import_job)
     VALUES (@source, @listingId, @externalId, @url, @title, @price, @make, @model, @year, @odometer, @metadata, @at, @warnings, @job)
     ON CONFLICT (source, listing_id) DO UPDATE SET external_id = excluded.external_id, url = excluded.url, title = excluded.title,
       price = excluded.price, make = excluded.make, model = excluded.model, year = excluded.year, odometer = excluded.odometer,
       metadata = excluded.metadata, warnings = excluded.warnings
     RETURNING id`,
  );
  const imageId = db.prepare(`SELECT id FROM images WHERE key = ?`).pluck();
  const clear = db.prepare(`DELETE FROM listing_images WHERE listing_rowid = ?`);
  const link = db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, ?, ?)`);
  const commit = db.transaction((l: Listing, images: IngestedImage[]): RowIssue[] => {
    const first = l.rows[0]!;
    // A listing's values are its first row's; a later row of it may fill one the first left empty.
    const value = (f: string): string | undefined => l.rows.map((r) => r.fields[f]).find((v) => v !== undefined && v.trim() !== '');
    const raw = { price: value('price'), year: value('year'), odometer: value('odometer') };
    const { values, warnings } = checkValues(
      { price: parseNumber(raw.price), year: parseInteger(raw.year), odometer: parseInteger(raw.odometer) },
      raw,
      ranges,
    );
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(first.fields)) if (!LISTING_FIELDS.has(k) && v !== '') metadata[k] = v;
    const externalId = (first.fields.listing_id ?? '').trim() || null;
    const text = (f: string): string | null => value(f)?.trim() ?? null;
    const row = upsert.get({
      source,
      listingId: listingNumber(source, l.key),
      externalId,
      url: text('url') ?? `${source}#${externalId ?? first.fields.image!.trim()}`,
      title: text('title'),
      price: values.price,
      make: text('make'),
      model: text('model'),
      year: values.year,
      odometer: values.odometer,
      metadata: Object.keys(metadata).length ? JSON.stringify(metadata) : null,
      at: Date.now(),
      warnings: warnings.length ? JSON.stringify(warnings) : null,
      job: jobId,
    }) as { id: number };
    clear.run(row.id);
    images.forEach((im, pos) => link.run(row.id, pos, imageId.get(im.key) as number));
    const at = l.rows.find((r) => r.fields.price?.trim() || r.fields.year?.trim() || r.fields.odometer?.trim()) ?? first;
    return warnings.map((w) => ({ line: at.line, where: at.where, category: `${w.problem} ${w.field}`, reason: w.message }));
  });
  return { commit: (l, images) => commit(l, images) };
}

function summarize(db: Db, jobId: number, source: string, rowsRead: number, all: RowIssue[]): ImportSummary {
  const n = (sql: string, ...args: unknown[]): number =>
    db
      .prepare(sql)
      .pluck()
      .get(...args) as number;
  const byLine = (a: RowIssue, b: RowIssue): number => a.line - b.line || (a.where < b.where ? -1 : a.where > b.where ? 1 : 0);
  const warnings = all.filter((i) => i.category.startsWith('out of range') || i.category.startsWith('unparsable')).sort(byLine);
  const errors = all.filter((i) => !warnings.includes(i)).sort(byLine);
  const skippedByReason: Record<string, number> = {};
  for (const e of errors) skippedByReason[e.category] = (skippedByReason[e.category] ?? 0) + 1;
  return {
    source,
    rowsRead,
    rowsImported: rowsRead - errors.length,
    rowsSkipped: errors.length,
    skippedByReason,
    listings: n(`SELECT COUNT(*) FROM listings WHERE source = ?`, source),
    listingsAdded: n(`SELECT COUNT(*) FROM listings WHERE source = ? AND import_job = ?`, source, jobId),
    imagesAdded: n(`SELECT COUNT(*) FROM images WHERE import_job = ?`, jobId),
    images: n(
      `SELECT COUNT(DISTINCT li.image_id) FROM listing_images li JOIN listings l ON l.id = li.listing_rowid WHERE l.source = ?`,
      source,
    ),
    errors,
    warnings,
  };
}

/**
 * Fetches http(s) images with the scrape's fetch policy and host guard: only the URL's own host
 * (redirects elsewhere are refused), and never a loopback, link-local or private address unless
 * allowPrivateHosts (then the guard admits that host, as a scrape of a local site does).
 */
class UrlFetcher {
  private agents = new Map<string, { guard: HostGuard; agent: Agent }>();
  private limiter = new RateLimiter(0);
  constructor(
    private readonly allowPrivate: boolean,
    private readonly signal: AbortSignal,
  ) {}

  async get(url: string): Promise<{ body: Buffer } | { refused: string; category: string }> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return { refused: `image ${url} is not a valid URL`, category: 'bad URL' };
    }
    if (!this.allowPrivate) {
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const addrs = net.isIP(host)
        ? [host]
        : await dns.promises.lookup(host, { all: true }).then(
            (a) => a.map((x) => x.address),
            () => [],
          );
      if (addrs.length === 0) return { refused: `image ${url}: host ${host} does not resolve`, category: 'fetch failed' };
      const local = addrs.find((a) => classifyAddress(a) !== 'public');
      if (local)
        return {
          refused: `refused: image ${url} is on a ${classifyAddress(local)} address (${local}); pass --allow-private-hosts to import from it`,
          category: 'refused URL',
        };
    }
    let entry = this.agents.get(u.origin);
    if (!entry) {
      const guard = await HostGuard.create({ baseUrl: u.origin });
      entry = { guard, agent: createGuardedAgent(4, guard) };
      this.agents.set(u.origin, entry);
    }
    const { guard, agent } = entry;
    try {
      const r = await fetchWithRetry(
        url,
        { ...DEFAULT_FETCH_POLICY, retries: 2, baseDelayMs: 200 },
        {
          signal: this.signal,
          limiter: this.limiter,
          dispatcher: agent,
          accept404: true,
          guard: (x) => guard.checkUrl(x, 'page'),
        },
      );
      if (r.status !== 200) return { refused: `image ${url}: HTTP ${r.status}`, category: 'fetch failed' };
      return { body: r.body };
    } catch (e) {
      if (this.signal.aborted) throw e;
      return { refused: `image ${url}: ${(e as Error).message}`, category: 'fetch failed' };
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((e) => e.agent.close()));
  }
}
