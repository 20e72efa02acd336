/**
 * The KBB ("Bonnet") listing-page format, as described in docs/pipeline.md section 1.
 *
 * Parsing uses htmlparser2's DOM; the only string matching is on the text of one <script>.
 */
import { parseDocument, DomUtils } from 'htmlparser2';
import type { ParseResult, ScrapedListing, SourceAdapter } from './source.ts';

type DomDocument = ReturnType<typeof parseDocument>;
type DomNode = DomDocument['children'][number];

const BLOB_PREFIX = 'window.__BONNET_DATA__=';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  if (typeof v === 'string') {
    const t = v.trim();
    return t === '' ? null : t;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

function firstStr(v: unknown): string | null {
  if (Array.isArray(v)) {
    for (const x of v) {
      const s = str(x);
      if (s !== null) return s;
    }
    return null;
  }
  return str(v);
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string') {
    const t = v.trim().replace(/[$,\s]/g, '');
    if (t === '' || !/^-?\d+(\.\d+)?$/.test(t)) return null;
    const n = Number(t);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

function intOrNull(v: unknown): number | null {
  const n = num(v);
  return n !== null && Number.isInteger(n) ? n : null;
}

/**
 * Odometer: a string of digits (tolerating separators like "12,345" or "12,345 mi") or a number
 * (a negative one is kept: the value-range check stores it as NULL with a warning).
 */
function odometerOf(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.round(v) : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d[\d,. ]*)/.exec(v);
  if (!m) return null;
  const digits = m[1].replace(/[^\d]/g, '');
  if (digits === '') return null;
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : null;
}

function findElements(nodes: DomNode[], name: string): DomNode[] {
  return DomUtils.findAll((el) => el.name === name, nodes) as DomNode[];
}

function collapse(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

const BLOCK_TAGS = new Set(['p', 'div', 'li', 'ul', 'ol', 'tr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'section', 'article', 'table']);

/** HTML fragment to plain text: `<br>` and block boundaries become newlines, entities decoded. */
export function htmlToText(html: string): string {
  const doc = parseDocument(html);
  let out = '';
  const walk = (nodes: DomNode[]): void => {
    for (const node of nodes) {
      if (DomUtils.isText(node)) {
        out += node.data.replace(/\s+/g, ' ');
      } else if (DomUtils.isTag(node)) {
        const name = node.name.toLowerCase();
        if (name === 'br') {
          out += '\n';
          continue;
        }
        if (name === 'script' || name === 'style') continue;
        const block = BLOCK_TAGS.has(name);
        if (block) out += '\n';
        walk(node.children as DomNode[]);
        if (block) out += '\n';
      }
    }
  };
  walk(doc.children as DomNode[]);
  const lines = out.split('\n').map((l) => l.replace(/ {2,}/g, ' ').trim());
  // Collapse runs of blank lines (keep at most one) and trim blank lines at both ends.
  const kept: string[] = [];
  for (const l of lines) {
    if (l === '' && (kept.length === 0 || kept[kept.length - 1] === '')) continue;
    kept.push(l);
  }
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  return kept.join('\n');
}

function resolveUrl(src: string, base: string): string | null {
  try {
    const u = new URL(src.trim(), base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return u.href;
  } catch {
    return null;
  }
}

function imagesOf(images: unknown, pageUrl: string): string[] {
  if (!isRecord(images)) return [];
  const sources = Array.isArray(images.sources) ? images.sources : [];
  const srcs: Array<string | null> = sources.map((s) => {
    if (typeof s === 'string') return s;
    if (isRecord(s) && typeof s.src === 'string') return s.src;
    return null;
  });
  const primary = intOrNull(images.primary);
  const order: number[] = [];
  if (primary !== null && primary >= 0 && primary < srcs.length) order.push(primary);
  for (let i = 0; i < srcs.length; i++) if (i !== primary) order.push(i);
  const seen = new Set<string>();
  const urls: string[] = [];
  for (const i of order) {
    const s = srcs[i];
    if (s === null || s.trim() === '') continue;
    const abs = resolveUrl(s, pageUrl);
    if (abs === null || seen.has(abs)) continue;
    seen.add(abs);
    urls.push(abs);
  }
  return urls;
}

function ownersOf(owners: unknown): ScrapedListing['owners'] {
  if (!isRecord(owners)) return [];
  const out: ScrapedListing['owners'] = [];
  for (const [id, o] of Object.entries(owners)) {
    if (!isRecord(o)) {
      out.push({ id, name: null, website: null });
      continue;
    }
    const website = isRecord(o.website) ? str(o.website.href) : str(o.website);
    out.push({ id, name: str(o.name), website });
  }
  return out;
}

/** Find the data-blob script text (after the prefix), or null when the page has none. */
function findBlob(doc: DomDocument): string | null {
  for (const script of findElements(doc.children as DomNode[], 'script')) {
    const text = DomUtils.textContent(script).trim();
    if (text.startsWith(BLOB_PREFIX)) {
      let rest = text.slice(BLOB_PREFIX.length).trim();
      while (rest.endsWith(';')) rest = rest.slice(0, -1).trimEnd();
      return rest;
    }
  }
  return null;
}

/** True when the page's <body> (the whole document when it has none) has text outside scripts and styles. */
function hasVisibleText(doc: DomDocument): boolean {
  const body = findElements(doc.children as DomNode[], 'body')[0];
  const roots = body ? (DomUtils.getChildren(body) as DomNode[]) : (doc.children as DomNode[]).filter((n) => !(DomUtils.isTag(n) && n.name === 'head'));
  const visible = (nodes: DomNode[]): boolean =>
    nodes.some((n) => (DomUtils.isText(n) ? n.data.trim() !== '' : DomUtils.isTag(n) && !['script', 'style', 'head', 'title'].includes(n.name) && visible(n.children as DomNode[])));
  return visible(roots);
}

export function parseKbbPage(html: string, pageUrl: string, id: number): ParseResult {
  const doc = parseDocument(html);
  const h1s = findElements(doc.children as DomNode[], 'h1');
  // The "no longer available" signature: an HTML page with visible content and no <h1>. A page
  // with nothing visible (an empty or script-only body) is broken, not a miss.
  if (h1s.length === 0) return hasVisibleText(doc) ? { kind: 'gone' } : { kind: 'invalid', reason: 'page without an <h1> and with an empty body' };
  const title = collapse(DomUtils.textContent(h1s[0])) || null;

  const blobText = findBlob(doc);
  if (blobText === null) return { kind: 'invalid', reason: 'page without the data blob' };
  let blob: unknown;
  try {
    blob = JSON.parse(blobText);
  } catch (e) {
    return { kind: 'invalid', reason: `malformed data blob JSON: ${(e as Error).message}` };
  }
  const initialState = isRecord(blob) ? blob.initialState : undefined;
  if (!isRecord(initialState)) return { kind: 'invalid', reason: 'data blob without initialState' };
  const birf = isRecord(initialState.birf) ? initialState.birf : undefined;
  const pageData = birf && isRecord(birf.pageData) ? birf.pageData : undefined;
  const page = pageData && isRecord(pageData.page) ? pageData.page : undefined;
  const vehicle = page && isRecord(page.vehicle) ? page.vehicle : undefined;
  if (!vehicle) return { kind: 'invalid', reason: 'data blob without initialState.birf.pageData.page.vehicle' };

  let inv: Record<string, unknown> = {};
  if (isRecord(initialState.inventory)) {
    const entries = initialState.inventory;
    const own = entries[String(id)];
    if (isRecord(own)) inv = own;
    else {
      const first = Object.values(entries).find(isRecord);
      if (first) inv = first;
    }
  }
  const additional = isRecord(inv.additionalInfo) ? inv.additionalInfo : {};
  const descHtml = typeof additional.vehicleDescription === 'string' ? additional.vehicleDescription : null;
  const description = descHtml !== null ? htmlToText(descHtml) || null : null;

  const fuelEconomy = Array.isArray(vehicle.fuelEconomy)
    ? vehicle.fuelEconomy.map(str).filter((s): s is string => s !== null)
    : typeof vehicle.fuelEconomy === 'string' && vehicle.fuelEconomy.trim() !== ''
      ? [vehicle.fuelEconomy.trim()]
      : [];

  const listing: ScrapedListing = {
    listingId: id,
    url: pageUrl,
    title,
    price: num(vehicle.price),
    make: firstStr(vehicle.makeName),
    model: firstStr(vehicle.modelName),
    year: intOrNull(vehicle.car_year),
    odometer: odometerOf(vehicle.odometer),
    engine: str(inv.engine),
    exteriorColor: str(inv.exteriorColorSimple) ?? firstStr(vehicle.color),
    interiorColor: str(inv.interiorColorSimple),
    driveType: str(inv.driveGroup),
    fuelType: str(inv.fuelType),
    fuelEconomy,
    vin: str(vehicle.vin),
    stockNumber: str(vehicle.stockNumber),
    description,
    owners: ownersOf(initialState.owners),
    imageUrls: imagesOf(inv.images, pageUrl),
    rawValues: { price: vehicle.price, year: vehicle.car_year, odometer: vehicle.odometer },
  };
  return { kind: 'listing', listing };
}

export const kbbSource: SourceAdapter = {
  name: 'kbb',
  listingUrl(baseUrl: string, id: number): string {
    return `${baseUrl.replace(/\/+$/, '')}/cars-for-sale/vehicledetails.xhtml?listingId=${id}`;
  },
  parse: parseKbbPage,
};
