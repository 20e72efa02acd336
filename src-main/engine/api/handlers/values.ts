import { readValueRanges, saveValueRanges } from '../../workspace/value-ranges.ts';
import type { ValuesResults } from '../contract/values.ts';
import type { Handlers } from './types.ts';

export const valuesHandlers: Handlers<keyof ValuesResults> = {
  'values.ranges': (_p, e) => readValueRanges(e.ws.db),
  'values.setRanges': (p, e) => saveValueRanges(e.ws.db, p),
};
