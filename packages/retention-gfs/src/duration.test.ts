/** Tests of restic's duration syntax: what parses, what is refused, and how a refusal reads. */

import { describe, expect, it } from 'vitest';
import { formatRetentionDuration, parseRetentionDuration } from './duration.ts';
import { RetentionPolicyError } from './errors.ts';

function refusal(input: string): RetentionPolicyError {
  try {
    parseRetentionDuration(input, 'policy.within');
  } catch (e) {
    if (e instanceof RetentionPolicyError) return e;
    throw e;
  }
  throw new Error(`"${input}" was accepted`);
}

describe('parseRetentionDuration', () => {
  it('reads every unit, in any order', () => {
    expect(parseRetentionDuration('2y5m7d3h')).toEqual({ years: 2, months: 5, days: 7, hours: 3 });
    expect(parseRetentionDuration('3h1y')).toEqual({ years: 1, months: 0, days: 0, hours: 3 });
    expect(parseRetentionDuration('07d')).toEqual({ years: 0, months: 0, days: 7, hours: 0 });
  });

  it('follows restic: surrounding space is dropped, the empty string is zero, a repeated unit overrides', () => {
    expect(parseRetentionDuration('  7d ')).toEqual({ years: 0, months: 0, days: 7, hours: 0 });
    expect(parseRetentionDuration('')).toEqual({ years: 0, months: 0, days: 0, hours: 0 });
    expect(parseRetentionDuration('1d2d')).toEqual({ years: 0, months: 0, days: 2, hours: 0 });
  });

  it.each(['1w', '7', 'd', '1d 2h', '1.5d', 'abc', '+1d', '1D', '99999999999999999999d'])('refuses %j', (input) => {
    const e = refusal(input);
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.field).toBe('policy.within');
    expect(e.message).toContain('policy.within');
  });

  it('says what to write instead', () => {
    expect(refusal('2w').message).toContain('write "14d"');
    expect(refusal('7').message).toContain('"7d"');
    expect(refusal('-1d').message).toMatch(/negative.*"1d"/);
    expect(refusal('1x').message).toContain('"2y5m7d3h"');
  });
});

describe('formatRetentionDuration', () => {
  it("spells a duration the way restic prints it, leaving out zero amounts", () => {
    expect(formatRetentionDuration(parseRetentionDuration('3h0y7d'))).toBe('7d3h');
    expect(formatRetentionDuration(parseRetentionDuration('2y5m7d3h'))).toBe('2y5m7d3h');
    expect(formatRetentionDuration(parseRetentionDuration('0d'))).toBe('');
  });
});
