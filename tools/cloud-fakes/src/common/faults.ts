// Fault injection shared by every cloud fake: tests queue rules ("the 2nd PUT to the upload path resets the
// socket"), and each incoming request asks the injector which fault, if any, applies to it.

export type FaultAction =
  /** Answer with this status in the service's own error envelope (e.g. 429 or 503), optionally with Retry-After. */
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  /** Destroy the socket before the request is applied. */
  | { kind: 'reset-before' }
  /** Apply the request (e.g. store the upload chunk), then destroy the socket without a response. */
  | { kind: 'reset-after' }
  /** The upload session named by this request is gone (the service's own 404/410 shape). */
  | { kind: 'expire-upload-session' }
  /** The service's own quota-exceeded error for this request. */
  | { kind: 'quota-full' }
  /** The access token used is now expired (401 in the service's shape); a refresh at the token endpoint issues a new one. */
  | { kind: 'expire-token' };

export interface FaultRule {
  /** HTTP method to match, case-insensitive; any method when absent. */
  method?: string;
  /** URL pathname (no query string) to match: a string matches exactly, a RegExp is tested; any path when absent. */
  path?: string | RegExp;
  /** 1-based index among the requests matching method+path (counted from when the rule was added); default 1. */
  nth?: number;
  /** How many matching requests to fault, starting at the nth (default 1; Infinity allowed). */
  times?: number;
  action: FaultAction;
}

interface ArmedRule {
  readonly rule: FaultRule;
  seen: number;
  fired: number;
}

export class FaultInjector {
  #rules: ArmedRule[] = [];

  add(rule: FaultRule): void {
    const nth = rule.nth ?? 1;
    const times = rule.times ?? 1;
    if (!Number.isInteger(nth) || nth < 1) throw new RangeError(`FaultRule.nth must be a positive integer, got ${nth}`);
    if (!(times === Infinity || (Number.isInteger(times) && times >= 0))) {
      throw new RangeError(`FaultRule.times must be a non-negative integer or Infinity, got ${times}`);
    }
    this.#rules.push({ rule, seen: 0, fired: 0 });
  }

  clear(): void {
    this.#rules = [];
  }

  /** How many faults are still waiting to fire (Infinity when a rule has no limit); lets a test assert all were used. */
  pending(): number {
    return this.#rules.reduce((sum, r) => sum + ((r.rule.times ?? 1) - r.fired), 0);
  }

  /**
   * Returns the action to apply to this request, consuming it. Every rule that matches method+path counts the
   * request (so `nth` is an index among matching requests, whether or not another rule faulted them); the first
   * rule, in insertion order, whose window covers this request wins.
   */
  match(method: string, path: string): FaultAction | undefined {
    let chosen: ArmedRule | undefined;
    for (const armed of this.#rules) {
      if (!ruleMatches(armed.rule, method, path)) continue;
      armed.seen += 1;
      const nth = armed.rule.nth ?? 1;
      const times = armed.rule.times ?? 1;
      if (chosen === undefined && armed.seen >= nth && armed.fired < times) chosen = armed;
    }
    if (chosen === undefined) return undefined;
    chosen.fired += 1;
    return chosen.rule.action;
  }
}

function ruleMatches(rule: FaultRule, method: string, path: string): boolean {
  if (rule.method !== undefined && rule.method.toUpperCase() !== method.toUpperCase()) return false;
  if (rule.path === undefined) return true;
  if (typeof rule.path === 'string') return rule.path === path;
  rule.path.lastIndex = 0; // a /g or /y RegExp keeps state between test() calls
  return rule.path.test(path);
}
