import { initBackend } from '../../ml/backend.ts';
import { buildLabelSpace, DEFAULT_SPLIT, encodeColumns, labelledCounts, splitRows, yearValues } from '../../train/labels.ts';
import { trainingRows } from '../../train/dataset.ts';
import { deleteRun, getRun, listRuns, runMetrics } from '../../train/runs.ts';
import { readCalibration } from '../../train/calibrate.ts';
import type { TrainResults } from '../contract/train.ts';
import type { Handlers } from './types.ts';

export const trainHandlers: Handlers<keyof TrainResults> = {
  'train.dataset': async (_p, e) => {
    const rows = trainingRows(e.ws.db);
    const space = buildLabelSpace(rows);
    const cols = encodeColumns(space, rows);
    const split = splitRows(rows, DEFAULT_SPLIT, 0.1);
    const tr = labelledCounts(encodeColumns(space, split.train));
    const te = labelledCounts(encodeColumns(space, split.test));
    const count = (arr: Int32Array, n: number, mask: Float32Array) => {
      const c = new Array<number>(n).fill(0);
      arr.forEach((v, i) => mask[i] && c[v]!++);
      return c;
    };
    const yv = yearValues(space).filter((y): y is number => y !== null);
    const bins = count(cols.priceBin, space.priceBins.length, cols.priceMask);
    const years = count(cols.year, space.years.length, cols.yearMask);
    const b = await initBackend('auto');
    return {
      images: rows.length,
      testImages: split.test.length,
      backend: { name: b.name, note: b.note, canFinetune: b.canTrainConv, fastFinetune: b.fastConv },
      priceBins: space.priceBins.map((label, i) => ({ label, count: bins[i]! })),
      makeModels: space.makeModels.map(({ make, model, count: n }) => ({ make, model, count: n })),
      unknownMakeModels: space.unknownMakeModelCount,
      years: space.years.map((label, i) => ({ label, count: years[i]! })).filter((y) => y.count > 0),
      split: DEFAULT_SPLIT,
      labelCounts: {
        price: { train: tr.price, test: te.price },
        makeModel: { train: tr.makeModel, test: te.makeModel },
        year: { train: tr.year, test: te.year },
      },
      yearRange: yv.length ? [yv[0]!, yv[yv.length - 1]!] : null,
    };
  },
  'runs.list': (_p, e) => listRuns(e.ws),
  'runs.get': (p, e) => getRun(e.ws, p.id),
  'runs.metrics': (p, e) => runMetrics(e.ws, p.id, p.maxTrainPoints),
  'runs.delete': (p, e) => {
    deleteRun(e.ws, p.id, (jobId) => e.jobs.isRunning(jobId));
    return { deleted: p.id };
  },
  'runs.calibration': (p, e) => readCalibration(getRun(e.ws, p.id).dir),
};
