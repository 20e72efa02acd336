import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isImageName } from '../../predict/decode-file.ts';
import type { FsFolder, FsResults } from '../contract/fs.ts';
import type { Handlers } from './types.ts';

/** At most this many subfolders in one listing (sorted by name; `truncated` says when there were more). */
const MAX_FOLDERS = 1000;

export const fsHandlers: Handlers<keyof FsResults> = {
  // names of folders and counts of image files only; the path policy says where (api/path-policy.ts)
  'fs.list': (p, e) => {
    const home = os.homedir();
    const dir = e.paths.browsable(p.path ?? home, home);
    // a symlink is listed only where browsing may follow it (not out of the home folder)
    const subfolders = listSubfolders(dir.real).filter((name) => !isLink(path.join(dir.real, name)) || allowed(() => e.paths.browsable(path.join(dir.given, name), home)));
    const folders: FsFolder[] = subfolders.slice(0, MAX_FOLDERS).map((name) => ({ name, path: path.join(dir.given, name), images: countImages(path.join(dir.real, name)) }));
    return {
      path: dir.given,
      parent: parentOf(dir.given, (d) => allowed(() => e.paths.browsable(d, home))),
      folders,
      truncated: subfolders.length > MAX_FOLDERS,
      images: countImages(dir.real) ?? 0,
      home,
      roots: e.paths.browseRoots(home),
    };
  },
};

/** The visible subfolders of a folder (symlinks to folders included), sorted by name. */
function listSubfolders(real: string): string[] {
  const names: string[] = [];
  for (const d of fs.readdirSync(real, { withFileTypes: true })) {
    if (d.name.startsWith('.')) continue;
    if (d.isDirectory() || (d.isSymbolicLink() && isDir(path.join(real, d.name)))) names.push(d.name);
  }
  return names.sort((a, b) => a.localeCompare(b));
}

/** Image files (by extension) directly in a folder; null when it cannot be read. */
function countImages(real: string): number | null {
  try {
    return fs.readdirSync(real, { withFileTypes: true }).filter((d) => (d.isFile() || d.isSymbolicLink()) && isImageName(d.name)).length;
  } catch {
    return null;
  }
}

/** The folder above, when it may be browsed too; null at the top. */
function parentOf(given: string, browsable: (p: string) => boolean): string | null {
  const up = path.dirname(given);
  return up !== given && browsable(up) ? up : null;
}

/** True when the check passes (the path policy throws its refusal otherwise). */
function allowed(check: () => unknown): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
