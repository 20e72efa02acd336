import { z } from 'zod';

// ---- The Dedup stage: hashes, duplicate groups, the policy's exclusions and overrides ----
// (plain data; the renderer imports this file, so no Node imports here)

export interface DedupSummary {
  /** Stored images. */
  stored: number;
  /** Stored images with hashes. */
  hashed: number;
  /** Stored images that could not be hashed (unreadable, corrupt). */
  hashErrors: number;
  groups: number;
  imagesInGroups: number;
  excluded: number;
  /** excluded / stored (0 when nothing is stored). */
  excludedShare: number;
  /** The grouping's parameters, null before the first dedup run. */
  last: { method: 'exact' | 'near'; maxDistance: number; policy: 'default' | 'original'; at: number } | null;
}

export interface DedupMember {
  imageId: number;
  key: string;
  width: number | null;
  height: number | null;
  /** pHash distance to the group's first member. */
  distance: number;
  excluded: boolean;
  excludedReason: string | null;
  listings: Array<{ id: number; listingId: number; title: string | null; url: string }>;
}

export interface DedupGroup {
  id: number;
  /** Identity across re-runs; overrides attach to it. */
  key: string;
  method: 'exact' | 'near';
  size: number;
  listings: number;
  override: 'keep' | 'drop' | null;
  members: DedupMember[];
}

export interface DedupGroupPage {
  total: number;
  groups: DedupGroup[];
}

export interface DedupNearCount {
  distance: number;
  /** Largest distance the stored pairs cover (the last run's max distance). */
  maxDistance: number;
  groups: number;
  images: number;
}

export const dedupMethods = {
  'dedup.summary': z.object({}),
  'dedup.groups': z.object({
    offset: z.number().int().min(0).default(0),
    limit: z.number().int().positive().max(200).default(20),
    /** Members shown per group (the largest groups can hold hundreds). */
    maxMembers: z.number().int().positive().max(500).default(12),
  }),
  'dedup.nearCount': z.object({ distance: z.number().int().min(0).max(64) }),
  'dedup.override': z.object({
    key: z.string().min(1).optional(),
    groupId: z.number().int().positive().optional(),
    /** null clears the override. */
    action: z.enum(['keep', 'drop']).nullable(),
  }),
} as const;

export interface DedupResults {
  'dedup.summary': DedupSummary;
  'dedup.groups': DedupGroupPage;
  'dedup.nearCount': DedupNearCount;
  'dedup.override': DedupGroup;
}
