/**
 * `npm run bench [name...]`: performance figures. Each benchmark prints its figures and, where a
 * reference exists, the ratio against it measured in the same run (these machines are noisy).
 * Results are also written to bench-results/<name>.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchmarks } from './index.ts';

const wanted = process.argv.slice(2);
const outDir = path.resolve(import.meta.dirname, '..', 'bench-results');
fs.mkdirSync(outDir, { recursive: true });
const chosen = wanted.length ? benchmarks.filter((b) => wanted.includes(b.name)) : benchmarks;
if (wanted.length && chosen.length !== wanted.length) {
  console.error(`unknown benchmark; known: ${benchmarks.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
for (const b of chosen) {
  console.log(`\n== ${b.name}: ${b.description}`);
  const t0 = Date.now();
  const result = await b.run();
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  fs.writeFileSync(path.join(outDir, `${b.name}.json`), JSON.stringify({ at: new Date().toISOString(), ...result }, null, 2));
}
