// Checks that the request log numbers entries and never keeps a credential.

import { describe, expect, it } from 'vitest';
import { RequestLog, redactHeaders, redactQuery } from './log.ts';

describe('RequestLog', () => {
  it('numbers entries, redacts credentials and filters', () => {
    const log = new RequestLog();
    const entry = { method: 'GET', path: '/a', query: {}, status: 200, requestBytes: 0 };
    log.add({ ...entry, headers: { Authorization: 'Bearer secret-token', 'X-Other': 'v' } });
    log.add({ ...entry, path: '/b', status: 429, headers: {}, fault: 'status' });
    expect(log.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(log.entries[0]?.headers).toEqual({ authorization: 'Bearer [redacted]', 'x-other': 'v' });
    expect(log.filter((e) => e.status === 429).map((e) => e.path)).toEqual(['/b']);
    log.clear();
    expect(log.entries).toEqual([]);
  });

  it('redacts header arrays, cookies and credential query parameters', () => {
    expect(redactHeaders({ cookie: 'sid=1', accept: ['a', 'b'], skipped: undefined })).toEqual({ cookie: '[redacted]', accept: 'a, b' });
    expect(redactQuery(new URLSearchParams('access_token=t&q=x&key=k'))).toEqual({ access_token: '[redacted]', q: 'x', key: '[redacted]' });
  });
});
