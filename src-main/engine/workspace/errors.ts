/** An error whose message is meant for the user as it is (bad input, bad workspace, ...). */
export class UserError extends Error {
  override name = 'UserError';
}

export class WorkspaceError extends UserError {
  override name = 'WorkspaceError';
}
