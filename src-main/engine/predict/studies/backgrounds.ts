// The background folder of a swap study, listed where the path policy is at hand (the API
// handler, the CLI) before the work goes to the prediction worker: light (no sharp, no model).
import fs from 'node:fs';
import path from 'node:path';
import { SWAP_MAX_BACKGROUNDS } from '../../api/contract/studies.ts';
import type { ReadablePath } from '../../api/path-policy.ts';
import { UserError } from '../../workspace/errors.ts';
import { isImageName } from '../decode-file.ts';

/**
 * The background photos of a folder: its image files (not its subfolders), by name, each checked
 * with `check` (the API's path policy, or plain resolution for the CLI); at most
 * SWAP_MAX_BACKGROUNDS. A folder without any is a UserError.
 */
export function backgroundFiles(folder: ReadablePath, check: (p: string) => ReadablePath): { files: ReadablePath[]; total: number } {
  let names: string[];
  try {
    if (!fs.statSync(folder.real).isDirectory()) throw new UserError(`${folder.given} is not a folder: give a folder of background photos`);
    names = fs.readdirSync(folder.real);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${folder.given}: cannot read the folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const files: ReadablePath[] = [];
  for (const n of names.filter(isImageName).sort()) {
    let f: ReadablePath;
    try {
      f = check(path.join(folder.given, n));
    } catch {
      continue; // a symlink that leads outside the readable folders
    }
    if (fs.statSync(f.real, { throwIfNoEntry: false })?.isFile()) files.push(f);
  }
  if (files.length === 0) throw new UserError(`${folder.given} holds no background photos (JPEG, PNG, WebP, GIF, TIFF or AVIF files)`);
  return { files: files.slice(0, SWAP_MAX_BACKGROUNDS), total: files.length };
}

