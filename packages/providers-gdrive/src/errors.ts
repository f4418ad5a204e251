/**
 * The one place where Google Drive's failures (GaxiosErrors from the SDK, network errors) become BackupErrors.
 * It decides by HTTP status and Drive's `reason` only. Messages name the repository file and the account and say
 * what to do; the original error is replaced by a summary, because a request's URL, headers or body can carry a
 * credential (an access token, a resumable-session URI).
 */

import { BackupError, parseRetryAfter } from '@backup-manager/core-archive';

export type DriveOperation = 'create' | 'open' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'usage';

export interface DriveErrorContext {
  readonly operation: DriveOperation;
  /** What the request was about, e.g. `data/3f9c…` or the repository folder path. */
  readonly target: string;
  /** The backend's location, e.g. `gdrive:backup-manager/repo1`. */
  readonly location: string;
  /** The Google account (email address), when known: a full-storage message names it. */
  readonly account?: string;
  /** The request went to a resumable-upload session URI: 404/410 there means the session expired. */
  readonly uploadSession?: boolean;
  /** Milliseconds since the epoch, to read a Retry-After date (default Date.now). */
  readonly now?: () => number;
}

/** A credential-free summary of a failed Drive request, kept as the BackupError's cause. */
export class DriveRequestFailure extends Error {
  override readonly name = 'DriveRequestFailure';
  readonly status: number | undefined;
  readonly reason: string | undefined;
  readonly code: string | undefined;

  constructor(status: number | undefined, reason: string | undefined, code: string | undefined) {
    const what = status === undefined ? `no answer (${code ?? 'network error'})` : `HTTP ${status}${reason === undefined ? '' : ` ${reason}`}`;
    super(`Google Drive request failed: ${what}`);
    this.status = status;
    this.reason = reason;
    this.code = code;
  }
}

const VERBS: Record<DriveOperation, string> = {
  create: 'create the repository folders',
  open: 'open the repository folder',
  save: 'upload',
  load: 'download',
  stat: 'look up',
  list: 'list',
  remove: 'delete',
  usage: 'read the storage quota of',
};

const RATE_REASONS = new Set(['userRateLimitExceeded', 'rateLimitExceeded', 'sharingRateLimitExceeded', 'dailyLimitExceeded']);
const QUOTA_REASONS = new Set(['storageQuotaExceeded', 'quotaExceeded', 'teamDriveFileLimitExceeded', 'numChildrenInNonRootLimitExceeded']);
const NETWORK_CODES = /^(ECONNRESET|ECONNREFUSED|ECONNABORTED|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|UND_ERR_\w+)$/;

/** HTTP status of a failed request, or undefined when no answer came back. */
export function statusOf(e: unknown): number | undefined {
  const direct = (e as { status?: unknown } | undefined)?.status;
  if (typeof direct === 'number') return direct;
  const nested = (e as { response?: { status?: unknown } } | undefined)?.response?.status;
  return typeof nested === 'number' ? nested : undefined;
}

/** Drive's `error.errors[0].reason`, when the answer was Drive's JSON envelope. */
export function reasonOf(e: unknown): string | undefined {
  const data = (e as { response?: { data?: unknown } } | undefined)?.response?.data;
  let body: unknown = data;
  if (typeof data === 'string') body = parseJson(data);
  else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const view = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    body = parseJson(Buffer.from(view).toString('utf8'));
  }
  const reason = (body as { error?: { errors?: Array<{ reason?: unknown }> } } | undefined)?.error?.errors?.[0]?.reason;
  if (typeof reason === 'string' && /^\w+$/.test(reason)) return reason;
  // Streamed and binary downloads carry the JSON body only in the message (cloud-apis.md §1.6).
  const message = (e as { message?: unknown } | undefined)?.message;
  if (typeof message === 'string') {
    const match = /"reason"\s*:\s*"(\w+)"/.exec(message);
    if (match?.[1] !== undefined) return match[1];
  }
  return undefined;
}

/** A response header from a failed request (gaxios gives a Headers object; marshalled SDK answers a record). */
export function headerOf(e: unknown, name: string): string | undefined {
  const headers = (e as { response?: { headers?: unknown } } | undefined)?.response?.headers;
  if (typeof headers === 'object' && headers !== null && typeof (headers as { get?: unknown }).get === 'function') {
    // A Headers object, though not necessarily this realm's class (gaxios may bring its own fetch).
    const value: unknown = (headers as { get: (n: string) => unknown }).get(name);
    return typeof value === 'string' ? value : undefined;
  }
  if (typeof headers === 'object' && headers !== null) {
    const value = (headers as Record<string, unknown>)[name.toLowerCase()];
    return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

/** The system error code of a request that got no answer (ECONNRESET, UND_ERR_SOCKET, …). */
export function networkCodeOf(e: unknown): string | undefined {
  for (let x: unknown = e, depth = 0; x !== undefined && x !== null && depth < 4; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.test(code)) return code;
    const name = (x as { name?: unknown }).name;
    if (name === 'TimeoutError' || name === 'AbortError') return 'ETIMEDOUT';
  }
  if (statusOf(e) === undefined && /socket hang up|fetch failed|other side closed|terminated/i.test(String((e as { message?: unknown })?.message ?? ''))) {
    return 'ECONNRESET';
  }
  return undefined;
}

/** True for a failure that interrupted a request without a meaningful answer: no response at all, or a 5xx. */
export function isInterruption(e: unknown): boolean {
  const status = statusOf(e);
  return status === undefined ? !(e instanceof BackupError) : status >= 500 && status <= 599;
}

/** True when Drive says the account's storage is full. */
export function isStorageFull(e: unknown): boolean {
  const status = statusOf(e);
  return (status === 403 || status === 413) && QUOTA_REASONS.has(reasonOf(e) ?? '');
}

/**
 * Translates anything a Drive request threw. BackupErrors pass through unchanged. 401 is UNAUTHORIZED with the
 * re-auth hint (the caller has already refreshed once); 403/429 rate limits are RATE_LIMITED with Retry-After;
 * a full Drive is QUOTA_EXCEEDED naming the account; 404 is NOT_FOUND (an expired upload session is UNAVAILABLE, so
 * the whole upload is retried); 416 is INVALID_RANGE; 5xx, timeouts and dropped connections are UNAVAILABLE.
 */
export function translateDriveError(e: unknown, context: DriveErrorContext): BackupError {
  if (e instanceof BackupError) return e;
  const status = statusOf(e);
  const reason = reasonOf(e);
  const network = status === undefined ? networkCodeOf(e) : undefined;
  const cause = new DriveRequestFailure(status, reason, network ?? stringCode(e));
  const retryAfterMs = parseRetryAfter(headerOf(e, 'retry-after'), context.now);
  const subject = context.target;
  const options = { cause, subject, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  const verb = VERBS[context.operation];
  const what = `${verb} ${context.target} (${context.location})`;

  if (status === undefined) {
    return new BackupError(
      'UNAVAILABLE',
      `cannot ${what}: the connection to Google Drive failed (${network ?? 'no answer'}); check the network, the transfer will be retried`,
      options,
    );
  }
  if (status === 401) {
    return new BackupError(
      'UNAUTHORIZED',
      `Google Drive does not accept the saved sign-in (HTTP 401) while trying to ${what}; run \`bam auth google_drive\` again`,
      options,
    );
  }
  if (status === 429 || (status === 403 && RATE_REASONS.has(reason ?? ''))) {
    return new BackupError('RATE_LIMITED', `Google Drive asks us to slow down (${reason ?? `HTTP ${status}`}) while trying to ${what}`, options);
  }
  if (isStorageFull(e)) {
    const account = context.account === undefined ? 'the signed-in Google account' : `the Google account ${context.account}`;
    return new BackupError(
      'QUOTA_EXCEEDED',
      `the Google Drive of ${account} is full (${reason}), so ${context.target} could not be stored: free space (empty the Drive trash, delete old snapshots with \`bam forget --prune\`) or buy more storage, then run the backup again`,
      options,
    );
  }
  if ((status === 404 || status === 410) && context.uploadSession === true) {
    return new BackupError('UNAVAILABLE', `the Google Drive upload session for ${context.target} expired; the upload starts over`, options);
  }
  if (status === 404) {
    return new BackupError('NOT_FOUND', `${context.target} does not exist in the Google Drive repository ${context.location}`, options);
  }
  if (status === 416) {
    return new BackupError(
      'INVALID_RANGE',
      `cannot ${what}: the requested bytes lie past the end of the file; the index and the file disagree, run a repository check`,
      options,
    );
  }
  if (status === 408 || status >= 500) {
    return new BackupError('UNAVAILABLE', `Google Drive is unavailable (HTTP ${status}) while trying to ${what}; it will be retried`, options);
  }
  if (status === 403) {
    return new BackupError(
      'PERMISSION_DENIED',
      `Google Drive refuses to ${what} (${reason ?? 'HTTP 403'}): check that the signed-in account owns the folder and that the app was granted access, or run \`bam auth google_drive\` again`,
      options,
    );
  }
  return new BackupError(
    'INTERNAL',
    `Google Drive rejected the request to ${what} (HTTP ${status}${reason === undefined ? '' : ` ${reason}`}); this is a bug, please report it`,
    options,
  );
}

function stringCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[\w-]+$/.test(code) ? code : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
