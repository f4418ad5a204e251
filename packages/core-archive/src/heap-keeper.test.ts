import { describe, expect, it } from 'vitest';
import { HeapKeeper } from './heap-keeper.ts';

describe('HeapKeeper', () => {
  it('collects once the heap has grown by the slack since the last collection, and measures from there', () => {
    let heap = 100;
    const collections: number[] = [];
    const keeper = HeapKeeper.create({
      slackBytes: 50,
      usedHeap: () => heap,
      collect: () => {
        collections.push(heap);
        heap = 120; // what survived
      },
    })!;
    heap = 149;
    expect(keeper.check()).toBe(false);
    heap = 151;
    expect(keeper.check()).toBe(true);
    expect(collections).toEqual([151]);
    heap = 160; // 40 above the new floor of 120
    expect(keeper.check()).toBe(false);
    heap = 90; // V8 collected by itself: growth counts from here
    keeper.check();
    heap = 141;
    keeper.check();
    expect(collections).toEqual([151, 141]);
  });

  it('is not made without a collector (a process started without --expose-gc)', () => {
    if (typeof (globalThis as { gc?: unknown }).gc === 'function') return;
    expect(HeapKeeper.create({ slackBytes: 1 })).toBeUndefined();
  });
});
