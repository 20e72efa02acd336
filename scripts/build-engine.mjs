#!/usr/bin/env node
// Builds the engine (the `carstudio` CLI, its `serve` command included) into out/engine/ as plain
// ES modules, so the packaged desktop app runs it in Electron's utilityProcess with no system Node
// and no tsx. Development and the tests keep running the TypeScript sources through tsx.
//
//   node scripts/build-engine.mjs [--outdir DIR]
//
// Packages stay external (native modules are rebuilt for Electron's ABI when electron-builder
// packages the app; the rest are plain node_modules). Worker threads and job modules are found
// through `new URL('./file.ts', import.meta.url)` in the sources: each such file becomes an entry
// of its own, and the URL is rewritten to the bundled file. A tsx boot file (`worker-boot.mjs`,
// which registers tsx and imports the real worker) is replaced by the worker it imports.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcRoot = path.join(root, 'src-main');
const engineRoot = path.join(srcRoot, 'engine');
const CLI_ENTRY = path.join(root, 'scripts', 'engine-entry.mjs');
export const CLI_BUNDLE = 'carstudio.mjs';

// `new URL('./x.ts', import.meta.url)`: a file the code loads at run time (worker or job module)
const RUNTIME_URL = /new URL\((['"])(\.\.?\/[^'"]+\.(?:ts|mjs))\1,\s*import\.meta\.url\)/g;
// `fileURLToPath(import.meta.url)`: a path computed from where the source file lives
const OWN_PATH = /fileURLToPath\(import\.meta\.url\)/g;
// in a tsx boot file: the module it actually runs
const BOOT_IMPORT = /await import\((['"])(\.\.?\/[^'"]+\.ts)\1\)/;

/** Step 1: every .ts/.mjs file under src-main. */
function sourceFiles(dir = srcRoot) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs)$/.test(d.name) ? [p] : [];
  });
}

/** A tsx boot file stands for the module it imports; any other file stands for itself. */
function realModule(file) {
  if (!file.endsWith('.mjs')) return file;
  const m = BOOT_IMPORT.exec(fs.readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${path.relative(root, file)} is loaded at run time but imports no .ts module to bundle in its place`);
  return path.resolve(path.dirname(file), m[2]);
}

/** Flat bundle name of a runtime-loaded module: src-main/engine/dedup/dedup-job.ts -> dedup-dedup-job.mjs */
function bundleName(file) {
  return path.relative(engineRoot, file).replace(/\.(ts|mjs)$/, '').split(path.sep).join('-') + '.mjs';
}

/** Step 2: the runtime-loaded modules, as a map from the referenced file to its bundle name. */
export function runtimeEntries() {
  const entries = new Map();
  for (const file of sourceFiles()) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(RUNTIME_URL)) {
      const target = path.resolve(path.dirname(file), m[2]);
      if (!fs.existsSync(target)) throw new Error(`${path.relative(root, file)} loads ${m[2]}, which does not exist`);
      entries.set(target, { module: realModule(target), name: bundleName(realModule(target)) });
    }
  }
  return entries;
}

/** Step 3: an esbuild plugin rewriting run-time URLs and own-path lookups in the sources. */
function runtimeUrlPlugin(entries, outdir) {
  return {
    name: 'carstudio-runtime-urls',
    setup(b) {
      b.onLoad({ filter: /[\\/]src-main[\\/].*\.ts$/ }, async (args) => {
        let text = await fs.promises.readFile(args.path, 'utf8');
        text = text.replace(RUNTIME_URL, (whole, q, rel) => {
          const hit = entries.get(path.resolve(path.dirname(args.path), rel));
          return hit ? `new URL('./${hit.name}', import.meta.url)` : whole;
        });
        // All bundles sit flat in outdir: point the lookup back at where the source file lives
        // (relative, so it holds inside the packaged app too: out/engine beside out/renderer).
        const own = path.relative(outdir, args.path).split(path.sep).join('/');
        text = text.replace(OWN_PATH, `fileURLToPath(new URL(${JSON.stringify(own)}, import.meta.url))`);
        return { contents: text, loader: 'ts' };
      });
    },
  };
}

/** Step 4: bundle the CLI and every runtime-loaded module, sharing chunks, into outdir. */
export async function buildEngine(outdir = path.join(root, 'out', 'engine')) {
  outdir = path.resolve(outdir);
  const entries = runtimeEntries();
  const entryPoints = { [CLI_BUNDLE.replace(/\.mjs$/, '')]: CLI_ENTRY };
  for (const { module, name } of entries.values()) entryPoints[name.replace(/\.mjs$/, '')] = module;
  fs.rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    entryPoints,
    outdir,
    bundle: true,
    splitting: true, // one copy of each shared module (the job registry, the workspace) for all entries
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outExtension: { '.js': '.mjs' },
    chunkNames: '_chunk-[hash]', // flat beside the entries, so the rewritten './name.mjs' URLs hold in every chunk
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    plugins: [runtimeUrlPlugin(entries, outdir)],
  });
  fs.writeFileSync(path.join(outdir, 'package.json'), JSON.stringify({ type: 'module', private: true }) + '\n');
  return { outdir, entries: Object.keys(entryPoints).map((n) => `${n}.mjs`), outputs: Object.keys(result.metafile.outputs) };
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const i = process.argv.indexOf('--outdir');
  const t0 = Date.now();
  try {
    const r = await buildEngine(i >= 0 ? process.argv[i + 1] : undefined);
    console.log(`engine bundle: ${r.entries.length} entries in ${path.relative(process.cwd(), r.outdir) || '.'} (${Date.now() - t0} ms)`);
  } catch (e) {
    console.error(`building the engine failed: ${e.message}`);
    process.exit(1);
  }
}
