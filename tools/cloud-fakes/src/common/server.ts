// The tiny node:http base every fake is built on: it reads the whole request body, applies the generic faults
// ('status', 'reset-before'), hands the rest to the service's handler, logs every request with its final status,
// and serves a small control plane under /__fake/ for tests that drive a fake from another process.

import { createServer, STATUS_CODES } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { FaultInjector } from './faults.ts';
import type { FaultAction, FaultRule } from './faults.ts';
import { RequestLog, redactHeaders, redactQuery } from './log.ts';

export interface FakeServerBase {
  /** Origin of the fake, e.g. http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  readonly port: number;
  readonly log: RequestLog;
  readonly faults: FaultInjector;
  close(): Promise<void>;
}

export interface FakeRequestContext {
  /** The whole request body. */
  body: Buffer;
  /** A fault the handler must apply itself (anything but 'status' and 'reset-before'), or undefined. */
  fault: FaultAction | undefined;
  url: URL;
  /** Attaches a short note to this request's log entry (never put a credential in it). */
  note(text: string): void;
}

export type FakeHandler = (req: IncomingMessage, res: ServerResponse, ctx: FakeRequestContext) => Promise<void> | void;

export interface ErrorEnvelope {
  headers?: Record<string, string>;
  body: unknown;
}

export interface HttpFakeOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: the fakes are loopback-only. */
  host?: string;
  /** Used in messages, e.g. 'gdrive'. */
  serviceName: string;
  /** The service's own error body for a status (used for injected 'status' faults and handler crashes). */
  errorEnvelope: (status: number, message: string) => ErrorEnvelope;
}

const CONTROL_PREFIX = '/__fake/';

/** Per-response hooks that log a reset synchronously, before the client can observe it. */
const resetRecorders = new WeakMap<ServerResponse, () => void>();

export async function startHttpFake(
  handler: FakeHandler,
  options: HttpFakeOptions,
): Promise<FakeServerBase & { server: Server }> {
  const host = options.host ?? '127.0.0.1';
  const log = new RequestLog();
  const faults = new FaultInjector();
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    void serve(req, res).catch((error: unknown) => {
      // serve() already answers handler crashes; this only catches failures while answering.
      if (!res.destroyed) res.destroy(error instanceof Error ? error : undefined);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    const method = (req.method ?? 'GET').toUpperCase();
    const body = await readBody(req);
    if (body === undefined) return; // the client went away mid-body

    if (url.pathname.startsWith(CONTROL_PREFIX)) {
      if (serveControlPlane(method, url, body, res, log, faults)) return;
      await handler(req, res, { body, fault: undefined, url, note: () => undefined });
      return;
    }

    const fault = faults.match(method, url.pathname);
    let note: string | undefined;
    let logged = false;
    const record = (status: number): void => {
      if (logged) return;
      logged = true;
      log.add({
        method,
        path: url.pathname,
        query: redactQuery(url.searchParams),
        status,
        requestBytes: body.length,
        headers: redactHeaders(req.headers),
        ...(fault === undefined ? {} : { fault: fault.kind }),
        ...(note === undefined ? {} : { note }),
      });
    };
    // Log synchronously when the response is ended, so the entry exists before the client can see the answer.
    const originalEnd = res.end;
    res.end = ((...args: unknown[]) => {
      record(res.statusCode);
      return (originalEnd as (...a: unknown[]) => ServerResponse).apply(res, args);
    }) as ServerResponse['end'];
    res.on('close', () => record(res.headersSent ? res.statusCode : 0));
    resetRecorders.set(res, () => record(0));

    if (fault?.kind === 'reset-before') {
      note ??= 'socket reset before applying the request';
      resetSocket(res);
      return;
    }
    if (fault?.kind === 'status') {
      const message = STATUS_CODES[fault.status] ?? 'Injected fault';
      note ??= `injected ${fault.status}`;
      const envelope = options.errorEnvelope(fault.status, message);
      const headers: Record<string, string> = { ...envelope.headers };
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      sendJson(res, fault.status, envelope.body, headers);
      return;
    }
    try {
      await handler(req, res, {
        body,
        fault,
        url,
        note: (text) => {
          note = text;
        },
      });
    } catch (error) {
      note = `${options.serviceName} fake handler failed: ${error instanceof Error ? error.message : String(error)}`;
      if (res.headersSent) {
        resetSocket(res);
      } else {
        const envelope = options.errorEnvelope(500, 'Internal error in the fake');
        sendJson(res, 500, envelope.body, envelope.headers ?? {});
      }
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    log,
    faults,
    server,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Sends a JSON body with the Google-style `application/json; charset=UTF-8` type unless headers override it. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'content-type': 'application/json; charset=UTF-8',
    ...headers,
    'content-length': String(payload.length),
  });
  res.end(payload);
}

/** Destroys the connection without an answer: the client sees ECONNRESET / "socket hang up". */
export function resetSocket(res: ServerResponse): void {
  resetRecorders.get(res)?.();
  res.socket?.destroy();
  res.destroy();
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
    req.on('aborted', () => resolve(undefined));
  });
}

/**
 * GET/DELETE /__fake/requests reads/clears the log; POST /__fake/faults adds a rule given as JSON
 * (`path` as a string or `{"regex": "...", "flags": "i"}`, `times` as a number or "Infinity"); DELETE clears them.
 * Returns false for other control paths, which the service's handler may serve.
 */
function serveControlPlane(
  method: string,
  url: URL,
  body: Buffer,
  res: ServerResponse,
  log: RequestLog,
  faults: FaultInjector,
): boolean {
  const path = url.pathname;
  if (path === `${CONTROL_PREFIX}requests` && method === 'GET') {
    sendJson(res, 200, { entries: log.entries });
    return true;
  }
  if (path === `${CONTROL_PREFIX}requests` && method === 'DELETE') {
    log.clear();
    res.writeHead(204).end();
    return true;
  }
  if (path === `${CONTROL_PREFIX}faults` && method === 'DELETE') {
    faults.clear();
    res.writeHead(204).end();
    return true;
  }
  if (path === `${CONTROL_PREFIX}faults` && method === 'POST') {
    try {
      faults.add(parseRule(JSON.parse(body.toString('utf8')) as unknown));
      sendJson(res, 201, { pending: faults.pending() });
    } catch (error) {
      sendJson(res, 400, { error: `bad fault rule: ${error instanceof Error ? error.message : String(error)}` });
    }
    return true;
  }
  return false;
}

function parseRule(raw: unknown): FaultRule {
  if (typeof raw !== 'object' || raw === null) throw new TypeError('expected a JSON object');
  const r = raw as Record<string, unknown>;
  const action = r['action'] as FaultAction | undefined;
  if (typeof action !== 'object' || action === null || typeof action.kind !== 'string') {
    throw new TypeError('action.kind is required');
  }
  const rule: FaultRule = { action };
  if (typeof r['method'] === 'string') rule.method = r['method'];
  const path = r['path'];
  if (typeof path === 'string') rule.path = path;
  else if (typeof path === 'object' && path !== null && typeof (path as { regex?: unknown }).regex === 'string') {
    const p = path as { regex: string; flags?: string };
    rule.path = new RegExp(p.regex, p.flags ?? '');
  }
  if (typeof r['nth'] === 'number') rule.nth = r['nth'];
  const times = r['times'];
  if (typeof times === 'number') rule.times = times;
  else if (times === 'Infinity' || times === null) rule.times = Infinity;
  return rule;
}
