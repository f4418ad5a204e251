// The pacer on an injected clock: slots 1/rate apart in arrival order, no wait once the clock has passed the slot,
// no spacing at an infinite rate, and a hold after Graph's Retry-After that delays every later request.
import { describe, expect, it } from 'vitest';
import { GraphRequestPacer } from './pacer.ts';

function manualClock(): { now: number; sleeps: number[]; options: { now: () => number; sleep: (ms: number) => Promise<void> } } {
  const state = { now: 0, sleeps: [] as number[] };
  return Object.assign(state, {
    options: {
      now: () => state.now,
      sleep: async (ms: number) => {
        state.sleeps.push(ms);
      },
    },
  });
}

describe('GraphRequestPacer', () => {
  it('gives concurrent callers successive slots 1/rate apart', async () => {
    const t = manualClock();
    const pacer = new GraphRequestPacer({ requestsPerSecond: 10, ...t.options });
    await Promise.all([pacer.acquire(), pacer.acquire(), pacer.acquire()]);
    expect(t.sleeps).toEqual([100, 200]);
  });

  it('does not wait when the clock is already past the next slot', async () => {
    const t = manualClock();
    const pacer = new GraphRequestPacer({ requestsPerSecond: 4, ...t.options });
    await pacer.acquire();
    t.now = 250;
    await pacer.acquire();
    t.now = 260;
    await pacer.acquire();
    expect(t.sleeps).toEqual([240]);
  });

  it('never spaces requests at an infinite rate', async () => {
    const t = manualClock();
    const pacer = new GraphRequestPacer({ requestsPerSecond: Number.POSITIVE_INFINITY, ...t.options });
    for (let i = 0; i < 5; i++) await pacer.acquire();
    expect(t.sleeps).toEqual([]);
  });

  it('holds every request until a Retry-After has passed, then paces from there', async () => {
    const t = manualClock();
    const pacer = new GraphRequestPacer({ requestsPerSecond: 10, ...t.options });
    await pacer.acquire();
    t.now = 50;
    pacer.holdFor(2000);
    pacer.holdFor(500); // a shorter wait never shortens a longer hold
    pacer.holdFor(0);
    await Promise.all([pacer.acquire(), pacer.acquire()]);
    expect(t.sleeps).toEqual([2000, 2100]);
    t.now = 5000;
    await pacer.acquire();
    expect(t.sleeps).toHaveLength(2);
  });

  it('refuses a rate that is not a positive number', () => {
    for (const requestsPerSecond of [0, -1, Number.NaN]) {
      expect(() => new GraphRequestPacer({ requestsPerSecond })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});
