import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Workspace } from '../../src-main/engine/workspace/workspace.ts';
import { ImageStore } from '../../src-main/engine/workspace/image-store.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const SHARED_DATA = path.resolve(ROOT, '../shared/data');

export function tmpDir(prefix = 'carstudio-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function tmpWorkspace(): Workspace {
  return Workspace.open(path.join(tmpDir(), 'ws'), { create: true });
}

/** A real JPEG made by sharp: a colour field with a few shapes so that images differ. */
export async function makeJpeg(width: number, height: number, seed: number, quality = 85): Promise<Buffer> {
  const hue = (seed * 47) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="hsl(${hue},60%,55%)"/>
    <circle cx="${(seed * 31) % width}" cy="${(seed * 17) % height}" r="${Math.max(4, Math.min(width, height) / 4)}" fill="hsl(${(hue + 150) % 360},70%,40%)"/>
    <rect x="${(seed * 13) % (width / 2)}" y="${height / 2}" width="${width / 3}" height="${height / 5}" fill="#222"/>
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality }).toBuffer();
}

/** Stores n generated JPEGs as if scraped, recording them in the images table. */
export async function seedStoredImages(ws: Workspace, n: number): Promise<string[]> {
  const keys: string[] = [];
  const insert = ws.db.prepare(
    `INSERT INTO images (key, url, state, width, height, bytes, updated_at) VALUES (?, ?, 'stored', ?, ?, ?, ?)`,
  );
  const rows: Array<[string, string, number, number, number]> = [];
  for (let i = 0; i < n; i++) {
    const url = `http://example.test/img/${i}.jpg`;
    const key = ImageStore.keyFor(url);
    const w = 64 + (i % 5) * 8;
    const buf = await makeJpeg(w, 48, i);
    await ws.store.write(key, buf);
    rows.push([key, url, w, 48, buf.length]);
    keys.push(key);
  }
  ws.db.transaction(() => rows.forEach((r) => insert.run(...r, Date.now())))();
  return keys;
}

export function hasSharedData(sub = ''): boolean {
  return fs.existsSync(path.join(SHARED_DATA, sub));
}
