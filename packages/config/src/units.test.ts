// Tables for the duration and size parsers the schema and the CLI's flags share.
import { describe, expect, it } from 'vitest';
import { InvalidValueError } from './errors.ts';
import { checkDuration, checkSize, parseDuration, parseSize } from './units.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseDuration', () => {
  it.each([
    ['24h', 24 * HOUR],
    ['30m', 30 * MINUTE],
    ['7d', 7 * DAY],
    ['2w', 14 * DAY],
    ['1y', 365 * DAY],
    ['45s', 45_000],
    ['250ms', 250],
    ['1h30m', 90 * MINUTE],
    ['1h 30m', 90 * MINUTE],
    ['1.5h', 90 * MINUTE],
    ['.5h', 30 * MINUTE],
    [' 4h ', 4 * HOUR],
    ['0s', 0],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(checkDuration(text)).toBeUndefined();
  });

  it.each([
    ['', /cannot be empty/],
    ['   ', /cannot be empty/],
    ['24', /has no unit/],
    ['-5m', /negative/],
    ['5 minutes', /not a duration/],
    ['24H', /lower case \("24h"\)/],
    ['h', /not a duration/],
    ['1x', /not a duration/],
    ['1h-', /not a duration/],
    ['1e3s', /not a duration/],
    ['99999999999999999y', /too long/],
  ])('refuses %j with a message matching %s', (text, message) => {
    expect(() => parseDuration(text)).toThrow(message);
    expect(checkDuration(text)).toMatch(message);
  });

  it('throws InvalidValueError with code INVALID_ARGUMENT and an example to copy', () => {
    const error = (() => {
      try {
        parseDuration('soon');
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidValueError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((error as Error).message).toContain('"24h"');
  });
});

describe('parseSize', () => {
  it.each([
    ['1024', 1024],
    ['0', 0],
    ['1b', 1],
    ['2GiB', 2 * 1024 ** 3],
    ['2gib', 2 * 1024 ** 3],
    ['2Gi', 2 * 1024 ** 3],
    ['500M', 500 * 1024 ** 2],
    ['500MiB', 500 * 1024 ** 2],
    ['500MB', 500_000_000],
    ['1.5 GB', 1_500_000_000],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['1.5 KiB', 1536],
    ['4k', 4096],
    ['4kB', 4000],
    ['1T', 1024 ** 4],
    ['1TB', 1e12],
    ['1PiB', 1024 ** 5],
    ['0.1KB', 100],
    [' 16MiB ', 16 * 1024 ** 2],
  ])('%j is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
    expect(checkSize(text)).toBeUndefined();
  });

  it.each([
    ['', /cannot be empty/],
    ['-5MB', /negative/],
    ['-1', /negative/],
    ['abc', /not a size/],
    ['5 XB', /not a size/],
    ['GB', /not a size/],
    ['1.5', /whole number of bytes/],
    ['1,5GB', /not a size/],
    ['1e3', /not a size/],
    ['5 GB extra', /not a size/],
    ['99999999999999999999', /too large/],
    ['9000 PiB', /too large/],
  ])('refuses %j with a message matching %s', (text, message) => {
    expect(() => parseSize(text)).toThrow(message);
    expect(checkSize(text)).toMatch(message);
  });

  it('explains which units are binary and which decimal', () => {
    expect(() => parseSize('lots')).toThrow(/powers of 1024.*powers of 1000/);
  });
});
