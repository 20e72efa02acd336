// The predict job: walks a folder, decodes photos with sharp (on libuv's threads) while the model
// runs on the previous batch, and appends one record per file to the set's JSONL file. Resumable:
// files already in this job's file are skipped; with `reuse`, unchanged files already predicted
// by another job of the same run and checkpoint (and the same junk filter) are copied rather than
// run again. Every prediction carries its trust (predict/trust.ts): the workspace's junk filter
// score, the distance to the run's training photos, warnings; the job logs how many carry one.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobContext } from '../jobs/types.ts';
import { UserError } from '../workspace/errors.ts';
import type { PredictRecord } from '../api/contract/predict.ts';
import { heicSupported, ImageFileError, walkImages } from './decode-file.ts';
import { loadPredictor, type DecodedPhoto } from './model-loader.ts';
import type { PredictParams } from './predict-kind.ts';
import { resolveRun } from './runs.ts';
import { appendRecords, readRecords, reusableRecords, trimPartialLine, writeSetMeta } from './store.ts';
import { currentFilterSpec, ensureOodReference, warningSummary } from './trust.ts';

type Prepared = { kind: 'ready'; record: PredictRecord } | { kind: 'decoded'; record: PredictRecord; decoded: DecodedPhoto };

export interface PredictJobResult {
  files: number;
  predicted: number;
  errors: number;
  reused: number;
  /** Files in the folder without an image extension (not listed). */
  ignored: number;
  heicSupported: boolean;
  /** What predicted (Predictor.backendName), 'none' when no file needed the model. */
  backend: string;
  /** Where the backbone ran, null when no file needed the model. */
  runtime: 'onnx' | 'tfjs' | null;
  /** Predicted photos in which no car was found (their predictions are unreliable). */
  noCar?: number;
  /** What found the cars: 'features' (a car-v1 run), the detector's backend, 'none'; null when no file needed the model. */
  carSource?: string | null;
  /** How many photos carry a warning, and which (trust.ts warningSummary). */
  warnings?: string;
}

export default async function predictJob(ctx: JobContext<PredictParams>): Promise<PredictJobResult> {
  const p = ctx.params;
  const wsDir = ctx.workspace.dir;
  const input = path.resolve(p.input);
  const { run, checkpoint } = resolveRun(ctx.workspace, p.runId, p.checkpoint);
  writeSetMeta(wsDir, { jobId: ctx.jobId, runId: run.id, checkpoint, input, createdAt: new Date().toISOString() });
  trimPartialLine(wsDir, ctx.jobId);
  const already = readRecords(wsDir, ctx.jobId);
  const seen = new Set(already.map((r) => r.path));
  let predicted = already.filter((r) => r.prediction).length;
  let errors = already.length - predicted;
  let reused = already.filter((r) => r.reusedFrom).length;

  ctx.progress({ step: 'scan', done: 0, total: null, message: `walking ${input}` });
  let walk: Awaited<ReturnType<typeof walkImages>>;
  try {
    walk = await walkImages(input);
  } catch (e) {
    if (e instanceof ImageFileError) throw new UserError(e.message);
    throw e;
  }
  const { files, ignored } = walk;
  const todo = files.filter((f) => !seen.has(f));
  if (ctx.resumed && already.length) ctx.log('info', `continuing: ${already.length} of ${files.length} files already done`);
  if (ignored) ctx.log('info', `${ignored} files without an image extension were passed over`);
  const filter = currentFilterSpec(ctx.workspace);
  const reuse = p.reuse ? reusableRecords(wsDir, run.id, checkpoint, ctx.jobId) : new Map<string, PredictRecord & { jobId: number }>();
  // a record is reused only when it was scored by today's junk filter (older ones lack trust)
  for (const [file, rec] of reuse) {
    const t = rec.prediction?.trust;
    if (!t || (t.filter?.modelId ?? null) !== (filter?.modelId ?? null) || (t.filter && t.filter.threshold !== filter?.threshold)) reuse.delete(file);
  }

  const total = files.length;
  let done = already.length;
  const report = (): void =>
    ctx.progress({ step: 'predict', done, total, message: `${predicted} predicted, ${errors} errors${reused ? `, ${reused} reused` : ''}` });
  report();
  const noCarOf = (): number => readRecords(wsDir, ctx.jobId).filter((r) => r.prediction?.car && !r.prediction.car.hasCar).length;
  const summary = (): string => {
    const line = warningSummary(readRecords(wsDir, ctx.jobId).map((r) => r.prediction));
    ctx.log('info', line);
    return line;
  };
  if (todo.length === 0)
    return { files: total, predicted, errors, reused, ignored, heicSupported: heicSupported(), backend: 'none', runtime: null, noCar: noCarOf(), carSource: null, warnings: summary() };

  const log = (level: 'info' | 'warn', message: string): void => ctx.log(level, message);
  // built (when missing or stale) in the reference worker: this job's thread stays free for its cancel
  const ood = await ensureOodReference(ctx.workspace, run.dir, log).catch((e: unknown) => {
    ctx.log('warn', `no distance to the training photos: ${(e as Error).message}`);
    return null;
  });
  const predictor = await loadPredictor(run.dir, { checkpoint, runtime: p.runtime, log, trust: { filter, ood }, workspaceDir: wsDir });
  ctx.log(
    'info',
    `model ${run.id}/${checkpoint} (${predictor.mode}${predictor.extractor ? `, ${predictor.extractor} features` : ''}) on ${predictor.backendName} (runtime ${predictor.runtime}, asked ${p.runtime}); car box from ${predictor.carSource}; ` +
      `${predictor.filterModelId !== null ? `junk filter ${predictor.filterModelId} (threshold ${filter!.threshold.toFixed(2)})` : 'no junk filter'}; ${ood ? `distance reference of ${ood.meta.rows} training photos` : 'no distance reference'}`,
  );
  const B = p.batchSize;
  const lookahead = Math.max(B * 2, os.availableParallelism?.() ?? os.cpus().length);

  const prepare = async (file: string): Promise<Prepared> => {
    const rel = path.relative(input, file);
    let st: fs.Stats | null = null;
    try {
      st = await fs.promises.stat(file);
      const prev = reuse.get(file);
      if (prev && prev.bytes === st.size && prev.mtimeMs === st.mtimeMs) {
        const { jobId, ...rec } = prev;
        return { kind: 'ready', record: { ...rec, rel, reusedFrom: rec.reusedFrom ?? jobId } };
      }
      const decoded = await predictor.decodePhoto(file, { maxPixels: p.maxPixels });
      return { kind: 'decoded', decoded, record: { path: file, rel, bytes: decoded.bytes, mtimeMs: st.mtimeMs, width: decoded.width, height: decoded.height } };
    } catch (e) {
      const reason = e instanceof ImageFileError ? e.message : `unexpected error: ${(e as Error).message}`;
      return { kind: 'ready', record: { path: file, rel, bytes: st?.size ?? 0, mtimeMs: st?.mtimeMs, error: reason } };
    }
  };

  const pending: Array<Promise<Prepared>> = [];
  let next = 0;
  const launch = (): void => {
    while (pending.length < lookahead && next < todo.length) pending.push(prepare(todo[next++]));
  };
  let batch: Array<{ record: PredictRecord; decoded: DecodedPhoto }> = [];
  let out: PredictRecord[] = [];
  let noCarLogged = 0;

  const flush = async (): Promise<void> => {
    if (batch.length) {
      const preds = await predictor.predictPhotos(batch.map((b) => b.decoded));
      batch.forEach((b, i) => {
        out.push({ ...b.record, prediction: preds[i] });
        if (preds[i]!.car && !preds[i]!.car!.hasCar && noCarLogged++ < 20) ctx.log('warn', `${b.record.rel}: no car found in this photo; its prediction is unreliable`);
      });
      predicted += batch.length;
      done += batch.length;
      batch = [];
    }
    appendRecords(wsDir, ctx.jobId, out);
    out = [];
    report();
  };

  try {
    launch();
    while (pending.length) {
      if (ctx.signal.aborted) break;
      const item = await pending.shift()!;
      launch();
      if (item.kind === 'ready') {
        out.push(item.record);
        done++;
        if (item.record.error) {
          errors++;
          ctx.log('warn', `${item.record.rel}: ${item.record.error}`);
        } else {
          predicted++;
          reused++;
        }
        if (out.length >= B) await flush();
      } else {
        batch.push(item);
        if (batch.length >= B) await flush();
      }
    }
    await flush();
    // Let decodes still in flight after a cancel finish before the worker reports.
    await Promise.allSettled(pending);
  } finally {
    predictor.dispose();
  }
  return {
    files: total,
    predicted,
    errors,
    reused,
    ignored,
    heicSupported: heicSupported(),
    backend: predictor.backendName,
    runtime: predictor.runtime,
    noCar: noCarOf(),
    carSource: predictor.carSource,
    warnings: summary(),
  };
}
