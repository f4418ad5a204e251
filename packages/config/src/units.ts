/**
 * Durations ('24h', '1h30m') and sizes ('2GiB', '500M', '1.5 GB') as people write them in config.json and on the
 * command line. The `check*` functions return a message for the schema; the `parse*` functions throw for the CLI.
 */
import { InvalidValueError } from './errors.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: SECOND,
  m: MINUTE,
  h: HOUR,
  d: DAY,
  w: 7 * DAY,
  y: 365 * DAY,
};

const DURATION_HELP = 'use a number and a unit (ms, s, m = minutes, h, d, w, y), e.g. "30m", "24h", "7d" or "1h30m"';

type Parsed = { ok: true; value: number } | { ok: false; message: string };

function readDuration(text: string): Parsed {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, message: `a duration cannot be empty; ${DURATION_HELP}` };
  if (trimmed.startsWith('-')) return { ok: false, message: `"${text}" is negative; durations must be zero or more` };
  const part = /(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w|y)\s*/y;
  let total = 0;
  let index = 0;
  while (index < trimmed.length) {
    part.lastIndex = index;
    const match = part.exec(trimmed);
    if (match === null) {
      if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
        return { ok: false, message: `"${text}" has no unit; ${DURATION_HELP}` };
      }
      if (trimmed !== trimmed.toLowerCase() && readDuration(trimmed.toLowerCase()).ok) {
        return { ok: false, message: `"${text}": write units in lower case ("${trimmed.toLowerCase()}"); m means minutes` };
      }
      return { ok: false, message: `"${text}" is not a duration; ${DURATION_HELP}` };
    }
    total += Number(match[1]) * (DURATION_UNITS[match[2] ?? ''] ?? Number.NaN);
    index = part.lastIndex;
  }
  const value = Math.round(total);
  if (!Number.isSafeInteger(value)) return { ok: false, message: `"${text}" is too long a duration` };
  return { ok: true, value };
}

/** Why `text` is not a duration, or undefined when it is one. */
export function checkDuration(text: string): string | undefined {
  const parsed = readDuration(text);
  return parsed.ok ? undefined : parsed.message;
}

/**
 * Milliseconds in a duration such as '24h', '30m', '7d', '1h30m', '1.5h' or '250ms'. Units: ms, s, m (minutes),
 * h, d, w (7 days), y (365 days). A bare number is refused because its unit would be a guess.
 * @throws InvalidValueError for anything else, with a message saying what to write.
 */
export function parseDuration(text: string): number {
  const parsed = readDuration(text);
  if (!parsed.ok) throw new InvalidValueError(parsed.message);
  return parsed.value;
}

const KIB = 1024;
const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: KIB,
  ki: KIB,
  kib: KIB,
  kb: 1000,
  m: KIB ** 2,
  mi: KIB ** 2,
  mib: KIB ** 2,
  mb: 1000 ** 2,
  g: KIB ** 3,
  gi: KIB ** 3,
  gib: KIB ** 3,
  gb: 1000 ** 3,
  t: KIB ** 4,
  ti: KIB ** 4,
  tib: KIB ** 4,
  tb: 1000 ** 4,
  p: KIB ** 5,
  pi: KIB ** 5,
  pib: KIB ** 5,
  pb: 1000 ** 5,
};

const SIZE_HELP =
  'use a number of bytes or a number and a unit, e.g. "1024", "500M", "2GiB" or "1.5 GB" ' +
  '(KiB/MiB/GiB/TiB and K/M/G/T are powers of 1024; KB/MB/GB/TB are powers of 1000)';

function readSize(text: string): Parsed {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, message: `a size cannot be empty; ${SIZE_HELP}` };
  if (trimmed.startsWith('-')) return { ok: false, message: `"${text}" is negative; sizes must be zero or more` };
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i.exec(trimmed);
  const unit = match === null ? undefined : SIZE_UNITS[(match[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) return { ok: false, message: `"${text}" is not a size; ${SIZE_HELP}` };
  const exact = Number(match[1]) * unit;
  if (unit === 1 && !Number.isInteger(exact)) {
    return { ok: false, message: `"${text}" is not a whole number of bytes; write e.g. "${Math.round(exact)}"` };
  }
  const value = Math.round(exact);
  if (!Number.isSafeInteger(value)) return { ok: false, message: `"${text}" is too large a size` };
  return { ok: true, value };
}

/** Why `text` is not a size, or undefined when it is one. */
export function checkSize(text: string): string | undefined {
  const parsed = readSize(text);
  return parsed.ok ? undefined : parsed.message;
}

/**
 * Bytes in a size such as '1024', '500M', '2GiB', '1.5 GB' (case-insensitive). K, M, G, T, P and the KiB…PiB forms
 * are powers of 1024 (as in restic and rclone); KB, MB, GB, TB, PB are powers of 1000. Fractions round to a byte.
 * @throws InvalidValueError for negative, fractional-byte, unknown-unit or garbage input.
 */
export function parseSize(text: string): number {
  const parsed = readSize(text);
  if (!parsed.ok) throw new InvalidValueError(parsed.message);
  return parsed.value;
}
