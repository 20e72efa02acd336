import type { DedupResults } from '../contract/dedup.ts';
import type { Handlers } from './types.ts';
import { acceptAll, dedupGroups, dedupSummary, keepBest, nearCount, setDecision, setOverride } from '../../dedup/summary.ts';

export const dedupHandlers: Handlers<keyof DedupResults> = {
  'dedup.summary': (_p, e) => dedupSummary(e.ws.db),
  'dedup.groups': (p, e) => dedupGroups(e.ws.db, p),
  'dedup.nearCount': (p, e) => nearCount(e.ws.db, p.distance),
  'dedup.override': (p, e) => setOverride(e.ws.db, p),
  'dedup.decide': (p, e) => setDecision(e.ws.db, p),
  'dedup.keepBest': (p, e) => keepBest(e.ws.db, p),
  'dedup.acceptAll': (_p, e) => acceptAll(e.ws.db),
};
