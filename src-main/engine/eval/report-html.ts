// An evaluation report as files (report.json, and report.html: one self-contained page with inline
// CSS and inline SVG plots, no scripts and no external URLs) and as the entry the run's list shows.
import fs from 'node:fs';
import path from 'node:path';
import type {
  CalibratedScores,
  ClassificationScores,
  EvalCalibration,
  EvalReport,
  EvalReportEntry,
  HeadScores,
  PerClassScore,
  ReliabilityBin,
} from '../api/contract/eval.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import { UserError } from '../workspace/errors.ts';

export const REPORT_JSON = 'report.json';
export const REPORT_HTML = 'report.html';

/** Text made safe for HTML content and quoted attributes. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const DASH = '\u2014';

/** 0.4567 -> "45.7%". */
function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : DASH;
}

/** 12345.6 -> "$12,346". */
function dollars(x: number): string {
  return Number.isFinite(x) ? `$${Math.round(x).toLocaleString('en-US')}` : DASH;
}

/** Fixed decimals, or a dash for a non-number. */
function fixed(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : DASH;
}

/**
 * One metric row of a head's table: its name, how to read it from a source's scores, and from the
 * calibrated figures (absent: temperature scaling does not change it, and the cell says so).
 */
interface MetricRow<E> {
  name: string;
  value: (s: ClassificationScores & E) => string;
  calibrated?: (k: CalibratedScores) => string;
}

/** A calibrated figure, with the held-out (cross-fit) estimate beside it when there is one. */
function withHeldOut(k: CalibratedScores, v: (x: { ce: number; ece: number }) => number, f: (x: number) => string): string {
  return k.heldOut ? `${f(v(k))} (held out ${f(v(k.heldOut))})` : f(v(k));
}

const COMMON_ROWS: MetricRow<object>[] = [
  { name: 'Rows scored', value: (s) => String(s.n), calibrated: (k) => String(k.n) },
  { name: 'Top-1 accuracy', value: (s) => pct(s.top1) },
  { name: 'Top-5 accuracy', value: (s) => pct(s.top5) },
  {
    name: 'Cross-entropy',
    value: (s) => fixed(s.ce, 3),
    calibrated: (k) =>
      withHeldOut(
        k,
        (x) => x.ce,
        (x) => fixed(x, 3),
      ),
  },
  { name: 'Calibration error (ECE)', value: (s) => pct(s.ece), calibrated: (k) => withHeldOut(k, (x) => x.ece, pct) },
];

/** The Model / Model calibrated / Majority / kNN table of one head. */
function scoresTable<E extends object>(h: HeadScores<E>, extra: MetricRow<E>[]): string {
  const rows = [...(COMMON_ROWS as MetricRow<E>[]), ...extra];
  const cell = (s: (ClassificationScores & E) | null, r: MetricRow<E>) => `<td>${s ? escapeHtml(r.value(s)) : DASH}</td>`;
  const k = h.calibrated ?? null;
  const calCell = (r: MetricRow<E>) =>
    !k
      ? ''
      : r.calibrated
        ? `<td class="calibrated">${escapeHtml(r.calibrated(k))}</td>`
        : '<td class="calibrated same" title="temperature scaling does not change it">unchanged</td>';
  const body = rows
    .map(
      (r) => `<tr><th scope="row">${escapeHtml(r.name)}</th>${cell(h.model, r)}${calCell(r)}${cell(h.majority, r)}${cell(h.knn, r)}</tr>`,
    )
    .join('\n');
  return (
    `<table class="scores"><thead><tr><th></th><th>Model</th>${k ? `<th class="calibrated">Model, calibrated (T = ${fixed(k.temperature, 3)})</th>` : ''}<th>Majority</th>` +
    `<th>kNN${h.knn ? '' : ' (no features)'}</th></tr></thead>\n<tbody>\n${body}\n</tbody></table>`
  );
}

/** An SVG reliability diagram: accuracy per top-1-confidence bin against the diagonal, with counts. */
function reliabilitySvg(title: string, bins: ReliabilityBin[], cls = 'reliability'): string {
  const W = 340;
  const H = 300;
  const L = 44;
  const R = 12;
  const T = 26;
  const B = 40;
  const pw = W - L - R;
  const ph = H - T - B;
  const x = (v: number) => L + v * pw;
  const y = (v: number) => T + (1 - v) * ph;
  const parts: string[] = [];
  parts.push(`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" class="plot-bg"/>`);
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${x(0)}" y1="${y(t)}" x2="${x(1)}" y2="${y(t)}" class="grid"/>`);
    parts.push(`<text x="${L - 6}" y="${y(t) + 4}" text-anchor="end" class="tick">${t * 100}%</text>`);
    parts.push(`<text x="${x(t)}" y="${T + ph + 14}" text-anchor="middle" class="tick">${t.toFixed(2)}</text>`);
  }
  for (const b of bins) {
    if (!b.count) continue;
    const x0 = x(b.lo) + 1;
    const w = Math.max(1, x(b.hi) - x(b.lo) - 2);
    const top = y(b.accuracy);
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${top.toFixed(1)}" width="${w.toFixed(1)}" height="${(y(0) - top).toFixed(1)}" class="bar">` +
        `<title>${escapeHtml(`${fixed(b.lo, 2)}-${fixed(b.hi, 2)}: ${b.count} predictions, accuracy ${pct(b.accuracy)}, mean confidence ${pct(b.confidence)}`)}</title></rect>`,
    );
    const ty = Math.max(T + 10, top - 3);
    parts.push(`<text x="${(x0 + w / 2).toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="middle" class="count">${b.count}</text>`);
  }
  parts.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" class="diagonal"/>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle" class="axis">top-1 confidence</text>`);
  parts.push(`<text x="12" y="${T + ph / 2}" text-anchor="middle" class="axis" transform="rotate(-90 12 ${T + ph / 2})">accuracy</text>`);
  parts.push(`<text x="${L}" y="16" class="plot-title">${escapeHtml(title)}</text>`);
  return `<svg class="${cls}" role="img" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}"><title>${escapeHtml(title)}</title>${parts.join('')}</svg>`;
}

/** An SVG horizontal bar chart of per-class top-1 accuracy (label, rows, accuracy). */
function perClassSvg(rows: PerClassScore[]): string {
  const labelW = 220;
  const barW = 300;
  const rowH = 18;
  const T = 8;
  const W = labelW + barW + 110;
  const H = T + rows.length * rowH + 8;
  const parts = rows.map((r, i) => {
    const yy = T + i * rowH;
    const w = Math.max(0, Math.min(1, r.accuracy)) * barW;
    const label = r.label.length > 34 ? `${r.label.slice(0, 33)}\u2026` : r.label;
    return (
      `<text x="${labelW - 6}" y="${yy + 13}" text-anchor="end" class="tick">${escapeHtml(label)}</text>` +
      `<rect x="${labelW}" y="${yy + 3}" width="${barW}" height="${rowH - 6}" class="plot-bg"/>` +
      `<rect x="${labelW}" y="${yy + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" class="bar"><title>${escapeHtml(`${r.label}: ${pct(r.accuracy)} of ${r.n}`)}</title></rect>` +
      `<text x="${labelW + barW + 6}" y="${yy + 13}" class="tick">${escapeHtml(`${pct(r.accuracy)} of ${r.n}`)}</text>`
    );
  });
  return `<svg class="per-class" role="img" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}"><title>Per-class top-1 accuracy</title>${parts.join('')}</svg>`;
}

/** What was scored, in words. */
function sourceText(s: EvalReport['source']): string {
  if (s.kind === 'test-split') return `the run's test split (split by ${s.split})`;
  return `manifest ${s.manifest}${s.rowsSkipped ? ` (${s.rowsSkipped} rows skipped)` : ''}`;
}

/** What the split means for the scores, by source. */
function splitText(s: EvalReport['source']): string {
  if (s.kind === 'manifest') {
    return "The rows come from a manifest, not from the run's own split: whether some of its cars were also in the training set is up to the manifest, and cars the model was trained on score higher than new ones.";
  }
  if (s.split === 'listing') {
    return 'The test split is made by listing, so no car (none of its photos) is in both the training and the test set: the scores measure cars the model has never seen.';
  }
  return 'This run split by photo, so other photos of a test car can be in the training set: the scores are higher than they would be on cars the model has never seen.';
}

const HEAD_TITLES = { price: 'Price bin', makeModel: 'Make and model', year: 'Year' } as const;

/** What a head's section says of its calibration: unchanged figures, in-sample, or not calibrated. */
function headCalibrationText(key: keyof typeof HEAD_TITLES, h: HeadScores<object>, c: EvalCalibration | undefined): string {
  if (!c) return '';
  if (!c.applied) return `<p class="muted cal-note">Not calibrated: the figures are those of the raw probabilities.</p>`;
  const skipped = c.skipped[key];
  if (skipped || !h.calibrated)
    return `<p class="muted cal-note">Not calibrated: ${escapeHtml(skipped ?? 'the calibration left this head as trained')}.</p>`;
  return (
    `<p class="muted cal-note">Calibrated: the probabilities predictions give (the raw ones scaled by T = ${fixed(h.calibrated.temperature, 3)}). ` +
    `Calibration changes how confident the model is, not which classes it ranks first, so top-1, top-5 and the figures of the top class are unchanged. ` +
    `${c.inSample ? '<b>In-sample</b>: see Calibration above; the calibrated figures are optimistic.' : 'Held out: the temperatures were not fitted on these photos.'}</p>`
  );
}

/** One head's section: the table, the model's reliability diagram, and the calibrated one when the run is calibrated. */
function headSection<E extends object>(
  key: keyof typeof HEAD_TITLES,
  h: HeadScores<E> | null,
  extra: MetricRow<E>[],
  more = '',
  cal?: EvalCalibration,
): string {
  const title = HEAD_TITLES[key];
  if (!h) return `<section class="head"><h2>${title}</h2><p class="muted">Not scored: no scored row had this label.</p></section>`;
  const calibrated = h.calibrated
    ? `\n${reliabilitySvg(`Calibrated${cal?.inSample ? ' (in-sample)' : ''}, T = ${fixed(h.calibrated.temperature, 3)}`, h.calibrated.reliability, 'reliability calibrated')}`
    : '';
  return (
    `<section class="head"><h2>${title}</h2>\n<div class="row">${scoresTable(h, extra)}\n` +
    `${reliabilitySvg(h.calibrated ? 'Raw (as trained)' : `${title}: model reliability`, h.model.reliability)}${calibrated}</div>` +
    `${headCalibrationText(key, h, cal)}${more}</section>`
  );
}

/** The report's Calibration section: applied or why not, the temperatures, and whether the calibrated figures are in-sample. */
function calibrationSection(c: EvalCalibration | undefined, rows: number): string {
  if (!c)
    return '<section class="calibration"><h2>Calibration</h2><p class="muted">This report is from before calibrated figures were recorded: it shows the raw probabilities only.</p></section>';
  if (!c.applied) {
    return `<section class="calibration" data-applied="false"><h2>Calibration</h2><p class="cal-caveat"><b>Not calibrated.</b> ${escapeHtml(c.note.replace(/^Not calibrated: (.)/, (_m, ch: string) => ch.toUpperCase()))}</p></section>`;
  }
  const t = c.temperatures!;
  const f = c.fitted;
  const temps = (['price', 'makeModel', 'year'] as const)
    .map(
      (h) =>
        `<tr><th scope="row">${HEAD_TITLES[h]}</th><td>${c.skipped[h] ? `not calibrated (${escapeHtml(c.skipped[h])})` : `T = ${fixed(t[h], 3)}`}</td></tr>`,
    )
    .join('');
  return (
    `<section class="calibration" data-applied="true" data-in-sample="${c.inSample}"><h2>Calibration</h2>` +
    `<p class="cal-caveat${c.inSample ? ' in-sample' : ''}"><b>${c.inSample ? (c.inSampleRows < rows ? 'Partly in-sample calibrated figures.' : 'In-sample calibrated figures.') : 'Held-out calibrated figures.'}</b> ${escapeHtml(c.note)}</p>` +
    `<p class="muted">Fitted on the ${escapeHtml(f?.checkpoint ?? '')} checkpoint (step ${escapeHtml(f?.step ?? '')}), ${escapeHtml(f?.rows ?? '')} test photos split by ${escapeHtml(f?.split ?? '')}, ${escapeHtml(f?.createdAt ?? '')}. ` +
    `Each head's probabilities are temperature-scaled (logits divided by T; above 1 softens an over-confident head).</p>` +
    `<table class="temps"><tbody>${temps}</tbody></table></section>`
  );
}

const CSS = `
:root { color-scheme: light dark; --fg: #1d2430; --muted: #667085; --bg: #ffffff; --line: #d6dbe3; --bar: #3b74d9; --plot: #f2f4f8; }
@media (prefers-color-scheme: dark) { :root { --fg: #e5e9f0; --muted: #98a2b3; --bg: #161a21; --line: #343b48; --bar: #6b9cf0; --plot: #1f2530; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); margin: 24px auto; max-width: 1060px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.muted, .meta { color: var(--muted); } .meta span { margin-right: 18px; white-space: nowrap; }
table { border-collapse: collapse; margin: 6px 0; } th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: right; }
th[scope="row"], .confused td:first-child, .confused td:nth-child(2), .confused th:first-child, .confused th:nth-child(2) { text-align: left; } thead th { font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
svg { font-size: 11px; } svg text { fill: var(--fg); } .plot-bg { fill: var(--plot); } .grid { stroke: var(--line); stroke-width: 1; }
.bar { fill: var(--bar); } .diagonal { stroke: #d9534f; stroke-width: 1.5; stroke-dasharray: 5 4; } .count { font-size: 9px; fill: var(--muted); }
.plot-title { font-weight: 600; font-size: 12px; } .axis { fill: var(--muted); }
.calibrated { background: var(--plot); } .same { color: var(--muted); font-style: italic; }
.cal-caveat { border-left: 3px solid var(--bar); padding: 4px 10px; } .cal-caveat.in-sample { border-left-color: #d9534f; }
dl dt { font-weight: 600; margin-top: 8px; } dl dd { margin: 2px 0 0 0; color: var(--muted); }
`;

/** The whole report as one self-contained HTML page. */
export function renderReportHtml(report: EvalReport): string {
  const r = report;
  const { price, makeModel, year } = r.heads;
  const sections: string[] = [];
  const cal = r.calibration;
  sections.push(calibrationSection(cal, r.rows));
  sections.push(headSection('price', price, [{ name: 'Price MAE (median head)', value: (s) => dollars(s.maeDollars) }], '', cal));
  let mmMore = '';
  if (makeModel) {
    mmMore += `<h3>Per-class accuracy (the ${makeModel.perClass.length} largest classes)</h3>`;
    mmMore += makeModel.perClass.length ? perClassSvg(makeModel.perClass) : '<p class="muted">No scored rows.</p>';
    mmMore += '<h3>Most confused pairs</h3>';
    mmMore += makeModel.confused.length
      ? `<table class="confused"><thead><tr><th>True class</th><th>Model said</th><th>Rows</th></tr></thead><tbody>${makeModel.confused
          .map((c) => `<tr><td>${escapeHtml(c.truth)}</td><td>${escapeHtml(c.predicted)}</td><td>${escapeHtml(c.count)}</td></tr>`)
          .join('')}</tbody></table>`
      : '<p class="muted">The model named every scored row right.</p>';
  }
  sections.push(
    headSection(
      'makeModel',
      makeModel,
      [{ name: 'Make-only top-1', value: (s) => pct(s.makeTop1), calibrated: (k) => (k.makeTop1 == null ? DASH : pct(k.makeTop1)) }],
      mmMore,
      cal,
    ),
  );
  sections.push(
    headSection(
      'year',
      year,
      [
        { name: 'Within \u00b12 years', value: (s) => pct(s.within2) },
        { name: 'Year MAE', value: (s) => `${fixed(s.maeYears, 2)} years` },
      ],
      '',
      cal,
    ),
  );
  const untrained = r.untrained.length
    ? `<ul>${r.untrained.map((u) => `<li><b>${escapeHtml(u.head)}</b>: ${escapeHtml(u.reason)}</li>`).join('')}</ul>`
    : '<p class="muted">Every head was trained.</p>';
  const meta = [
    ['Checkpoint', `${r.checkpoint} (step ${r.step})`],
    ['Scored', sourceText(r.source)],
    ['Rows', String(r.rows)],
    ['Training rows', String(r.trainRows)],
    ['kNN k', String(r.knnK)],
    ...(r.features ? [['Features', `${r.features.extractor} (${r.features.dim} values a photo)`]] : []),
    ['Took', `${fixed(r.seconds, 1)} s`],
    ['Created', r.createdAt],
  ]
    .map(([k, v]) => `<span><b>${escapeHtml(k)}:</b> ${escapeHtml(v)}</span>`)
    .join(' ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`Evaluation of ${r.runName}`)}</title><style>${CSS}</style></head>
<body>
<header><h1>Evaluation of run ${escapeHtml(r.runName)} <span class="muted">#${escapeHtml(r.runId)}</span></h1>
<p class="meta">${meta}</p></header>
${sections.join('\n')}
<section><h2>Untrained heads</h2>${untrained}</section>
<section><h2>What these numbers mean</h2><dl>
<dt>Top-1 / top-5 accuracy</dt><dd>The share of scored rows whose true class was the model's first guess / among its five most probable classes.</dd>
<dt>Make-only top-1</dt><dd>The make alone: the probabilities of each make's models are summed and the most probable make is compared with the true class's make (Unknown counts as a make of its own).</dd>
<dt>Within \u00b12 years</dt><dd>The share of rows whose most probable year is at most two years from the true year; the year MAE is the mean distance in years. Rows of unknown year are not scored.</dd>
<dt>Cross-entropy</dt><dd>The mean of \u2212ln(probability given to the true class), probabilities clamped at 10<sup>\u22127</sup>: lower is better, and confident mistakes cost the most.</dd>
<dt>Calibration error (ECE)</dt><dd>Predictions are grouped by their top-1 confidence; ECE is the row-weighted mean gap between each group's accuracy and its mean confidence. The diagrams show the same groups: bars on the dashed diagonal mean a confidence of 70% is right 70% of the time.</dd>
<dt>Calibrated figures</dt><dd>Training ends by fitting one temperature per head on the run's test split (temperature scaling), and predictions use those calibrated probabilities. The <b>Model, calibrated</b> column scores them: cross-entropy and ECE change, while top-1, top-5 and every figure of the top class stay the same, since scaling keeps the order of the classes (the make-only top-1 sums the probabilities of a make's models and can change). On the run's own test split the temperatures were fitted on the very rows scored, so the calibrated figures are in-sample and optimistic; the held-out figure beside them scales each half of the rows with a temperature fitted on the other half. On a manifest of other photos they are held out.</dd>
<dt>Baselines</dt><dd><b>Majority</b> predicts the training set's class frequencies for every row, so its top-1 is the most common class: a model must beat it to have learnt anything. <b>kNN</b> lets the k most similar training photos (cosine similarity of the same backbone features) vote: it shows what the features alone give without the trained heads.</dd>
<dt>The split</dt><dd>${splitText(r.source)}</dd>
<dt>Rows scored</dt><dd>Each head is scored only on the rows that have its label; rows without it are left out.</dd>
</dl></section>
</body></html>
`;
}

/** Writes report.json and report.html into `dir` (created if needed), each atomically. */
export async function writeReport(dir: string, report: EvalReport): Promise<void> {
  await writeFileAtomic(path.join(dir, REPORT_JSON), `${JSON.stringify(report, null, 2)}\n`);
  await writeFileAtomic(path.join(dir, REPORT_HTML), renderReportHtml(report));
}

/** The report stored in `dir` (its report.json) and its page (report.html, rendered again when that file is missing). */
export function readReport(dir: string): { report: EvalReport; html: string } {
  const file = path.join(dir, REPORT_JSON);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`no evaluation report in ${dir}`);
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UserError(`evaluation report ${file} is not valid JSON`);
  }
  const v = value as Partial<EvalReport> | null;
  if (!v || typeof v !== 'object' || v.version !== 1 || typeof v.heads !== 'object' || v.heads === null) {
    throw new UserError(`evaluation report ${file} is not a version-1 report`);
  }
  const report = v as EvalReport;
  let html: string;
  try {
    html = fs.readFileSync(path.join(dir, REPORT_HTML), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    html = renderReportHtml(report);
  }
  return { report, html };
}

/** The list entry of a stored report: its source, rows and the model's headline figure per head. */
export function reportEntry(id: string, report: EvalReport): EvalReportEntry {
  const { price, makeModel, year } = report.heads;
  return {
    id,
    runId: report.runId,
    createdAt: report.createdAt,
    source: report.source,
    rows: report.rows,
    headline: {
      priceTop1: price ? price.model.top1 : null,
      makeModelTop1: makeModel ? makeModel.model.top1 : null,
      makeTop1: makeModel ? makeModel.model.makeTop1 : null,
      yearWithin2: year ? year.model.within2 : null,
    },
  };
}
