import { describe, expect, it } from 'vitest';
import { InvalidValueError } from './errors.ts';
import { checkIoPriority, checkNice, parseIoPriority } from './priority.ts';

describe('parseIoPriority', () => {
  it('reads the idle and best-effort classes, best-effort defaulting to level 4', () => {
    expect(parseIoPriority('idle')).toEqual({ class: 'idle' });
    expect(parseIoPriority(' Best-Effort ')).toEqual({ class: 'best-effort', level: 4 });
    expect(parseIoPriority('best-effort:0')).toEqual({ class: 'best-effort', level: 0 });
    expect(parseIoPriority('best-effort:7')).toEqual({ class: 'best-effort', level: 7 });
  });

  it('refuses other classes, levels out of range and levels on idle, saying what to write', () => {
    for (const bad of ['', 'realtime', 'realtime:0', 'best-effort:8', 'best-effort:-1', 'best-effort:', 'idle:3', 'low', '3']) {
      expect(() => parseIoPriority(bad), bad).toThrow(InvalidValueError);
      expect(checkIoPriority(bad), bad).toMatch(/write "idle"/);
    }
    expect(checkIoPriority('idle')).toBeUndefined();
  });
});

describe('checkNice', () => {
  it('accepts integers from 0 to 19 only', () => {
    expect(checkNice(0)).toBeUndefined();
    expect(checkNice(19)).toBeUndefined();
    expect(checkNice(20)).toBe('must be an integer from 0 to 19, not 20');
    expect(checkNice(-1)).toMatch(/from 0 to 19/);
    expect(checkNice(2.5)).toMatch(/from 0 to 19/);
  });
});
