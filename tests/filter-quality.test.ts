// The junk filter's quality target on real photos nobody tuned to: with the default extractor
// (car-v1) and the default SVM, fitted on the 1,318 labels of ../shared/data/listing-photos, the
// cross-validated threshold at FNR <= 1% removes at least 70% of the bad photos (interiors, engine
// bays, wheels, papers). Through the CLI, as a user runs it. Skips, saying why, without the photos
// or ONNX Runtime (on tfjs alone the extraction would take most of an hour).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_EXTRACTOR } from '../src-main/engine/filter/features.ts';
import { hasOrt } from './helpers/onnx.ts';
import { runCli } from './helpers/processes.ts';
import { SHARED_DATA, tmpDir } from './helpers/workspace.ts';

const PHOTOS = path.join(SHARED_DATA, 'listing-photos');
const havePhotos = fs.existsSync(path.join(PHOTOS, 'good')) && fs.existsSync(path.join(PHOTOS, 'bad'));
if (!havePhotos) console.log(`filter-quality: ${PHOTOS} is absent, skipping the quality target test`);
else if (!hasOrt) console.log('filter-quality: onnxruntime-node is not installed, skipping the quality target test');

describe.skipIf(!havePhotos || !hasOrt)('junk filter on the shared listing photos', () => {
  it('removes >= 70% of bad photos at <= 1% of good lost (10-fold CV), with the default extractor', async () => {
    const dir = path.join(tmpDir('filter-quality-'), 'ws');
    const env = { CARSTUDIO_MODEL_CACHE: tmpDir('filter-quality-models-') };
    const label = await runCli(['label', '--workspace', dir, '--create', '--good', path.join(PHOTOS, 'good'), '--bad', path.join(PHOTOS, 'bad')], { env, timeoutMs: 240_000 });
    expect(label.code, label.stderr).toBe(0);
    const fit = await runCli(['filter', 'fit', '--workspace', dir, '--json'], { env, timeoutMs: 900_000 });
    expect(fit.code, fit.stderr).toBe(0);
    const r = JSON.parse(fit.stdout) as { featureSet: string; labelledGood: number; labelledBad: number; cvFalseNegativeRate: number; cvBadRemoved: number; cvFnrInterval: { upper: number } };
    console.log(
      `filter-quality: ${r.featureSet}, ${r.labelledGood} good + ${r.labelledBad} bad labels: bad removed ${(100 * r.cvBadRemoved).toFixed(1)}% at CV FNR ${(100 * r.cvFalseNegativeRate).toFixed(2)}% (90% upper ${(100 * r.cvFnrInterval.upper).toFixed(2)}%)`,
    );
    expect(r.featureSet).toBe(DEFAULT_EXTRACTOR);
    expect(r.labelledGood + r.labelledBad).toBeGreaterThan(1300);
    expect(r.cvFalseNegativeRate).toBeLessThanOrEqual(0.01);
    expect(r.cvBadRemoved).toBeGreaterThanOrEqual(0.7);
  }, 1_200_000);
});
