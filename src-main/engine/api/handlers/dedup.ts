import type { DedupResults } from '../contract/dedup.ts';
import type { Handlers } from './types.ts';
import { dedupGroups, dedupSummary, nearCount, setOverride } from '../../dedup/summary.ts';

export const dedupHandlers: Handlers<keyof DedupResults> = {
  'dedup.summary': (_p, e) => dedupSummary(e.ws.db),
  'dedup.groups': (p, e) => dedupGroups(e.ws.db, p),
  'dedup.nearCount': (p, e) => nearCount(e.ws.db, p.distance),
  'dedup.override': (p, e) => setOverride(e.ws.db, p),
};
