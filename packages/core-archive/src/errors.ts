/**
 * Typed errors for the whole engine. Every error that crosses a package boundary is a BackupError with a stable
 * `code` (callers and the CLI decide from the code alone), a `cause`, and a message that tells a person what to do.
 */

export const ERROR_CODES = [
  // Backend-level conditions, produced by every Backend implementation's single translation function.
  'NOT_FOUND', // the named file does not exist
  'INVALID_RANGE', // a ranged read asked for bytes past the end of the file (permanent)
  'RATE_LIMITED', // the service asked us to slow down; `retryAfterMs` may carry its Retry-After
  'UNAVAILABLE', // transient: 5xx, connection reset, timeout
  'QUOTA_EXCEEDED', // the destination is full (permanent)
  'UNAUTHORIZED', // credentials missing or expired beyond refresh (permanent)
  'PERMISSION_DENIED', // the destination refuses the operation (permanent)
  'APPEND_ONLY', // a delete was refused because the repository or destination is append-only
  // Repository-level conditions.
  'REPOSITORY_NOT_FOUND',
  'REPOSITORY_EXISTS',
  'WRONG_PASSWORD',
  'NO_PASSWORD',
  'LOCKED',
  'CORRUPT', // a repository file failed authentication, decoding or a consistency check
  'UNSUPPORTED_VERSION',
  // Input and environment.
  'INVALID_ARGUMENT',
  'SOURCE_NOT_FOUND',
  'CONFIG_INVALID',
  'INTERRUPTED',
  'IO', // a local filesystem operation failed
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['RATE_LIMITED', 'UNAVAILABLE']);

export interface BackupErrorOptions {
  cause?: unknown;
  /** For RATE_LIMITED: how long the service asked us to wait. */
  retryAfterMs?: number;
  /** The repository file, source path or config path the error is about (never a secret). */
  subject?: string;
}

export class BackupError extends Error {
  override readonly name = 'BackupError';
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;
  readonly subject: string | undefined;

  constructor(code: ErrorCode, message: string, options: BackupErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.subject = options.subject;
  }

  /** True when repeating the same operation later may succeed. Only the retry wrapper acts on this. */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

export function isBackupError(e: unknown, code?: ErrorCode): e is BackupError {
  return e instanceof BackupError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a BackupError, keeping BackupErrors as they are. */
export function toBackupError(e: unknown, fallback: ErrorCode = 'INTERNAL', message?: string): BackupError {
  if (e instanceof BackupError) return e;
  const text = message ?? (e instanceof Error ? e.message : String(e));
  // Leaf packages (config, retention-gfs) have error classes of their own with codes from the same closed set.
  const own = (e as { code?: unknown } | null)?.code;
  const code = typeof own === 'string' && (ERROR_CODES as readonly string[]).includes(own) ? (own as ErrorCode) : fallback;
  return new BackupError(code, text, { cause: e });
}
