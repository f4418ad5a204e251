/**
 * The one place where what the Dropbox SDK throws becomes a BackupError. It decides from the HTTP status and the
 * tags of Dropbox's error union (never from `error_summary`, which Dropbox marks as for humans only), so that the
 * core's RetryBackend can act on the code alone.
 */

import { BackupError, parseRetryAfter } from '@backup-manager/core-archive';
import type { ErrorCode } from '@backup-manager/core-archive';

/** What the backend was doing, for the message. */
export type DropboxOperation = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'usage';

export interface DropboxErrorContext {
  readonly operation: DropboxOperation;
  /** The Dropbox route that failed, e.g. `files/upload_session/append_v2`; some tags mean different things per route. */
  readonly route: string;
  /** The Dropbox path the call was about (never a credential). */
  readonly target: string;
  /** Who owns the Dropbox, for a full-quota message, e.g. `the Dropbox account of ann@example.com`. */
  readonly account?: string;
}

/** A DropboxResponseError as the SDK throws it for every non-2xx answer (checked by shape, not by class identity). */
export interface DropboxHttpError {
  readonly name: 'DropboxResponseError';
  readonly status: number;
  readonly headers: { get(name: string): string | null } | undefined;
  /** The parsed JSON body (`{ error_summary, error }`), or the raw text when the body was not JSON. */
  readonly error: unknown;
}

export function isDropboxHttpError(e: unknown): e is DropboxHttpError {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'DropboxResponseError' &&
    typeof (e as { status?: unknown }).status === 'number';
}

type Tagged = { readonly '.tag': string; readonly [field: string]: unknown };

function isTagged(value: unknown): value is Tagged {
  return typeof value === 'object' && value !== null && typeof (value as { '.tag'?: unknown })['.tag'] === 'string';
}

/** The `error` member of a Dropbox error body (a tagged union for route errors, a struct for 429s), if any. */
export function dropboxErrorValue(e: DropboxHttpError): Record<string, unknown> | undefined {
  const body = e.error;
  if (typeof body !== 'object' || body === null) return undefined;
  const inner = (body as { error?: unknown }).error;
  return typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : undefined;
}

/**
 * The chain of union tags of a Dropbox error, outermost first: `{".tag":"path","reason":{".tag":"insufficient_space"}}`
 * gives `['path', 'insufficient_space']`. A member whose value is a union nests it under a key named like the tag;
 * a member whose value is a struct inlines the struct's fields, so the chain continues through its tagged field.
 */
export function dropboxErrorTags(e: DropboxHttpError): string[] {
  const tags: string[] = [];
  let current: unknown = dropboxErrorValue(e);
  while (typeof current === 'object' && current !== null && tags.length < 8) {
    const record = current as Record<string, unknown>;
    let next: unknown;
    if (isTagged(record)) {
      const tag = record['.tag'];
      tags.push(tag);
      next = isTagged(record[tag]) ? record[tag] : Object.values(record).find(isTagged);
    } else {
      next = Object.values(record).find(isTagged);
    }
    current = next;
  }
  return tags;
}

/** The `correct_offset` of an `incorrect_offset` answer from upload_session/append_v2 or finish, if that is what `e` is. */
export function correctOffsetOf(e: unknown): number | undefined {
  if (!isDropboxHttpError(e) || e.status !== 409) return undefined;
  let current: unknown = dropboxErrorValue(e);
  for (let depth = 0; depth < 4 && isTagged(current); depth++) {
    if (current['.tag'] === 'incorrect_offset') {
      const offset = current['correct_offset'];
      return typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 ? offset : undefined;
    }
    current = current[current['.tag']];
  }
  return undefined;
}

/** A 401 that a fresh access token may cure (as opposed to a missing scope or a suspended account). */
export function isRejectedAccessToken(e: unknown): boolean {
  if (!isDropboxHttpError(e) || e.status !== 401) return false;
  const tag = dropboxErrorTags(e)[0];
  return tag === undefined || tag === 'expired_access_token' || tag === 'invalid_access_token';
}

const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH',
  'EHOSTUNREACH', 'ENETDOWN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * True when the request never got an answer: the connection was refused, reset or timed out (undici reports these as
 * `TypeError: fetch failed` or `terminated` with a coded cause). Whether the server applied the request is unknown.
 */
export function isConnectionFailure(e: unknown): boolean {
  let current: unknown = e;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const { code, name, message } = current as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (name === 'TimeoutError') return true;
    if (depth === 0 && current instanceof TypeError && (message === 'fetch failed' || message === 'terminated')) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

const VERBS: Record<DropboxOperation, string> = {
  create: 'create the folder',
  save: 'save',
  load: 'read',
  stat: 'look up',
  list: 'list',
  remove: 'delete',
  usage: 'read the space usage of',
};

const UPLOAD_SESSION_ROUTE = /^files\/upload_session\//;

/** Tags that mean Dropbox refuses this write or read for good (a permission, a name, an occupied path). */
const REFUSED_TAGS = new Set([
  'conflict', 'no_write_permission', 'disallowed_name', 'restricted_content', 'team_folder', 'operation_suppressed',
  'too_many_files', 'not_folder', 'malformed_path', 'unsupported_content_type', 'locked', 'cant_move_shared_folder',
  'access_denied', 'no_permission', 'invalid_account_type', 'paper_access_denied', 'team_access_denied',
  'email_unverified', 'unsupported_file', 'encryption_not_supported',
]);

/**
 * Translates anything the Dropbox SDK (or the fetch under it) threw into a BackupError with a stable code:
 * NOT_FOUND, RATE_LIMITED (with `retryAfterMs`), UNAVAILABLE, QUOTA_EXCEEDED, UNAUTHORIZED, PERMISSION_DENIED,
 * INVALID_RANGE, or INTERNAL for what only a bug explains. BackupErrors pass through unchanged. The message names the
 * Dropbox path and says what to do; it never contains a token.
 */
export function translateDropboxError(e: unknown, context: DropboxErrorContext): BackupError {
  if (e instanceof BackupError) return e;
  const { target } = context;
  const doing = `${VERBS[context.operation]} ${target}`;
  const make = (code: ErrorCode, message: string, retryAfterMs?: number): BackupError =>
    new BackupError(code, message, { cause: e, subject: target, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });

  if (!isDropboxHttpError(e)) {
    if (isConnectionFailure(e)) {
      return make('UNAVAILABLE', `could not ${doing}: the connection to Dropbox failed (${describeCause(e)}); check the network, the operation will be retried`);
    }
    return make('INTERNAL', `could not ${doing}: unexpected failure in the Dropbox client (${describeCause(e)}); this is a bug, please report it`);
  }

  const tags = dropboxErrorTags(e);
  const summary = tags.length > 0 ? tags.join('/') : textOf(e.error);
  switch (e.status) {
    case 400:
      return make('INTERNAL', `could not ${doing}: Dropbox rejected the request as malformed (${textOf(e.error)}); this is a bug, please report it`);
    case 401: {
      const tag = tags[0];
      if (tag === 'missing_scope') {
        return make('UNAUTHORIZED', `could not ${doing}: the Dropbox authorization lacks a permission this app needs; run \`bam auth dropbox\` again and allow every requested permission`);
      }
      if (tag === 'user_suspended') {
        return make('UNAUTHORIZED', `could not ${doing}: the Dropbox account is suspended; resolve it with Dropbox, then run \`bam auth dropbox\` again`);
      }
      return make('UNAUTHORIZED', `could not ${doing}: Dropbox no longer accepts this app's authorization (${summary || 'unauthorized'}), even after refreshing the access token; run \`bam auth dropbox\` again`);
    }
    case 403:
      return make('PERMISSION_DENIED', `could not ${doing}: Dropbox denies this app access (${summary || 'forbidden'}); check the app's permissions and the account type, then run \`bam auth dropbox\` again`);
    case 416:
      return make('INVALID_RANGE', `could not ${doing}: the range asked for lies past the end of the file; the index and the file disagree, run a repository check`);
    case 429: {
      const retryAfterMs = retryAfterMsOf(e);
      const contention = tags.includes('too_many_write_operations');
      return make(
        'RATE_LIMITED',
        `could not ${doing}: Dropbox asked to slow down (${contention ? 'too many simultaneous writes to this Dropbox' : 'too many requests'})${retryAfterMs === undefined ? '' : `, retry after ${retryAfterMs / 1000} s`}; lower the request rate or the number of connections if this persists`,
        retryAfterMs,
      );
    }
    case 409:
      return translateRouteError(e, tags, summary, context, doing, make);
    default:
      if (e.status >= 500) {
        return make('UNAVAILABLE', `could not ${doing}: Dropbox answered ${e.status} (${summary || 'server error'}); the operation will be retried, check https://status.dropbox.com if it keeps failing`, retryAfterMsOf(e));
      }
      return make('INTERNAL', `could not ${doing}: Dropbox answered with an unexpected HTTP ${e.status} (${summary}); this is a bug, please report it`);
  }
}

function translateRouteError(
  e: DropboxHttpError,
  tags: string[],
  summary: string,
  context: DropboxErrorContext,
  doing: string,
  make: (code: ErrorCode, message: string, retryAfterMs?: number) => BackupError,
): BackupError {
  const has = (tag: string) => tags.includes(tag);
  const inSession = UPLOAD_SESSION_ROUTE.test(context.route);
  if (has('insufficient_space')) {
    const account = context.account ?? 'the Dropbox account';
    return make('QUOTA_EXCEEDED', `could not ${doing}: ${account} is full. Free space in that Dropbox (deleted files do not count against it) or upgrade its plan, then run the operation again`);
  }
  if (has('too_many_write_operations')) {
    return make('RATE_LIMITED', `could not ${doing}: Dropbox is busy with other writes to this account (too_many_write_operations); the operation will be retried`, retryAfterMsOf(e));
  }
  if (inSession && (has('not_found') || has('closed') || has('incorrect_offset'))) {
    // The upload session expired (7 days), was already committed, or lost step with us: only a new save can help.
    return make('UNAVAILABLE', `could not ${doing}: the Dropbox upload session is no longer usable (${summary}); the save will start over`);
  }
  if (has('content_hash_mismatch')) {
    return make('UNAVAILABLE', `could not ${doing}: Dropbox received different bytes than were sent (content hash mismatch); the save will start over`);
  }
  if (has('reset')) {
    return make('UNAVAILABLE', `could not ${doing}: Dropbox invalidated the listing cursor; the listing will start over`);
  }
  if (has('not_found') || has('not_file')) {
    return make('NOT_FOUND', `${context.target} does not exist in Dropbox${has('not_file') ? ' as a file' : ''}`);
  }
  if (has('payload_too_large') || has('too_large')) {
    return make('INTERNAL', `could not ${doing}: Dropbox refused a request as too large (${summary}); this is a bug, please report it`);
  }
  const refused = tags.find((tag) => REFUSED_TAGS.has(tag));
  if (refused !== undefined) {
    const hint = refused === 'conflict'
      ? 'something else (a folder, or a file where a folder belongs) occupies that path; move it away in Dropbox'
      : 'check the repository path and the permissions of the Dropbox app';
    return make('PERMISSION_DENIED', `could not ${doing}: Dropbox refuses it (${summary}); ${hint}`);
  }
  return make('INTERNAL', `could not ${doing}: Dropbox answered with an error this version does not know (${summary || textOf(e.error)}); please report it`);
}

/** Milliseconds from the `Retry-After` header, else from the body's `retry_after` (seconds); undefined when neither is given. */
export function retryAfterMsOf(e: DropboxHttpError): number | undefined {
  const fromHeader = parseRetryAfter(e.headers?.get('retry-after'));
  if (fromHeader !== undefined) return fromHeader;
  const fromBody = dropboxErrorValue(e)?.['retry_after'];
  return typeof fromBody === 'number' && Number.isFinite(fromBody) && fromBody >= 0 ? Math.round(fromBody * 1000) : undefined;
}

function textOf(body: unknown): string {
  if (typeof body === 'string') return body.length > 200 ? `${body.slice(0, 200)}…` : body;
  if (typeof body === 'object' && body !== null) {
    const summary = (body as { error_summary?: unknown }).error_summary;
    if (typeof summary === 'string') return summary;
  }
  return 'no details';
}

function describeCause(e: unknown): string {
  const parts: string[] = [];
  let current: unknown = e;
  for (let depth = 0; depth < 3 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    parts.push(typeof code === 'string' ? `${current.message} [${code}]` : current.message);
    current = current.cause;
  }
  return parts.length > 0 ? parts.join(': ') : String(e);
}
