/**
 * The one API contract between the engine and the studio UI. Both transports (Electron IPC
 * through the preload bridge, and HTTP + WebSocket in served mode) carry exactly these requests
 * and push events; each stage contributes a module and this index merges them.
 */
import type { z } from 'zod';
import { coreMethods, type CoreEvents, type CoreResults } from './core.ts';
import { datasetMethods, type DatasetResults } from './dataset.ts';
import { dedupMethods, type DedupResults } from './dedup.ts';
import { predictMethods, type PredictResults } from './predict.ts';
import { filterMethods, type FilterResults } from './filter.ts';
import { trainMethods, type TrainResults, type TrainEvents } from './train.ts';
import { valuesMethods, type ValuesResults } from './values.ts';
import { importMethods, type ImportResults } from './import.ts';
import { evalMethods, type EvalResults } from './eval.ts';
import { studyMethods, type StudyResults } from './studies.ts';
import { fsMethods, type FsResults } from './fs.ts';

export * from './core.ts';
export * from './dataset.ts';
export * from './dedup.ts';
export * from './predict.ts';
export * from './filter.ts';
export * from './train.ts';
export * from './values.ts';
export * from './import.ts';
export * from './eval.ts';
export * from './studies.ts';
export * from './fs.ts';

export const methods = {
  ...coreMethods,
  ...datasetMethods,
  ...dedupMethods,
  ...predictMethods,
  ...filterMethods,
  ...trainMethods,
  ...valuesMethods,
  ...importMethods,
  ...evalMethods,
  ...studyMethods,
  ...fsMethods,
} as const;

export interface Results extends CoreResults, DatasetResults, DedupResults, PredictResults, FilterResults, TrainResults, ValuesResults, ImportResults, EvalResults, StudyResults, FsResults {}

export interface Events extends CoreEvents, TrainEvents {}

export type Method = keyof typeof methods & keyof Results;
export type Params<M extends Method> = z.input<(typeof methods)[M]>;
export type ParsedParams<M extends Method> = z.output<(typeof methods)[M]>;
export type EventName = keyof Events;

/** What a transport gives the renderer; the renderer cannot tell which transport it has. */
export interface StudioApi {
  request<M extends Method>(method: M, params: Params<M>): Promise<Results[M]>;
  subscribe(listener: (event: EventName, data: Events[EventName]) => void): () => void;
  /** URL under which the image with this store key can be shown in an <img>. */
  imageUrl(key: string): string;
  onConnection(listener: (state: ConnectionState) => void): () => void;
}

export type ConnectionState = 'connecting' | 'open' | 'closed';

export function isMethod(name: string): name is Method {
  return Object.prototype.hasOwnProperty.call(methods, name);
}
