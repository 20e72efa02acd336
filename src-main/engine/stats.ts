import type { Db } from './workspace/db.ts';
import type { Stats } from './api/contract/core.ts';
import { valueStats } from './workspace/value-ranges.ts';

type StatsContributor = (db: Db) => Record<string, unknown>;
const contributors: Array<[string, StatsContributor]> = [];

/** Later stages add their section of `stats` (dedup, filter, ...) here. */
export function addStats(domain: string, fn: StatsContributor): void {
  contributors.push([domain, fn]);
}

const n = (db: Db, sql: string): number => (db.prepare(sql).get() as { n: number }).n;

export function getStats(db: Db): Stats {
  const stats: Stats = {
    attempts: n(db, `SELECT COUNT(*) n FROM attempts`),
    listings: n(db, `SELECT COUNT(*) n FROM listings`),
    misses: n(db, `SELECT COUNT(*) n FROM attempts WHERE outcome = 'gone'`),
    failedAttempts: n(db, `SELECT COUNT(*) n FROM attempts WHERE outcome = 'failed'`),
    images: {
      referenced: n(db, `SELECT COUNT(DISTINCT image_id) n FROM listing_images`),
      stored: n(db, `SELECT COUNT(*) n FROM images WHERE state = 'stored'`),
      failed: n(db, `SELECT COUNT(*) n FROM images WHERE state = 'failed'`),
      pending: n(db, `SELECT COUNT(*) n FROM images WHERE state = 'pending'`),
    },
    jobs: {
      running: n(db, `SELECT COUNT(*) n FROM jobs WHERE state IN ('running','cancelling')`),
      interrupted: n(db, `SELECT COUNT(*) n FROM jobs WHERE state = 'interrupted'`),
    },
    values: valueStats(db),
  };
  for (const [domain, fn] of contributors) stats[domain] = fn(db);
  return stats;
}
