// translateGraphError on the errors the real Graph client raises (GraphError with Graph's envelope and headers), on
// what the terminal handler throws when a connection fails, and on the special meanings inside an upload session:
// every case maps to the code the retry wrapper relies on.
import { BackupError } from '@backup-manager/core-archive';
import type { ErrorCode } from '@backup-manager/core-archive';
import { GraphClientError, GraphError } from '@microsoft/microsoft-graph-client';
import { describe, expect, it } from 'vitest';
import { graphCodesOf, isConnectionFailure, throttleWaitMsOf, translateGraphError } from './errors.ts';
import type { GraphErrorContext } from './errors.ts';
import { transportFailure } from './graph-client.ts';

const TARGET = 'backup-manager/repo1/data/ab/abcd';
const SAVE: GraphErrorContext = { operation: 'save', target: TARGET };
const FRAGMENT: GraphErrorContext = { operation: 'save', target: TARGET, uploadSession: true };
const LOAD: GraphErrorContext = { operation: 'load', target: TARGET };
const LIST: GraphErrorContext = { operation: 'list', target: 'backup-manager/repo1/data' };

/** A GraphError as the SDK builds it from Graph's `{ error: { code, message, innerError } }` answer. */
function graphError(status: number, code: string | undefined, innerCode?: string, headers: Record<string, string> = {}): GraphError {
  const e = new GraphError(status, `message for ${code ?? status}`);
  e.code = code ?? null;
  e.body = JSON.stringify({ code, message: 'x', innerError: { ...(innerCode === undefined ? {} : { code: innerCode }), date: '2024-01-01T00:00:00', 'request-id': 'r' } });
  e.headers = new Headers(headers);
  return e;
}

function expectCode(e: BackupError, code: ErrorCode): void {
  expect(e).toBeInstanceOf(BackupError);
  expect(e.code).toBe(code);
  expect(e.retryable).toBe(code === 'RATE_LIMITED' || code === 'UNAVAILABLE');
}

describe('translateGraphError', () => {
  it.each([
    ['a missing item', 404, 'itemNotFound', undefined, LOAD, 'NOT_FOUND'],
    ['an expired upload session', 404, 'itemNotFound', 'uploadSessionNotFound', FRAGMENT, 'UNAVAILABLE'],
    ['a fragment that overlaps what the session has', 416, 'invalidRange', 'fragmentOverlap', FRAGMENT, 'UNAVAILABLE'],
    ['an upload URL that refuses the request', 401, 'unauthenticated', undefined, FRAGMENT, 'UNAVAILABLE'],
    ['a gone session', 410, 'itemNotFound', undefined, FRAGMENT, 'UNAVAILABLE'],
    ['a range past the end', 416, 'invalidRange', undefined, LOAD, 'INVALID_RANGE'],
    ['a name OneDrive refuses', 400, 'invalidRequest', 'nameContainsInvalidCharacters', SAVE, 'INVALID_ARGUMENT'],
    ['a path that is too long', 400, 'invalidRequest', 'pathIsTooLong', SAVE, 'INVALID_ARGUMENT'],
    ['a malformed request', 400, 'invalidRequest', undefined, SAVE, 'INTERNAL'],
    ['a misaligned fragment', 400, 'invalidRequest', undefined, FRAGMENT, 'INTERNAL'],
    ['a fragment over 60 MiB', 413, 'invalidRequest', 'maxFragmentLengthExceeded', FRAGMENT, 'INTERNAL'],
    ['a token Graph rejects after the refresh', 401, 'InvalidAuthenticationToken', undefined, LOAD, 'UNAUTHORIZED'],
    ['an access error', 403, 'accessDenied', undefined, SAVE, 'PERMISSION_DENIED'],
    ['a name taken by something else', 409, 'nameAlreadyExists', undefined, SAVE, 'PERMISSION_DENIED'],
    ['a changed item', 412, 'resourceModified', undefined, SAVE, 'UNAVAILABLE'],
    ['a locked item', 423, 'accessDenied', 'resourceLocked', SAVE, 'UNAVAILABLE'],
    ['an internal error', 500, 'generalException', undefined, LOAD, 'UNAVAILABLE'],
    ['a bad gateway', 502, undefined, undefined, LOAD, 'UNAVAILABLE'],
    ['an unavailable service', 503, 'serviceNotAvailable', undefined, LIST, 'UNAVAILABLE'],
    ['a gateway timeout', 504, undefined, undefined, LIST, 'UNAVAILABLE'],
    ['throttling', 429, 'activityLimitReached', 'throttledRequest', LIST, 'RATE_LIMITED'],
    ['the bandwidth limit', 509, undefined, undefined, LOAD, 'RATE_LIMITED'],
    ['a full drive', 507, 'quotaLimitReached', undefined, SAVE, 'QUOTA_EXCEEDED'],
    ['a full drive inside a session', 507, 'quotaLimitReached', undefined, FRAGMENT, 'QUOTA_EXCEEDED'],
    ['quota as a 403', 403, 'quotaLimitReached', undefined, SAVE, 'QUOTA_EXCEEDED'],
    ['a status this version does not know', 418, undefined, undefined, SAVE, 'INTERNAL'],
  ] as const)('%s → %s', (_what, status, code, innerCode, context, expected) => {
    const e = translateGraphError(graphError(status, code, innerCode), context);
    expectCode(e, expected);
    expect(e.subject).toBe(context.target);
    expect(e.cause).toBeInstanceOf(GraphError);
    expect(e.message).toContain(context.target);
  });

  it('names the full account when it is known, and says what to do', () => {
    const named = translateGraphError(graphError(507, 'quotaLimitReached'), { ...SAVE, account: 'the OneDrive of Ann Example (ann@example.com)' });
    expectCode(named, 'QUOTA_EXCEEDED');
    expect(named.message).toContain('the OneDrive of Ann Example (ann@example.com) is full');
    expect(named.message).toMatch(/recycle bin/);
    expect(translateGraphError(graphError(507, 'quotaLimitReached'), SAVE).message).toContain('the OneDrive is full');
  });

  it('takes the wait of a 429 or 503 from Retry-After, in seconds or as a date', () => {
    const seconds = translateGraphError(graphError(429, 'activityLimitReached', 'throttledRequest', { 'retry-after': '4' }), SAVE);
    expect(seconds).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 4000 });
    expect(seconds.message).toContain('retry after 4 s');
    const now = Date.parse('2024-05-01T10:00:00Z');
    const date = translateGraphError(graphError(429, 'activityLimitReached', undefined, { 'retry-after': 'Wed, 01 May 2024 10:00:30 GMT' }), { ...SAVE, now: () => now });
    expect(date.retryAfterMs).toBe(30_000);
    expect(translateGraphError(graphError(429, 'activityLimitReached'), SAVE).retryAfterMs).toBeUndefined();
    expect(translateGraphError(graphError(503, 'serviceNotAvailable', undefined, { 'retry-after': '10' }), LOAD)).toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 10_000 });
  });

  it('is UNAUTHORIZED with the command to run', () => {
    const e = translateGraphError(graphError(401, 'InvalidAuthenticationToken'), LOAD);
    expect(e.message).toContain('run `bam auth onedrive` again');
  });

  it('treats failed connections and timeouts as UNAVAILABLE and anything else as a bug', () => {
    const socket = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const reset = translateGraphError(transportFailure(new TypeError('fetch failed', { cause: socket })), FRAGMENT);
    expectCode(reset, 'UNAVAILABLE');
    expect(reset.message).toContain('UND_ERR_SOCKET');
    // A body that broke off while the SDK read it: the SDK makes a GraphError without a status.
    const cutOff = new GraphError(-1, '', new TypeError('terminated'));
    cutOff.code = 'TypeError';
    expectCode(translateGraphError(cutOff, LOAD), 'UNAVAILABLE');
    expectCode(translateGraphError(new DOMException('The operation timed out.', 'TimeoutError'), LOAD), 'UNAVAILABLE');
    expectCode(translateGraphError(new RangeError('surprise'), LOAD), 'INTERNAL');
    expectCode(translateGraphError(new GraphClientError('Please add only hosts'), LOAD), 'INTERNAL');
    const kept = new BackupError('UNAUTHORIZED', 'not signed in');
    expect(translateGraphError(kept, LOAD)).toBe(kept);
  });
});

describe('helpers', () => {
  it('reads the outer and inner codes of Graph envelope, and nothing from other bodies', () => {
    expect(graphCodesOf(graphError(416, 'invalidRange', 'fragmentOverlap'))).toEqual(['invalidRange', 'fragmentOverlap']);
    const html = new GraphError(502);
    html.body = '<html>Bad gateway</html>';
    expect(graphCodesOf(html)).toEqual([]);
    expect(graphCodesOf(new Error('x'))).toEqual([]);
  });

  it('asks the pacer to hold only for throttling answers with Retry-After', () => {
    expect(throttleWaitMsOf(graphError(429, 'activityLimitReached', undefined, { 'retry-after': '3' }))).toBe(3000);
    expect(throttleWaitMsOf(graphError(503, 'serviceNotAvailable', undefined, { 'retry-after': '1' }))).toBe(1000);
    expect(throttleWaitMsOf(graphError(429, 'activityLimitReached'))).toBeUndefined();
    expect(throttleWaitMsOf(graphError(500, 'generalException', undefined, { 'retry-after': '3' }))).toBeUndefined();
  });

  it('recognises a lost connection but not an HTTP error', () => {
    expect(isConnectionFailure(transportFailure(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })))).toBe(true);
    expect(isConnectionFailure(new TypeError('terminated'))).toBe(true);
    // Only the terminal handler's own mark counts: a GraphClientError about the SDK's configuration is no lost answer.
    const config = new GraphClientError('Please add only hosts or hostnames to the CustomHosts config');
    config.customError = new TypeError('fetch failed');
    expect(isConnectionFailure(config)).toBe(false);
    expect(isConnectionFailure(graphError(500, 'generalException'))).toBe(false);
    expect(isConnectionFailure(new TypeError('x is not a function'))).toBe(false);
  });
});
