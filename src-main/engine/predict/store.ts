// Where predictions live: one set per predict job, in <workspace>/predictions/:
//   <jobId>.json    the set's identity: { jobId, runId, checkpoint, input, createdAt }
//   <jobId>.jsonl   one PredictRecord per line, appended batch by batch as the job goes
// A crash can leave a partial last line; readers skip it and the resuming job cuts it off.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../workspace/errors.ts';
import type { PredictPage, PredictRecord, PredictSetInfo } from '../api/contract/predict.ts';
import { PRICE_BIN_LABELS } from '../train/labels.ts';

export interface PredictSetMeta {
  jobId: number;
  runId: string;
  checkpoint: string;
  input: string;
  createdAt: string;
}

export function predictionsDir(workspaceDir: string): string {
  return path.join(workspaceDir, 'predictions');
}

export function setFiles(workspaceDir: string, jobId: number): { meta: string; records: string } {
  const dir = predictionsDir(workspaceDir);
  return { meta: path.join(dir, `${jobId}.json`), records: path.join(dir, `${jobId}.jsonl`) };
}

export function writeSetMeta(workspaceDir: string, meta: PredictSetMeta): void {
  const f = setFiles(workspaceDir, meta.jobId);
  fs.mkdirSync(path.dirname(f.meta), { recursive: true });
  if (!fs.existsSync(f.meta)) fs.writeFileSync(f.meta, JSON.stringify(meta, null, 2));
  if (!fs.existsSync(f.records)) fs.writeFileSync(f.records, '');
}

export function readSetMeta(workspaceDir: string, jobId: number): PredictSetMeta {
  const f = setFiles(workspaceDir, jobId);
  try {
    return JSON.parse(fs.readFileSync(f.meta, 'utf8')) as PredictSetMeta;
  } catch {
    throw new UserError(`no predictions for job ${jobId}`);
  }
}

export function listSetMetas(workspaceDir: string): PredictSetMeta[] {
  let names: string[];
  try {
    names = fs.readdirSync(predictionsDir(workspaceDir));
  } catch {
    return [];
  }
  const out: PredictSetMeta[] = [];
  for (const n of names) {
    const m = /^(\d+)\.json$/.exec(n);
    if (!m) continue;
    try {
      out.push(readSetMeta(workspaceDir, Number(m[1])));
    } catch {
      /* a half-written set is skipped */
    }
  }
  return out.sort((a, b) => b.jobId - a.jobId);
}

const cache = new Map<string, { size: number; mtime: number; records: PredictRecord[] }>();

/** Every complete record of a set, in the order written (cached until the file changes). */
export function readRecords(workspaceDir: string, jobId: number): PredictRecord[] {
  const file = setFiles(workspaceDir, jobId).records;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return [];
  }
  const hit = cache.get(file);
  if (hit && hit.size === st.size && hit.mtime === st.mtimeMs) return hit.records;
  const text = fs.readFileSync(file, 'utf8');
  const records: PredictRecord[] = [];
  const end = text.lastIndexOf('\n');
  if (end >= 0) {
    for (const line of text.slice(0, end).split('\n')) {
      if (!line) continue;
      try {
        const rec = JSON.parse(line) as PredictRecord;
        // predictions stored before the car box was recorded: the car is not known
        if (rec.prediction && rec.prediction.car === undefined) rec.prediction.car = null;
        records.push(rec);
      } catch {
        /* a torn line (a crash mid-write) */
      }
    }
  }
  cache.set(file, { size: st.size, mtime: st.mtimeMs, records });
  return records;
}

/** Cuts a partial last line off (before a resumed job appends). */
export function trimPartialLine(workspaceDir: string, jobId: number): void {
  const file = setFiles(workspaceDir, jobId).records;
  if (!fs.existsSync(file)) return;
  const buf = fs.readFileSync(file);
  const end = buf.lastIndexOf(0x0a);
  if (end !== buf.length - 1) fs.truncateSync(file, end + 1);
}

export function appendRecords(workspaceDir: string, jobId: number, records: readonly PredictRecord[]): void {
  if (records.length === 0) return;
  fs.appendFileSync(setFiles(workspaceDir, jobId).records, records.map((r) => JSON.stringify(r) + '\n').join(''));
}

export function setInfo(workspaceDir: string, meta: PredictSetMeta): PredictSetInfo {
  const recs = readRecords(workspaceDir, meta.jobId);
  const predicted = recs.filter((r) => r.prediction).length;
  return { ...meta, records: recs.length, predicted, errors: recs.length - predicted };
}

export interface PageQuery {
  offset: number;
  limit: number;
  sort: 'path' | 'price' | 'makeConfidence';
  order: 'asc' | 'desc';
  make?: string;
  minConfidence?: number;
  show: 'all' | 'ok' | 'errors';
  /** all, with (records carrying a warning other than untrained heads) or without. */
  warnings?: 'all' | 'with' | 'without';
}

/** A record's warnings that concern the photo (not the run's untrained heads, which every record of the run shares). */
export function photoWarnings(r: PredictRecord): number {
  return r.prediction?.trust?.warnings.filter((w) => w.code !== 'untrained').length ?? 0;
}

export function resultsPage(workspaceDir: string, jobId: number, q: PageQuery): PredictPage {
  const meta = readSetMeta(workspaceDir, jobId);
  const all = readRecords(workspaceDir, jobId).map((r, index) => ({ ...r, index }));
  const predicted = all.filter((r) => r.prediction).length;
  const makes = new Map<string, number>();
  for (const r of all) {
    const top = r.prediction?.makeModels[0];
    if (top) makes.set(top.make, (makes.get(top.make) ?? 0) + 1);
  }
  let rows = all;
  if (q.show === 'ok') rows = rows.filter((r) => r.prediction);
  if (q.show === 'errors') rows = rows.filter((r) => r.error);
  if (q.make) rows = rows.filter((r) => r.prediction?.makeModels[0]?.make === q.make);
  if (q.minConfidence != null) rows = rows.filter((r) => (r.prediction?.makeModels[0]?.p ?? -1) >= q.minConfidence!);
  if (q.warnings === 'with') rows = rows.filter((r) => photoWarnings(r) > 0);
  if (q.warnings === 'without') rows = rows.filter((r) => r.prediction && photoWarnings(r) === 0);
  const key = (r: PredictRecord): number | string =>
    q.sort === 'price' ? (r.prediction?.medianPrice ?? NaN) : q.sort === 'makeConfidence' ? (r.prediction?.makeModels[0]?.p ?? NaN) : r.rel;
  const dir = q.order === 'desc' ? -1 : 1;
  rows = [...rows].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    // Records without a value (errors) go last whatever the order.
    const na = typeof ka === 'number' && Number.isNaN(ka);
    const nb = typeof kb === 'number' && Number.isNaN(kb);
    if (na || nb) return na === nb ? a.index - b.index : na ? 1 : -1;
    return (ka < kb ? -1 : ka > kb ? 1 : 0) * dir || a.index - b.index;
  });
  return {
    jobId,
    runId: meta.runId,
    checkpoint: meta.checkpoint,
    input: meta.input,
    count: all.length,
    predicted,
    errors: all.length - predicted,
    total: rows.length,
    items: rows.slice(q.offset, q.offset + q.limit),
    makes: [...makes].map(([make, count]) => ({ make, count })).sort((a, b) => b.count - a.count || (a.make < b.make ? -1 : 1)),
  };
}

/**
 * Earlier predictions of the same run and checkpoint, by path, for files unchanged since; only
 * those that say where the car is (older ones are predicted again, to find it).
 */
export function reusableRecords(workspaceDir: string, runId: string, checkpoint: string, exceptJob: number): Map<string, PredictRecord & { jobId: number }> {
  const out = new Map<string, PredictRecord & { jobId: number }>();
  for (const m of listSetMetas(workspaceDir).reverse()) {
    if (m.jobId === exceptJob || m.runId !== runId || m.checkpoint !== checkpoint) continue;
    for (const r of readRecords(workspaceDir, m.jobId)) if (r.prediction?.car) out.set(r.path, { ...r, jobId: m.jobId });
  }
  return out;
}

/**
 * The CSV export, one row per file. Columns: the file (path, rel, width, height); the regression
 * head's median price (median_price) and the bins' own median and 80% interval (bins_median,
 * bins_low, bins_high; empty for records from before they were recorded); calibrated (yes/no);
 * the ten price-bin probabilities (p_price_<bin>, calibrated when calibrated is yes); the five
 * most probable make/models and the three most probable years with their probabilities; the car
 * box (has_car, car_score, car_x1..car_y2 as fractions of the photo); the junk filter (filter_score,
 * filter_threshold, junk yes/no); the distance to the training photos (ood_distance,
 * ood_threshold, far yes/no); the warnings (warning_codes separated by ';', warnings: the messages
 * separated by ' | '); error. A value the record does not hold is an empty cell.
 */
export const CSV_HEAD: readonly string[] = [
  'path',
  'rel',
  'width',
  'height',
  'median_price',
  'bins_median',
  'bins_low',
  'bins_high',
  'calibrated',
  ...PRICE_BIN_LABELS.map((l) => `p_price_${l}`),
  ...[1, 2, 3, 4, 5].flatMap((i) => [`make_model_${i}`, `make_model_p${i}`]),
  ...[1, 2, 3].flatMap((i) => [`year_${i}`, `year_p${i}`]),
  'has_car',
  'car_score',
  'car_x1',
  'car_y1',
  'car_x2',
  'car_y2',
  'filter_score',
  'filter_threshold',
  'junk',
  'ood_distance',
  'ood_threshold',
  'far',
  'warning_codes',
  'warnings',
  'error',
];

const yesNo = (v: boolean | undefined | null): string => (v == null ? '' : v ? 'yes' : 'no');
const fixed = (v: number | undefined | null, d: number): string => (v == null || !Number.isFinite(v) ? '' : v.toFixed(d));

/** One record's CSV cells, in CSV_HEAD order. */
function csvRow(r: PredictRecord): Array<string | number> {
  const p = r.prediction;
  const bins = PRICE_BIN_LABELS.map((_, j) => fixed(p?.priceBins[j]?.p, 6));
  const mm = [0, 1, 2, 3, 4].flatMap((i) => [p?.makeModels[i]?.label ?? '', fixed(p?.makeModels[i]?.p, 6)]);
  const yr = [0, 1, 2].flatMap((i) => [p?.topYears[i]?.label ?? '', fixed(p?.topYears[i]?.p, 6)]);
  const car = p?.car ?? null;
  const b = car?.box ?? null;
  const t = p?.trust;
  return [
    r.path,
    r.rel,
    r.width ?? '',
    r.height ?? '',
    fixed(p?.medianPrice, 2),
    fixed(p?.binPrice?.median, 2),
    fixed(p?.binPrice?.low, 2),
    fixed(p?.binPrice?.high, 2),
    p ? yesNo(p.calibrated ?? false) : '',
    ...bins,
    ...mm,
    ...yr,
    car ? yesNo(car.hasCar) : '',
    fixed(car?.score, 4),
    ...(b ? [b.x1, b.y1, b.x2, b.y2].map((v) => v.toFixed(4)) : ['', '', '', '']),
    fixed(t?.filter?.score, 4),
    fixed(t?.filter?.threshold, 4),
    yesNo(t?.filter?.junk),
    fixed(t?.ood?.distance, 4),
    fixed(t?.ood?.threshold, 4),
    yesNo(t?.ood?.far),
    t ? t.warnings.map((w) => w.code).join(';') : '',
    t ? t.warnings.map((w) => w.message).join(' | ') : '',
    r.error ?? '',
  ];
}

export function exportSet(workspaceDir: string, jobId: number, format: 'csv' | 'json'): { filename: string; mime: string; content: string } {
  const meta = readSetMeta(workspaceDir, jobId);
  const recs = readRecords(workspaceDir, jobId);
  const base = `predictions-${meta.runId}-${meta.checkpoint}-job${jobId}`;
  if (format === 'json') return { filename: `${base}.json`, mime: 'application/json', content: JSON.stringify({ ...meta, records: recs }, null, 2) };
  const lines = [CSV_HEAD.map(csvCell).join(',')];
  for (const r of recs) lines.push(csvRow(r).map(csvCell).join(','));
  return { filename: `${base}.csv`, mime: 'text/csv', content: lines.join('\n') + '\n' };
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
