/**
 * Source adapters: how a listing site addresses and encodes its listings.
 *
 * An adapter is pure: it builds the URL of a listing id and turns a fetched page into a
 * {@link ParseResult}. Fetching, retrying and storage live elsewhere (fetch-policy.ts, the scrape job).
 */

/** One listing as scraped from its page. Missing or oddly typed fields are `null` (or empty arrays). */
export interface ScrapedListing {
  listingId: number;
  url: string;
  title: string | null;
  price: number | null;
  make: string | null;
  model: string | null;
  year: number | null;
  odometer: number | null;
  engine: string | null;
  exteriorColor: string | null;
  interiorColor: string | null;
  driveType: string | null;
  fuelType: string | null;
  fuelEconomy: string[];
  vin: string | null;
  stockNumber: string | null;
  description: string | null;
  owners: Array<{ id: string; name: string | null; website: string | null }>;
  /** Absolute URLs, primary image first, deduplicated keeping the first occurrence. */
  imageUrls: string[];
  /**
   * Price, year and odometer as the page had them, before parsing: the store checks the parsed
   * values against the workspace's value ranges and names these in its warnings (a value present
   * here that parsed to null was unparsable). See workspace/value-ranges.ts.
   */
  rawValues?: { price?: unknown; year?: unknown; odometer?: unknown };
}

/**
 * - `listing`: a live listing.
 * - `gone`: the page positively says the listing no longer exists (a miss, recorded as such).
 * - `invalid`: a page we cannot trust (throttle/captcha page, missing or malformed data): never a miss.
 */
export type ParseResult =
  | { kind: 'listing'; listing: ScrapedListing }
  | { kind: 'gone' }
  | { kind: 'invalid'; reason: string };

export interface SourceAdapter {
  name: string;
  /** The page URL of listing `id` on the site rooted at `baseUrl` (no trailing slash needed). */
  listingUrl(baseUrl: string, id: number): string;
  /** Parse a fetched page (HTTP 200). `pageUrl` is the final URL, used to resolve relative image URLs. */
  parse(html: string, pageUrl: string, id: number): ParseResult;
}
