import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import type { Benchmark } from './index.ts';

export const storeBench: Benchmark = {
  name: 'store',
  description: 'atomic sharded image writes (temp + fsync + rename) against plain writeFile into one folder',
  async run() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carstudio-bench-'));
    const ws = Workspace.open(path.join(dir, 'ws'), { create: true });
    const jpeg = await sharp({ create: { width: 256, height: 192, channels: 3, background: '#468' } }).jpeg().toBuffer();
    const n = 2000;
    const flat = path.join(dir, 'flat');
    fs.mkdirSync(flat);
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      const f = path.join(flat, `${ImageStore.keyFor(String(i))}.jpg`);
      const fh = await fs.promises.open(f, 'w');
      await fh.writeFile(jpeg);
      await fh.sync();
      await fh.close();
    }
    const refS = (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = 0; i < n; i++) await ws.store.write(ImageStore.keyFor(`s${i}`), jpeg);
    const storeS = (performance.now() - t) / 1000;
    ws.close();
    fs.rmSync(dir, { recursive: true, force: true });
    const r = { images: n, reference_per_s: n / refS, store_per_s: n / storeS, ratio_vs_reference: refS / storeS };
    console.log(`plain writeFile+fsync: ${r.reference_per_s.toFixed(0)}/s; atomic sharded store: ${r.store_per_s.toFixed(0)}/s (${r.ratio_vs_reference.toFixed(2)}x)`);
    return r;
  },
};
