// The one rule for every API method that takes a path on the engine's machine (predict.image,
// predict.cropPan, predict.compare, predict.thumbnail, import.preview, a weights job's `from`, an
// import or eval job's manifest, folder and images root): the API reads only
// inside the workspace, the folders opened for prediction (a predict job started on a folder in
// this session, or a prediction set recorded in the workspace), and the folders of a configured
// allow-list (`carstudio serve --allow-path DIR`). Paths are resolved with realpath before the
// check, so a symlink inside an allowed folder cannot lead outside it. A path that is missing and
// one that is not allowed get the same error (same name, same message, nothing about the file),
// so the API is no oracle for what exists elsewhere. Starting a predict job on a folder is the act
// of opening it: that is how a folder first becomes readable.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import { listSetMetas } from '../predict/store.ts';

/** A path that passed the policy: as the caller gave it (resolved) and the real file to read. */
export interface ReadablePath {
  /** path.resolve of what was given: what results report (never the symlink's target). */
  given: string;
  /** The real path (symlinks resolved), inside an allowed folder: what is read. */
  real: string;
}

export class PathPolicy {
  private readonly roots: string[];
  private readonly opened = new Set<string>();

  constructor(
    private readonly workspaceDir: string,
    allow: readonly string[] = [],
  ) {
    this.roots = [workspaceDir, ...allow].map((d) => realPathOf(path.resolve(d)) ?? path.resolve(d));
  }

  /** The same error for a path that does not exist and one outside the readable folders. */
  static refusal(given: string): UserError {
    return new UserError(
      `${given}: no such file in the folders this studio may read (the workspace, folders a prediction was started on, and --allow-path folders); start a prediction on its folder, or serve with --allow-path`,
    );
  }

  /**
   * Marks a folder as opened for prediction (what starting a predict job on it does) and returns
   * its resolved path. The folder's real path is what is opened.
   */
  open(folder: string): string {
    const given = path.resolve(folder);
    const real = realPathOf(given);
    if (real) this.opened.add(real);
    return given;
  }

  /** Checks a path for reading; throws the refusal when it is missing or outside the readable folders. */
  readable(p: string): ReadablePath {
    const given = path.resolve(p);
    const real = realPathOf(given);
    if (!real || !this.allows(real)) throw PathPolicy.refusal(given);
    return { given, real };
  }

  /** The folders a path may be in, real paths: the fixed roots, the opened folders, recorded sets' inputs. */
  private allows(real: string): boolean {
    const within = (dir: string): boolean => dir === real || isInside(dir, real);
    if (this.roots.some(within)) return true;
    if ([...this.opened].some(within)) return true;
    for (const m of listSetMetas(this.workspaceDir)) {
      const input = realPathOf(m.input);
      if (input && within(input)) return true;
    }
    return false;
  }

  /**
   * The folders the folder browser (`fs.list`) starts at and stays below: the home folder, the
   * workspace, the --allow-path folders, the folders opened for prediction and the recorded sets'
   * inputs (real paths, each once).
   */
  browseRoots(home: string): { label: string; path: string }[] {
    const out: { label: string; path: string }[] = [];
    const add = (label: string, dir: string): void => {
      const real = realPathOf(path.resolve(dir));
      if (real && !out.some((r) => r.path === real)) out.push({ label, path: real });
    };
    add('home', home);
    add('workspace', this.workspaceDir);
    this.roots.slice(1).forEach((d) => add('allowed', d));
    [...this.opened].forEach((d) => add('predicted', d));
    for (const m of listSetMetas(this.workspaceDir)) add('predicted', m.input);
    return out;
  }

  /**
   * Checks a folder for the folder browser, which lists folder names and image counts only (never
   * a file's name or contents) so that a user can reach a folder to start a prediction on. Only
   * below a browse root (browseRoots), and never into a hidden folder below it (a name starting
   * with a dot: ~/.ssh, ~/.config). Outside that, missing and refused are the one refusal, as for
   * reading; inside, "does not exist" and "is not a folder" are said as they are (the user could
   * browse there anyway). `~` and `~/...` mean the home folder.
   */
  browsable(p: string, home: string): ReadablePath {
    const given = path.resolve(expandHome(p, home));
    const bases = this.browseRoots(home).map((r) => r.path);
    const lexical = [path.resolve(home), ...bases];
    // below a root as written (a missing folder has no real path yet), with no hidden folder on the way
    if (!lexical.some((b) => isBrowsableBelow(b, given))) throw PathPolicy.refusal(given);
    const real = realPathOf(given);
    if (!real) throw new FolderError(`${given}: folder does not exist`);
    // and where it really is (a symlink out of the home folder leads nowhere)
    if (!bases.some((b) => isBrowsableBelow(b, real))) throw PathPolicy.refusal(given);
    if (!fs.statSync(real).isDirectory()) throw new FolderError(`${given}: not a folder (choose the folder that holds the photos)`);
    return { given, real };
  }

  /**
   * The path rules for a job started through the API: a predict job opens its input folder; a
   * weights job may copy only from a readable path (and copies from its real path); an import or
   * an eval reads its manifest, folder and images root only where the API may read (a manifest's
   * rows end up in listings the API serves, so it is no way around the policy).
   */
  jobParams(kind: string, params: unknown): unknown {
    if (!params || typeof params !== 'object') return params;
    const p = params as Record<string, unknown>;
    if (kind === 'predict' && typeof p.input === 'string') return { ...p, input: this.open(p.input) };
    if (kind === 'weights' && typeof p.from === 'string') return { ...p, from: this.readable(p.from).real };
    if (kind === 'import' || kind === 'eval') {
      const out: Record<string, unknown> = { ...p };
      for (const k of ['manifest', 'folder', 'imagesRoot'] as const) if (typeof p[k] === 'string') out[k] = this.readable(p[k]).given;
      return out;
    }
    return params;
  }
}

/** A folder that does not exist, or a file where a folder was asked for, inside the browsable folders. */
export class FolderError extends UserError {
  override name = 'FolderError';
}

/** `~` and `~/...` (and `~\\...` on Windows) as the home folder; anything else as it is. */
export function expandHome(p: string, home: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/') || (path.sep === '\\' && p.startsWith('~\\'))) return path.join(home, p.slice(2));
  return p;
}

/** True when `p` is `dir` or below it, with no hidden folder (a name starting with a dot) on the way. */
function isBrowsableBelow(dir: string, p: string): boolean {
  if (p !== dir && !isInside(dir, p)) return false;
  return path.relative(dir, p).split(path.sep).every((part) => !part.startsWith('.'));
}

function realPathOf(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

/** True when `file` is strictly below `dir` (both absolute and normalised). */
function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
