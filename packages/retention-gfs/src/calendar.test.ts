/** Tests of time parsing, zone offsets, ISO weeks and the Go-compatible wall-clock arithmetic. */

import { describe, expect, it } from 'vitest';
import {
  isoWeekOf,
  parseSnapshotTime,
  resolveZone,
  subtractCalendar,
  wallToInstantMs,
  ZONE_LOCATION,
} from './calendar.ts';
import { RetentionPolicyError } from './errors.ts';

describe('isoWeekOf', () => {
  it.each([
    ['2021-01-03', 2020, 53],
    ['2020-12-28', 2020, 53],
    ['2019-12-30', 2020, 1],
    ['2019-12-29', 2019, 52],
    ['2024-12-30', 2025, 1],
    ['2027-01-01', 2026, 53],
    ['2023-01-01', 2022, 52],
    ['2024-04-08', 2024, 15],
  ] as const)('%s is %i-W%i', (date, isoYear, isoWeek) => {
    const [y, m, d] = date.split('-').map(Number) as [number, number, number];
    expect(isoWeekOf(y, m, d)).toEqual({ isoYear, isoWeek });
  });
});

describe('resolveZone', () => {
  it('reads offsets, daylight saving and odd offsets from the zone database', () => {
    expect(resolveZone('UTC').offsetSecondsAt(Date.UTC(2024, 6, 1))).toBe(0);
    expect(resolveZone('Europe/Berlin').offsetSecondsAt(Date.UTC(2024, 0, 15))).toBe(3600);
    expect(resolveZone('Europe/Berlin').offsetSecondsAt(Date.UTC(2024, 6, 15))).toBe(7200);
    expect(resolveZone('Asia/Kolkata').offsetSecondsAt(Date.UTC(2024, 6, 15))).toBe(19_800);
    expect(resolveZone('Pacific/Chatham').offsetSecondsAt(Date.UTC(2024, 0, 15))).toBe(49_500);
    expect(resolveZone('Australia/Lord_Howe').offsetSecondsAt(Date.UTC(2024, 0, 15))).toBe(39_600);
    expect(resolveZone('Australia/Lord_Howe').offsetSecondsAt(Date.UTC(2024, 6, 15))).toBe(37_800);
  });

  it('changes offset at the exact instant of the transition', () => {
    const berlin = resolveZone('Europe/Berlin');
    expect(berlin.offsetSecondsAt(Date.UTC(2024, 2, 31, 0, 59, 59, 999))).toBe(3600);
    expect(berlin.offsetSecondsAt(Date.UTC(2024, 2, 31, 1))).toBe(7200);
  });

  it('refuses an unknown zone and says what to write', () => {
    expect(() => resolveZone('Europe/Berln')).toThrow(RetentionPolicyError);
    expect(() => resolveZone('Europe/Berln')).toThrow(/IANA time zone name such as "Europe\/Berlin"/);
    expect(() => resolveZone('')).toThrow(/leave it out to use the local zone/);
  });
});

describe('wallToInstantMs (Go time.Date in a zone)', () => {
  const berlin = resolveZone('Europe/Berlin');

  it('moves a time in the spring gap forward by the gap, as Go does', () => {
    // 02:30 does not exist on 2024-03-31 in Berlin; Go gives 03:30 CEST = 01:30Z.
    expect(new Date(wallToInstantMs(Date.UTC(2024, 2, 31, 2, 30), ZONE_LOCATION, berlin)).toISOString()).toBe(
      '2024-03-31T01:30:00.000Z',
    );
  });

  it('picks the second (standard time) occurrence of a repeated autumn time, as Go does', () => {
    expect(new Date(wallToInstantMs(Date.UTC(2024, 9, 27, 2, 30), ZONE_LOCATION, berlin)).toISOString()).toBe(
      '2024-10-27T01:30:00.000Z',
    );
  });

  it('uses a fixed offset as it is', () => {
    const at = wallToInstantMs(Date.UTC(2024, 0, 1, 12), { kind: 'fixed', offsetSeconds: -18_000 }, berlin);
    expect(new Date(at).toISOString()).toBe('2024-01-01T17:00:00.000Z');
  });
});

describe('subtractCalendar', () => {
  const utc = resolveZone('UTC');
  const at = (iso: string) => ({ ms: Date.parse(iso), subMsNanos: 0 });
  const iso = (ms: number) => new Date(ms).toISOString();

  it("normalises like Go's AddDate: 31 March minus a month is 2 March in a leap year", () => {
    expect(iso(subtractCalendar(at('2024-03-31T12:00:00Z'), ZONE_LOCATION, utc, 0, 1, 0, 0).ms)).toBe(
      '2024-03-02T12:00:00.000Z',
    );
    expect(iso(subtractCalendar(at('2024-02-29T12:00:00Z'), ZONE_LOCATION, utc, 1, 0, 0, 0).ms)).toBe(
      '2023-03-01T12:00:00.000Z',
    );
  });

  it("subtracts hours as elapsed time after the calendar part (2024 is a leap year)", () => {
    expect(iso(subtractCalendar(at('2024-03-01T05:00:00Z'), ZONE_LOCATION, utc, 0, 0, 1, 30).ms)).toBe(
      '2024-02-27T23:00:00.000Z',
    );
  });

  it('keeps the nanoseconds of the newest snapshot', () => {
    expect(subtractCalendar({ ms: Date.UTC(2024, 0, 2), subMsNanos: 5 }, ZONE_LOCATION, utc, 0, 0, 1, 0)).toEqual({
      ms: Date.UTC(2024, 0, 1),
      subMsNanos: 5,
    });
  });

  it('returns -Infinity for durations reaching before every supported time', () => {
    expect(subtractCalendar(at('2024-01-01T00:00:00Z'), ZONE_LOCATION, utc, 9999, 0, 0, 0).ms).toBe(-Infinity);
    expect(subtractCalendar(at('2024-01-01T00:00:00Z'), ZONE_LOCATION, utc, 0, 0, 0, 2 ** 50).ms).toBe(-Infinity);
  });
});

describe('parseSnapshotTime', () => {
  it('reads RFC 3339 with Z or an offset, keeping nanoseconds and the recorded offset', () => {
    expect(parseSnapshotTime('2024-01-01T12:00:00.123456789+02:00', 't')).toEqual({
      ms: Date.UTC(2024, 0, 1, 10, 0, 0, 123),
      subMsNanos: 456_789,
      recorded: 7200,
    });
    expect(parseSnapshotTime('2024-01-01t12:00:00z', 't')).toEqual({
      ms: Date.UTC(2024, 0, 1, 12),
      subMsNanos: 0,
      recorded: 'Z',
    });
    expect(parseSnapshotTime('2024-01-01 12:00:00-05:30', 't').ms).toBe(Date.UTC(2024, 0, 1, 17, 30));
    expect(parseSnapshotTime(new Date(Date.UTC(2024, 0, 1)), 't').recorded).toBeUndefined();
  });

  it.each([
    '2024-01-01T12:00:00',
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T12:00:60Z',
    '2024-01-01T12:00:00+24:00',
    '2024-01-01',
    '1500-01-01T00:00:00Z',
    'yesterday',
  ])('refuses %j', (value) => {
    expect(() => parseSnapshotTime(value, 'snapshots[0].time')).toThrow(RetentionPolicyError);
  });

  it('refuses an invalid Date and a missing time, saying what to write', () => {
    expect(() => parseSnapshotTime(new Date(Number.NaN), 't')).toThrow(/RFC 3339 time with its UTC offset/);
    expect(() => parseSnapshotTime(undefined, 't')).toThrow(/missing or not a time/);
    expect(() => parseSnapshotTime('2024-01-01T12:00:00', 't')).toThrow(/"2026-11-20T14:05:00\+01:00"/);
  });
});
