import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { api, runCli, startServe, type Served } from './helpers/processes.ts';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { labelCounts, labelHistory, redoLabels, setLabel, setLabels, undoLabels } from '../src-main/engine/filter/labels.ts';
import { currentModel, explainChoice, FEW_LABELS, meterAt, meterWarnings, staleness, thresholdForFnr } from '../src-main/engine/filter/filter-model.ts';
import { CI90_Z, wilsonInterval } from '../src-main/engine/filter/threshold.ts';
import type { ChosenThreshold, FilterMeter, FilterState, LabelHistoryResult } from '../src-main/engine/api/contract/filter.ts';

const ids = (ws: Workspace) => ws.db.prepare(`SELECT id FROM images ORDER BY id`).pluck().all() as number[];
const labelOf = (ws: Workspace, id: number) => (ws.db.prepare(`SELECT label FROM labels WHERE image_id = ?`).pluck().get(id) as string | undefined) ?? null;

/**
 * Records a fit on the workspace's current labels with out-of-fold scores that separate the
 * classes with some overlap (the meter reads only the CV scores; the SVM itself is not used).
 */
function recordFit(ws: Workspace, margin = 0): number {
  const rows = ws.db.prepare(`SELECT image_id id, label FROM labels ORDER BY image_id`).all() as Array<{ id: number; label: string }>;
  const labels = rows.map((r) => (r.label === 'good' ? 1 : 0));
  // good around +1, bad around -1, spread by the image id so some of each cross zero
  const scores = rows.map((r, i) => (labels[i] ? 1 : -1) + Math.sin(r.id * 12.9898) * 1.3);
  const cv = { imageIds: rows.map((r) => r.id), labels, scores, fnrMargin: margin };
  const good = labels.filter((l) => l === 1).length;
  return ws.db
    .prepare(
      `INSERT INTO filter_models (extractor, model, threshold, max_fnr, labelled_good, labelled_bad, cv, created_at) VALUES ('car-v1', '{}', 0, 0.01, ?, ?, ?, ?) RETURNING id`,
    )
    .pluck()
    .get(good, labels.length - good, JSON.stringify(cv), Date.now()) as number;
}

describe('bulk labelling with undo/redo by action', () => {
  it('labels many images in one step, undoes and redoes the whole step, and a new action ends the redo history', async () => {
    const ws = Workspace.open(path.join(tmpDir(), 'ws'), { create: true });
    await seedStoredImages(ws, 40);
    const all = ids(ws);
    // one action: 30 good; then 5 of them bad; then one single label
    expect(setLabels(ws, all.slice(0, 30), 'good')).toBe(30);
    expect(setLabels(ws, all.slice(0, 5), 'bad')).toBe(5);
    setLabel(ws, all[35]!, 'bad');
    expect(labelCounts(ws)).toEqual({ good: 25, bad: 6 });

    // undo the single label, then the bulk relabel as one step: the 5 are good again
    expect(undoLabels(ws)).toEqual([{ imageId: all[35], label: null }]);
    const back = undoLabels(ws);
    expect(back.map((c) => c.imageId)).toEqual(all.slice(0, 5));
    expect(back.every((c) => c.label === 'good')).toBe(true);
    expect(labelCounts(ws)).toEqual({ good: 30, bad: 0 });
    // the first action: all 30 unlabelled
    expect(undoLabels(ws)).toHaveLength(30);
    expect(labelCounts(ws)).toEqual({ good: 0, bad: 0 });
    expect(undoLabels(ws)).toEqual([]);
    expect(labelHistory(ws)).toEqual({ canUndo: false, canRedo: true });

    // redo in order: the 30 good, then the 5 bad
    expect(redoLabels(ws)).toHaveLength(30);
    expect(labelCounts(ws)).toEqual({ good: 30, bad: 0 });
    const again = redoLabels(ws);
    expect(again.map((c) => [c.imageId, c.label])).toEqual(all.slice(0, 5).map((id) => [id, 'bad']));
    expect(labelCounts(ws)).toEqual({ good: 25, bad: 5 });

    // a new action replaces what is left to redo (the single label)
    setLabels(ws, [all[39]!], 'good');
    expect(redoLabels(ws)).toEqual([]);
    expect(labelOf(ws, all[35]!)).toBeNull();
    expect(labelHistory(ws)).toEqual({ canUndo: true, canRedo: false });

    // an unknown image is refused before anything changes
    const before = labelCounts(ws);
    expect(() => setLabels(ws, [all[36]!, 999_999], 'bad')).toThrow(/no image with id 999999: nothing was labelled/);
    expect(labelCounts(ws)).toEqual(before);
    expect(labelOf(ws, all[36]!)).toBeNull();
    ws.close();
  });
});

describe('the filter meter', () => {
  it('gives the CV FNR its 90% interval and warns when a class has fewer than 100 labels or the labels are unbalanced', async () => {
    const ws = Workspace.open(path.join(tmpDir(), 'ws'), { create: true });
    await seedStoredImages(ws, 60);
    const all = ids(ws);
    setLabels(ws, all.slice(0, 50), 'good');
    setLabels(ws, all.slice(50), 'bad');
    expect(currentModel(ws)).toBeNull();
    recordFit(ws);
    const fit = currentModel(ws)!;
    const meter = meterAt(ws, fit, 0);
    const lost = fit.cv.scores.filter((s, i) => fit.cv.labels[i] === 1 && s < 0).length;
    expect(lost).toBeGreaterThan(0);
    expect(meter.fnrInterval).toEqual({ ...wilsonInterval(lost, 50, CI90_Z), goodRemoved: lost, good: 50 });
    expect(meter.fnrInterval.lower).toBeLessThan(meter.falseNegativeRate);
    expect(meter.fnrInterval.upper).toBeGreaterThan(meter.falseNegativeRate);
    // 50 good and 10 bad: both classes are few, and 5:1 is not yet "unbalanced"
    expect(meter.warnings).toHaveLength(2);
    expect(meter.warnings[0]).toMatch(/^only 50 good labels: 1% of them is 0\.5 images.*90% interval \d+\.\d%–\d+\.\d%/);
    expect(meter.warnings[1]).toMatch(/^only 10 bad labels/);

    // enough of both: no warning; 10:1 is unbalanced
    expect(meterWarnings(FEW_LABELS, FEW_LABELS, { lower: 0, upper: 0.02 })).toEqual([]);
    expect(meterWarnings(1000, 100, { lower: 0, upper: 0.01 })).toEqual([expect.stringMatching(/^unbalanced labels \(1000 good, 100 bad\).*label more bad images/)]);
    ws.close();
  });

  it('marks a fit stale when labels changed or were added since, and explains the threshold "choose" picked', async () => {
    const ws = Workspace.open(path.join(tmpDir(), 'ws'), { create: true });
    await seedStoredImages(ws, 30);
    const all = ids(ws);
    setLabels(ws, all.slice(0, 20), 'good');
    setLabels(ws, all.slice(20, 28), 'bad');
    recordFit(ws);
    const fit = currentModel(ws)!;
    expect(staleness(ws, fit)).toBeNull();
    setLabels(ws, [all[0]!], 'bad');
    setLabels(ws, [all[1]!], null);
    setLabels(ws, [all[29]!], 'good');
    expect(staleness(ws, fit)).toEqual({ changed: 2, added: 1 });
    // undoing all three: the labels are the fit's again
    undoLabels(ws);
    undoLabels(ws);
    undoLabels(ws);
    expect(staleness(ws, fit)).toBeNull();

    const row = thresholdForFnr(fit, 0.1);
    const why = explainChoice(fit, 0.1, row);
    expect(why).toContain(`Picked the largest threshold whose CV FNR stays within 10.0%: at ${row.threshold.toFixed(3)}`);
    expect(why).toContain(`${row.goodRemovedCount} of 20 good labels thrown away`);
    // with the fit's margin, 20 good labels cannot bound a 1% FNR: the lowest threshold, and why
    recordFit(ws, CI90_Z);
    const strict = currentModel(ws)!;
    const low = thresholdForFnr(strict, 0.01);
    expect(low.threshold).toBe(Math.min(...strict.cv.scores));
    expect(explainChoice(strict, 0.01, low)).toMatch(/^No threshold keeps the FNR's upper bound \(margin z=1\.64\) within 1\.0% with 20 good labels, so the lowest one, which keeps every image, was picked/);
    ws.close();
  });
});

describe('the labelling API', () => {
  let s: Served;
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmpDir(), 'ws');
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 40);
    ws.close();
    s = await startServe(['--workspace', dir]);
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
  });

  it('filter.setLabels, undo/redo, filter.labels with filters, the stale fit in filter.state and choose with its explanation', async () => {
    const page = (await api(s, 'filter.queue', { limit: 40, order: 'random' })) as Array<{ imageId: number }>;
    const idsNow = page.map((x) => x.imageId);
    const r = (await api(s, 'filter.setLabels', { imageIds: idsNow.slice(0, 30), label: 'good' })) as { counts: FilterState['counts']; changed: number; canUndo: boolean };
    expect(r).toMatchObject({ counts: { good: 30, bad: 0 }, changed: 30, canUndo: true });
    await api(s, 'filter.setLabels', { imageIds: idsNow.slice(30), label: 'bad' });
    const u = (await api(s, 'filter.undo')) as LabelHistoryResult;
    expect(u.items.map((x) => x.imageId).sort()).toEqual(idsNow.slice(30).sort());
    expect(u).toMatchObject({ counts: { good: 30, bad: 0 }, canUndo: true, canRedo: true });
    const re = (await api(s, 'filter.redo')) as LabelHistoryResult;
    expect(re).toMatchObject({ counts: { good: 30, bad: 10 }, canRedo: false });

    const bad = (await api(s, 'filter.labels', { filter: 'bad', limit: 100 })) as { total: number; items: Array<{ imageId: number; label: string; source: string }> };
    expect(bad.total).toBe(10);
    expect(bad.items.every((x) => x.label === 'bad' && x.source === 'ui')).toBe(true);
    expect(((await api(s, 'filter.labels', { filter: 'imported' })) as { total: number }).total).toBe(0);
    expect(((await api(s, 'filter.labels', { filter: 'all', limit: 5, offset: 38 })) as { items: unknown[] }).items).toHaveLength(2);
    await expect(api(s, 'filter.setLabels', { imageIds: [], label: 'good' })).rejects.toThrow(/choose at least one image to label/);

    // a fit on these labels, then a relabel: the state says the fit is stale
    const ws = Workspace.open(dir);
    recordFit(ws);
    ws.close();
    expect(((await api(s, 'filter.state')) as FilterState).model!.stale).toBeNull();
    await api(s, 'filter.setLabels', { imageIds: [idsNow[0]], label: 'bad' });
    expect(((await api(s, 'filter.state')) as FilterState).model!.stale).toEqual({ changed: 1, added: 0 });
    const chosen = (await api(s, 'filter.chooseThreshold', { maxFnr: 0.05 })) as ChosenThreshold;
    expect(chosen.explanation).toMatch(/^Picked the largest threshold whose CV FNR stays within 5\.0%/);
    const m = (await api(s, 'filter.meter', { threshold: chosen.threshold })) as FilterMeter;
    expect(m.fnrInterval.good).toBe(30);
    expect(m.falseNegativeRate).toBeLessThanOrEqual(0.05);
  });
});

describe('carstudio filter meter', () => {
  it('prints the meter with its interval and warnings, the choice with its reason, and a stale fit; refuses a workspace without a fit', async () => {
    const dir = path.join(tmpDir(), 'ws');
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 30);
    const all = ids(ws);
    const none = await runCli(['filter', 'meter', '--workspace', dir]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no filter has been fitted yet: label some images, then run `carstudio filter fit`/);
    setLabels(ws, all.slice(0, 22), 'good');
    setLabels(ws, all.slice(22), 'bad');
    recordFit(ws);
    setLabels(ws, [all[0]!], 'bad');
    const fit = currentModel(ws)!;
    ws.close();

    const r = await runCli(['filter', 'meter', '--workspace', dir, '--max-fnr', '0.1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as FilterMeter & { explanation: string; stale: { changed: number; added: number } };
    const row = thresholdForFnr(fit, 0.1);
    expect(out.threshold).toBe(row.threshold);
    expect(out.fnrInterval).toMatchObject({ goodRemoved: row.goodRemovedCount, good: 22 });
    expect(out.explanation).toBe(explainChoice(fit, 0.1, row));
    expect(out.warnings).toHaveLength(2);
    expect(out.stale).toEqual({ changed: 1, added: 0 });

    const text = await runCli(['filter', 'meter', '--workspace', dir, '--threshold', '0']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^threshold 0\.0000: CV FNR \d+\.\d\d% \(90% CI \d+\.\d%-\d+\.\d%, \d+ of 22 good\)/);
    expect(text.stdout).toMatch(/^warning: only 22 good labels/m);
    expect(text.stdout).toMatch(/^stale: 1 labels changed or cleared and 0 added since this fit/m);
    const both = await runCli(['filter', 'meter', '--workspace', dir, '--threshold', '0', '--max-fnr', '0.1']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/give --threshold or --max-fnr, not both/);
  }, 60_000);
});
