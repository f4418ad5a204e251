/**
 * Spaces out requests to one service so that a busy backup stays under its rate limits in the first place.
 * Pacing is not retrying: it only decides when a request may start. A token bucket: up to `burst` requests at
 * once, then `requestsPerSecond`; callers reserve their slot synchronously, so they start in arrival order.
 * After a service throttled a request, `holdFor` keeps every later request of the account waiting until its
 * Retry-After has passed: services such as Graph keep throttling an app longer when it keeps sending.
 */

import { BackupError } from '../errors.ts';

export interface RequestPacerOptions {
  /** Sustained rate (default 10). Infinity turns pacing off. */
  requestsPerSecond?: number;
  /** Requests that may start at once after a quiet spell (default: one second's worth, at least 1). */
  burst?: number;
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class RequestPacer {
  readonly requestsPerSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #tokens: number;
  #updatedAt: number;
  #heldUntil = Number.NEGATIVE_INFINITY;

  constructor(options: RequestPacerOptions = {}) {
    const rate = options.requestsPerSecond ?? 10;
    if (!(rate > 0)) {
      throw new BackupError('INVALID_ARGUMENT', `requestsPerSecond must be a positive number (or Infinity), got ${String(rate)}`);
    }
    const burst = options.burst ?? Math.max(1, Math.floor(Number.isFinite(rate) ? rate : 1));
    if (!Number.isSafeInteger(burst) || burst < 1) {
      throw new BackupError('INVALID_ARGUMENT', `burst must be a positive integer, got ${String(burst)}`);
    }
    this.requestsPerSecond = rate;
    this.#burst = burst;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#tokens = burst;
    this.#updatedAt = this.#now();
  }

  /** Resolves when the next request may start. */
  acquire(): Promise<void> {
    const now = this.#now();
    const hold = Math.max(0, this.#heldUntil - now);
    if (this.requestsPerSecond === Infinity) return hold > 0 ? this.#sleep(hold) : Promise.resolve();
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.requestsPerSecond) / 1000);
    this.#updatedAt = now;
    this.#tokens -= 1; // below zero: a reservation that waits for its share of the rate
    const wait = Math.max(hold, this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.requestsPerSecond));
    return wait > 0 ? this.#sleep(wait) : Promise.resolve();
  }

  /** The service asked to wait `ms` (its Retry-After): no request through this pacer starts before then. */
  holdFor(ms: number): void {
    if (!(ms > 0)) return;
    this.#heldUntil = Math.max(this.#heldUntil, this.#now() + ms);
  }
}
