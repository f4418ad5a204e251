// Builders for the HTTP replies Dropbox API v2 sends: JSON results, route errors (409 with error_summary and a
// tagged-union `error`), auth errors (401), rate limiting (429 + Retry-After), access errors (403) and the
// plain-text 400 "bad input" answers.

/** A Stone tagged-union value as it appears on the wire: `{".tag": "...", ...}`. */
export type Tagged = { '.tag': string; [field: string]: unknown };

export interface DropboxReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

const JSON_TYPE = 'application/json';

export function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): DropboxReply {
  return { status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify(value) };
}

function isTagged(value: unknown): value is Tagged {
  return typeof value === 'object' && value !== null && typeof (value as Tagged)['.tag'] === 'string';
}

/**
 * `error_summary` as Dropbox writes it: the chain of union tags joined by '/', followed by an opaque tail of dots.
 * A member whose value is a union nests it under a key named like the tag; a member whose value is a struct inlines
 * the struct's fields, so the chain continues through the first field holding a tagged value.
 */
export function errorSummary(error: unknown): string {
  const tags: string[] = [];
  let current: unknown = error;
  while (typeof current === 'object' && current !== null) {
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
  const joined = tags.join('/');
  // The tail exists to stop clients parsing the summary; its length varies in production too.
  return `${joined}/${'.'.repeat(1 + (joined.length % 3))}`;
}

/** 409: an endpoint-specific error. */
export function routeError(error: Tagged): DropboxReply {
  return jsonReply(409, { error_summary: errorSummary(error), error });
}

export type AuthErrorTag = 'invalid_access_token' | 'expired_access_token' | 'missing_scope' | 'user_suspended';

/** 401: the access token is missing its validity (auth.AuthError). */
export function authError(tag: AuthErrorTag): DropboxReply {
  const error: Tagged = { '.tag': tag };
  return jsonReply(401, { error_summary: errorSummary(error), error });
}

export type RateLimitReason = 'too_many_requests' | 'too_many_write_operations';

/** 429: auth.RateLimitError inside the usual envelope, plus the Retry-After header Dropbox always sends. */
export function rateLimitError(reason: RateLimitReason, retryAfterSeconds: number): DropboxReply {
  const error = { reason: { '.tag': reason }, retry_after: retryAfterSeconds };
  return jsonReply(429, { error_summary: errorSummary(error), error }, { 'retry-after': String(retryAfterSeconds) });
}

/** 403: auth.AccessError, e.g. a Business-only endpoint called for a personal account. */
export function accessError(error: Tagged): DropboxReply {
  return jsonReply(403, { error_summary: errorSummary(error), error });
}

/** 400: Dropbox answers malformed requests with plain text, not JSON. */
export function badInput(route: string, message: string): DropboxReply {
  return {
    status: 400,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: `Error in call to API function "${route}": ${message}`,
  };
}

export function textReply(status: number, text: string): DropboxReply {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text };
}

/**
 * Header-borne JSON (Dropbox-API-Result) must be ASCII: like the SDK's httpHeaderSafeJson, escape every
 * character from U+007F up as \uXXXX.
 */
export function headerSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
