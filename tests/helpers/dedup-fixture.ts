import sharp from 'sharp';
import { ImageStore } from '../../src-main/engine/workspace/image-store.ts';
import { tmpWorkspace } from './workspace.ts';

/** A smooth synthetic "photo": gradients plus blobs, distinct per seed (pHash far apart). */
export async function photo(seed: number, width = 320, height = 240): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  const r = (k: number) => (((Math.sin(seed * 12.9898 + k * 78.233) * 43758.5453) % 1) + 1) % 1;
  const blobs = Array.from({ length: 5 }, (_, k) => ({ x: r(k) * width, y: r(k + 10) * height, s: 20 + r(k + 20) * 60, c: [r(k + 30), r(k + 40), r(k + 50)] }));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        let v = 60 + 120 * r(ch + 60) * (x / width) + 60 * r(ch + 70) * (y / height);
        for (const b of blobs) v += 120 * b.c[ch]! * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.s * b.s));
        raw[p + ch] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
}

export interface DedupFixture {
  dir: string;
  ids: Record<string, number>;
}

/**
 * Listings L1..L6 with:
 *  A  the same photo in L1 and L2 (two URLs): exact duplicate across listings
 *  B  the same photo twice in L3: exact duplicate within one listing
 *  C  a photo in L4 and a resized, re-encoded copy in L5: near duplicate across listings
 *  X  a stored file that is not a JPEG (in L6)
 *  plus 6 distinct photos.
 */
export async function dedupFixture(): Promise<DedupFixture> {
  const ws = tmpWorkspace();
  const db = ws.db;
  const now = Date.now();
  const insL = db.prepare(`INSERT INTO listings (source, listing_id, url, title, scraped_at) VALUES ('test', ?, ?, ?, ?) RETURNING id`).pluck();
  const insI = db.prepare(`INSERT INTO images (key, url, state, width, height, bytes, updated_at) VALUES (?, ?, 'stored', ?, ?, ?, ?) RETURNING id`).pluck();
  const link = db.prepare(`INSERT INTO listing_images (listing_rowid, position, image_id) VALUES (?, ?, ?)`);
  const L: number[] = [];
  for (let i = 1; i <= 6; i++) L.push(insL.get(i, `http://x.test/${i}`, `Car ${i}`, now) as number);
  const pos = new Map<number, number>();
  const ids: Record<string, number> = {};
  const add = async (name: string, listing: number, bytes: Buffer) => {
    const url = `http://x.test/img/${name}.jpg`;
    const key = ImageStore.keyFor(url);
    await ws.store.write(key, bytes);
    const meta = await sharp(bytes).metadata().catch(() => ({ width: 1, height: 1 }));
    const id = insI.get(key, url, meta.width ?? 1, meta.height ?? 1, bytes.length, now) as number;
    const p = pos.get(listing) ?? 0;
    pos.set(listing, p + 1);
    link.run(listing, p, id);
    ids[name] = id;
  };
  const a = await photo(101);
  const b = await photo(202);
  const c = await photo(303);
  await add('a1', L[0]!, a);
  await add('a2', L[1]!, a);
  await add('b1', L[2]!, b);
  await add('b2', L[2]!, b);
  await add('c1', L[3]!, c);
  await add('c2', L[4]!, await sharp(c).resize(256, 192).jpeg({ quality: 60 }).toBuffer());
  await add('x', L[5]!, Buffer.from('this is not a jpeg, it is a text file'));
  for (let i = 0; i < 6; i++) await add(`d${i}`, L[i]!, await photo(1000 + i * 7));
  const dir = ws.dir;
  ws.close();
  return { dir, ids };
}

