/**
 * Wrappers that bound how hard a backend is used: ConnectionLimitBackend caps the operations in flight (services
 * throttle or ban clients that open too many connections) and BandwidthLimitBackend caps the average bytes per
 * second in each direction, so a backup does not saturate the user's link.
 */

import { BackupError } from '../errors.ts';
import type { Backend, FileInfo, FileType, Handle, Usage } from './backend.ts';

/** A counting semaphore that wakes waiters in arrival order. */
class Semaphore {
  #available: number;
  readonly #waiters: (() => void)[] = [];

  constructor(slots: number) {
    this.#available = slots;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#available > 0) this.#available--;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, so a newcomer cannot overtake it.
      const next = this.#waiters.shift();
      if (next !== undefined) next();
      else this.#available++;
    }
  }
}

/**
 * Lets at most `maxConcurrent` operations run against the inner backend at once; the rest wait in FIFO order.
 * `save`, `load`, `stat`, `remove` and `usage` hold a slot for their whole duration. A `list` holds a slot only
 * while it pulls the next entry from the inner listing (which is when a provider fetches a page), not while the
 * caller processes entries: a caller that loads files inside a listing loop must not deadlock with one slot.
 * `close` takes no slot.
 */
export class ConnectionLimitBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;
  readonly #slots: Semaphore;

  constructor(inner: Backend, maxConcurrent: number) {
    if (!Number.isSafeInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new BackupError('INVALID_ARGUMENT', `the connection limit must be an integer >= 1, got ${maxConcurrent}`);
    }
    this.inner = inner;
    this.location = inner.location;
    this.#slots = new Semaphore(maxConcurrent);
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) this.usage = () => this.#slots.run(() => innerUsage.call(inner));
  }

  save(h: Handle, data: Uint8Array): Promise<void> {
    return this.#slots.run(() => this.inner.save(h, data));
  }

  load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    return this.#slots.run(() => this.inner.load(h, offset, length));
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#slots.run(() => this.inner.stat(h));
  }

  remove(h: Handle): Promise<void> {
    return this.#slots.run(() => this.inner.remove(h));
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    const iterator = this.inner.list(type)[Symbol.asyncIterator]();
    let settled = false;
    try {
      for (;;) {
        let step: IteratorResult<FileInfo>;
        try {
          step = await this.#slots.run(() => iterator.next());
        } catch (e) {
          settled = true;
          throw e;
        }
        if (step.done === true) {
          settled = true;
          return;
        }
        yield step.value;
      }
    } finally {
      if (!settled) await iterator.return?.();
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface BandwidthLimitOptions {
  /** Average upload rate for `save`, in bytes per second. Unlimited when absent. */
  readonly uploadBytesPerSecond?: number;
  /** Average download rate for `load`, in bytes per second. Unlimited when absent. */
  readonly downloadBytesPerSecond?: number;
  /** Milliseconds on a monotonic clock (default performance.now). */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * A token bucket holding up to one second of traffic. A transfer takes its bytes at once and may drive the bucket
 * into debt; the caller then waits until the debt is paid off. Concurrent transfers queue up behind each other's
 * debt, so the total rate over time stays at the limit whatever the concurrency.
 */
class TokenBucket {
  readonly #bytesPerMs: number;
  readonly #capacity: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(bytesPerSecond: number, now: () => number) {
    this.#bytesPerMs = bytesPerSecond / 1000;
    this.#capacity = bytesPerSecond;
    this.#now = now;
    this.#tokens = bytesPerSecond;
    this.#last = now();
  }

  /** Takes `bytes` and returns how many milliseconds the caller must wait before (or after) moving them. */
  take(bytes: number): number {
    const t = this.#now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + Math.max(0, t - this.#last) * this.#bytesPerMs);
    this.#last = t;
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#bytesPerMs;
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Limits the average transfer rate of `save` (upload) and `load` (download); metadata calls are not counted.
 * Backend calls take whole buffers, so the limit holds on average over files, not within one: an upload waits for
 * its bytes first and then goes at full speed. A `load` with a known length waits before it reads; a `load` to the
 * end of the file pays after reading, since only then is its size known.
 */
export class BandwidthLimitBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;
  readonly #upload: TokenBucket | undefined;
  readonly #download: TokenBucket | undefined;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(inner: Backend, options: BandwidthLimitOptions) {
    const now = options.now ?? (() => performance.now());
    for (const [what, rate] of [
      ['upload', options.uploadBytesPerSecond],
      ['download', options.downloadBytesPerSecond],
    ] as const) {
      if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
        throw new BackupError('INVALID_ARGUMENT', `the ${what} limit must be a positive number of bytes per second, got ${rate}`);
      }
    }
    this.inner = inner;
    this.location = inner.location;
    this.#upload = options.uploadBytesPerSecond === undefined ? undefined : new TokenBucket(options.uploadBytesPerSecond, now);
    this.#download =
      options.downloadBytesPerSecond === undefined ? undefined : new TokenBucket(options.downloadBytesPerSecond, now);
    this.#sleep = options.sleep ?? defaultSleep;
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) this.usage = () => innerUsage.call(inner);
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    await this.#pay(this.#upload, data.byteLength);
    await this.inner.save(h, data);
  }

  async load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    if (length !== undefined) {
      await this.#pay(this.#download, length);
      return this.inner.load(h, offset, length);
    }
    const data = await this.inner.load(h, offset, length);
    await this.#pay(this.#download, data.byteLength);
    return data;
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.inner.stat(h);
  }

  list(type: FileType): AsyncIterable<FileInfo> {
    return this.inner.list(type);
  }

  remove(h: Handle): Promise<void> {
    return this.inner.remove(h);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  async #pay(bucket: TokenBucket | undefined, bytes: number): Promise<void> {
    if (bucket === undefined || !(bytes > 0)) return;
    const waitMs = bucket.take(bytes);
    if (waitMs > 0) await this.#sleep(Math.ceil(waitMs));
  }
}
