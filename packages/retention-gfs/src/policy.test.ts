/** Tests of policy validation, restic's notion of an empty policy, and the one-line description. */

import { describe, expect, it } from 'vitest';
import { RetentionPolicyError } from './errors.ts';
import { describePolicy, isEmptyPolicy, normalizePolicy, type RetentionPolicy } from './policy.ts';

function refusal(policy: unknown): RetentionPolicyError {
  try {
    normalizePolicy(policy as RetentionPolicy);
  } catch (e) {
    if (e instanceof RetentionPolicyError) return e;
    throw e;
  }
  throw new Error(`${JSON.stringify(policy)} was accepted`);
}

describe('isEmptyPolicy', () => {
  it('is true when no rule is set, as in restic', () => {
    expect(isEmptyPolicy({})).toBe(true);
    expect(isEmptyPolicy({ tags: [] })).toBe(true);
    expect(isEmptyPolicy({ daily: 0, last: 0, within: '0d', withinYearly: '', tags: [] })).toBe(true);
  });

  it('is false as soon as one rule is set, including unlimited counts and the untagged tag list', () => {
    expect(isEmptyPolicy({ daily: -1 })).toBe(false);
    expect(isEmptyPolicy({ tags: [''] })).toBe(false);
    expect(isEmptyPolicy({ withinHourly: '1h' })).toBe(false);
  });

  it('validates the policy', () => {
    expect(() => isEmptyPolicy({ daily: -2 })).toThrow(RetentionPolicyError);
  });
});

describe('normalizePolicy', () => {
  it('splits tag lists and drops zero durations', () => {
    const p = normalizePolicy({ tags: ['a, b', ''], within: '0h', withinDaily: '7d' });
    expect(p.tagLists).toEqual([['a', 'b'], ['']]);
    expect(p.within).toBeNull();
    expect(p.withinBuckets.withinDaily).toEqual({ years: 0, months: 0, days: 7, hours: 0 });
  });

  it.each([-2, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '7', null])('refuses the count %j', (daily) => {
    const e = refusal({ daily });
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.field).toBe('daily');
    expect(e.message).toContain('-1 for unlimited');
    expect(e.message).toContain('--keep-daily');
  });

  it('names the field a restic user probably meant', () => {
    expect(refusal({ keepDaily: 7 }).message).toContain('write "daily" instead');
    expect(refusal({ 'keep-within-daily': '7d' }).message).toContain('write "withinDaily" instead');
    expect(refusal({ 'keep-tag': ['x'] }).message).toContain('write "tags" instead');
    expect(refusal({ weekyl: 4 }).message).toContain('The fields are last, hourly');
  });

  it('refuses bad durations and tag lists with the rule in the message', () => {
    expect(refusal({ withinWeekly: '1w' }).message).toMatch(
      /policy\.withinWeekly \(restic --keep-within-weekly\).*"7d"/,
    );
    expect(refusal({ tags: 'a,b' }).message).toContain('array of strings');
    expect(refusal({ tags: [1] }).field).toBe('tags');
    expect(refusal(null).field).toBe('policy');
    expect(refusal([]).field).toBe('policy');
  });
});

describe('describePolicy', () => {
  it('reads like the issue asks', () => {
    expect(describePolicy({ daily: 7, weekly: 4, monthly: 12, yearly: 3 })).toBe(
      'keep 7 daily, 4 weekly, 12 monthly, 3 yearly',
    );
  });

  it("lists every kind of rule in restic's order", () => {
    expect(
      describePolicy({
        yearly: -1,
        last: 3,
        within: '2y',
        withinDaily: '7d',
        withinMonthly: '0y1y',
        tags: ['a,b', 'c'],
      }),
    ).toBe(
      'keep 3 latest, all yearly, daily snapshots within 7d, monthly snapshots within 1y, ' +
        'all snapshots with tags [a, b] or [c], all snapshots within 2y of the newest',
    );
    expect(describePolicy({ last: -1 })).toBe('keep all snapshots');
  });

  it('says when the policy is empty', () => {
    expect(describePolicy({ daily: 0 })).toBe('policy is empty: nothing will be removed');
  });
});
