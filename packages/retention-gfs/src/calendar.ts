/**
 * Time, time zones and calendar buckets, without I/O. Instants carry a sub-millisecond remainder so that RFC 3339
 * times with nanoseconds (as restic writes them) sort the way restic sorts them. UTC offsets of an IANA zone come
 * from Intl.DateTimeFormat, so daylight-saving changes follow the zone database that Node ships.
 *
 * Bucket keys mirror restic's: the hour, day, ISO week, month and year of the wall-clock time, compared as integers
 * (YYYYMMDDHH, YYYYMMDD, YYYYWW with the ISO week-numbering year, YYYYMM, YYYY).
 */

import { RetentionPolicyError } from './errors.ts';

/** A point in time: milliseconds since the epoch plus the nanoseconds within that millisecond (0..999999). */
export interface Instant {
  readonly ms: number;
  readonly subMsNanos: number;
}

/** A parsed snapshot time: the instant and the UTC offset written in the string, if it was a string. */
export interface ParsedTime extends Instant {
  /** 'Z' for a time written in UTC with 'Z', seconds east of UTC for '+hh:mm', undefined for a Date. */
  readonly recorded: 'Z' | number | undefined;
}

/** Where wall-clock time is read: the configured zone, or a fixed offset (seconds east of UTC). */
export type Location = { readonly kind: 'zone' } | { readonly kind: 'fixed'; readonly offsetSeconds: number };

export const ZONE_LOCATION: Location = { kind: 'zone' };

export interface WallClock {
  readonly year: number;
  readonly month: number; // 1..12
  readonly day: number; // 1..31
  readonly hour: number; // 0..23
  readonly isoYear: number;
  readonly isoWeek: number; // 1..53
}

export interface Zone {
  /** The resolved IANA name, e.g. 'Europe/Berlin'. */
  readonly name: string;
  /** Seconds east of UTC in this zone at the given instant. */
  offsetSecondsAt(ms: number): number;
}

// Intl.DateTimeFormat (ICU) switches to the Julian calendar before October 1582, where Go and ISO 8601 keep the
// proleptic Gregorian calendar; snapshot times are therefore limited to years 1583..9999, and zone offsets are never
// looked up before EARLIEST_LOOKUP_MS (every zone is still on its constant local mean time there).
export const EARLIEST_MS = Date.UTC(1583, 0, 1);
export const LATEST_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const EARLIEST_LOOKUP_MS = Date.UTC(1583, 0, 2);

const zones = new Map<string, Zone>();

/** The machine's own zone, as Intl reports it. */
export function localTimeZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

/** Resolves an IANA zone name ('Europe/Berlin', 'UTC'); throws RetentionPolicyError for an unknown one. */
export function resolveZone(timeZone: string): Zone {
  const cached = zones.get(timeZone);
  if (cached !== undefined) return cached;
  if (typeof timeZone !== 'string' || timeZone.trim() === '') {
    throw new RetentionPolicyError(
      'timeZone must be an IANA time zone name such as "Europe/Berlin" or "UTC"; leave it out to use the local zone',
      { field: 'timeZone' },
    );
  }
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch (cause) {
    throw new RetentionPolicyError(
      `unknown time zone "${timeZone}": write an IANA time zone name such as "Europe/Berlin", ` +
        `"America/New_York" or "UTC", or leave timeZone out to use the local zone`,
      { field: 'timeZone', cause },
    );
  }
  const name = format.resolvedOptions().timeZone;
  const zone: Zone =
    name === 'UTC' || name === 'Etc/UTC'
      ? { name, offsetSecondsAt: () => 0 }
      : { name, offsetSecondsAt: (ms) => offsetFromFormat(format, ms) };
  zones.set(timeZone, zone);
  return zone;
}

function offsetFromFormat(format: Intl.DateTimeFormat, ms: number): number {
  const seconds = Math.floor(Math.max(ms, EARLIEST_LOOKUP_MS) / 1000);
  const fields: Record<string, number> = {};
  for (const part of format.formatToParts(seconds * 1000)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const wall = utcMs(
    fields['year'] ?? NaN,
    (fields['month'] ?? NaN) - 1,
    fields['day'] ?? NaN,
    fields['hour'] ?? NaN,
    fields['minute'] ?? NaN,
    fields['second'] ?? NaN,
  );
  return Math.round((wall - seconds * 1000) / 1000);
}

/** Date.UTC without its two-digit-year rule (Date.UTC(50, …) is 1950). Normalises overflowing fields like Go. */
function utcMs(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day);
  d.setUTCHours(hour, minute, second, ms);
  return d.getTime();
}

/** Seconds east of UTC of a location at an instant. */
export function offsetSeconds(location: Location, ms: number, zone: Zone): number {
  return location.kind === 'fixed' ? location.offsetSeconds : zone.offsetSecondsAt(ms);
}

/**
 * The location restic (Go) gives a time read from snapshot JSON: a 'Z' time is UTC; a '+hh:mm' time is in the local
 * zone when that zone has this offset at that instant, and in a fixed-offset zone otherwise. A Date carries no
 * offset and is read in the configured zone.
 */
export function recordedLocation(time: ParsedTime, zone: Zone): Location {
  if (time.recorded === undefined) return ZONE_LOCATION;
  if (time.recorded === 'Z') return { kind: 'fixed', offsetSeconds: 0 };
  if (zone.offsetSecondsAt(time.ms) === time.recorded) return ZONE_LOCATION;
  return { kind: 'fixed', offsetSeconds: time.recorded };
}

export function wallClock(ms: number, location: Location, zone: Zone): WallClock {
  const wall = new Date(ms + offsetSeconds(location, ms, zone) * 1000);
  const year = wall.getUTCFullYear();
  const month = wall.getUTCMonth() + 1;
  const day = wall.getUTCDate();
  const { isoYear, isoWeek } = isoWeekOf(year, month, day);
  return { year, month, day, hour: wall.getUTCHours(), isoYear, isoWeek };
}

/** ISO 8601 week date: weeks start on Monday; week 1 is the week with the year's first Thursday. */
export function isoWeekOf(year: number, month: number, day: number): { isoYear: number; isoWeek: number } {
  const date = utcMs(year, month - 1, day);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const thursday = new Date(date + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const dayOfYear = Math.round((thursday.getTime() - utcMs(isoYear, 0, 1)) / 86_400_000);
  return { isoYear, isoWeek: Math.floor(dayOfYear / 7) + 1 };
}

/**
 * Converts a wall-clock time (as if it were UTC) in a location to an instant, choosing the same instant as Go's
 * time.Date when the wall-clock time falls in a daylight-saving gap or overlap: first the offset at the wall time
 * read as UTC, then the offset at the instant that guess gives.
 */
export function wallToInstantMs(wallMs: number, location: Location, zone: Zone): number {
  if (location.kind === 'fixed') return wallMs - location.offsetSeconds * 1000;
  const guess = zone.offsetSecondsAt(wallMs);
  const offset = guess === 0 ? 0 : zone.offsetSecondsAt(wallMs - guess * 1000);
  return wallMs - offset * 1000;
}

/**
 * `latest` moved back by a duration the way restic does it: years, months and days on the wall clock of the
 * latest snapshot's location (with Go's normalisation: 31 March minus one month is 3 March), then hours as elapsed
 * time. Returns -Infinity when the result lies before every time this package accepts.
 */
export function subtractCalendar(
  latest: Instant,
  location: Location,
  zone: Zone,
  years: number,
  months: number,
  days: number,
  hours: number,
): Instant {
  const wall = new Date(latest.ms + offsetSeconds(location, latest.ms, zone) * 1000);
  wall.setUTCFullYear(wall.getUTCFullYear() - years, wall.getUTCMonth() - months, wall.getUTCDate() - days);
  const wallMs = wall.getTime();
  if (!Number.isFinite(wallMs) || wall.getUTCFullYear() < 1582) return { ms: -Infinity, subMsNanos: 0 };
  const ms = wallToInstantMs(wallMs, location, zone) - hours * 3_600_000;
  if (!Number.isFinite(ms) || ms < EARLIEST_MS - 86_400_000) return { ms: -Infinity, subMsNanos: 0 };
  return { ms, subMsNanos: latest.subMsNanos };
}

export function compareInstants(a: Instant, b: Instant): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1;
  return a.subMsNanos - b.subMsNanos;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

const TIME_HELP =
  'write an RFC 3339 time with its UTC offset, as restic stores it (e.g. "2026-11-20T14:05:00+01:00" or ' +
  '"2026-11-20T13:05:00Z"), or pass a Date';

/** Parses a snapshot time: a valid Date, or an RFC 3339 string that carries 'Z' or a numeric offset. */
export function parseSnapshotTime(value: unknown, field: string): ParsedTime {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (!Number.isFinite(ms)) {
      throw new RetentionPolicyError(`${field} is an invalid Date: ${TIME_HELP}`, { field });
    }
    return checkRange({ ms, subMsNanos: 0, recorded: undefined }, field, value.toISOString());
  }
  if (typeof value !== 'string') {
    throw new RetentionPolicyError(`${field} is missing or not a time: ${TIME_HELP}`, { field });
  }
  const m = RFC3339.exec(value.trim());
  if (m === null) {
    throw new RetentionPolicyError(`${field} "${value}" is not an RFC 3339 time with an offset: ${TIME_HELP}`, {
      field,
    });
  }
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = (m[7] ?? '').padEnd(9, '0');
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutes = Number(m[11] ?? 0);
  const daysInMonth = new Date(utcMs(year, month, 0)).getUTCDate();
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    offsetHours > 23 ||
    offsetMinutes > 59
  ) {
    throw new RetentionPolicyError(`${field} "${value}" is not a real date and time: ${TIME_HELP}`, { field });
  }
  const recorded: 'Z' | number =
    m[8] !== undefined ? 'Z' : (m[9] === '-' ? -1 : 1) * (offsetHours * 3600 + offsetMinutes * 60);
  const nanos = Number(fraction);
  const wallMs = utcMs(year, month - 1, day, hour, minute, second, Math.floor(nanos / 1_000_000));
  const ms = wallMs - (recorded === 'Z' ? 0 : recorded) * 1000;
  return checkRange({ ms, subMsNanos: nanos % 1_000_000, recorded }, field, value);
}

function checkRange(time: ParsedTime, field: string, shown: string): ParsedTime {
  if (time.ms < EARLIEST_MS || time.ms > LATEST_MS) {
    throw new RetentionPolicyError(
      `${field} ${shown} is outside the supported years 1583..9999: check the snapshot's clock or the value passed`,
      { field },
    );
  }
  return time;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export type BucketUnit = 'hour' | 'day' | 'week' | 'month' | 'year';

/** restic's integer bucket key for a unit: YYYYMMDDHH, YYYYMMDD, YYYYWW (ISO), YYYYMM or YYYY. */
export function bucketKey(unit: BucketUnit, w: WallClock): number {
  switch (unit) {
    case 'hour':
      return w.year * 1_000_000 + w.month * 10_000 + w.day * 100 + w.hour;
    case 'day':
      return w.year * 10_000 + w.month * 100 + w.day;
    case 'week':
      return w.isoYear * 100 + w.isoWeek;
    case 'month':
      return w.year * 100 + w.month;
    case 'year':
      return w.year;
  }
}

/** A readable name of a bucket: '2026-11-20T14', '2026-11-20', '2026-W47', '2026-11', '2026'. */
export function bucketLabel(unit: BucketUnit, w: WallClock): string {
  switch (unit) {
    case 'hour':
      return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}`;
    case 'day':
      return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
    case 'week':
      return `${pad(w.isoYear, 4)}-W${pad(w.isoWeek)}`;
    case 'month':
      return `${pad(w.year, 4)}-${pad(w.month)}`;
    case 'year':
      return pad(w.year, 4);
  }
}
