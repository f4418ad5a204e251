import { inspect } from 'node:util';
import { BackupError } from '@backup-manager/core-archive';
import { describe, expect, it } from 'vitest';
import { DriveRequestFailure, translateDriveError } from './errors.ts';

const context = { operation: 'load', target: 'data/3f9c', location: 'gdrive:backup-manager/repo1' } as const;

/** A GaxiosError-shaped failure, as the SDK throws it. */
function httpError(status: number, reason?: string, headers: Record<string, string> = {}) {
  const data = reason === undefined ? undefined : { error: { code: status, message: 'm', errors: [{ domain: 'global', reason, message: 'm' }] } };
  return Object.assign(new Error(`request failed with ${status}`), {
    status,
    response: { status, data, headers: new Headers(headers) },
    config: { headers: { Authorization: 'Bearer at-secret-123' }, url: 'https://x/upload?upload_id=session-secret' },
  });
}

describe('translateDriveError', () => {
  it.each([
    [401, 'authError', 'UNAUTHORIZED'],
    [403, 'userRateLimitExceeded', 'RATE_LIMITED'],
    [403, 'rateLimitExceeded', 'RATE_LIMITED'],
    [429, 'rateLimitExceeded', 'RATE_LIMITED'],
    [403, 'storageQuotaExceeded', 'QUOTA_EXCEEDED'],
    [403, 'insufficientFilePermissions', 'PERMISSION_DENIED'],
    [404, 'notFound', 'NOT_FOUND'],
    [416, 'requestedRangeNotSatisfiable', 'INVALID_RANGE'],
    [500, 'backendError', 'UNAVAILABLE'],
    [503, undefined, 'UNAVAILABLE'],
    [400, 'invalid', 'INTERNAL'],
  ] as const)('maps HTTP %i %s to %s', (status, reason, code) => {
    expect(translateDriveError(httpError(status, reason), context).code).toBe(code);
  });

  it('reads Retry-After in seconds and as a date', () => {
    expect(translateDriveError(httpError(429, 'rateLimitExceeded', { 'retry-after': '12' }), context).retryAfterMs).toBe(12_000);
    const now = Date.parse('2030-01-01T00:00:00Z');
    const dated = httpError(503, 'backendError', { 'retry-after': 'Tue, 01 Jan 2030 00:00:30 GMT' });
    expect(translateDriveError(dated, { ...context, now: () => now }).retryAfterMs).toBe(30_000);
  });

  it('names the account when the Drive is full, and says what to do', () => {
    const e = translateDriveError(httpError(403, 'storageQuotaExceeded'), { ...context, operation: 'save', account: 'ann@example.com' });
    expect(e.message).toContain('ann@example.com');
    expect(e.message).toContain('empty the Drive trash');
    expect(e.retryable).toBe(false);
  });

  it('treats an expired upload session as UNAVAILABLE, not NOT_FOUND', () => {
    expect(translateDriveError(httpError(404, 'notFound'), { ...context, uploadSession: true }).code).toBe('UNAVAILABLE');
    expect(translateDriveError(httpError(410), { ...context, uploadSession: true }).code).toBe('UNAVAILABLE');
  });

  it('reports a dropped connection as UNAVAILABLE by its system code', () => {
    const reset = Object.assign(new Error('request to https://x?upload_id=session-secret failed, reason: socket hang up'), { code: 'ECONNRESET' });
    const e = translateDriveError(reset, context);
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.message).toContain('ECONNRESET');
  });

  it('keeps neither the token nor the session URI: the cause is a summary', () => {
    const e = translateDriveError(httpError(401, 'authError'), context);
    expect(e.cause).toBeInstanceOf(DriveRequestFailure);
    expect(e.message).toContain('run `bam auth google_drive` again');
    const text = inspect(e, { depth: 10 });
    expect(text).not.toContain('at-secret-123');
    expect(text).not.toContain('session-secret');
  });

  it('passes BackupErrors through unchanged', () => {
    const original = new BackupError('UNAUTHORIZED', 'x');
    expect(translateDriveError(original, context)).toBe(original);
  });
});
