import { useCallback, useEffect, useState } from 'react';
import { api } from '../api/client.ts';
import { fmtInt } from '../format.ts';
import type { FsListing } from '../../../src-main/engine/api/contract/index.ts';

/** What the desktop app's preload adds to the bridge: the native folder dialog. */
type PickFolder = () => Promise<string | null>;

/** The native folder dialog when the studio runs in the desktop app, else undefined. */
export function nativePickFolder(): PickFolder | undefined {
  return (window.carstudio as { pickFolder?: PickFolder } | undefined)?.pickFolder;
}

const RECENT_KEY = 'carstudio.predict.recentFolders';
const RECENT_MAX = 8;

/** The folders predicted on from this browser, newest first (localStorage). */
export function recentFolders(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

export function rememberFolder(folder: string): void {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify([folder, ...recentFolders().filter((f) => f !== folder)].slice(0, RECENT_MAX)));
  } catch {
    /* storage full or disabled: the recorded prediction sets still list it */
  }
}

/**
 * A browser of the engine machine's folders (served mode): folder names and how many photos each
 * holds, starting at `start` (or the home folder), with the browse roots and the recent folders
 * one click away. Errors (a folder that does not exist, one the studio may not read) show here.
 */
export function FolderBrowser({ start, recent, onPick, onClose }: { start: string; recent: string[]; onPick: (folder: string) => void; onClose: () => void }) {
  const [listing, setListing] = useState<FsListing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const open = useCallback(async (p?: string) => {
    try {
      setListing(await api.request('fs.list', p ? { path: p } : {}));
      setError(null);
    } catch (e) {
      // the folder shown stays; the reason shows above it
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    void (async () => {
      try {
        setListing(await api.request('fs.list', start ? { path: start } : {}));
      } catch (e) {
        // a typed folder that cannot be listed: the home folder, the reason above it
        setError((e as Error).message);
        await api.request('fs.list', {}).then(setListing, () => undefined);
      }
    })();
  }, [start]);

  return (
    <div className="card" data-testid="folder-browser" role="dialog" aria-label="Choose a folder" style={{ marginTop: 8, background: 'var(--panel2)' }}>
      <div style={{ display: 'flex', gap: 8, alignItems: 'center', flexWrap: 'wrap' }}>
        <b style={{ flex: '1 1 240px', minWidth: 0, overflowWrap: 'anywhere' }} data-testid="folder-browser-path">
          {listing?.path ?? '…'}
        </b>
        <span className="muted small" data-testid="folder-browser-images">
          {listing ? `${fmtInt(listing.images)} photo${listing.images === 1 ? '' : 's'} here` : ''}
        </span>
        <button data-testid="folder-browser-up" disabled={!listing?.parent} onClick={() => listing?.parent && void open(listing.parent)}>
          ↑ Up
        </button>
        <button className="primary" data-testid="folder-browser-choose" disabled={!listing} onClick={() => listing && onPick(listing.path)}>
          Choose this folder
        </button>
        <button data-testid="folder-browser-close" onClick={onClose}>
          Cancel
        </button>
      </div>
      {error && (
        <p className="predict-stage-error" role="alert" data-testid="folder-browser-error" style={{ color: '#fca5a5', margin: '6px 0' }}>
          {error}
        </p>
      )}
      <div className="small" style={{ display: 'flex', gap: 6, flexWrap: 'wrap', margin: '8px 0' }}>
        {listing?.roots.map((r) => (
          <button key={r.path} data-testid="folder-browser-root" title={r.path} onClick={() => void open(r.path)}>
            {r.label}: {shortPath(r.path, listing.home)}
          </button>
        ))}
      </div>
      {recent.length > 0 && (
        <div className="small" style={{ display: 'flex', gap: 6, flexWrap: 'wrap', marginBottom: 8, alignItems: 'center' }}>
          <span className="muted">Recent:</span>
          {recent.map((f) => (
            <button key={f} data-testid="folder-browser-recent" title={f} onClick={() => void open(f)}>
              {shortPath(f, listing?.home)}
            </button>
          ))}
        </div>
      )}
      {listing && (
        <ul data-testid="folder-browser-list" style={{ listStyle: 'none', margin: 0, padding: 0, maxHeight: 280, overflowY: 'auto', border: '1px solid var(--border)', borderRadius: 6 }}>
          {listing.folders.length === 0 && <li className="muted small" style={{ padding: '6px 8px' }}>no subfolders</li>}
          {listing.folders.map((f) => (
            <li key={f.path}>
              <button
                data-testid="folder-browser-folder"
                data-name={f.name}
                onClick={() => void open(f.path)}
                style={{ display: 'flex', width: '100%', justifyContent: 'space-between', gap: 8, border: 0, borderRadius: 0, background: 'transparent', textAlign: 'left', padding: '5px 8px' }}
              >
                <span style={{ overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' }}>▸ {f.name}</span>
                <span className="muted">{f.images == null ? 'unreadable' : `${fmtInt(f.images)} photos`}</span>
              </button>
            </li>
          ))}
          {listing.truncated && <li className="muted small" style={{ padding: '6px 8px' }}>more folders not shown: type the path</li>}
        </ul>
      )}
    </div>
  );
}

/** A path with the home folder written as ~. */
export function shortPath(p: string, home: string | undefined): string {
  if (!home) return p;
  if (p === home) return '~';
  return p.startsWith(home + '/') ? `~${p.slice(home.length)}` : p;
}
