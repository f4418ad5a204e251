/**
 * The one error this package throws. Every invalid policy, option or snapshot surfaces as a RetentionPolicyError
 * whose message names the offending field and says what to write instead, so a CLI can print it as it is.
 */

export interface RetentionPolicyErrorOptions {
  /** The policy field, option or snapshot the error is about, e.g. `daily`, `timeZone`, `snapshots[3].time`. */
  field?: string;
  cause?: unknown;
}

export class RetentionPolicyError extends Error {
  override readonly name = 'RetentionPolicyError';
  /** Stable code, the same string that `BackupError` uses for bad input elsewhere in the workspace. */
  readonly code = 'INVALID_ARGUMENT';
  readonly field: string | undefined;

  constructor(message: string, options: RetentionPolicyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.field = options.field;
  }
}

export function isRetentionPolicyError(e: unknown): e is RetentionPolicyError {
  return e instanceof RetentionPolicyError;
}
