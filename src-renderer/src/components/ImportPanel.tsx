import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import {
  IMPORT_FIELDS,
  type ImportField,
  type ImportPreview,
  type ImportSummary,
  type JobInfo,
  type Params,
} from '../../../src-main/engine/api/contract/index.ts';
import { api } from '../api/client.ts';
import { useCall, useJobs } from '../hooks.ts';
import { fmtInt } from '../format.ts';
import { JobProgress, LIVE } from './JobProgress.tsx';
import { Metric } from './Metric.tsx';

// ---- Import: a CSV / JSON Lines manifest or a labelled folder, previewed, mapped, then imported ----

type Mode = 'manifest' | 'pattern' | 'classes';
type Choice = ImportField | 'metadata';

interface ImportForm {
  mode: Mode;
  manifest: string;
  folder: string;
  pattern: string;
  /** The fields a class folder's name holds, joined by _ (make_model). */
  classAs: string;
  imagesRoot: string;
  resize: string;
  allowPrivateHosts: boolean;
}

const DEFAULT_FORM: ImportForm = {
  mode: 'manifest',
  manifest: '',
  folder: '',
  pattern: '{make}_{model}_{year}_*',
  classAs: 'make_model',
  imagesRoot: '',
  resize: '256',
  allowPrivateHosts: false,
};

const CLASS_AS = ['make_model', 'make', 'model', 'make_model_year'];
const PREVIEW_ROWS = 10;
const SHOWN_ERRORS = 20;

/** What names the rows to import: the import job's params, less the column map and the job's options. */
type Input = Omit<Params<'import.preview'>, 'map' | 'rows'>;

function inputOf(f: ImportForm): Input {
  const root = f.imagesRoot.trim() || undefined;
  if (f.mode === 'manifest') return { manifest: f.manifest.trim(), imagesRoot: root };
  const folder = f.folder.trim();
  if (f.mode === 'pattern') return { folder, pattern: f.pattern.trim(), imagesRoot: root };
  return { folder, classAs: f.classAs.split('_') as Array<'make' | 'model' | 'year'>, imagesRoot: root };
}

/**
 * The import job's `map` (field -> column) from the panel's column -> field choices. A column
 * whose own name is a field but which the user keeps as metadata is renamed `<name>_column`, so
 * the importer does not read it as that field.
 */
function mapOf(choices: Record<string, Choice>): Record<string, string> {
  const map: Record<string, string> = {};
  for (const [column, field] of Object.entries(choices)) {
    if (field !== 'metadata') map[field] = column;
    else if ((IMPORT_FIELDS as readonly string[]).includes(column.trim())) map[`${column.trim()}_column`] = column;
  }
  return map;
}

export function ImportPanel() {
  const call = useCall();
  const jobs = useJobs();
  const [form, setForm] = useState<ImportForm>(DEFAULT_FORM);
  // the input the last Preview was for, the user's column choices, and the preview they give
  const [input, setInput] = useState<Input | null>(null);
  const [choices, setChoices] = useState<Record<string, Choice>>({});
  const [preview, setPreview] = useState<ImportPreview | null>(null);
  const [previewError, setPreviewError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const latest = useMemo(() => jobs.filter((j) => j.kind === 'import').sort((a, b) => b.id - a.id)[0] ?? null, [jobs]);
  const running = latest !== null && LIVE.has(latest.state);
  const map = useMemo(() => mapOf(choices), [choices]);
  const mapKey = JSON.stringify(map);
  const seq = useRef(0);

  // every change of the input or of a column's field previews again, so the table shows what the import would do
  useEffect(() => {
    if (!input) return;
    const n = ++seq.current;
    setLoading(true);
    api
      .request('import.preview', { ...input, map: JSON.parse(mapKey) as Record<string, string>, rows: PREVIEW_ROWS })
      .then((p) => {
        if (n !== seq.current) return;
        setPreview(p);
        setPreviewError(null);
        // a new manifest: each column starts as its name suggests (the user changes it below)
        setChoices((c) => {
          const cols = p.columns.map((col) => col.name);
          if (cols.length === Object.keys(c).length && cols.every((col) => col in c)) return c;
          return Object.fromEntries(p.columns.map((col) => [col.name, c[col.name] ?? col.suggested]));
        });
      })
      .catch((e: unknown) => {
        if (n !== seq.current) return;
        setPreview(null);
        setPreviewError(e instanceof Error ? e.message : String(e));
      })
      .finally(() => {
        if (n === seq.current) setLoading(false);
      });
  }, [input, mapKey]);

  const onPreview = (e: FormEvent) => {
    e.preventDefault();
    const next = inputOf(form);
    if (JSON.stringify(next) !== JSON.stringify(input)) {
      // another manifest or folder: its columns are mapped afresh
      if (next.manifest !== input?.manifest || next.folder !== input?.folder) setChoices({});
      setInput(next);
    } else setInput({ ...next }); // the same input again: read it again (the file may have changed)
  };

  const choose = (column: string, field: Choice) =>
    setChoices((c) => {
      const out: Record<string, Choice> = {};
      // a field is filled from one column: the one chosen last
      for (const [col, f] of Object.entries(c)) out[col] = f === field && field !== 'metadata' ? 'metadata' : f;
      out[column] = field;
      return out;
    });

  const start = async () => {
    if (!input || !preview) return;
    await call('jobs.start', {
      kind: 'import',
      params: {
        ...input,
        map: input.manifest ? map : {},
        resize: Number(form.resize),
        allowPrivateHosts: form.allowPrivateHosts,
      },
    });
  };

  const setMode = (mode: Mode) => setForm({ ...form, mode });
  const canImport = preview !== null && preview.error === null && !running && !loading;

  return (
    <section className="card" data-testid="import-panel">
      <h3>Import</h3>
      <p className="muted small">
        Bring your own photos: a CSV or JSON Lines manifest (one row per image; rows sharing a listing_id are one car) or a labelled folder.
        Imported listings have the source <code>import:&lt;file or folder name&gt;</code>. Paths are on the engine&apos;s machine and must
        be absolute; in served mode they must be in the workspace or a <code>--allow-path</code> folder.
      </p>
      <form className="form" onSubmit={onPreview} data-testid="import-form">
        <label>
          From
          <select value={form.mode} onChange={(e) => setMode(e.target.value as Mode)} data-testid="import-mode">
            <option value="manifest">a manifest (CSV / JSONL)</option>
            <option value="pattern">a folder, labels in file names</option>
            <option value="classes">a folder, one sub-folder per class</option>
          </select>
        </label>
        {form.mode === 'manifest' ? (
          <label className="span2">
            Manifest file
            <input
              value={form.manifest}
              onChange={(e) => setForm({ ...form, manifest: e.target.value })}
              placeholder="/data/cars/cars.csv"
              data-testid="import-manifest"
            />
          </label>
        ) : (
          <label className="span2">
            Folder
            <input
              value={form.folder}
              onChange={(e) => setForm({ ...form, folder: e.target.value })}
              placeholder="/data/dealer-photos"
              data-testid="import-folder"
            />
          </label>
        )}
        {form.mode === 'pattern' && (
          <label title="{field} matches as little as it can ({year} is four digits), * matches anything; over the file name without its extension">
            File name pattern
            <input value={form.pattern} onChange={(e) => setForm({ ...form, pattern: e.target.value })} data-testid="import-pattern" />
          </label>
        )}
        {form.mode === 'classes' && (
          <label title="what each sub-folder's name holds, split at _ (or spaces)">
            Folder names are
            <select value={form.classAs} onChange={(e) => setForm({ ...form, classAs: e.target.value })} data-testid="import-classAs">
              {CLASS_AS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </label>
        )}
        <label className="span2" title="relative image paths resolve against this folder">
          Images root
          <input
            value={form.imagesRoot}
            onChange={(e) => setForm({ ...form, imagesRoot: e.target.value })}
            placeholder={form.mode === 'manifest' ? "the manifest's folder" : 'the folder'}
            data-testid="import-imagesRoot"
          />
        </label>
        <label title="images are downsampled so the short side is at most this">
          Resize (px)
          <input
            type="number"
            value={form.resize}
            onChange={(e) => setForm({ ...form, resize: e.target.value })}
            data-testid="import-resize"
          />
        </label>
        <label className="check" title="http(s) images on loopback or private addresses are refused unless this is set">
          <span>
            <input
              type="checkbox"
              checked={form.allowPrivateHosts}
              onChange={(e) => setForm({ ...form, allowPrivateHosts: e.target.checked })}
              data-testid="import-allowPrivateHosts"
            />{' '}
            allow private hosts
          </span>
        </label>
        <div className="form-actions">
          <button type="submit" disabled={loading} data-testid="import-preview">
            {loading ? 'Reading…' : 'Preview'}
          </button>
        </div>
      </form>
      {previewError && (
        <div className="job-error" data-testid="import-preview-error">
          {previewError}
        </div>
      )}
      {preview && <PreviewTable preview={preview} choices={choices} onChoose={choose} />}
      <div className="row">
        <button
          className="primary"
          onClick={() => void start()}
          disabled={!canImport}
          data-testid="import-start"
          title={running ? 'an import is running (one at a time per workspace)' : !preview ? 'preview first' : (preview.error ?? undefined)}
        >
          Import{preview ? ` ${fmtInt(preview.totalRows)} rows` : ''}
        </button>
      </div>
      {latest && (
        <div style={{ marginTop: 10 }}>
          <JobProgress job={latest} testid="import" unit="listings" />
          {latest.state === 'done' && latest.result != null && <Summary job={latest} />}
        </div>
      )}
    </section>
  );
}

function PreviewTable({
  preview: p,
  choices,
  onChoose,
}: {
  preview: ImportPreview;
  choices: Record<string, Choice>;
  onChoose: (column: string, field: Choice) => void;
}) {
  const mappable = p.format !== 'folder';
  return (
    <div className="import-preview" data-testid="import-preview-table" data-format={p.format} data-total={p.totalRows}>
      <p className="small">
        <span className="badge">{p.format}</span> <strong>{p.source}</strong> · {fmtInt(p.totalRows)} rows · images from{' '}
        <code>{p.imagesRoot}</code>
        {p.rows.length < p.totalRows && <span className="muted"> · the first {p.rows.length} shown</span>}
      </p>
      {p.error && (
        <div className="job-error" data-testid="import-preview-problem">
          {p.error}
        </div>
      )}
      <div className="import-table-wrap">
        <table className="import-table">
          <thead>
            <tr>
              <th>Line</th>
              {p.columns.map((c) => (
                <th key={c.name}>
                  <div>{c.name}</div>
                  {mappable ? (
                    <select
                      value={choices[c.name] ?? c.field}
                      onChange={(e) => onChoose(c.name, e.target.value as Choice)}
                      data-testid="import-map"
                      data-column={c.name}
                      data-field={c.field}
                      title="the import field this column fills; metadata keeps it with the listing"
                    >
                      {IMPORT_FIELDS.map((f) => (
                        <option key={f} value={f}>
                          {f}
                        </option>
                      ))}
                      <option value="metadata">metadata</option>
                    </select>
                  ) : (
                    <span className="muted small">{c.field}</span>
                  )}
                </th>
              ))}
              <th>Image</th>
              <th>Would import</th>
            </tr>
          </thead>
          <tbody>
            {p.rows.map((r) => (
              <tr
                key={`${r.line}:${r.where}`}
                data-testid="import-preview-row"
                data-line={r.line}
                data-error={r.error?.category ?? ''}
                className={r.error ? 'import-row-bad' : undefined}
              >
                <td className="muted">{r.line || r.where}</td>
                {p.columns.map((c) => (
                  <td key={c.name} title={r.cells[c.name]}>
                    {r.cells[c.name]}
                  </td>
                ))}
                <td title={r.image.resolved ?? undefined} data-testid="import-preview-image" data-exists={String(r.image.exists)}>
                  {r.image.kind === 'none' ? (
                    <span className="muted">none</span>
                  ) : r.image.kind === 'url' ? (
                    <span className="muted">URL</span>
                  ) : r.image.exists ? (
                    <span className="dup-ok">found</span>
                  ) : (
                    <span className="dup-x">missing</span>
                  )}
                </td>
                <td title={r.error?.reason}>
                  {r.error ? <span className="log-warn">{r.error.reason}</span> : <span className="dup-ok">yes</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {p.problemCount > 0 && (
        <details className="error-log" data-testid="import-preview-problems" data-count={p.problemCount}>
          <summary>
            {fmtInt(p.problemCount)} row{p.problemCount === 1 ? '' : 's'} the importer cannot read
          </summary>
          <div className="error-list">
            {p.problems.map((i) => (
              <div key={`${i.line}:${i.where}`} className="error-row">
                <span className="muted">{i.where}</span> <span className="log-warn">{i.reason}</span>
              </div>
            ))}
          </div>
        </details>
      )}
    </div>
  );
}

function Summary({ job }: { job: JobInfo }) {
  const s = job.result as ImportSummary;
  const reasons = Object.entries(s.skippedByReason).sort((a, b) => b[1] - a[1]);
  return (
    <div
      className="import-summary"
      data-testid="import-summary"
      data-rows-read={s.rowsRead}
      data-rows-imported={s.rowsImported}
      data-rows-skipped={s.rowsSkipped}
      data-listings-added={s.listingsAdded}
      data-images-added={s.imagesAdded}
    >
      <div className="cards">
        <Metric label="Rows read" value={s.rowsRead} />
        <Metric label="Rows imported" value={s.rowsImported} />
        <Metric label="Rows skipped" value={s.rowsSkipped} />
        <Metric label="Listings added" value={s.listingsAdded} hint={`${fmtInt(s.listings)} listings of ${s.source} in all`} />
        <Metric label="Images added" value={s.imagesAdded} hint={`${fmtInt(s.images)} images in ${s.source}'s listings`} />
      </div>
      {reasons.length > 0 && (
        <p className="small" data-testid="import-skipped">
          Skipped:{' '}
          {reasons.map(([reason, n]) => (
            <span key={reason} className="badge" data-testid="import-skipped-reason" data-reason={reason} data-count={n}>
              {reason}: {fmtInt(n)}
            </span>
          ))}
        </p>
      )}
      {s.errors.length > 0 && (
        <div className="error-list" data-testid="import-errors">
          {s.errors.slice(0, SHOWN_ERRORS).map((i) => (
            <div key={`${i.line}:${i.where}:${i.category}`} className="error-row" data-testid="import-error" data-line={i.line}>
              <span className="muted">{i.where}</span> <span className="log-warn">{i.reason}</span>
            </div>
          ))}
          {s.errors.length > SHOWN_ERRORS && (
            <div className="muted">… and {fmtInt(s.errors.length - SHOWN_ERRORS)} more (the job&apos;s log has them all)</div>
          )}
        </div>
      )}
      {s.warnings.length > 0 && (
        <p className="muted small" data-testid="import-warnings">
          {fmtInt(s.warnings.length)} value{s.warnings.length === 1 ? '' : 's'} stored as empty (out of range or unreadable), e.g.{' '}
          {s.warnings[0]!.where}: {s.warnings[0]!.reason}
        </p>
      )}
    </div>
  );
}
