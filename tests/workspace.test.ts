import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { openDb, latestVersion } from '../src-main/engine/workspace/db.ts';
import { migrations, type Migration } from '../src-main/engine/workspace/migrations/index.ts';
import { ImageStore } from '../src-main/engine/workspace/image-store.ts';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';

describe('database', () => {
  it('creates a fresh database at the latest schema with WAL and foreign keys on', () => {
    const dir = tmpDir();
    const ws = Workspace.open(path.join(dir, 'ws'), { create: true });
    expect(ws.db.pragma('user_version', { simple: true })).toBe(latestVersion());
    expect(latestVersion()).toBe(migrations.length);
    expect(ws.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(ws.db.pragma('foreign_keys', { simple: true })).toBe(1);
    // foreign keys are enforced
    expect(() => ws.db.prepare(`INSERT INTO job_log (job_id, at, level, message) VALUES (999, 0, 'info', 'x')`).run()).toThrow(/FOREIGN KEY/);
    ws.close();
  });

  it('applies pending migrations in order and in one transaction', () => {
    const file = path.join(tmpDir(), 'a.db');
    const list: Migration[] = [
      { version: 1, name: 'one', sql: 'CREATE TABLE a (x INTEGER);' },
      { version: 2, name: 'two', sql: 'CREATE TABLE b (y INTEGER);' },
    ];
    openDb(file, { list: list.slice(0, 1) }).close();
    const broken: Migration[] = [...list, { version: 3, name: 'bad', sql: 'CREATE TABLE c (z INTEGER); THIS IS NOT SQL;' }];
    expect(() => openDb(file, { list: broken })).toThrow(/cannot use database/);
    // the failed run left version 1 and no table b: all pending migrations are one transaction
    const raw = new Database(file);
    expect(raw.pragma('user_version', { simple: true })).toBe(1);
    expect(raw.prepare(`SELECT name FROM sqlite_master WHERE name IN ('b','c')`).all()).toEqual([]);
    raw.close();
    const db = openDb(file, { list });
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    db.close();
  });

  it('refuses a database written by a newer CarStudio and leaves it untouched', () => {
    const dir = path.join(tmpDir(), 'ws');
    Workspace.open(dir, { create: true }).close();
    const raw = new Database(Workspace.dbFile(dir));
    raw.pragma(`user_version = ${latestVersion() + 5}`);
    raw.close();
    const before = fs.readFileSync(Workspace.dbFile(dir));
    expect(() => Workspace.open(dir)).toThrow(/newer than this CarStudio understands/);
    expect(fs.readFileSync(Workspace.dbFile(dir)).equals(before)).toBe(true);
  });

  it('says clearly when a folder is not a workspace or cannot be written', () => {
    const dir = tmpDir();
    expect(() => Workspace.open(path.join(dir, 'missing'))).toThrow(/does not exist/);
    expect(() => Workspace.open(dir)).toThrow(/not a CarStudio workspace/);
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect(() => Workspace.open(path.join(dir, 'file'))).toThrow(/not a folder/);
    if (process.getuid?.() !== 0) {
      const ro = path.join(dir, 'ro');
      Workspace.open(ro, { create: true }).close();
      fs.chmodSync(ro, 0o555);
      expect(() => Workspace.open(ro)).toThrow(/not writable/);
      fs.chmodSync(ro, 0o755);
    }
  });
});

describe('image store', () => {
  it('shards files into 256 folders by the first two hex characters and writes atomically', async () => {
    const ws = Workspace.open(path.join(tmpDir(), 'ws'), { create: true });
    const jpeg = await makeJpeg(40, 30, 1);
    const keys = Array.from({ length: 50 }, (_, i) => ImageStore.keyFor(`u${i}`));
    for (const k of keys) await ws.store.write(k, jpeg);
    for (const k of keys) {
      const p = ws.store.pathFor(k);
      expect(path.basename(path.dirname(p))).toBe(k.slice(0, 2));
      expect(fs.readFileSync(p).equals(jpeg)).toBe(true);
    }
    const shardDirs = fs.readdirSync(ws.store.root).filter((d) => d !== 'tmp');
    expect(shardDirs.every((d) => /^[0-9a-f]{2}$/.test(d))).toBe(true);
    expect(ws.store.countTemporaries()).toBe(0);
    expect(() => ws.store.pathFor('../../etc/passwd')).toThrow(/invalid image key/);
    ws.close();
  });

  it('sweeps temporaries of dead writers on open and keeps those of live ones', () => {
    const dir = path.join(tmpDir(), 'ws');
    const ws = Workspace.open(dir, { create: true });
    // a writer that died mid-write: a real process that has exited
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    const key = ImageStore.keyFor('x');
    fs.writeFileSync(path.join(ws.store.tmpDir, `${key}.${dead}.abcd1234.tmp`), 'partial');
    fs.writeFileSync(path.join(ws.store.tmpDir, `${key}.${process.pid}.abcd1234.tmp`), 'in flight');
    ws.close();
    const again = Workspace.open(dir);
    expect(fs.readdirSync(again.store.tmpDir)).toEqual([`${key}.${process.pid}.abcd1234.tmp`]);
    again.close();
  });
});
