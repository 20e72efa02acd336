import { migration001 } from './001-foundation.ts';
import { migration002 } from './002-dedup.ts';
import { migration003 } from './003-filter.ts';
import { migration004 } from './004-train.ts';
import { migration005 } from './005-job-errors.ts';
import { migration006 } from './006-value-warnings.ts';
import { migration007 } from './007-import.ts';
import { migration008 } from './008-dedup-review.ts';
import { migration009 } from './009-label-batches.ts';

export interface Migration {
  /** Becomes PRAGMA user_version once applied; versions are 1, 2, 3, ... with no gaps. */
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. A stage that needs new tables appends one file here. */
export const migrations: readonly Migration[] = [migration001, migration002, migration003, migration004, migration005, migration006, migration007, migration008, migration009];
