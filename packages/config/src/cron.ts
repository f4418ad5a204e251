/**
 * Checks 5-field cron expressions (minute hour day-of-month month day-of-week) for the `schedule` fields.
 * cron-parser, which the scheduler runs schedules with, has the last word; this module's own reading of the
 * standard-cron subset (numbers, JAN–DEC and SUN–SAT names, `*`, `?`, ranges, steps, lists, and the @yearly …
 * @hourly macros; no seconds field, no L, W or #) comes first because it explains a mistake in plainer words.
 */
import { CronExpressionParser } from 'cron-parser';

interface CronField {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
  /** The index of the first name: months count from 1, days of the week from 0. */
  readonly namesFrom?: number;
  readonly allowsQuestionMark?: boolean;
}

const FIELDS: readonly CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31, allowsQuestionMark: true },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
    namesFrom: 1,
  },
  // 7 is Sunday as well as 0, as in cron and cron-parser.
  {
    name: 'day of week',
    min: 0,
    max: 7,
    names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
    namesFrom: 0,
    allowsQuestionMark: true,
  },
];

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const CRON_HELP =
  'write 5 fields "minute hour day-of-month month day-of-week", e.g. "0 2 * * *" (every day at 02:00) ' +
  'or "30 3 * * 1-5" (03:30 on weekdays)';

class CronSyntaxError extends Error {}

function readValue(text: string, field: CronField): number {
  let value: number;
  if (/^\d+$/.test(text)) {
    value = Number(text);
  } else {
    const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
    if (index < 0 && /^\d*[lw]$|^lw$|#|^h(\(|$)/i.test(text)) {
      throw new CronSyntaxError(
        `${field.name} "${text}" uses a cron extension (L, W, # or H) that is not supported; use numbers, ranges (1-5), lists (1,15) and steps (*/15)`,
      );
    }
    if (index < 0) {
      const hint = field.names === undefined ? 'a number' : `a number or one of ${field.names.join(', ').toUpperCase()}`;
      throw new CronSyntaxError(`${field.name} "${text}" is not ${hint}`);
    }
    value = index + (field.namesFrom ?? 0);
  }
  if (value < field.min || value > field.max) {
    throw new CronSyntaxError(`${field.name} ${value} is out of range ${field.min}-${field.max}`);
  }
  return value;
}

/** The values one field selects; throws CronSyntaxError with a message naming the field. */
function readField(text: string, field: CronField): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') throw new CronSyntaxError(`${field.name} "${text}" has an empty list item`);
    const parts = item.split('/');
    if (parts.length > 2) throw new CronSyntaxError(`${field.name} "${item}" has more than one "/"`);
    const [base = '', stepText] = parts;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) {
        throw new CronSyntaxError(`${field.name} step "/${stepText}" must be a whole number of 1 or more`);
      }
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (base === '*' || base === '?') {
      if (base === '?' && field.allowsQuestionMark !== true) {
        throw new CronSyntaxError(`${field.name} cannot be "?"; use "*"`);
      }
      from = field.min;
      to = field.max;
    } else {
      const bounds = base.split('-');
      if (bounds.length > 2 || bounds.some((bound) => bound === '')) {
        throw new CronSyntaxError(`${field.name} "${item}" is not a number, a range like 1-5 or a step like */15`);
      }
      from = readValue(bounds[0] ?? '', field);
      // `a/n` means from a to the field's maximum in steps of n, as in cron-parser.
      to = bounds[1] !== undefined ? readValue(bounds[1], field) : stepText !== undefined ? field.max : from;
      if (from > to) throw new CronSyntaxError(`${field.name} range "${base}" runs backwards; write the smaller value first`);
    }
    for (let value = from; value <= to; value += step) values.add(value);
  }
  return values;
}

/**
 * Why `expression` is not a usable 5-field cron expression, or undefined when it is one.
 * Also refuses expressions that can never fire, such as "0 0 31 2 *".
 */
export function checkCron(expression: string): string | undefined {
  const trimmed = expression.trim();
  const expanded = MACROS[trimmed.toLowerCase()];
  if (expanded !== undefined) return undefined;
  if (trimmed.startsWith('@')) {
    return `"${expression}" is not a known macro; use one of ${Object.keys(MACROS).join(', ')} or ${CRON_HELP}`;
  }
  const texts = trimmed === '' ? [] : trimmed.split(/\s+/);
  if (texts.length !== FIELDS.length) {
    const seconds = texts.length === 6 ? ' (a seconds field is not supported)' : '';
    return `"${expression}" has ${texts.length} field${texts.length === 1 ? '' : 's'}${seconds}; ${CRON_HELP}`;
  }
  const selected: Set<number>[] = [];
  try {
    for (const [index, field] of FIELDS.entries()) selected.push(readField(texts[index] ?? '', field));
  } catch (error) {
    if (error instanceof CronSyntaxError) return `"${expression}" is not a valid schedule: ${error.message}; ${CRON_HELP}`;
    throw error;
  }
  // When day of week is unrestricted only day of month decides, so a day that no chosen month has never comes.
  const [, , dayOfMonthText, , dayOfWeekText] = texts;
  const daysUnrestricted = (text: string | undefined): boolean => text === '*' || text === '?';
  if (daysUnrestricted(dayOfWeekText) && !daysUnrestricted(dayOfMonthText)) {
    const days = [...(selected[2] ?? [])];
    const months = [...(selected[3] ?? [])];
    const everFires = months.some((month) => days.some((day) => day <= (DAYS_IN_MONTH[month - 1] ?? 0)));
    if (!everFires) return `"${expression}" never runs: no chosen month has that day; ${CRON_HELP}`;
  }
  try {
    CronExpressionParser.parse(trimmed).next();
  } catch (error) {
    return `"${expression}" is not a valid schedule: ${(error as Error).message}; ${CRON_HELP}`;
  }
  return undefined;
}
