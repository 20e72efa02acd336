import type { z } from 'zod';

/** A kind of long-running work: its parameters and the module that runs it in a worker thread. */
export interface JobKind<P = unknown> {
  kind: string;
  title: (params: P) => string;
  params: z.ZodType<P, z.ZodTypeDef, unknown>;
  /** file: URL of a module whose default export is a JobFn<P>. */
  module: string;
  /** At most one job of this kind runs on a workspace at a time. */
  exclusive: boolean;
  /** An engine that finds this job interrupted (its process was killed) starts it again. */
  autoResume: boolean;
}

const registry = new Map<string, JobKind>();

export function defineJobKind<P>(def: JobKind<P>): JobKind<P> {
  registry.set(def.kind, def as unknown as JobKind);
  return def;
}

export function jobKind(kind: string): JobKind {
  const k = registry.get(kind);
  if (!k) throw new Error(`unknown job kind '${kind}' (known: ${[...registry.keys()].join(', ')})`);
  return k;
}

export function jobKinds(): JobKind[] {
  return [...registry.values()];
}
