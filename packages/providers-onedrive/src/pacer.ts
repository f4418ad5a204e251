/**
 * Paces the requests of one OneDrive account: starts are spaced at most `requestsPerSecond` apart, and after Graph
 * throttled a request (429/503/509 with Retry-After) every request of the account is held until that time, because
 * Graph counts requests sent while throttled against the app and keeps it throttled longer. It only delays requests;
 * it never repeats one (that is RetryBackend's job).
 */

import { BackupError } from '@backup-manager/core-archive';

export interface GraphRequestPacerOptions {
  /** Most requests started per second (default 10). Infinity turns the spacing off; throttling holds still apply. */
  readonly requestsPerSecond?: number;
  /** Milliseconds, only compared with itself (default `performance.now`). */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_REQUESTS_PER_SECOND = 10;

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class GraphRequestPacer {
  readonly requestsPerSecond: number;
  readonly #gapMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** The earliest start of the next request, by the rate. */
  #nextSlot = Number.NEGATIVE_INFINITY;
  /** No request starts before this, after Graph asked to wait. */
  #heldUntil = Number.NEGATIVE_INFINITY;

  constructor(options: GraphRequestPacerOptions = {}) {
    const rate = options.requestsPerSecond ?? DEFAULT_REQUESTS_PER_SECOND;
    if (typeof rate !== 'number' || !(rate > 0)) {
      throw new BackupError('INVALID_ARGUMENT', `requestsPerSecond must be a positive number (Infinity turns pacing off), got ${String(rate)}`);
    }
    this.requestsPerSecond = rate;
    this.#gapMs = 1000 / rate;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? realSleep;
  }

  /** Resolves when the caller may send its request. Callers get their slots in the order they asked. */
  async acquire(): Promise<void> {
    const now = this.#now();
    const start = Math.max(now, this.#nextSlot, this.#heldUntil);
    this.#nextSlot = start + this.#gapMs;
    if (start > now) await this.#sleep(start - now);
  }

  /** Graph asked to wait `ms` (its Retry-After): no request of this account starts before then. */
  holdFor(ms: number): void {
    if (!(ms > 0)) return;
    this.#heldUntil = Math.max(this.#heldUntil, this.#now() + ms);
  }
}
