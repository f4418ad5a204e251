import { describe, expect, it } from 'vitest';
import { startHeapKeeper } from './heap-keeper.ts';

describe('startHeapKeeper', () => {
  it('collects once the heap has grown by the slack since the last collection, and measures from there', () => {
    let heap = 100;
    const collections: number[] = [];
    const check = startHeapKeeper({
      slackBytes: 50,
      usedHeap: () => heap,
      collect: () => {
        collections.push(heap);
        heap = 120; // what survived
      },
      setInterval: () => ({}),
    });
    expect(check).not.toBe(false);
    const run = check as () => void;
    heap = 149;
    run();
    expect(collections).toEqual([]);
    heap = 151;
    run();
    expect(collections).toEqual([151]);
    heap = 160; // 40 above the new floor of 120
    run();
    expect(collections).toEqual([151]);
    heap = 90; // V8 collected by itself: growth counts from here
    run();
    heap = 141;
    run();
    expect(collections).toEqual([151, 141]);
  });

  it('does nothing without a collector (a process started without --expose-gc)', () => {
    if (typeof (globalThis as { gc?: unknown }).gc === 'function') return;
    expect(startHeapKeeper({ setInterval: () => { throw new Error('must not start a timer'); } })).toBe(false);
  });
});
