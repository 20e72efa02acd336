import { z } from 'zod';

/**
 * A folder browser for choosing a folder to predict on (served mode; the desktop app uses its
 * native dialog). It lists folder names and how many image files each holds, never a file's name
 * or contents, and only below the home folder and the folders the path policy reads.
 */
export const fsMethods = {
  /** One folder's subfolders; without `path`, the home folder. `~` and `~/...` expand to the home folder. */
  'fs.list': z.object({ path: z.string().optional() }),
};

export interface FsFolder {
  name: string;
  /** Absolute path, as browsed (under the listed folder). */
  path: string;
  /** Image files directly in it (by extension); null when it cannot be read. */
  images: number | null;
}

export interface FsListing {
  /** The listed folder, resolved (`~` expanded). */
  path: string;
  /** The folder above it, or null where browsing stops (a root, or outside the browsable folders). */
  parent: string | null;
  /** Its subfolders, by name; folders whose name starts with a dot are left out. */
  folders: FsFolder[];
  /** True when there were more subfolders than are listed. */
  truncated: boolean;
  /** Image files directly in the listed folder. */
  images: number;
  /** The engine machine's home folder (what `~` means). */
  home: string;
  /** Where browsing may start: the home folder, the workspace, --allow-path folders, folders predicted on. */
  roots: { label: string; path: string }[];
}

export interface FsResults {
  'fs.list': FsListing;
}
