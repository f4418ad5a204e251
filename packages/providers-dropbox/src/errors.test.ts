// translateDropboxError on the errors the real SDK raises (DropboxResponseError with Dropbox's bodies and headers)
// and on what fetch throws when the connection fails: every case maps to the code the retry wrapper relies on.
import { BackupError } from '@backup-manager/core-archive';
import type { ErrorCode } from '@backup-manager/core-archive';
import { DropboxResponseError } from 'dropbox';
import { describe, expect, it } from 'vitest';
import { correctOffsetOf, isConnectionFailure, isRejectedAccessToken, translateDropboxError } from './errors.ts';
import type { DropboxErrorContext } from './errors.ts';

const TARGET = '/backup-manager/repo1/data/ab/abcd';
const SAVE: DropboxErrorContext = { operation: 'save', route: 'files/upload', target: TARGET };
const APPEND: DropboxErrorContext = { operation: 'save', route: 'files/upload_session/append_v2', target: TARGET };
const FINISH: DropboxErrorContext = { operation: 'save', route: 'files/upload_session/finish', target: TARGET };
const LOAD: DropboxErrorContext = { operation: 'load', route: 'files/download', target: TARGET };
const LIST: DropboxErrorContext = { operation: 'list', route: 'files/list_folder/continue', target: '/backup-manager/repo1/data' };

function sdkError(status: number, error: unknown, headers: Record<string, string> = {}): unknown {
  const body = typeof error === 'string' ? error : { error_summary: 'opaque/..', error };
  return new DropboxResponseError(status, new Headers(headers), body);
}

function expectCode(e: BackupError, code: ErrorCode): void {
  expect(e).toBeInstanceOf(BackupError);
  expect(e.code).toBe(code);
  expect(e.retryable).toBe(code === 'RATE_LIMITED' || code === 'UNAVAILABLE');
}

describe('translateDropboxError', () => {
  it.each([
    ['download of a missing file', 409, { '.tag': 'path', path: { '.tag': 'not_found' } }, LOAD, 'NOT_FOUND'],
    ['download of a folder', 409, { '.tag': 'path', path: { '.tag': 'not_file' } }, LOAD, 'NOT_FOUND'],
    ['upload: something occupies the path', 409, { '.tag': 'path', reason: { '.tag': 'conflict', conflict: { '.tag': 'folder' } }, upload_session_id: 's' }, SAVE, 'PERMISSION_DENIED'],
    ['upload: no write permission', 409, { '.tag': 'path', reason: { '.tag': 'no_write_permission' }, upload_session_id: 's' }, SAVE, 'PERMISSION_DENIED'],
    ['write lock contention as a route error', 409, { '.tag': 'too_many_write_operations' }, FINISH, 'RATE_LIMITED'],
    ['append to an expired session', 409, { '.tag': 'not_found' }, APPEND, 'UNAVAILABLE'],
    ['append to a closed session', 409, { '.tag': 'closed' }, APPEND, 'UNAVAILABLE'],
    ['finish of an expired session', 409, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } }, FINISH, 'UNAVAILABLE'],
    ['an incorrect offset nobody resumed from', 409, { '.tag': 'incorrect_offset', correct_offset: 5 }, APPEND, 'UNAVAILABLE'],
    ['a content hash mismatch', 409, { '.tag': 'content_hash_mismatch' }, APPEND, 'UNAVAILABLE'],
    ['a reset listing cursor', 409, { '.tag': 'reset' }, LIST, 'UNAVAILABLE'],
    ['a request body over 150 MiB', 409, { '.tag': 'payload_too_large' }, APPEND, 'INTERNAL'],
    ['a route error this version does not know', 409, { '.tag': 'other' }, SAVE, 'INTERNAL'],
    ['a range past the end', 416, '', LOAD, 'INVALID_RANGE'],
    ['a malformed request', 400, 'Error in call to API function "files/upload": HTTP header "Dropbox-API-Arg": path: bad', SAVE, 'INTERNAL'],
    ['an access error', 403, { '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'endpoint' } }, SAVE, 'PERMISSION_DENIED'],
    ['an internal server error', 500, 'Internal Server Error', LOAD, 'UNAVAILABLE'],
    ['a bad gateway', 502, 'Bad Gateway', LOAD, 'UNAVAILABLE'],
  ] as const)('%s → %s', (_what, status, body, context, code) => {
    const e = translateDropboxError(sdkError(status, body), context);
    expectCode(e, code);
    expect(e.subject).toBe(context.target);
    expect(e.cause).toBeInstanceOf(DropboxResponseError);
    expect(e.message).toContain(context.target);
  });

  it('names the full account when it is known, and says what to do', () => {
    const upload = sdkError(409, { '.tag': 'path', reason: { '.tag': 'insufficient_space' }, upload_session_id: 's' });
    const named = translateDropboxError(upload, { ...SAVE, account: 'the Dropbox account of ann@example.com' });
    expectCode(named, 'QUOTA_EXCEEDED');
    expect(named.message).toContain('the Dropbox account of ann@example.com is full');
    expect(named.message).toMatch(/free space|upgrade/i);
    const finish = translateDropboxError(sdkError(409, { '.tag': 'path', path: { '.tag': 'insufficient_space' } }), FINISH);
    expectCode(finish, 'QUOTA_EXCEEDED');
    expect(finish.message).toContain('the Dropbox account is full');
  });

  it('takes the wait of a 429 from Retry-After, else from retry_after, else leaves it to the backoff', () => {
    const both = sdkError(429, { reason: { '.tag': 'too_many_requests' }, retry_after: 9 }, { 'retry-after': '4' });
    expect(translateDropboxError(both, SAVE)).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 4000 });
    const bodyOnly = sdkError(429, { reason: { '.tag': 'too_many_write_operations' }, retry_after: 3 });
    const contention = translateDropboxError(bodyOnly, SAVE);
    expect(contention).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 3000 });
    expect(contention.message).toContain('simultaneous writes');
    const plain = translateDropboxError(sdkError(429, 'too_many_requests'), SAVE);
    expect(plain.code).toBe('RATE_LIMITED');
    expect(plain.retryAfterMs).toBeUndefined();
    expect(translateDropboxError(sdkError(503, 'busy', { 'retry-after': '10' }), LOAD)).toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 10_000 });
  });

  it('is UNAUTHORIZED with the command to run for a rejected token, a missing scope or a suspended account', () => {
    for (const tag of ['expired_access_token', 'invalid_access_token', 'missing_scope', 'user_suspended']) {
      const e = translateDropboxError(sdkError(401, { '.tag': tag }), LOAD);
      expectCode(e, 'UNAUTHORIZED');
      expect(e.message, tag).toContain('bam auth dropbox');
    }
  });

  it('treats failed connections and timeouts as UNAVAILABLE and anything else as a bug', () => {
    const reset = new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
    expectCode(translateDropboxError(reset, APPEND), 'UNAVAILABLE');
    const cutOff = new TypeError('terminated', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
    expectCode(translateDropboxError(cutOff, LOAD), 'UNAVAILABLE');
    expectCode(translateDropboxError(new DOMException('The operation timed out.', 'TimeoutError'), LOAD), 'UNAVAILABLE');
    expectCode(translateDropboxError(new RangeError('surprise'), LOAD), 'INTERNAL');
    const kept = new BackupError('UNAUTHORIZED', 'not signed in');
    expect(translateDropboxError(kept, LOAD)).toBe(kept);
  });
});

describe('helpers', () => {
  it('reads correct_offset from append and finish answers only', () => {
    expect(correctOffsetOf(sdkError(409, { '.tag': 'incorrect_offset', correct_offset: 8_388_608 }))).toBe(8_388_608);
    expect(correctOffsetOf(sdkError(409, { '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 7 } }))).toBe(7);
    expect(correctOffsetOf(sdkError(409, { '.tag': 'not_found' }))).toBeUndefined();
    expect(correctOffsetOf(sdkError(409, { '.tag': 'incorrect_offset', correct_offset: -1 }))).toBeUndefined();
    expect(correctOffsetOf(new Error('x'))).toBeUndefined();
  });

  it('refreshes only for tokens a refresh can replace', () => {
    expect(isRejectedAccessToken(sdkError(401, { '.tag': 'expired_access_token' }))).toBe(true);
    expect(isRejectedAccessToken(sdkError(401, { '.tag': 'invalid_access_token' }))).toBe(true);
    expect(isRejectedAccessToken(sdkError(401, { '.tag': 'missing_scope', missing_scope: { required_scope: 'files.content.write' } }))).toBe(false);
    expect(isRejectedAccessToken(sdkError(409, { '.tag': 'expired_access_token' }))).toBe(false);
  });

  it('recognises a lost connection but not an HTTP error', () => {
    expect(isConnectionFailure(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(true);
    expect(isConnectionFailure(sdkError(500, 'x'))).toBe(false);
    expect(isConnectionFailure(new TypeError('x is not a function'))).toBe(false);
  });
});
