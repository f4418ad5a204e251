/**
 * A Backend wrapper for tests that injects failures by rule: the nth save of a data file, 10 % of all loads, a
 * listing that breaks after 50 entries, or a save that lands and then reports an error (an "unknown outcome").
 * It is deterministic for a given seed, so a failing test can be replayed.
 */

import type { Backend, FileInfo, FileType, Handle, Usage } from '../backend/backend.ts';
import type { BackupError, ErrorCode } from '../errors.ts';

export type FaultOperation = 'save' | 'load' | 'stat' | 'list' | 'remove';

export interface FaultRule {
  readonly operation: FaultOperation;
  /** Only calls on this file type match; every type when absent. */
  readonly type?: FileType;
  /**
   * 1-based among the calls this rule matches: the rule does not fire before the nth matching call. With `nth` and
   * without `times`, only the nth call may fail (if an earlier rule already failed it, this rule never fires).
   */
  readonly nth?: number;
  /** Chance in [0, 1] that an eligible call fails, drawn from the seeded generator (default 1). */
  readonly probability?: number;
  /** The rule fires at most this many times (default: 1 when `nth` is given, otherwise unlimited). */
  readonly times?: number;
  /** Thrown as is, or called for a fresh error each time. */
  readonly error: BackupError | (() => BackupError);
  /**
   * Perform the operation, then throw: the caller cannot tell whether it happened. For `list`, the listing is
   * yielded completely before the error.
   */
  readonly applyFirst?: boolean;
  /** For `list` only: yield this many entries, then fail (default 0: fail before the first entry). */
  readonly afterItems?: number;
}

export interface FaultyBackendOptions {
  /** Seed of the generator behind `probability` (default 1). */
  readonly seed?: number;
}

/** One call that reached the wrapper, in call order. */
export interface FaultyCall {
  readonly operation: FaultOperation;
  readonly type: FileType;
  /** Absent for `list`. */
  readonly name?: string;
  /** The code of the injected error, when a rule fired for this call. */
  readonly injected?: ErrorCode;
  /** True when the operation was performed before the injected error was thrown. */
  readonly applied?: boolean;
}

/** mulberry32: a tiny, fast, well-distributed 32-bit generator; plenty for picking which calls fail. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ActiveRule {
  readonly rule: FaultRule;
  readonly limit: number;
  matched: number;
  fired: number;
}

export class FaultyBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;
  readonly #random: () => number;
  #rules: ActiveRule[] = [];
  readonly #calls: FaultyCall[] = [];

  constructor(inner: Backend, options: FaultyBackendOptions = {}) {
    this.inner = inner;
    this.location = inner.location;
    this.#random = mulberry32(options.seed ?? 1);
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) this.usage = () => innerUsage.call(inner);
  }

  /** Adds a rule; when several rules fire for one call, the one added first wins. */
  addRule(rule: FaultRule): void {
    if (rule.nth !== undefined && (!Number.isSafeInteger(rule.nth) || rule.nth < 1)) {
      throw new TypeError(`fault rule nth must be an integer >= 1, got ${rule.nth}`);
    }
    if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
      throw new TypeError(`fault rule probability must be in [0, 1], got ${rule.probability}`);
    }
    if (rule.afterItems !== undefined && rule.operation !== 'list') {
      throw new TypeError('fault rule afterItems only applies to list');
    }
    const limit = rule.times ?? (rule.nth === undefined ? Number.POSITIVE_INFINITY : 1);
    this.#rules.push({ rule, limit, matched: 0, fired: 0 });
  }

  clearRules(): void {
    this.#rules = [];
  }

  /** Every call so far, in order. */
  get calls(): readonly FaultyCall[] {
    return this.#calls;
  }

  clearCalls(): void {
    this.#calls.length = 0;
  }

  /** How many times each rule (in the order added) has fired. */
  get firedCounts(): readonly number[] {
    return this.#rules.map((r) => r.fired);
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    const rule = this.#decide('save', h.type, h.name);
    await this.#apply(rule, () => this.inner.save(h, data));
  }

  async load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    const rule = this.#decide('load', h.type, h.name);
    return this.#apply(rule, () => this.inner.load(h, offset, length));
  }

  async stat(h: Handle): Promise<FileInfo> {
    const rule = this.#decide('stat', h.type, h.name);
    return this.#apply(rule, () => this.inner.stat(h));
  }

  async remove(h: Handle): Promise<void> {
    const rule = this.#decide('remove', h.type, h.name);
    await this.#apply(rule, () => this.inner.remove(h));
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    const rule = this.#decide('list', type, undefined);
    if (rule === undefined) {
      yield* this.inner.list(type);
      return;
    }
    if (rule.applyFirst !== true && (rule.afterItems ?? 0) === 0) throw errorOf(rule);
    let yielded = 0;
    for await (const info of this.inner.list(type)) {
      yield info;
      yielded++;
      if (rule.applyFirst !== true && yielded >= (rule.afterItems ?? 0)) throw errorOf(rule);
    }
    throw errorOf(rule);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Counts the call against every matching rule and returns the first rule that fires, logging the call. */
  #decide(operation: FaultOperation, type: FileType, name: string | undefined): FaultRule | undefined {
    let firing: FaultRule | undefined;
    for (const active of this.#rules) {
      const { rule } = active;
      if (rule.operation !== operation || (rule.type !== undefined && rule.type !== type)) continue;
      active.matched++;
      if (firing !== undefined) continue;
      if (active.matched < (rule.nth ?? 1) || active.fired >= active.limit) continue;
      // `nth` alone names exactly one call: if that call was taken by an earlier rule, this one never fires.
      if (rule.nth !== undefined && rule.times === undefined && active.matched !== rule.nth) continue;
      if (rule.probability !== undefined && !(this.#random() < rule.probability)) continue;
      active.fired++;
      firing = rule;
    }
    const injected = firing === undefined ? undefined : errorOf(firing);
    this.#calls.push({
      operation,
      type,
      ...(name === undefined ? {} : { name }),
      ...(injected === undefined ? {} : { injected: injected.code }),
      ...(firing?.applyFirst === true ? { applied: true } : {}),
    });
    return firing === undefined ? undefined : { ...firing, error: injected ?? firing.error };
  }

  async #apply<T>(rule: FaultRule | undefined, operation: () => Promise<T>): Promise<T> {
    if (rule === undefined) return operation();
    if (rule.applyFirst === true) await operation();
    throw errorOf(rule);
  }
}

function errorOf(rule: FaultRule): BackupError {
  return typeof rule.error === 'function' ? rule.error() : rule.error;
}
