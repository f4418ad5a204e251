/**
 * Keeps a thread's V8 heap close to what it really holds. V8 lets the old generation grow to a multiple of the live
 * data before a full collection, and a backup, restore or check promotes megabytes of short-lived task descriptions
 * a second. A full collection each time the used heap has grown by a fixed slack since the last one bounds the heap
 * at live + slack, for a few milliseconds per collection; V8's own memory-saving mode costs 10–20% of CPU instead.
 * It needs the process to run with --expose-gc (the CLI's launcher passes it; worker threads inherit it); elsewhere
 * nothing is collected and V8's own policy applies.
 */
import v8 from 'node:v8';

export interface HeapKeeperOptions {
  /** growth of the used heap, in bytes, after which a collection runs */
  slackBytes: number;
  /** the used heap now (injected in tests) */
  usedHeap?: (() => number) | undefined;
  /** runs a full collection (injected in tests); default: V8's, when the process has --expose-gc */
  collect?: (() => void) | undefined;
}

/** The full collection the process exposes (node --expose-gc), or undefined. */
export function exposedCollector(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options?: { type?: string; execution?: string }) => void }).gc;
  if (typeof gc === 'function') return () => gc({ type: 'major', execution: 'sync' });
  return undefined;
}

const usedHeapSize = (): number => v8.getHeapStatistics().used_heap_size;

export class HeapKeeper {
  readonly #slack: number;
  readonly #used: () => number;
  readonly #collect: () => void;
  #floor: number;

  /** A keeper, or undefined when there is no collector to call (a process without --expose-gc). */
  static create(options: HeapKeeperOptions): HeapKeeper | undefined {
    const collect = options.collect ?? exposedCollector();
    return collect === undefined ? undefined : new HeapKeeper(options.slackBytes, options.usedHeap ?? usedHeapSize, collect);
  }

  private constructor(slack: number, used: () => number, collect: () => void) {
    this.#slack = slack;
    this.#used = used;
    this.#collect = collect;
    this.#floor = used();
  }

  /** Collects if the heap has grown by more than the slack since the last collection; true when it did. */
  check(): boolean {
    const now = this.#used();
    if (now > this.#floor + this.#slack) {
      this.#collect();
      this.#floor = this.#used();
      return true;
    }
    // V8 collected on its own: growth counts from there.
    if (now < this.#floor) this.#floor = now;
    return false;
  }
}
