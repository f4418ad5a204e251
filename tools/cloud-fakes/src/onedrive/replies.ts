// The HTTP answers Microsoft Graph gives: OData JSON bodies, the `{ error: { code, message, innerError } }` error
// envelope (with the more specific OneDrive code, when there is one, inside innerError), and the raw byte, empty
// and redirect answers of the content endpoints.

import { randomUUID } from 'node:crypto';

export interface GraphReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** What Graph sends as Content-Type for JSON; the SDK only looks at the media type before the first ';'. */
export const GRAPH_JSON_TYPE = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

/** The top-level `error.code` Graph uses for each status when nothing more specific applies. */
const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalidRequest',
  401: 'unauthenticated',
  403: 'accessDenied',
  404: 'itemNotFound',
  405: 'invalidRequest',
  409: 'nameAlreadyExists',
  411: 'invalidRequest',
  412: 'resourceModified',
  413: 'invalidRequest',
  415: 'invalidRequest',
  416: 'invalidRange',
  423: 'accessDenied',
  429: 'activityLimitReached',
  500: 'generalException',
  501: 'notSupported',
  503: 'serviceNotAvailable',
  504: 'serviceNotAvailable',
  507: 'quotaLimitReached',
  509: 'activityLimitReached',
};

/** The nested code Graph puts in innerError for the injected statuses that have one. */
const INNER_CODE_BY_STATUS: Readonly<Record<number, string>> = {
  429: 'throttledRequest',
  509: 'throttledRequest',
};

export function defaultErrorCode(status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? 'generalException' : 'invalidRequest');
}

export interface GraphErrorInput {
  code?: string;
  /** The more specific OneDrive code (e.g. fragmentOverlap), placed in innerError.code. */
  innerCode?: string;
  /** The caller's client-request-id, echoed as Graph does. */
  clientRequestId?: string;
  headers?: Record<string, string>;
  /** When the error happened (the fake's clock); defaults to the wall clock. */
  now?: Date;
}

/** Graph's error envelope and headers, without the transport; shared by replies and injected 'status' faults. */
export function graphErrorEnvelope(
  status: number,
  message: string,
  input: GraphErrorInput = {},
): { headers: Record<string, string>; body: unknown } {
  const requestId = randomUUID();
  const clientRequestId = input.clientRequestId ?? requestId;
  const innerCode = input.innerCode ?? INNER_CODE_BY_STATUS[status];
  const innerError: Record<string, string> = {
    ...(innerCode === undefined ? {} : { code: innerCode }),
    // Graph writes this timestamp without a zone designator or fractional seconds.
    date: (input.now ?? new Date()).toISOString().slice(0, 19),
    'request-id': requestId,
    'client-request-id': clientRequestId,
  };
  return {
    headers: {
      'content-type': GRAPH_JSON_TYPE,
      'request-id': requestId,
      'client-request-id': clientRequestId,
      ...input.headers,
    },
    body: { error: { code: input.code ?? defaultErrorCode(status), message, innerError } },
  };
}

export function graphError(status: number, message: string, input: GraphErrorInput = {}): GraphReply {
  const envelope = graphErrorEnvelope(status, message, input);
  return { status, headers: envelope.headers, body: Buffer.from(JSON.stringify(envelope.body)) };
}

export function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): GraphReply {
  return { status, headers: { 'content-type': GRAPH_JSON_TYPE, ...headers }, body: Buffer.from(JSON.stringify(value)) };
}

/** JSON for the identity platform (login.microsoftonline.com), which uses plain application/json. */
export function identityJsonReply(status: number, value: unknown, headers: Record<string, string> = {}): GraphReply {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store, no-cache', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  };
}

export function emptyReply(status: number, headers: Record<string, string> = {}): GraphReply {
  return { status, headers, body: Buffer.alloc(0) };
}

export function redirectReply(location: string, status = 302): GraphReply {
  return { status, headers: { location }, body: Buffer.alloc(0) };
}

export function bytesReply(status: number, bytes: Buffer, headers: Record<string, string> = {}): GraphReply {
  return { status, headers: { 'content-type': 'application/octet-stream', ...headers }, body: bytes };
}
