/**
 * The one place where what the Microsoft Graph client throws becomes a BackupError. It decides from the HTTP status
 * and Graph's error codes (`error.code` and the more specific `innerError.code`), never from the message text, so
 * that the core's RetryBackend can act on the code alone.
 */

import { GraphClientError, GraphError } from '@microsoft/microsoft-graph-client';
import { BackupError, parseRetryAfter, reauthHint } from '@backup-manager/core-archive';
import type { ErrorCode } from '@backup-manager/core-archive';
import { isTransportFailure } from './graph-client.ts';

/** What the backend was doing, for the message. */
export type GraphOperation = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'usage';

export interface GraphErrorContext {
  readonly operation: GraphOperation;
  /** The drive path the call was about, e.g. `backup-manager/repo1/data/ab/ab…` (never a URL or a credential). */
  readonly target: string;
  /**
   * The request went to an upload session's pre-authenticated URL: there a 404 means the session expired, a 416 that
   * client and service lost step, and a 401 that the URL is no longer valid; a new save can cure all of them.
   */
  readonly uploadSession?: boolean;
  /** Whose OneDrive is full, for the quota message, e.g. `the OneDrive of Ann Example (ann@example.com)`. */
  readonly account?: string;
  /** Milliseconds since the epoch, for a Retry-After given as a date (default Date.now). */
  readonly now?: () => number;
}

const VERBS: Record<GraphOperation, string> = {
  create: 'create the folder',
  save: 'save',
  load: 'read',
  stat: 'look up',
  list: 'list',
  remove: 'delete',
  usage: 'read the quota of',
};

/** The HTTP status of a Graph answer, or undefined when there was none. */
export function graphStatusOf(e: unknown): number | undefined {
  return e instanceof GraphError && e.statusCode > 0 ? e.statusCode : undefined;
}

/** Graph's `error.code` and, when present, `innerError.code` (the SDK keeps the `error` object as JSON in `body`). */
export function graphCodesOf(e: unknown): string[] {
  if (!(e instanceof GraphError)) return [];
  const codes: string[] = [];
  if (typeof e.code === 'string' && e.code !== '') codes.push(e.code);
  if (typeof e.body === 'string' && e.body.startsWith('{')) {
    try {
      const body = JSON.parse(e.body) as { innerError?: { code?: unknown }; innererror?: { code?: unknown } };
      const inner = (body.innerError ?? body.innererror)?.code;
      if (typeof inner === 'string' && inner !== '') codes.push(inner);
    } catch {
      // Not Graph's envelope (a proxy's page, say): the status alone decides.
    }
  }
  return codes;
}

/** Milliseconds from a Retry-After header on a Graph error, if it carries one. */
export function retryAfterMsOf(e: unknown, now: () => number = Date.now): number | undefined {
  if (!(e instanceof GraphError)) return undefined;
  const headers = e.headers as { get?: (name: string) => string | null } | undefined;
  return typeof headers?.get === 'function' ? parseRetryAfter(headers.get('retry-after'), now) : undefined;
}

/** How long Graph asked every request to wait, when it throttled this one (429, 503, 509 with Retry-After). */
export function throttleWaitMsOf(e: unknown, now: () => number = Date.now): number | undefined {
  const status = graphStatusOf(e);
  return status === 429 || status === 503 || status === 509 ? retryAfterMsOf(e, now) : undefined;
}

export function isItemNotFound(e: unknown): boolean {
  return graphStatusOf(e) === 404;
}

/** 409 nameAlreadyExists: something of that name is already in the folder. */
export function isNameConflict(e: unknown): boolean {
  return graphStatusOf(e) === 409;
}

/** A 401 from Graph: a fresh access token may cure it. */
export function isRejectedToken(e: unknown): boolean {
  return graphStatusOf(e) === 401;
}

/**
 * True when a request got no (complete) answer: the connection was refused, reset or timed out (the terminal
 * handler's transport failure), or the body broke off while it was read (`terminated`, wrapped by the SDK into a
 * GraphError without a status, or raw where this backend reads the body itself). Whether the service applied the
 * request is unknown.
 */
export function isConnectionFailure(e: unknown): boolean {
  if (isTransportFailure(e)) return true;
  if (e instanceof GraphError) return e.statusCode <= 0 && (e.message === 'terminated' || e.message === 'fetch failed');
  return (e instanceof TypeError && e.message === 'terminated') || (e instanceof Error && e.name === 'TimeoutError');
}

/** Graph's own codes for a name OneDrive refuses. */
const NAME_CODES = new Set(['nameContainsInvalidCharacters', 'invalidPath', 'pathIsTooLong', 'fileNameIsTooLong', 'invalidFileName']);

/**
 * Translates anything the Graph client (or the fetch under it) threw into a BackupError with a stable code:
 * NOT_FOUND, RATE_LIMITED (with `retryAfterMs`), UNAVAILABLE, QUOTA_EXCEEDED, UNAUTHORIZED, PERMISSION_DENIED,
 * INVALID_RANGE, INVALID_ARGUMENT for a name OneDrive refuses, or INTERNAL for what only a bug explains. BackupErrors
 * pass through unchanged. The message names the drive path and says what to do; it never contains a token or URL.
 */
export function translateGraphError(e: unknown, context: GraphErrorContext): BackupError {
  if (e instanceof BackupError) return e;
  const { target } = context;
  const doing = `${VERBS[context.operation]} ${target}`;
  const now = context.now ?? Date.now;
  const make = (code: ErrorCode, message: string, retryAfterMs?: number): BackupError =>
    new BackupError(code, message, { cause: e, subject: target, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });

  const status = graphStatusOf(e);
  if (status === undefined) {
    if (isConnectionFailure(e)) {
      return make('UNAVAILABLE', `could not ${doing}: the connection to OneDrive failed (${describeCause(e)}); check the network, the operation will be retried`);
    }
    return make('INTERNAL', `could not ${doing}: unexpected failure in the Microsoft Graph client (${describeCause(e)}); this is a bug, please report it`);
  }

  const codes = graphCodesOf(e);
  const summary = codes.length > 0 ? codes.join('/') : `HTTP ${status}`;
  const has = (code: string) => codes.includes(code);
  const retryAfterMs = retryAfterMsOf(e, now);

  if (status === 507 || has('quotaLimitReached') || has('insufficientStorage')) {
    const account = context.account ?? 'the OneDrive';
    return make('QUOTA_EXCEEDED', `could not ${doing}: ${account} is full. Free space in that OneDrive (empty its recycle bin too: deleted files count against the quota) or upgrade its storage plan, then run the operation again`);
  }
  if (status === 429 || status === 509 || has('activityLimitReached') || has('throttledRequest')) {
    return make(
      'RATE_LIMITED',
      `could not ${doing}: OneDrive asked to slow down (${summary})${retryAfterMs === undefined ? '' : `, retry after ${retryAfterMs / 1000} s`}; lower the request rate or the number of connections if this persists`,
      retryAfterMs,
    );
  }
  if (context.uploadSession === true && (status === 404 || status === 410 || status === 416 || status === 401)) {
    return make('UNAVAILABLE', `could not ${doing}: the OneDrive upload session is no longer usable (${summary}); the save will start over`);
  }
  switch (status) {
    case 400:
      if (codes.some((code) => NAME_CODES.has(code))) {
        return make('INVALID_ARGUMENT', `could not ${doing}: OneDrive refuses the name (${summary}); choose a repository folder whose path follows OneDrive's naming rules`);
      }
      return make('INTERNAL', `could not ${doing}: OneDrive rejected the request as malformed (${summary}: ${e instanceof Error ? e.message : ''}); this is a bug, please report it`);
    case 401:
      return make('UNAUTHORIZED', `could not ${doing}: OneDrive no longer accepts this app's authorization (${summary}), even after refreshing the access token; ${reauthHint('onedrive')}`);
    case 403:
      return make('PERMISSION_DENIED', `could not ${doing}: OneDrive denies access (${summary}); check that the signed-in account may write to this folder, or run \`bam auth onedrive\` again to grant the Files.ReadWrite permission`);
    case 404:
      return make('NOT_FOUND', `${target} does not exist in OneDrive`);
    case 409:
      return make('PERMISSION_DENIED', `could not ${doing}: something else already occupies that path in OneDrive (${summary}); move it away in OneDrive`);
    case 416:
      return make('INVALID_RANGE', `could not ${doing}: the range asked for lies past the end of the file; the index and the file disagree, run a repository check`);
    case 410:
    case 412:
    case 423:
      return make('UNAVAILABLE', `could not ${doing}: OneDrive reports the item as changed or locked (${summary}); the operation will be retried`, retryAfterMs);
    case 413:
      return make('INTERNAL', `could not ${doing}: OneDrive refused a request as too large (${summary}); this is a bug, please report it`);
    default:
      if (status >= 500) {
        return make('UNAVAILABLE', `could not ${doing}: OneDrive answered ${status} (${summary}); the operation will be retried, check https://status.office.com if it keeps failing`, retryAfterMs);
      }
      return make('INTERNAL', `could not ${doing}: OneDrive answered with an unexpected HTTP ${status} (${summary}); this is a bug, please report it`);
  }
}

/** What failed, for the message: fetch's error and the socket error under it, with their codes. */
function describeCause(e: unknown): string {
  const outer = e instanceof GraphClientError && e.customError instanceof Error ? e.customError : e;
  if (!(outer instanceof Error)) return String(outer);
  const inner = outer.cause instanceof Error ? outer.cause : undefined;
  const withCode = (error: Error) => {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && code !== '' ? `${error.message} [${code}]` : error.message;
  };
  return inner === undefined ? withCode(outer) : `${withCode(outer)}: ${withCode(inner)}`;
}
