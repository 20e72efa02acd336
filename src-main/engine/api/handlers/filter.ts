import type { Engine } from '../../engine.ts';
import { UserError } from '../../workspace/errors.ts';
import { labelCounts, setLabel, undoLabel } from '../../filter/labels.ts';
import { currentModel, cvTable, meterAt, setThreshold, thresholdForFnr, type FilterModelRow } from '../../filter/filter-model.ts';
import { CLIP_DEFAULT_URL, CLIP_DIM, CLIP_NAME, clipNotReadyHelp, clipWeightsPath, clipWeightsState, ortAvailable } from '../../filter/clip.ts';
import { MOBILENET_FEATURE_DIM, nsfwjsModelDir } from '../../ml/mobilenet.ts';
import type { ExtractorInfo, FilterResults, LabelQueueItem } from '../contract/filter.ts';
import type { Handlers } from './types.ts';

function needModel(e: Engine): FilterModelRow {
  const m = currentModel(e.ws);
  if (!m) throw new UserError('no filter has been fitted yet: label some images, then fit the filter');
  return m;
}

type Row = { imageId: number; key: string; label: 'good' | 'bad' | null; score: number | null };
const toItem = (r: Row): LabelQueueItem => ({ imageId: r.imageId, key: r.key, label: r.label, score: r.score });

function extractors(workspaceDir: string): ExtractorInfo[] {
  const clipWeights = clipWeightsPath(workspaceDir);
  // weights that failed a check (ONNX Runtime's, recorded when it last loaded them, or the cheap
  // structure check) are not installed: help says "invalid weights: <reason>"
  const state = clipWeightsState(workspaceDir);
  const installed = state.present && state.problem === null;
  const ort = ortAvailable();
  const clipHelp = clipNotReadyHelp(workspaceDir, { runtime: ort, weights: installed, problem: state.problem });
  return [
    {
      name: 'mobilenet_v2',
      dim: MOBILENET_FEATURE_DIM,
      installed: true,
      weightsPath: nsfwjsModelDir(),
      // ONNX Runtime when onnxruntime-node is installed (features are the same on either)
      runtime: ort ? 'onnxruntime-node' : 'tfjs',
      runtimeAvailable: true,
      ready: true,
      help: null,
      defaultUrl: null,
    },
    {
      name: CLIP_NAME,
      dim: CLIP_DIM,
      installed,
      weightsPath: clipWeights,
      runtime: 'onnxruntime-node',
      runtimeAvailable: ort,
      ready: installed && ort,
      help: clipHelp,
      defaultUrl: CLIP_DEFAULT_URL,
    },
  ];
}

export const filterHandlers: Handlers<keyof FilterResults> = {
  'features.extractors': (_p, e) => extractors(e.ws.dir),
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
      },
    };
  },
  // Unlabelled usable images: random order at first; once a filter is applied, the ones whose
  // score is nearest the threshold first (each label then teaches the most).
  'filter.queue': (p, e) => {
    const m = currentModel(e.ws);
    const uncertain = p.order === 'uncertain' || (p.order === 'auto' && m !== null);
    if (uncertain && m) {
      const rows = e.ws.db
        .prepare(
          `SELECT i.id imageId, i.key, NULL label, s.score FROM usable_images i JOIN filter_scores s ON s.image_id = i.id AND s.model_id = ?
           WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id) ORDER BY ABS(s.score - ?) LIMIT ?`,
        )
        .all(m.id, m.threshold, p.limit) as Row[];
      if (rows.length) return rows.map(toItem);
    }
    return (
      e.ws.db
        .prepare(
          `SELECT i.id imageId, i.key, NULL label, NULL score FROM usable_images i
           WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id)
           ORDER BY (i.id * 2654435761 + ?) % 4294967296 LIMIT ?`,
        )
        .all(p.seed, p.limit) as Row[]
    ).map(toItem);
  },
  'filter.setLabel': (p, e) => {
    setLabel(e.ws, p.imageId, p.label, 'ui');
    return { counts: labelCounts(e.ws) };
  },
  'filter.undo': (_p, e) => {
    const r = undoLabel(e.ws);
    return { imageId: r?.imageId ?? null, label: r?.label ?? null, counts: labelCounts(e.ws) };
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
  'filter.near': (p, e) => {
    const m = needModel(e);
    const q = (op: string, dir: string) =>
      (
        e.ws.db
          .prepare(
            `SELECT i.id imageId, i.key, l.label, s.score FROM filter_scores s JOIN images i ON i.id = s.image_id LEFT JOIN labels l ON l.image_id = i.id
             WHERE s.model_id = ? AND s.score ${op} ? ORDER BY s.score ${dir} LIMIT ?`,
          )
          .all(m.id, p.threshold, p.n) as Row[]
      ).map(toItem);
    return { above: q('>=', 'ASC'), below: q('<', 'DESC') };
  },
  'filter.chooseThreshold': (p, e) => {
    const m = needModel(e);
    const row = thresholdForFnr(m, p.maxFnr);
    return meterAt(e.ws, m, row.threshold);
  },
  'filter.setThreshold': (p, e) => {
    const m = needModel(e);
    setThreshold(e.ws, m.id, p.threshold);
    return meterAt(e.ws, { ...m, threshold: p.threshold }, p.threshold);
  },
};
