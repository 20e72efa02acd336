import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { injectedEnospc } from '../util/disk-full.ts';
import { isAlive } from '../util/process-alive.ts';

const KEY_RE = /^[0-9a-f]{64}$/;

/**
 * Image files named by a hex key, sharded into 256 sub-folders by the key's first two hex
 * characters (a flat folder of millions of files breaks ext4's directory index). Writes go to a
 * temporary file in tmp/ and are renamed into place, so a reader never sees a partial file.
 * Temporary names carry the writer's pid, so a sweep removes only what dead writers left.
 */
export class ImageStore {
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.tmpDir = path.join(root, 'tmp');
  }

  static keyFor(text: string | Buffer): string {
    return crypto.createHash('sha256').update(text).digest('hex');
  }

  ensure(): void {
    fs.mkdirSync(this.tmpDir, { recursive: true });
  }

  pathFor(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`invalid image key ${JSON.stringify(key)}`);
    return path.join(this.root, key.slice(0, 2), `${key}.jpg`);
  }

  has(key: string): boolean {
    return fs.existsSync(this.pathFor(key));
  }

  read(key: string): Buffer {
    return fs.readFileSync(this.pathFor(key));
  }

  /** Writes bytes under key atomically; returns the final path. */
  async write(key: string, bytes: Buffer): Promise<string> {
    const final = this.pathFor(key);
    const tmp = path.join(this.tmpDir, `${key}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
    await fs.promises.mkdir(path.dirname(final), { recursive: true });
    await fs.promises.mkdir(this.tmpDir, { recursive: true });
    const fh = await fs.promises.open(tmp, 'wx');
    try {
      try {
        await fh.writeFile(bytes);
        injectedEnospc(tmp);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, final);
    } catch (e) {
      // Deleted at once (a full disk must not fill up further with half-written temporaries).
      await fs.promises.rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
    return final;
  }

  remove(key: string): void {
    fs.rmSync(this.pathFor(key), { force: true });
  }

  /** Deletes temporaries whose writer process is gone. Returns how many were removed. */
  sweepTemporaries(): number {
    let removed = 0;
    let names: string[];
    try {
      names = fs.readdirSync(this.tmpDir);
    } catch {
      return 0;
    }
    for (const name of names) {
      const pid = Number(name.split('.')[1]);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) continue;
      fs.rmSync(path.join(this.tmpDir, name), { force: true });
      removed++;
    }
    return removed;
  }

  /** Number of temporaries present (any writer). */
  countTemporaries(): number {
    try {
      return fs.readdirSync(this.tmpDir).length;
    } catch {
      return 0;
    }
  }
}

