import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planRotation, readRotationState, verifyRotating, writeRotationState } from './rotation.ts';
import type { RotationState } from './rotation.ts';
import { parseDataSubset, selectPacks } from './subset.ts';
import { makeFixture, open, tempDir } from './test-support.ts';
import type { Fixture } from './test-support.ts';

const DAY = 24 * 60 * 60 * 1000;
const hexId = (i: number): string => i.toString(16).padStart(8, '0').repeat(8);

describe('planRotation', () => {
  it('reads every pack exactly once per period, whatever the number of packs and the time of day of each run', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: DAY - 1 }), { minLength: 80, maxLength: 80 }),
        fc.integer({ min: 0, max: 365 }),
        (packs, period, timesOfDay, startDay) => {
          const ids = Array.from({ length: packs }, (_, i) => hexId(i * 7919));
          let state: RotationState | undefined;
          const reads = new Map<string, number[]>();
          for (let day = 0; day < 2 * period; day++) {
            const now = new Date((20000 + startDay + day) * DAY + timesOfDay[day % timesOfDay.length]!);
            const plan = planRotation(state, ids, now, period);
            expect(plan.day).toBe(day % period);
            for (const id of plan.packs) reads.set(id, [...(reads.get(id) ?? []), day]);
            state = plan.next;
          }
          // Two full cycles: each pack read once in each.
          for (const id of ids) {
            const days = reads.get(id) ?? [];
            expect(days).toHaveLength(2);
            expect(days[0]!).toBeLessThan(period);
            expect(days[1]!).toBeGreaterThanOrEqual(period);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('spreads the packs evenly, catches up missed days, and reads nothing more on a second run the same day', () => {
    const ids = Array.from({ length: 30 }, (_, i) => hexId(i + 1));
    const d0 = new Date('2026-03-01T02:00:00Z');
    const p0 = planRotation(undefined, ids, d0, 10);
    expect(p0.packs).toHaveLength(3);
    expect(p0.newCycle).toBe(true);
    const again = planRotation(p0.next, ids, new Date(d0.getTime() + 3600_000), 10);
    expect(again.packs).toEqual([]);
    // Three days missed: the fourth run reads four days' worth.
    const p4 = planRotation(p0.next, ids, new Date(d0.getTime() + 4 * DAY), 10);
    expect(p4.packs).toHaveLength(12);
    // Packs added during the cycle with ids below the cursor wait for the next cycle; nothing is read twice.
    expect(p4.packs.every((id) => id > p0.next.cursor!)).toBe(true);
  });

  it('starts a new cycle after the period, counting what the last one never reached', () => {
    const ids = Array.from({ length: 10 }, (_, i) => hexId(i + 1));
    const p0 = planRotation(undefined, ids, new Date('2026-03-01T00:00:00Z'), 5);
    const late = planRotation(p0.next, ids, new Date('2026-03-09T00:00:00Z'), 5);
    expect(late.newCycle).toBe(true);
    expect(late.cycle).toBe(2);
    expect(late.previousCycleUnread).toBe(8);
    expect(late.day).toBe(0);
  });

  it('rejects a period that is not a whole number of days', () => {
    expect(() => planRotation(undefined, [], new Date(), 0)).toThrow(/whole number of days/);
    expect(() => planRotation(undefined, [], new Date(), 1.5)).toThrow(/whole number of days/);
  });
});

describe('the rotation file', () => {
  const tmp = tempDir('rotation-file');
  afterAll(() => tmp.cleanup());

  it('keeps one position per repository id and survives a damaged file', () => {
    const file = path.join(tmp.dir, 'verify-rotation.json');
    expect(readRotationState(file, 'a')).toBeUndefined();
    const plan = planRotation(undefined, [hexId(1)], new Date('2026-01-01T00:00:00Z'), 3);
    writeRotationState(file, 'a', plan.next);
    writeRotationState(file, 'b', { ...plan.next, cycle: 7 });
    expect(readRotationState(file, 'a')).toEqual(plan.next);
    expect(readRotationState(file, 'b')?.cycle).toBe(7);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    fs.writeFileSync(file, '{ not json');
    expect(readRotationState(file, 'a')).toBeUndefined();
  });
});

describe('a rotating data check with an injected clock', () => {
  let fx: Fixture;
  const tmp = tempDir('rotation');
  beforeAll(async () => {
    fx = await makeFixture('rotation-repo');
  }, 60_000);
  afterAll(() => {
    fx.cleanup();
    tmp.cleanup();
  });

  it('covers every pack exactly once in a 30-day period of daily runs, then starts over', async () => {
    const stateFile = path.join(tmp.dir, 'verify-rotation.json');
    const all: string[] = [];
    for await (const f of fx.backend.list('data')) all.push(f.name);
    all.sort();
    expect(all.length).toBeGreaterThan(3);
    const start = Date.parse('2026-05-01T03:00:00Z');
    const readOn = new Map<string, number[]>();
    for (let day = 0; day < 31; day++) {
      // Runs drift by a few minutes each day, as a scheduler's do.
      const now = new Date(start + day * DAY + ((day * 7) % 50) * 60_000);
      const repo = await open(fx.backend, { now: () => now });
      const { summary, plan } = await verifyRotating(repo, { stateFile, periodDays: 30, workers: 0 });
      repo.close();
      expect(summary.healthy).toBe(true);
      expect(summary.packsRead).toEqual(plan.packs);
      if (day < 30) expect(summary.dataScope).toBe(`rotation day ${day + 1}/30 of cycle 1`);
      for (const id of summary.packsRead) readOn.set(id, [...(readOn.get(id) ?? []), day]);
    }
    for (const id of all) {
      const days = readOn.get(id) ?? [];
      // once in days 0–29; day 30 is the first day of cycle 2
      expect(days.filter((d) => d < 30)).toHaveLength(1);
    }
    expect(readRotationState(stateFile, (await open(fx.backend)).config.id)?.cycle).toBe(2);
  });
});

describe('data subsets', () => {
  const packs = Array.from({ length: 256 }, (_, i) => ({ id: i.toString(16).padStart(2, '0') + 'ab'.repeat(31), size: 1000 + i }));

  it('parses n/t, percentages and sizes', () => {
    const size = (s: string): number => {
      if (s === '2KiB') return 2048;
      throw new Error('bad');
    };
    expect(parseDataSubset('2/5', size)).toEqual({ kind: 'bucket', bucket: 2, of: 5 });
    expect(parseDataSubset('12.5%', size)).toEqual({ kind: 'percent', percent: 12.5 });
    expect(parseDataSubset('2KiB', size)).toEqual({ kind: 'bytes', bytes: 2048 });
    for (const bad of ['0/5', '6/5', '1/257', '0%', '101%', 'lots']) expect(() => parseDataSubset(bad, size)).toThrow(/subset/);
  });

  it('buckets partition the packs by the first byte of their id, like restic', () => {
    const seen = new Set<string>();
    for (let n = 1; n <= 5; n++) {
      const chosen = selectPacks(packs, { kind: 'bucket', bucket: n, of: 5 });
      for (const p of chosen) {
        expect(parseInt(p.id.slice(0, 2), 16) % 5).toBe(n - 1);
        expect(seen.has(p.id)).toBe(false);
        seen.add(p.id);
      }
    }
    expect(seen.size).toBe(packs.length);
  });

  it('a percentage picks that share at random (at least one), a size stays within its budget', () => {
    let x = 1;
    const random = (): number => ((x = (x * 48271) % 2147483647) / 2147483647);
    expect(selectPacks(packs, { kind: 'percent', percent: 10 }, random)).toHaveLength(26);
    expect(selectPacks(packs.slice(0, 3), { kind: 'percent', percent: 1 }, random)).toHaveLength(1);
    const budget = selectPacks(packs, { kind: 'bytes', bytes: 10_000 }, random);
    expect(budget.reduce((n, p) => n + p.size, 0)).toBeLessThanOrEqual(10_000);
    expect(budget.length).toBeGreaterThanOrEqual(7);
    expect(selectPacks(packs, { kind: 'bytes', bytes: 1 }, random)).toHaveLength(1);
  });
});
