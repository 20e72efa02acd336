import type { Migration } from './index.ts';

/**
 * Whether a failed job stopped on a UserError (a mistake the user can fix, which the message
 * explains: no stack, the CLI exits 2) or on an unexpected error (stack in the job's log, exit 1).
 * Jobs that failed before this column existed are classified by their error's name: the only
 * UserError classes then were UserError and WorkspaceError.
 */
export const migration005: Migration = {
  version: 5,
  name: 'job-errors',
  sql: `
    ALTER TABLE jobs ADD COLUMN error_user INTEGER;
    UPDATE jobs SET error_user = (error_name IN ('UserError', 'WorkspaceError')) WHERE error_name IS NOT NULL;
  `,
};
