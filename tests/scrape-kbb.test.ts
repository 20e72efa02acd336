import { describe, expect, it } from 'vitest';
import { kbbSource, htmlToText } from '../src-main/engine/scrape/kbb.ts';
import { getListing, expectedImageUrls, listingPresence } from '../src-main/engine/demo-site/catalog.ts';
import { renderListingPage, renderGonePage, renderBlobLessPage, listingTitle } from '../src-main/engine/demo-site/pages.ts';

const BASE = 'http://127.0.0.1:8080';
const SEED = 42;
const pageUrl = (id: number) => kbbSource.listingUrl(BASE, id);

function blobPage(data: unknown, opts: { h1?: string | null; trailingSemicolon?: boolean; raw?: string } = {}): string {
  const json = opts.raw ?? JSON.stringify(data);
  const h1 = opts.h1 === null ? '' : `<h1> ${opts.h1 ?? 'Used 2019 Honda Civic'} </h1>`;
  return `<!DOCTYPE html><html><head><script>var x = 1;</script></head><body>${h1}<script>window.__BONNET_DATA__=${json}${opts.trailingSemicolon === false ? '' : ';'}</script></body></html>`;
}

function minimal(overrides: { vehicle?: unknown; inventory?: unknown; owners?: unknown } = {}): unknown {
  return {
    initialState: {
      birf: { pageData: { page: { vehicle: overrides.vehicle ?? { price: 10000, makeName: ['Honda'], modelName: ['Civic'], car_year: 2019, odometer: '41234' } } } },
      inventory: overrides.inventory ?? {},
      owners: overrides.owners ?? {},
    },
  };
}

describe('kbbSource', () => {
  it('builds the listing URL', () => {
    expect(kbbSource.name).toBe('kbb');
    expect(kbbSource.listingUrl('https://www.kbb.com', 660000001)).toBe('https://www.kbb.com/cars-for-sale/vehicledetails.xhtml?listingId=660000001');
    expect(kbbSource.listingUrl('https://www.kbb.com/', 5)).toBe('https://www.kbb.com/cars-for-sale/vehicledetails.xhtml?listingId=5');
  });

  it('parses every demo-site page back into the listing it was rendered from', () => {
    let hits = 0;
    for (let id = 1; id <= 300; id++) {
      const listing = getListing(SEED, id);
      if (!listing) {
        if (listingPresence(SEED, id) === 'missing-gone') expect(kbbSource.parse(renderGonePage(id), pageUrl(id), id)).toEqual({ kind: 'gone' });
        continue;
      }
      hits++;
      const r = kbbSource.parse(renderListingPage(listing, BASE), pageUrl(id), id);
      expect(r.kind).toBe('listing');
      if (r.kind !== 'listing') continue;
      const l = r.listing;
      expect(l).toMatchObject({
        listingId: id,
        url: pageUrl(id),
        title: listingTitle(listing),
        price: listing.price,
        make: listing.make,
        model: listing.model,
        year: listing.year,
        odometer: listing.odometer,
        engine: listing.engine,
        exteriorColor: listing.exteriorColor,
        interiorColor: listing.interiorColor,
        driveType: listing.driveGroup,
        fuelType: listing.fuelType,
        fuelEconomy: listing.fuelEconomy,
        vin: listing.vin,
        stockNumber: listing.stockNumber,
        owners: [{ id: listing.owner.id, name: listing.owner.name, website: listing.owner.website }],
      });
      expect(l.imageUrls).toEqual(expectedImageUrls(listing, BASE));
      expect(new Set(l.imageUrls).size).toBe(l.imageUrls.length);
      for (const u of l.imageUrls) expect(u).toMatch(/^http:\/\/127\.0\.0\.1:8080\/images\/[A-Za-z0-9-]+\.jpg(\?w=640)?$/);
      // Primary first.
      const primaryId = listing.images[listing.primary].imageId;
      expect(l.imageUrls[0]).toBe(`${BASE}/images/${primaryId}.jpg`);
      expect(l.description).toContain('\n');
      expect(l.description).toContain(' & ');
      expect(l.description).not.toMatch(/<|&amp;|&mdash;/);
      expect(l.description).toContain('\u2014');
    }
    expect(hits).toBeGreaterThan(100);
  });

  it('a page without <h1> is gone, even with a data blob', () => {
    expect(kbbSource.parse('<html><body><h2>This car is no longer available</h2></body></html>', pageUrl(1), 1)).toEqual({ kind: 'gone' });
    expect(kbbSource.parse(blobPage(minimal(), { h1: null }).replace('<body>', '<body><p>Sold</p>'), pageUrl(1), 1)).toEqual({ kind: 'gone' });
  });

  it('a page with nothing visible is invalid, never gone (an empty or script-only body)', () => {
    const invalid = { kind: 'invalid', reason: 'page without an <h1> and with an empty body' };
    for (const p of ['', '   \n', '<html><head><title>Cars</title></head><body> </body></html>', blobPage(minimal(), { h1: null })]) {
      expect(kbbSource.parse(p, pageUrl(1), 1), JSON.stringify(p.slice(0, 40))).toEqual(invalid);
    }
  });

  it('an <h1> page without the blob is invalid, never gone (captcha/maintenance)', () => {
    for (const p of [renderBlobLessPage('captcha'), renderBlobLessPage('maintenance'), '<h1>Hi</h1><script>window.other={}</script>']) {
      expect(kbbSource.parse(p, pageUrl(1), 1)).toEqual({ kind: 'invalid', reason: 'page without the data blob' });
    }
    // The prefix must start the script text; a mention elsewhere does not count.
    expect(kbbSource.parse('<h1>x</h1><script>var a = "window.__BONNET_DATA__={}";</script>', pageUrl(1), 1).kind).toBe('invalid');
  });

  it('malformed JSON is invalid with the JSON error', () => {
    const r = kbbSource.parse(blobPage(null, { raw: '{"initialState":{"birf":' }), pageUrl(1), 1);
    expect(r.kind).toBe('invalid');
    if (r.kind === 'invalid') expect(r.reason).toMatch(/^malformed data blob JSON: .*JSON/);
    const listing = getListing(SEED, [...Array(50).keys()].map((i) => i + 1).find((id) => getListing(SEED, id))!)!;
    const r2 = kbbSource.parse(renderListingPage(listing, BASE, { malformedJson: true }), pageUrl(listing.id), listing.id);
    expect(r2.kind).toBe('invalid');
  });

  it('a blob without the vehicle is invalid', () => {
    expect(kbbSource.parse(blobPage({ initialState: { birf: { pageData: { page: {} } } } }), pageUrl(1), 1)).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/vehicle/) });
    expect(kbbSource.parse(blobPage([1, 2]), pageUrl(1), 1)).toMatchObject({ kind: 'invalid' });
    expect(kbbSource.parse(blobPage(null, { raw: '"just a string"' }), pageUrl(1), 1)).toMatchObject({ kind: 'invalid' });
  });

  it('accepts the blob with or without a trailing semicolon', () => {
    for (const trailingSemicolon of [true, false]) {
      const r = kbbSource.parse(blobPage(minimal(), { trailingSemicolon }), pageUrl(7), 7);
      expect(r).toMatchObject({ kind: 'listing', listing: { title: 'Used 2019 Honda Civic', price: 10000, make: 'Honda', model: 'Civic', year: 2019, odometer: 41234 } });
    }
  });

  it('resolves relative and protocol-relative image URLs, puts the primary first and deduplicates', () => {
    const page = 'https://www.kbb.com/cars-for-sale/vehicledetails.xhtml?listingId=9';
    const inventory = {
      '9': {
        images: {
          sources: [
            { src: '//images.kbb.com/a.jpg' },
            { src: '/img/b.jpg' },
            { src: 'c.jpg' },
            { src: '../d.jpg' },
            { src: 'https://cdn.example/e.jpg' },
            { src: 'https://images.kbb.com/a.jpg' },
            { src: '' },
            { nope: 1 },
            { src: 'javascript:alert(1)' },
          ],
          primary: 2,
        },
      },
    };
    const r = kbbSource.parse(blobPage(minimal({ inventory })), page, 9);
    expect(r.kind).toBe('listing');
    if (r.kind !== 'listing') return;
    expect(r.listing.imageUrls).toEqual([
      'https://www.kbb.com/cars-for-sale/c.jpg',
      'https://images.kbb.com/a.jpg',
      'https://www.kbb.com/img/b.jpg',
      'https://www.kbb.com/d.jpg',
      'https://cdn.example/e.jpg',
    ]);
    // Out-of-range or missing primary keeps page order.
    const r2 = kbbSource.parse(blobPage(minimal({ inventory: { x: { images: { sources: [{ src: '/1.jpg' }, { src: '/2.jpg' }], primary: 7 } } } })), page, 9);
    expect(r2.kind === 'listing' && r2.listing.imageUrls).toEqual(['https://www.kbb.com/1.jpg', 'https://www.kbb.com/2.jpg']);
  });

  it('turns the description HTML into text: <br> is a newline, entities decoded', () => {
    const inventory = { '3': { additionalInfo: { vehicleDescription: 'One owner &amp; clean.<br>Line two&nbsp;here<br/>  <b>Bold</b>  &lt;tag&gt;<BR>\n last   line  ' } } };
    const r = kbbSource.parse(blobPage(minimal({ inventory })), pageUrl(3), 3);
    expect(r.kind === 'listing' && r.listing.description).toBe('One owner & clean.\nLine two here\nBold <tag>\nlast line');
    expect(htmlToText('<p>a</p><p>b</p>')).toBe('a\n\nb');
    expect(htmlToText('')).toBe('');
  });

  it('tolerates missing and odd-typed fields', () => {
    const vehicle = { price: 'call', makeName: 'Ford', modelName: [], car_year: '2015', odometer: '12,345 mi', color: ['Red'], vin: 17, stockNumber: null, fuelEconomy: [null, '20 City', 5] };
    const inventory = { '5': { engine: { size: 2 }, exteriorColorSimple: null, images: 'none', additionalInfo: null } };
    const owners = { o1: { name: 'Dealer', website: { href: 'https://d.example' } }, o2: 'junk', o3: { name: '', website: 'https://x.example' } };
    const r = kbbSource.parse(blobPage(minimal({ vehicle, inventory, owners }), { h1: '  Used \n  2015   Ford ' }), pageUrl(5), 5);
    expect(r).toEqual({
      kind: 'listing',
      listing: {
        listingId: 5,
        url: pageUrl(5),
        title: 'Used 2015 Ford',
        price: null,
        make: 'Ford',
        model: null,
        year: 2015,
        odometer: 12345,
        engine: null,
        exteriorColor: 'Red',
        interiorColor: null,
        driveType: null,
        fuelType: null,
        fuelEconomy: ['20 City', '5'],
        vin: '17',
        stockNumber: null,
        description: null,
        owners: [
          { id: 'o1', name: 'Dealer', website: 'https://d.example' },
          { id: 'o2', name: null, website: null },
          { id: 'o3', name: null, website: 'https://x.example' },
        ],
        imageUrls: [],
        // as the page had them: the store checks the parsed values against the value ranges
        rawValues: { price: 'call', year: '2015', odometer: '12,345 mi' },
      },
    });
    // No inventory, no owners at all.
    const bare = { initialState: { birf: { pageData: { page: { vehicle: {} } } } } };
    const r2 = kbbSource.parse(blobPage(bare), pageUrl(5), 5);
    expect(r2).toMatchObject({ kind: 'listing', listing: { price: null, make: null, owners: [], imageUrls: [], fuelEconomy: [] } });
  });
});
