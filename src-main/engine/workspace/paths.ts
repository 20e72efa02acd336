import os from 'node:os';
import path from 'node:path';
import { UserError } from './errors.ts';

/** Where CarStudio keeps per-user data when no --workspace is given. */
export function userDataDir(): string {
  if (process.env.CARSTUDIO_HOME) return path.resolve(process.env.CARSTUDIO_HOME);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'CarStudio');
  if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'CarStudio');
  const xdg = process.env.XDG_DATA_HOME || path.join(home, '.local', 'share');
  return path.join(xdg, 'carstudio');
}

/** The workspace used when the user names none: $CARSTUDIO_WORKSPACE, else <data dir>/workspace. */
export function defaultWorkspaceDir(): string {
  const env = process.env.CARSTUDIO_WORKSPACE;
  if (env !== undefined && env.trim() === '') {
    // an empty path would mean the current folder
    throw new UserError('$CARSTUDIO_WORKSPACE is set but empty; unset it (for the default workspace) or set it to a workspace folder');
  }
  if (env) return path.resolve(env);
  return path.join(userDataDir(), 'workspace');
}

/** The demo workspace `npm start` opens on first run. */
export function demoWorkspaceDir(): string {
  return path.join(userDataDir(), 'demo-workspace');
}
