// The stand-in cron checker: what it accepts must be valid 5-field cron, and refusals must say which field is wrong.
import { describe, expect, it } from 'vitest';
import { checkCron } from './cron.ts';

describe('checkCron', () => {
  it.each([
    '0 2 * * *',
    '0 4 * * 0',
    '*/15 * * * *',
    '30 3 * * 1-5',
    '0 0 1,15 * *',
    '0 0 * * 7',
    '0 0 * * SUN',
    '0 0 * * mon-fri',
    '0 0 1 JAN,jul *',
    '5/10 * * * *',
    '0 0-23/2 * * *',
    '0 0 ? * 1',
    '0 0 29 2 *',
    '0 0 31 1-12 *',
    '0 0 31 2 1',
    '  0   2 * *  * ',
    '@daily',
    '@hourly',
    '@weekly',
    '@monthly',
    '@yearly',
    '@annually',
  ])('accepts %j', (expression) => {
    expect(checkCron(expression)).toBeUndefined();
  });

  it.each([
    ['', /has 0 fields/],
    ['0 2 * *', /has 4 fields/],
    ['0 0 2 * * *', /has 6 fields \(a seconds field is not supported\)/],
    ['60 * * * *', /minute 60 is out of range 0-59/],
    ['0 24 * * *', /hour 24 is out of range 0-23/],
    ['0 0 0 * *', /day of month 0 is out of range 1-31/],
    ['0 0 32 * *', /day of month 32 is out of range 1-31/],
    ['0 0 * 13 *', /month 13 is out of range 1-12/],
    ['0 0 * * 8', /day of week 8 is out of range 0-7/],
    ['0 0 * FOO *', /month "FOO" is not a number or one of JAN/],
    ['0 0 * * MON-FOO', /day of week "FOO"/],
    ['x * * * *', /minute "x" is not a number;/],
    ['*/0 * * * *', /step "\/0" must be a whole number of 1 or more/],
    ['*/x * * * *', /step "\/x"/],
    ['1/2/3 * * * *', /more than one "\/"/],
    ['5-1 * * * *', /range "5-1" runs backwards/],
    ['1- * * * *', /not a number, a range/],
    ['1,,2 * * * *', /empty list item/],
    ['? * * * *', /minute cannot be "\?"/],
    ['0 0 L * *', /extension \(L, W, # or H\)/],
    ['0 0 15W * *', /extension/],
    ['0 0 * * 5L', /extension/],
    ['0 0 * * 1#2', /extension/],
    ['H * * * *', /extension/],
    ['0 0 31 2 *', /never runs/],
    ['0 0 30,31 2 *', /never runs/],
    ['0 0 31 4,6,9,11 *', /never runs/],
    ['@daly', /not a known macro/],
  ])('refuses %j: %s', (expression, message) => {
    const problem = checkCron(expression);
    expect(problem).toMatch(message);
    expect(problem).toContain('"0 2 * * *"');
  });

  it('names the expression and the field in the message', () => {
    expect(checkCron('0 25 * * *')).toMatch(/^"0 25 \* \* \*" is not a valid schedule: hour 25 is out of range 0-23; write 5 fields/);
  });
});
