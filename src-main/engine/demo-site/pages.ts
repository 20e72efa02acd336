/**
 * HTML of the demo site, in the KBB format that scrape/kbb.ts parses (docs/pipeline.md section 1).
 */
import { imageSrc, type DemoListing } from './catalog.ts';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The `window.__BONNET_DATA__` object of a listing. */
export function bonnetData(listing: DemoListing, baseUrl: string): unknown {
  const owners: Record<string, unknown> = {
    [listing.owner.id]: { name: listing.owner.name, website: { href: listing.owner.website } },
  };
  return {
    initialState: {
      birf: {
        pageData: {
          page: {
            vehicle: {
              listingId: listing.id,
              price: listing.price,
              makeName: [listing.make],
              modelName: [listing.model],
              trim: [listing.trim],
              car_year: listing.year,
              odometer: String(listing.odometer),
              color: [listing.exteriorColor],
              vin: listing.vin,
              stockNumber: listing.stockNumber,
              fuelEconomy: listing.fuelEconomy,
              bodyStyle: [listing.body],
            },
          },
        },
      },
      inventory: {
        [String(listing.id)]: {
          id: listing.id,
          engine: listing.engine,
          exteriorColorSimple: listing.exteriorColor,
          interiorColorSimple: listing.interiorColor,
          driveGroup: listing.driveGroup,
          fuelType: listing.fuelType,
          additionalInfo: { vehicleDescription: listing.description },
          images: {
            sources: listing.images.map((im) => ({ src: imageSrc(im, baseUrl), alt: `${listing.make} ${listing.model}` })),
            primary: listing.primary,
          },
          ownerId: listing.owner.id,
        },
      },
      owners,
    },
  };
}

export function listingTitle(listing: DemoListing): string {
  return `Used ${listing.year} ${listing.make} ${listing.model} ${listing.trim}`;
}

function shell(title: string, body: string): string {
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    `<script>window.dataLayer=window.dataLayer||[];</script></head>\n<body>\n${body}\n</body></html>\n`
  );
}

/**
 * A listing page. `malformedJson` truncates the blob's JSON (a broken page that a parser must
 * report as invalid, never as gone).
 */
export function renderListingPage(listing: DemoListing, baseUrl: string, opts: { malformedJson?: boolean } = {}): string {
  let json = JSON.stringify(bonnetData(listing, baseUrl)).replace(/</g, '\\u003c');
  if (opts.malformedJson) json = json.slice(0, Math.floor(json.length * 0.6)) + ',"oops":';
  const title = listingTitle(listing);
  const body =
    `<header><nav><a href="/">Demo Autos</a></nav></header>\n` +
    `<main><div class="vehicle-header">\n  <h1 class="heading-2">\n    ${esc(title)}\n  </h1>\n` +
    `  <div class="price">$${listing.price.toLocaleString('en-US')}</div></div>\n` +
    (listing.images.length
      ? `<section id="vehicle-photos"><img src="${esc(imageSrc(listing.images[listing.primary]!, baseUrl))}" alt=""></section>\n`
      : '') +
    `</main>\n` +
    `<script>window.__BONNET_DATA__=${json};</script>\n` +
    `<script src="/static/app.js" async></script>`;
  return shell(`${title} | Demo Autos`, body);
}

/** The "no longer available" page: no <h1> at all. */
export function renderGonePage(id: number): string {
  const body =
    `<header><nav><a href="/">Demo Autos</a></nav></header>\n` +
    `<main><div class="alert"><h2>This car is no longer available</h2>` +
    `<p>Listing ${id} has been sold or removed. <a href="/cars-for-sale/">See similar cars</a></p></div></main>\n` +
    `<script>window.__BONNET_DATA__={"initialState":{"birf":{"pageData":{"page":{}}}}};</script>`;
  return shell('Car no longer available | Demo Autos', body);
}

/** A 200 throttle/maintenance page that has an <h1> but no data blob (must not be taken for "gone"). */
export function renderBlobLessPage(kind: 'captcha' | 'maintenance'): string {
  const h = kind === 'captcha' ? 'Please verify you are a human' : 'We&#39;ll be right back';
  return shell('Demo Autos', `<main><h1>${h}</h1><p>Our site is busy. Please try again in a few moments.</p></main>`);
}

export function renderNotFoundPage(): string {
  return shell('Not found | Demo Autos', `<main><h2>Page not found</h2></main>`);
}
