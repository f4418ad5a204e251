// Checks the FaultInjector's matching rules: nth/times windows, method/path filters and rule precedence.

import { describe, expect, it } from 'vitest';
import { FaultInjector } from './faults.ts';

const reset = { kind: 'reset-before' } as const;
const busy = { kind: 'status', status: 503 } as const;

describe('FaultInjector', () => {
  it('faults the first matching request once by default, then nothing', () => {
    const faults = new FaultInjector();
    faults.add({ method: 'put', path: '/upload', action: reset });
    expect(faults.match('GET', '/upload')).toBeUndefined();
    expect(faults.match('PUT', '/other')).toBeUndefined();
    expect(faults.match('PUT', '/upload')).toEqual(reset);
    expect(faults.match('PUT', '/upload')).toBeUndefined();
    expect(faults.pending()).toBe(0);
  });

  it('counts nth among matching requests only and faults `times` requests from there', () => {
    const faults = new FaultInjector();
    faults.add({ path: /^\/files\//, nth: 2, times: 2, action: busy });
    const hits = ['/files/a', '/about', '/files/b', '/files/c', '/files/d'].map((p) => faults.match('GET', p)?.kind);
    expect(hits).toEqual([undefined, undefined, 'status', 'status', undefined]);
  });

  it('supports an unlimited rule and clear()', () => {
    const faults = new FaultInjector();
    faults.add({ times: Infinity, action: busy });
    for (let i = 0; i < 5; i += 1) expect(faults.match('POST', `/x${i}`)).toEqual(busy);
    expect(faults.pending()).toBe(Infinity);
    faults.clear();
    expect(faults.match('POST', '/x')).toBeUndefined();
  });

  it('lets the earliest eligible rule win while every matching rule counts the request', () => {
    const faults = new FaultInjector();
    faults.add({ path: '/a', nth: 2, action: reset });
    faults.add({ path: '/a', action: busy });
    expect(faults.match('GET', '/a')).toEqual(busy); // rule 1 counted it as its 1st
    expect(faults.match('GET', '/a')).toEqual(reset); // so this is rule 1's 2nd
    expect(faults.match('GET', '/a')).toBeUndefined();
  });

  it('is not confused by a global RegExp', () => {
    const faults = new FaultInjector();
    faults.add({ path: /files/g, times: 3, action: busy });
    expect([1, 2, 3].map(() => faults.match('GET', '/files')?.kind)).toEqual(['status', 'status', 'status']);
  });

  it('rejects nonsensical rules', () => {
    const faults = new FaultInjector();
    expect(() => faults.add({ nth: 0, action: busy })).toThrow(RangeError);
    expect(() => faults.add({ times: -1, action: busy })).toThrow(RangeError);
  });
});
