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
  /** File size of the stored copy. */
  bytes: number | null;
  /** pHash distance to the group's representative (0 for exact groups). */
  distance: number;
  /** The group's best copy (largest, then most bytes): what the default policy keeps. */
  representative: boolean;
  excluded: boolean;
  excludedReason: string | null;
  /** The user's decision on this photo (wins over the group's override), null when none. */
  decision: 'keep' | 'drop' | null;
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
  /** Image id of the best copy; members list it first. */
  representative: number;
  /** Photos of the group with a decision of the user's own. */
  decisions: number;
  members: DedupMember[];
}

export interface DedupAcceptAll {
  /** Groups given "keep the best copy" (those without a decision of the user's). */
  groups: number;
  /** Images excluded from training afterwards, in all. */
  excluded: number;
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
  /** Keep or drop one photo of a group (null clears the decision); survives re-runs while the photo stays grouped. */
  'dedup.decide': z.object({
    imageId: z.number().int().positive(),
    action: z.enum(['keep', 'drop']).nullable(),
  }),
  /** Keep the group's best copy and drop the other photos. */
  'dedup.keepBest': z.object({ groupId: z.number().int().positive() }),
  /** "Keep the best copy" in every group the user has not decided on. */
  'dedup.acceptAll': z.object({}),
} as const;

export interface DedupResults {
  'dedup.summary': DedupSummary;
  'dedup.groups': DedupGroupPage;
  'dedup.nearCount': DedupNearCount;
  'dedup.override': DedupGroup;
  'dedup.decide': DedupGroup;
  'dedup.keepBest': DedupGroup;
  'dedup.acceptAll': DedupAcceptAll;
}
