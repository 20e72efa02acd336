import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeJpeg, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';

interface Listing {
  path: string;
  parent: string | null;
  folders: { name: string; path: string; images: number | null }[];
  truncated: boolean;
  images: number;
  home: string;
  roots: { label: string; path: string }[];
}

/**
 * The folder browser (`fs.list`) of a real `carstudio serve` whose home folder is a temporary
 * one: folder names and image counts below the home folder and the readable folders, nothing of
 * a file, no hidden folders, no way out by a symlink, and the reasons a typed folder cannot be used.
 */
describe('fs.list: the folder browser', () => {
  let served: Served;
  let home: string;
  let outside: string;
  let allowed: string;
  const list = (p?: string) => api(served, 'fs.list', p === undefined ? {} : { path: p }) as Promise<Listing>;
  const failure = (p: string) => list(p).then(
    () => 'listed',
    (e: Error) => e.message,
  );

  beforeAll(async () => {
    const root = fs.realpathSync(tmpDir('carstudio-fs-browse-'));
    home = path.join(root, 'home');
    const cars = path.join(home, 'Pictures', 'cars');
    fs.mkdirSync(path.join(cars, 'older'), { recursive: true });
    fs.mkdirSync(path.join(home, 'Documents'), { recursive: true });
    fs.mkdirSync(path.join(home, '.ssh', 'keys'), { recursive: true });
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(cars, `car-${i}.jpg`), await makeJpeg(64, 48, i));
    fs.writeFileSync(path.join(cars, 'older', 'old.jpg'), await makeJpeg(64, 48, 9));
    fs.writeFileSync(path.join(cars, 'notes.txt'), 'secret notes');
    outside = path.join(root, 'outside');
    fs.mkdirSync(path.join(outside, 'photos'), { recursive: true });
    fs.symlinkSync(outside, path.join(home, 'link-out'));
    fs.symlinkSync(cars, path.join(home, 'cars-link'));
    allowed = path.join(root, 'allowed');
    fs.mkdirSync(path.join(allowed, 'set-a'), { recursive: true });
    served = await startServe(['--workspace', path.join(root, 'ws'), '--create', '--allow-path', allowed], { HOME: home, USERPROFILE: home });
  }, 60_000);
  afterAll(async () => {
    await served?.stop('SIGKILL');
  });

  it('starts at the home folder and lists the browse roots', async () => {
    const l = await list();
    expect(l.path).toBe(home);
    expect(l.home).toBe(home);
    expect(l.parent).toBeNull();
    expect(l.folders.map((f) => f.name)).toEqual(['cars-link', 'Documents', 'Pictures']);
    expect(l.roots.map((r) => r.label)).toEqual(['home', 'workspace', 'allowed']);
    expect(l.roots.find((r) => r.label === 'allowed')!.path).toBe(allowed);
  });

  it('expands ~ and counts image files without naming a file', async () => {
    const pics = await list('~/Pictures');
    expect(pics.path).toBe(path.join(home, 'Pictures'));
    expect(pics.parent).toBe(home);
    expect(pics.folders).toEqual([{ name: 'cars', path: path.join(home, 'Pictures', 'cars'), images: 3 }]);
    const cars = await list('~/Pictures/cars');
    expect(cars.images).toBe(3);
    expect(cars.folders).toEqual([{ name: 'older', path: path.join(home, 'Pictures', 'cars', 'older'), images: 1 }]);
    const text = JSON.stringify(cars);
    expect(text).not.toContain('car-0.jpg');
    expect(text).not.toContain('notes');
    // a symlink inside the home folder that stays there is followed
    expect((await list(path.join(home, 'cars-link'))).images).toBe(3);
  });

  it('says why a typed folder cannot be used: missing, or a file', async () => {
    expect(await failure('~/Pictures/nope')).toBe(`fs.list: ${path.join(home, 'Pictures', 'nope')}: folder does not exist`);
    expect(await failure('~/Pictures/cars/car-0.jpg')).toMatch(/car-0\.jpg: not a folder/);
  });

  it('refuses hidden folders, symlinks out of the home folder and folders elsewhere, missing or not, alike', async () => {
    const refusal = (p: string) => `fs.list: ${p}: no such file in the folders this studio may read`;
    expect(await failure('~/.ssh')).toContain(refusal(path.join(home, '.ssh')));
    expect(await failure('~/.ssh/keys')).toContain(refusal(path.join(home, '.ssh', 'keys')));
    expect(await failure(path.join(home, 'link-out'))).toContain(refusal(path.join(home, 'link-out')));
    expect(await failure(outside)).toContain(refusal(outside));
    expect(await failure(path.join(outside, 'nothing-here'))).toContain(refusal(path.join(outside, 'nothing-here')));
    expect(await failure('/etc')).toContain(refusal('/etc'));
    // the symlink out is not even listed
    expect((await list('~')).folders.map((f) => f.name)).not.toContain('link-out');
  });

  it('browses an --allow-path folder, up to its top', async () => {
    const l = await list(allowed);
    expect(l.folders.map((f) => f.name)).toEqual(['set-a']);
    expect(l.parent).toBeNull();
    expect((await list(path.join(allowed, 'set-a'))).parent).toBe(allowed);
  });
});
