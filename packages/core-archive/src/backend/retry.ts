/**
 * Retries transient backend failures with exponential backoff and full jitter. It decides only from
 * `BackupError.retryable` (that is, from the code), never from messages; anything else is permanent.
 */

import { BackupError } from '../errors.ts';
import type { Backend, FileInfo, FileType, Handle, Usage } from './backend.ts';

export interface RetryEvent {
  readonly operation: 'save' | 'load' | 'stat' | 'list' | 'remove' | 'usage';
  readonly handle?: Handle;
  /** The attempt that just failed, 1-based. */
  readonly attempt: number;
  /** How long the wrapper waits before the next attempt. */
  readonly delayMs: number;
  readonly error: BackupError;
}

export interface RetryOptions {
  /** Attempts in total, the first included (default 8). 1 disables retrying. */
  readonly maxAttempts?: number;
  /** Backoff ceiling for the first retry; it doubles per attempt (default 500 ms). */
  readonly baseDelayMs?: number;
  /** Upper bound of the backoff ceiling (default 60 s). A longer Retry-After from the service still wins. */
  readonly maxDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), for the jitter (default Math.random). */
  readonly random?: () => number;
  /** Called before each wait, for progress output and logs. */
  readonly onRetry?: (event: RetryEvent) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Wraps a Backend so that RATE_LIMITED and UNAVAILABLE failures are retried. The delay before retry n (n >= 1) is
 * uniform in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))), and never shorter than the error's `retryAfterMs`.
 * Retrying `save` is safe because a save replaces the whole file atomically, and `remove` because it is idempotent.
 * `list` restarts the listing and skips names it already yielded. `close` is passed through once.
 */
export class RetryBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;

  constructor(inner: Backend, options: RetryOptions = {}) {
    this.inner = inner;
    this.location = inner.location;
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    if (!Number.isSafeInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new BackupError('INVALID_ARGUMENT', `retry maxAttempts must be an integer >= 1, got ${this.#maxAttempts}`);
    }
    if (!(this.#baseDelayMs >= 0) || !(this.#maxDelayMs >= 0)) {
      throw new BackupError('INVALID_ARGUMENT', 'retry baseDelayMs and maxDelayMs must be non-negative numbers');
    }
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#onRetry = options.onRetry;
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) {
      this.usage = () => this.#run('usage', undefined, () => innerUsage.call(inner));
    }
  }

  save(h: Handle, data: Uint8Array): Promise<void> {
    return this.#run('save', h, () => this.inner.save(h, data));
  }

  load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    return this.#run('load', h, () => this.inner.load(h, offset, length));
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#run('stat', h, () => this.inner.stat(h));
  }

  remove(h: Handle): Promise<void> {
    return this.#run('remove', h, () => this.inner.remove(h));
  }

  /**
   * A failed listing is started again and the names already yielded are skipped, so the caller sees each file once.
   * The attempt count starts over whenever a restarted listing yields a new name: a long listing over a flaky
   * connection gives up only after `maxAttempts` failures in a row without progress.
   */
  async *list(type: FileType): AsyncIterable<FileInfo> {
    const seen = new Set<string>();
    let attempt = 1;
    for (;;) {
      const iterator = this.inner.list(type)[Symbol.asyncIterator]();
      let finished = false;
      let failure: unknown;
      let failed = false;
      try {
        for (;;) {
          let step: IteratorResult<FileInfo>;
          try {
            step = await iterator.next();
          } catch (e) {
            failure = e;
            failed = true;
            break;
          }
          if (step.done === true) {
            finished = true;
            return;
          }
          if (seen.has(step.value.name)) continue;
          seen.add(step.value.name);
          attempt = 1;
          yield step.value;
        }
      } finally {
        // The caller stopped early: let the inner listing release what it holds.
        if (!finished && !failed) await iterator.return?.();
      }
      await this.#backOff('list', undefined, attempt, failure);
      attempt++;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  async #run<T>(operation: RetryEvent['operation'], handle: Handle | undefined, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        await this.#backOff(operation, handle, attempt, e);
      }
    }
  }

  /** Rethrows `error` unless it is retryable and attempts remain; otherwise reports and waits. */
  async #backOff(
    operation: RetryEvent['operation'],
    handle: Handle | undefined,
    attempt: number,
    error: unknown,
  ): Promise<void> {
    if (!(error instanceof BackupError) || !error.retryable || attempt >= this.#maxAttempts) throw error;
    const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const delayMs = Math.max(Math.floor(this.#random() * ceiling), error.retryAfterMs ?? 0);
    this.#onRetry?.({ operation, ...(handle === undefined ? {} : { handle }), attempt, delayMs, error });
    await this.#sleep(delayMs);
  }
}
