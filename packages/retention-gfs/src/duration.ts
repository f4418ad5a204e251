/**
 * restic's `--keep-within*` duration syntax ('2y5m7d3h'): numbers followed by y (years), m (months), d (days) or
 * h (hours), written together without spaces. Parsing follows restic's rules, including its quirks: surrounding
 * white space is ignored, a repeated unit overrides the earlier one ('1d2d' is 2 days), the empty string is the
 * zero duration (a rule that is off). Unlike restic's parser, negative amounts are rejected here rather than later.
 */

import { RetentionPolicyError } from './errors.ts';

export interface RetentionDuration {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
}

const SYNTAX_HELP =
  'write whole numbers followed by y (years), m (months), d (days) or h (hours), together without spaces, ' +
  'e.g. "7d", "1m14d" or "2y5m7d3h" (there is no unit for weeks: write "7d")';

/** Parses restic's duration syntax. Throws RetentionPolicyError for anything restic would not accept. */
export function parseRetentionDuration(input: string, field = 'duration'): RetentionDuration {
  if (typeof input !== 'string') {
    throw new RetentionPolicyError(`${field} must be a string in restic's duration syntax: ${SYNTAX_HELP}`, {
      field,
    });
  }
  const text = input.trim();
  const amounts = { years: 0, months: 0, days: 0, hours: 0 };
  let rest = text;
  while (rest !== '') {
    if (rest.startsWith('-')) {
      throw new RetentionPolicyError(
        `${field} "${input}" contains a negative amount; durations count back from the newest snapshot, ` +
          `so write a positive amount such as "${rest.slice(1).match(/^\d+[a-z]?/)?.[0] ?? '7d'}"`,
        { field },
      );
    }
    const number = /^\d+/.exec(rest)?.[0];
    if (number === undefined) {
      throw new RetentionPolicyError(`${field} "${input}" is not a duration: ${SYNTAX_HELP}`, { field });
    }
    const value = Number(number);
    if (!Number.isSafeInteger(value)) {
      throw new RetentionPolicyError(`${field} "${input}" has a number too large to use; ${SYNTAX_HELP}`, { field });
    }
    rest = rest.slice(number.length);
    const unit = rest[0];
    if (unit === undefined) {
      throw new RetentionPolicyError(
        `${field} "${input}" ends in a number without a unit: put d (days), h (hours), m (months) or ` +
          `y (years) after ${number}, e.g. "${number}d"`,
        { field },
      );
    }
    switch (unit) {
      case 'y':
        amounts.years = value;
        break;
      case 'm':
        amounts.months = value;
        break;
      case 'd':
        amounts.days = value;
        break;
      case 'h':
        amounts.hours = value;
        break;
      default: {
        const hint = unit === 'w' ? ` (for ${value} week(s) write "${value * 7}d")` : '';
        throw new RetentionPolicyError(
          `${field} "${input}" uses the unknown unit "${unit}"${hint}: ${SYNTAX_HELP}`,
          { field },
        );
      }
    }
    rest = rest.slice(1);
  }
  return amounts;
}

/** True when every amount is zero: restic treats such a duration as "rule not set". */
export function isZeroDuration(d: RetentionDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/** restic's canonical spelling: the non-zero amounts in the order y, m, d, h ('0y7d' becomes '7d'). */
export function formatRetentionDuration(d: RetentionDuration): string {
  let s = '';
  if (d.years !== 0) s += `${d.years}y`;
  if (d.months !== 0) s += `${d.months}m`;
  if (d.days !== 0) s += `${d.days}d`;
  if (d.hours !== 0) s += `${d.hours}h`;
  return s;
}
