import os from 'node:os';
import path from 'node:path';

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
  if (process.env.CARSTUDIO_WORKSPACE) return path.resolve(process.env.CARSTUDIO_WORKSPACE);
  return path.join(userDataDir(), 'workspace');
}

/** The demo workspace `npm start` opens on first run. */
export function demoWorkspaceDir(): string {
  return path.join(userDataDir(), 'demo-workspace');
}
