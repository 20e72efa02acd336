import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';
import { DEFAULT_MAX_DISTANCE } from './near-index.ts';

export const dedupParams = z.object({
  method: z.enum(['exact', 'near']).default('near'),
  /** pHash Hamming distance for near duplicates (pairs are also checked by colour). */
  maxDistance: z.number().int().min(0).max(32).default(DEFAULT_MAX_DISTANCE),
  policy: z.enum(['default', 'original']).default('default'),
});
export type DedupParams = z.infer<typeof dedupParams>;

export const dedupKind = defineJobKind<DedupParams>({
  kind: 'dedup',
  title: (p) => `Dedup (${p.method}${p.method === 'near' ? ` ≤ ${p.maxDistance}` : ''}, ${p.policy} policy)`,
  params: dedupParams,
  module: new URL('./dedup-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
