// The request log every fake keeps, so tests can assert on what the real SDK actually sent (chunk sizes,
// retries, token refreshes) without ever seeing a credential.

import type { FaultAction } from './faults.ts';

export interface RequestLogEntry {
  seq: number;
  method: string;
  /** URL pathname, without the query string. */
  path: string;
  query: Record<string, string>;
  /** Final status sent; 0 when the socket was destroyed without a response. */
  status: number;
  requestBytes: number;
  /** Lower-cased names; credentials redacted. */
  headers: Record<string, string>;
  fault?: FaultAction['kind'];
  note?: string;
}

const REDACTED = '[redacted]';
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
const SECRET_QUERY = new Set(['access_token', 'key', 'code', 'code_verifier', 'client_secret', 'refresh_token']);

/** Lower-cases header names and hides credentials; `Authorization: Bearer x` becomes `Bearer [redacted]`. */
export function redactHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    const joined = Array.isArray(value) ? value.join(', ') : value;
    out[lower] = SECRET_HEADERS.has(lower) ? redactCredential(joined) : joined;
  }
  return out;
}

/** Copies a query string into a plain record (last value wins), hiding credential-bearing parameters. */
export function redactQuery(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of params) out[name] = SECRET_QUERY.has(name) ? REDACTED : value;
  return out;
}

function redactCredential(value: string): string {
  const space = value.indexOf(' ');
  return space > 0 ? `${value.slice(0, space)} ${REDACTED}` : REDACTED;
}

export class RequestLog {
  entries: RequestLogEntry[] = [];
  #nextSeq = 1;

  add(e: Omit<RequestLogEntry, 'seq'>): void {
    // Redact again in case a caller built the entry by hand: the log must never hold a token.
    this.entries.push({ ...e, headers: redactHeaders(e.headers), seq: this.#nextSeq++ });
  }

  clear(): void {
    this.entries = [];
  }

  filter(pred: (e: RequestLogEntry) => boolean): RequestLogEntry[] {
    return this.entries.filter(pred);
  }
}
