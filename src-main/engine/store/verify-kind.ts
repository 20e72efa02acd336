import { z } from 'zod';
import { defineJobKind } from '../jobs/kinds.ts';

export const verifyStoreParams = z.object({
  /** Mark images that fail as failed (so a later scrape fetches them again). */
  repair: z.boolean().default(true),
  checkSize: z.boolean().default(true),
});
export type VerifyStoreParams = z.infer<typeof verifyStoreParams>;

export const verifyStoreKind = defineJobKind<VerifyStoreParams>({
  kind: 'verify-store',
  title: () => 'Verify image store',
  params: verifyStoreParams,
  module: new URL('./verify-job.ts', import.meta.url).href,
  exclusive: true,
  autoResume: true,
});
