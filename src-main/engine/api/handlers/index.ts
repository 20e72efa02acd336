import { coreHandlers } from './core.ts';
import { datasetHandlers } from './dataset.ts';
import { dedupHandlers } from './dedup.ts';
import { predictHandlers } from './predict.ts';
import { filterHandlers } from './filter.ts';
import { trainHandlers } from './train.ts';
import { valuesHandlers } from './values.ts';
import { importHandlers } from './import.ts';
import { evalHandlers } from './eval.ts';
import { studyHandlers } from './studies.ts';
import { fsHandlers } from './fs.ts';
import type { Handlers } from './types.ts';

/** Every method of the contract mapped to its handler; the type makes a missing one an error. */
export const handlers: Handlers = {
  ...coreHandlers,
  ...datasetHandlers,
  ...dedupHandlers,
  ...predictHandlers,
  ...filterHandlers,
  ...trainHandlers,
  ...valuesHandlers,
  ...importHandlers,
  ...evalHandlers,
  ...studyHandlers,
  ...fsHandlers,
};
