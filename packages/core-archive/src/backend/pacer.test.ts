import { describe, expect, it } from 'vitest';
import { RequestPacer } from './pacer.ts';

/** A pacer on a fake clock that records every wait instead of sleeping. */
function pacerOnClock(options: { requestsPerSecond?: number; burst?: number }) {
  let now = 1_000_000;
  const waits: number[] = [];
  const pacer = new RequestPacer({ ...options, now: () => now, sleep: async (ms) => void waits.push(ms) });
  return { pacer, waits, advance: (ms: number) => (now += ms) };
}

describe('RequestPacer', () => {
  it('lets a burst through, then spaces requests at the rate, in arrival order', async () => {
    const { pacer, waits } = pacerOnClock({ requestsPerSecond: 10 });
    await Promise.all(Array.from({ length: 13 }, () => pacer.acquire()));
    expect(waits).toEqual([100, 200, 300]);
  });

  it('refills with time, never beyond the burst', async () => {
    const { pacer, waits, advance } = pacerOnClock({ requestsPerSecond: 4, burst: 2 });
    await pacer.acquire();
    await pacer.acquire();
    advance(10_000); // a long pause refills two tokens, not forty
    for (let i = 0; i < 3; i++) await pacer.acquire();
    expect(waits).toEqual([250]);
  });

  it('is off with Infinity, and rejects nonsense settings', async () => {
    const { pacer, waits } = pacerOnClock({ requestsPerSecond: Infinity });
    await Promise.all(Array.from({ length: 1000 }, () => pacer.acquire()));
    expect(waits).toEqual([]);
    expect(() => new RequestPacer({ requestsPerSecond: 0 })).toThrow(/requestsPerSecond/);
    expect(() => new RequestPacer({ requestsPerSecond: 5, burst: 0 })).toThrow(/burst/);
  });
});

describe('RequestPacer.holdFor', () => {
  it('holds every later request until the service’s Retry-After has passed, then paces again', async () => {
    let now = 0;
    const sleeps: number[] = [];
    const pacer = new RequestPacer({ requestsPerSecond: Infinity, now: () => now, sleep: async (ms) => void sleeps.push(ms) });
    await pacer.acquire();
    pacer.holdFor(3000);
    now = 1000;
    await Promise.all([pacer.acquire(), pacer.acquire()]);
    expect(sleeps).toEqual([2000, 2000]);
    now = 3000;
    await pacer.acquire();
    expect(sleeps).toEqual([2000, 2000]);
  });

  it('combines a hold with the rate: the longer wait wins, and a shorter hold never shortens a longer one', async () => {
    let now = 0;
    const sleeps: number[] = [];
    const pacer = new RequestPacer({ requestsPerSecond: 1, burst: 1, now: () => now, sleep: async (ms) => void sleeps.push(ms) });
    await pacer.acquire();
    pacer.holdFor(5000);
    pacer.holdFor(100);
    await pacer.acquire();
    expect(sleeps).toEqual([5000]);
  });
});
