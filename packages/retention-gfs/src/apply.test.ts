/**
 * Tests of applyPolicy beyond the golden files: refused input, purity, pass-through of caller objects, and the
 * corners of restic's time handling (all snapshots in the future, recorded offsets in keep-within arithmetic).
 */

import { describe, expect, it } from 'vitest';
import { applyPolicy, EMPTY_POLICY_NOTE } from './apply.ts';
import { RetentionPolicyError } from './errors.ts';
import type { ApplyOptions, RetentionSnapshot } from './types.ts';
import type { RetentionPolicy } from './policy.ts';

const now = new Date('2024-06-01T00:00:00Z');
const opts: ApplyOptions = { now, timeZone: 'UTC' };

function snap(id: string, time: string, extra: Partial<RetentionSnapshot> = {}): RetentionSnapshot {
  return { id, time, hostname: 'h', paths: ['/p'], tags: [], ...extra };
}

function refusal(run: () => unknown): RetentionPolicyError {
  try {
    run();
  } catch (e) {
    if (e instanceof RetentionPolicyError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('applyPolicy input checks', () => {
  const list = [snap('a', '2024-05-01T00:00:00Z')];

  it('needs a valid now and never reads the clock', () => {
    expect(refusal(() => applyPolicy(list, { last: 1 }, {} as ApplyOptions)).field).toBe('now');
    expect(refusal(() => applyPolicy(list, { last: 1 }, { now: new Date('nope') })).message).toMatch(/new Date\(\)/);
  });

  it('refuses an unknown time zone, a bad groupBy and a non-boolean useRecordedOffsets', () => {
    expect(refusal(() => applyPolicy(list, { last: 1 }, { now, timeZone: 'Mars/Olympus' })).field).toBe('timeZone');
    const badGroup = { now, groupBy: ['hosts'] } as unknown as ApplyOptions;
    expect(refusal(() => applyPolicy(list, { last: 1 }, badGroup)).message).toMatch(/'host', 'paths' and 'tags'/);
    const badFlag = { now, useRecordedOffsets: 'yes' } as unknown as ApplyOptions;
    expect(refusal(() => applyPolicy(list, { last: 1 }, badFlag)).field).toBe('useRecordedOffsets');
  });

  it('refuses duplicate ids and malformed snapshots, naming the snapshot', () => {
    const dup = [snap('a', '2024-05-01T00:00:00Z'), snap('a', '2024-05-02T00:00:00Z')];
    expect(refusal(() => applyPolicy(dup, { last: 1 }, opts)).message).toContain('snapshots[1].id "a" appears twice');
    const noOffset = [snap('x', '2024-05-01T00:00:00')];
    expect(refusal(() => applyPolicy(noOffset, { last: 1 }, opts)).field).toBe('snapshots[0].time (snapshot x)');
    const badTags = [{ ...snap('x', '2024-05-01T00:00:00Z'), tags: 'keep' }] as unknown as RetentionSnapshot[];
    expect(refusal(() => applyPolicy(badTags, { last: 1 }, opts)).field).toBe('snapshots[0].tags');
    const badHost = [{ ...snap('x', '2024-05-01T00:00:00Z'), hostname: undefined }] as unknown as RetentionSnapshot[];
    expect(refusal(() => applyPolicy(badHost, { last: 1 }, opts)).field).toBe('snapshots[0].hostname');
  });

  it('validates the policy before anything else', () => {
    expect(refusal(() => applyPolicy(list, { daily: -3 }, opts)).field).toBe('daily');
    expect(refusal(() => applyPolicy(list, { within: '1w' }, opts)).field).toBe('policy.within (restic --keep-within)');
  });
});

describe('applyPolicy results', () => {
  it('handles an empty list', () => {
    expect(applyPolicy([], { last: 1 }, opts)).toEqual({
      groups: [],
      kept: [],
      removed: [],
      emptyPolicy: false,
      notes: [],
    });
    expect(applyPolicy([], {}, opts).notes).toEqual([EMPTY_POLICY_NOTE]);
  });

  it('returns the caller objects themselves, with their extra fields, and changes nothing it was given', () => {
    interface Mine extends RetentionSnapshot {
      size: number;
    }
    const input: Mine[] = [
      { ...snap('b', '2024-05-01T00:00:00Z', { paths: ['/z', '/a'], tags: ['y', 'x'] }), size: 1 },
      { ...snap('a', '2024-05-02T00:00:00Z', { paths: ['/a', '/z'], tags: ['x', 'y'] }), size: 2 },
    ];
    const frozen = input.map((s) =>
      Object.freeze({ ...s, paths: Object.freeze([...s.paths]), tags: Object.freeze([...s.tags]) }),
    );
    const policy: RetentionPolicy = Object.freeze({ last: 1, tags: Object.freeze(['nothing']) });
    const before = JSON.stringify(frozen);
    const result = applyPolicy(Object.freeze(frozen), policy, { ...opts, groupBy: ['paths', 'tags'] });
    expect(JSON.stringify(frozen)).toBe(before);
    expect(result.kept[0]?.snapshot).toBe(frozen[1]);
    expect(result.kept[0]?.snapshot.size).toBe(2);
    expect(result.removed[0]).toBe(frozen[0]);
    expect(result.groups.map((g) => g.key)).toEqual([{ paths: ['/a', '/z'], tags: ['x', 'y'] }]);
  });

  it('lists each rule once in matches, in the order of the reasons', () => {
    const result = applyPolicy(
      [snap('a', '2024-05-31T12:00:00Z', { tags: ['keep', 'x'] }), snap('b', '2024-05-30T12:00:00Z')],
      { last: 1, daily: 5, within: '1d', withinDaily: '1d', tags: ['x', 'keep'] },
      opts,
    );
    expect(result.kept[0]?.matches).toEqual(['tags', 'within', 'last', 'daily', 'withinDaily', 'protectedTag']);
    expect(result.kept[0]?.reasons).toEqual([
      'has tags [x]',
      'has tags [keep]',
      'within 1d',
      'last snapshot 1/1',
      'daily snapshot 2024-05-31',
      'daily within 1d (2024-05-31)',
      'tag keep (protected)',
    ]);
    expect(result.kept[1]?.matches).toEqual(['daily']);
    expect(result.kept[1]?.reasons).toEqual(['daily snapshot 2024-05-30']);
  });

  it('treats every snapshot as within when all are in the future (restic counts from the zero time)', () => {
    const result = applyPolicy(
      [snap('a', '2030-01-02T00:00:00Z'), snap('b', '2030-01-01T00:00:00Z'), snap('c', '2029-01-01T00:00:00Z')],
      { withinDaily: '1d' },
      opts,
    );
    expect(result.kept.map((k) => [k.snapshot.id, k.reasons])).toEqual([
      ['a', ['daily within 1d (2030-01-02)', 'in the future']],
      ['b', ['daily within 1d (2030-01-01)', 'in the future']],
      ['c', ['daily within 1d (2029-01-01)', 'in the future']],
    ]);
  });

  it('never counts a snapshot exactly at now as in the future, nor as the newest for keep-within', () => {
    const result = applyPolicy(
      [snap('now', now.toISOString()), snap('old', '2024-05-31T00:00:00Z'), snap('older', '2024-05-30T23:00:00Z')],
      { within: '1h' },
      opts,
    );
    // newest before now is 'old', so the limit is 2024-05-30T23:00Z and 'older' is exactly on it
    expect(result.kept.map((k) => [k.snapshot.id, k.reasons])).toEqual([
      ['now', ['within 1h']],
      ['old', ['within 1h']],
    ]);
    expect(result.notes).toEqual([]);
  });
});

describe('useRecordedOffsets', () => {
  const list = [
    snap('latest', '2024-04-01T12:00:00+02:00'),
    snap('early', '2024-03-25T10:30:00Z'),
    snap('late', '2024-03-25T11:30:00Z'),
  ];

  it('subtracts days in the zone when the recorded offset is the zone offset (Go reads it as Local)', () => {
    // 7 days before 1 April 12:00 CEST is 25 March 12:00 CET = 11:00Z
    const r = applyPolicy(list, { within: '7d' }, { now, timeZone: 'Europe/Berlin', useRecordedOffsets: true });
    expect(r.kept.map((k) => k.snapshot.id)).toEqual(['latest', 'late']);
  });

  it('subtracts days in the fixed recorded offset otherwise', () => {
    // the zone (UTC) never has +02:00, so the newest is read at a fixed +02:00: 25 March 12:00+02:00 = 10:00Z
    const r = applyPolicy(list, { within: '7d' }, { now, timeZone: 'UTC', useRecordedOffsets: true });
    expect(r.kept.map((k) => k.snapshot.id)).toEqual(['latest', 'late', 'early']);
  });

  it("reads 'Z' times in UTC and Dates in the configured zone", () => {
    const mixed = [
      snap('z', '2024-05-31T23:30:00Z'),
      { ...snap('date', ''), time: new Date('2024-05-31T22:30:00Z') },
      snap('zero', '2024-05-30T12:00:00Z'),
    ];
    const r = applyPolicy(mixed, { daily: -1 }, { now, timeZone: 'Asia/Tokyo', useRecordedOffsets: true });
    expect(r.kept.map((k) => [k.snapshot.id, k.reasons[0]])).toEqual([
      ['z', 'daily snapshot 2024-05-31'],
      ['date', 'daily snapshot 2024-06-01'],
      ['zero', 'daily snapshot 2024-05-30'],
    ]);
  });
});
