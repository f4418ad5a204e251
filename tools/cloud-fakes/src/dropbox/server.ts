// The loopback Dropbox API v2 fake: one node:http port serves what production splits over api.dropboxapi.com
// (RPC + /oauth2/token), content.dropboxapi.com (upload/download) and www.dropbox.com (/oauth2/authorize), with
// Dropbox's authentication, argument transport, error shapes and the shared fault injection.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultInjector } from '../common/faults.ts';
import type { FaultAction } from '../common/faults.ts';
import { resetSocket, startHttpFake } from '../common/server.ts';
import type { ErrorEnvelope, FakeRequestContext, FakeServerBase } from '../common/server.ts';
import { TokenAuthority } from '../common/tokens.ts';
import { BadInputError } from './args.ts';
import { ListCursors } from './cursors.ts';
import { authorize, token } from './oauth.ts';
import type { OAuthState } from './oauth.ts';
import { authError, badInput, errorSummary, jsonReply, rateLimitError, textReply } from './replies.ts';
import type { DropboxReply, RateLimitReason } from './replies.ts';
import { ROUTES } from './routes.ts';
import type { DropboxServiceState, RouteCall } from './routes.ts';
import { UploadSessions } from './sessions.ts';
import type { UploadSession } from './sessions.ts';
import { DropboxStore, parsePath } from './store.ts';
import type { DropboxFileRecord, DropboxFolderRecord } from './store.ts';

export interface DropboxFakeOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Space allocated to the account (users/get_space_usage `allocated`); default 2 GiB, like Dropbox Basic. */
  quotaBytes?: number;
  /** Largest list_folder page the fake returns, whatever `limit` the caller asks for; default 2000. */
  listLimit?: number;
  /** Access-token lifetime; default 14400 s, as Dropbox's short-lived tokens. Keep it above 300 (SDK refresh margin). */
  tokenTtlSeconds?: number;
  /** Clock for timestamps, token expiry and the 7-day upload-session lifetime. */
  now?: () => Date;
}

/** A 429 to inject on matching requests, with Dropbox's RateLimitError body. */
export interface DropboxRateLimitRule {
  method?: string;
  path?: string | RegExp;
  nth?: number;
  times?: number;
  /** Default too_many_requests; too_many_write_operations models namespace lock contention. */
  reason?: RateLimitReason;
  /** Retry-After header and `retry_after` body field; default 1. */
  retryAfterSeconds?: number;
}

export interface DropboxFake extends FakeServerBase {
  readonly tokens: TokenAuthority;
  /** Files by path_lower (live; tests may inspect or seed it — prefer putFile for seeding). */
  readonly files: Map<string, DropboxFileRecord>;
  /** Folders by path_lower (the root is implicit). */
  readonly folders: Map<string, DropboxFolderRecord>;
  /** Open upload sessions by session id. */
  readonly sessions: ReadonlyMap<string, UploadSession>;
  readonly quotaBytes: number;
  setQuota(bytes: number): void;
  setListLimit(limit: number): void;
  usedBytes(): number;
  /** Stores a file (overwriting, creating parent folders) without going through HTTP. */
  putFile(path: string, content: Buffer | string): DropboxFileRecord;
  /** Queues 429 answers (Retry-After + RateLimitError body) for matching requests to /2/ routes. */
  rateLimit(rule: DropboxRateLimitRule): void;
  /** Invalidates every list_folder cursor, so list_folder/continue answers `reset`. */
  resetCursors(): void;
}

export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
export const DEFAULT_TOKEN_TTL_SECONDS = 14_400;

const ARG_HEADER_WHERE = 'HTTP header "Dropbox-API-Arg"';
const RPC_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain; charset=dropbox-cors-hack'];
const UPLOAD_TYPES = ['application/octet-stream', 'text/plain; charset=dropbox-cors-hack'];

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function normalizedType(value: string | undefined): string {
  return (value ?? '').toLowerCase().replace(/\s*;\s*/g, '; ').trim();
}

function send(res: ServerResponse, reply: DropboxReply): void {
  const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  res.writeHead(reply.status, {
    ...reply.headers,
    'x-dropbox-request-id': randomBytes(16).toString('hex'),
    'content-length': String(body.length),
  });
  res.end(body);
}

export async function startDropboxFake(options: DropboxFakeOptions = {}): Promise<DropboxFake> {
  const now = options.now ?? ((): Date => new Date());
  const tokens = new TokenAuthority({
    accessTtlSeconds: options.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS,
    now: () => now().getTime(),
  });
  const account = {
    account_id: `dbid:${randomBytes(26).toString('base64url').slice(0, 35)}`,
    uid: '123456789',
    email: 'backup.tester@example.com',
    given_name: 'Backup',
    surname: 'Tester',
  };
  const state: DropboxServiceState = {
    store: new DropboxStore(now),
    sessions: new UploadSessions(now),
    cursors: new ListCursors(),
    account,
    quotaBytes: options.quotaBytes ?? DEFAULT_QUOTA_BYTES,
    listLimit: options.listLimit ?? 2000,
  };
  const oauth: OAuthState = { tokens, account, accessTypeByCode: new Map() };
  const rateLimits = new FaultInjector();
  const rateLimitReasons = new WeakMap<FaultAction, RateLimitReason>();

  function apiCall(req: IncomingMessage, ctx: FakeRequestContext, routeName: string): DropboxReply {
    const route = ROUTES.get(routeName);
    if (!route) return textReply(400, `Unknown API function: "${routeName}"`);
    const method = (req.method ?? 'GET').toUpperCase();
    if (method !== 'POST' && !(method === 'GET' && route.style === 'download')) {
      return badInput(routeName, `HTTP method ${method} is not allowed; use POST`);
    }
    // Optional: a client that tells the fake which production host it meant (x-fake-host) is checked against the
    // route's real host, as Dropbox rejects content routes on api.dropboxapi.com and vice versa.
    const meantHost = headerValue(req, 'x-fake-host');
    const expectedHost = `${route.host}.dropboxapi.com`;
    if (meantHost !== undefined && meantHost !== expectedHost) {
      return badInput(routeName, `This function is only available on ${expectedHost}, not ${meantHost}.`);
    }

    const authorization = headerValue(req, 'authorization') ?? ctx.url.searchParams.get('authorization') ?? undefined;
    if (authorization === undefined) {
      return badInput(routeName, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
    }
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!bearer?.[1]) {
      return badInput(routeName, 'Invalid "Authorization" value. Expecting "Bearer <oauth2-access-token>".');
    }
    const accessToken = bearer[1];
    if (ctx.fault?.kind === 'expire-token') {
      tokens.expire(accessToken);
      ctx.note('expire-token fault: access token expired');
      return authError('expired_access_token');
    }
    if (!tokens.isValid(accessToken)) {
      return authError(tokens.issued.includes(accessToken) ? 'expired_access_token' : 'invalid_access_token');
    }
    const limited = rateLimits.match(method, ctx.url.pathname);
    if (limited?.kind === 'status') {
      const reason = rateLimitReasons.get(limited) ?? 'too_many_requests';
      ctx.note(`rate limited: ${reason}`);
      return rateLimitError(reason, limited.retryAfterSeconds ?? 1);
    }

    let where: string;
    let rawArg: string | undefined;
    if (route.style === 'rpc') {
      where = 'request body';
      if (ctx.body.length > 0) {
        const type = headerValue(req, 'content-type');
        if (!RPC_TYPES.includes(normalizedType(type))) {
          return badInput(
            routeName,
            `Bad HTTP "Content-Type" header: "${type ?? ''}".  Expecting one of ${RPC_TYPES.map((t) => `"${t}"`).join(', ')}.`,
          );
        }
        rawArg = ctx.body.toString('utf8');
      }
    } else {
      where = ARG_HEADER_WHERE;
      rawArg = headerValue(req, 'dropbox-api-arg') ?? ctx.url.searchParams.get('arg') ?? undefined;
      if (rawArg === undefined) {
        return badInput(routeName, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".');
      }
      if (route.style === 'upload') {
        const type = headerValue(req, 'content-type');
        if (!UPLOAD_TYPES.includes(normalizedType(type))) {
          return badInput(
            routeName,
            `Bad HTTP "Content-Type" header: "${type ?? ''}".  Expecting one of ${UPLOAD_TYPES.map((t) => `"${t}"`).join(', ')}.`,
          );
        }
      }
    }
    let arg: unknown = null;
    if (rawArg !== undefined) {
      try {
        // The SDK escapes non-ASCII as \uXXXX in header JSON; JSON.parse undoes that.
        arg = JSON.parse(rawArg) as unknown;
      } catch {
        return badInput(routeName, `${where}: could not decode input as JSON`);
      }
    }
    if (arg === null && !route.voidArg) return badInput(routeName, `${where}: could not decode input as JSON`);

    const call: RouteCall = {
      route: routeName,
      where,
      arg,
      body: route.style === 'upload' ? ctx.body : Buffer.alloc(0),
      range: headerValue(req, 'range'),
      fault: ctx.fault,
      note: ctx.note,
    };
    try {
      return route.handle(state, call);
    } catch (error) {
      if (error instanceof BadInputError) return badInput(routeName, error.message);
      throw error;
    }
  }

  /** Control plane for tests in another process (the common base serves /__fake/requests and /__fake/faults). */
  function control(method: string, path: string, body: Buffer): DropboxReply {
    if (method === 'POST' && path === '/__fake/tokens') return jsonReply(201, tokens.issue());
    if (method === 'POST' && path === '/__fake/tokens/expire') {
      tokens.expire();
      return { status: 204, headers: {}, body: '' };
    }
    if (method === 'POST' && path === '/__fake/state') {
      let settings: Record<string, unknown>;
      try {
        settings = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return jsonReply(400, { error: 'expected a JSON object' });
      }
      if (typeof settings['quotaBytes'] === 'number') state.quotaBytes = settings['quotaBytes'];
      if (typeof settings['listLimit'] === 'number') state.listLimit = settings['listLimit'];
      return jsonReply(200, { quotaBytes: state.quotaBytes, listLimit: state.listLimit, usedBytes: state.store.usedBytes() });
    }
    if (method === 'GET' && path === '/__fake/files') {
      const files = [...state.store.files].map(([pathLower, f]) => ({
        path_lower: pathLower,
        path_display: f.path_display,
        id: f.id,
        size: f.content.byteLength,
        rev: f.rev,
        content_hash: f.content_hash,
        server_modified: f.server_modified,
      }));
      return jsonReply(200, { files });
    }
    return textReply(404, `Unknown control path ${method} ${path}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: FakeRequestContext): Promise<void> {
    const path = ctx.url.pathname;
    const method = (req.method ?? 'GET').toUpperCase();
    let reply: DropboxReply;
    if (path.startsWith('/__fake/')) reply = control(method, path, ctx.body);
    else if (path === '/oauth2/token') reply = token(oauth, req, ctx.url, ctx.body);
    else if (path === '/oauth2/authorize') reply = authorize(oauth, ctx.url);
    else if (path.startsWith('/2/')) reply = apiCall(req, ctx, path.slice(3));
    else reply = textReply(404, `Unknown endpoint ${path}`);

    if (ctx.fault?.kind === 'reset-after') {
      // The request has been applied (e.g. an appended chunk is stored); the client never hears about it.
      ctx.note(`applied (would have answered ${reply.status}), then socket reset`);
      resetSocket(res);
      return;
    }
    send(res, reply);
  }

  // Injected 'status' faults are answered by the common base through errorEnvelope(status, message), which is
  // not told the request or the rule. The base calls faults.match() and then errorEnvelope() synchronously, so
  // remembering the last match lets the envelope name the route and echo retryAfterSeconds in `retry_after`.
  let lastMatch: { path: string; action: FaultAction | undefined } | undefined;
  const errorEnvelope = (status: number, message: string): ErrorEnvelope => {
    const matched = lastMatch?.action?.kind === 'status' && lastMatch.action.status === status ? lastMatch : undefined;
    const routeName = matched?.path.startsWith('/2/') ? matched.path.slice(3) : (matched?.path ?? 'unknown');
    return dropboxErrorEnvelope(status, message, routeName, matched?.action);
  };

  const base = await startHttpFake(handle, {
    serviceName: 'dropbox',
    errorEnvelope,
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.host === undefined ? {} : { host: options.host }),
  });
  const faults = base.faults;
  const matchFault = faults.match.bind(faults);
  faults.match = (method: string, path: string): FaultAction | undefined => {
    const action = matchFault(method, path);
    lastMatch = { path, action };
    return action;
  };

  return {
    url: base.url,
    port: base.port,
    log: base.log,
    faults,
    close: () => base.close(),
    tokens,
    files: state.store.files,
    folders: state.store.folders,
    sessions: state.sessions.sessions,
    get quotaBytes(): number {
      return state.quotaBytes;
    },
    setQuota(bytes: number): void {
      state.quotaBytes = bytes;
    },
    setListLimit(limit: number): void {
      if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`listLimit must be a positive integer, got ${limit}`);
      state.listLimit = limit;
    },
    usedBytes: () => state.store.usedBytes(),
    putFile(path: string, content: Buffer | string): DropboxFileRecord {
      const parsed = parsePath(path);
      if (parsed.kind !== 'components') throw new RangeError(`putFile needs a path like /folder/name, got "${path}"`);
      const outcome = state.store.writeFile(parsed.components, Buffer.from(content), {
        mode: { kind: 'overwrite' },
        autorename: false,
        strictConflict: false,
        clientModified: undefined,
        quotaBytes: Number.POSITIVE_INFINITY,
      });
      if ('error' in outcome) throw new Error(`putFile("${path}") failed: ${JSON.stringify(outcome.error)}`);
      if (outcome.ok.kind !== 'file') throw new Error(`putFile("${path}") did not produce a file`);
      return outcome.ok.record;
    },
    rateLimit(rule: DropboxRateLimitRule): void {
      const action: FaultAction = { kind: 'status', status: 429, retryAfterSeconds: rule.retryAfterSeconds ?? 1 };
      rateLimitReasons.set(action, rule.reason ?? 'too_many_requests');
      rateLimits.add({
        action,
        ...(rule.method === undefined ? {} : { method: rule.method }),
        ...(rule.path === undefined ? {} : { path: rule.path }),
        ...(rule.nth === undefined ? {} : { nth: rule.nth }),
        ...(rule.times === undefined ? {} : { times: rule.times }),
      });
    },
    resetCursors: () => state.cursors.clear(),
  };
}

/**
 * Dropbox's answer for an injected status: 401 expired_access_token, 403 AccessError, 409 a route error tagged
 * `other`, 429 RateLimitError + Retry-After, and text for 400/5xx (the common base JSON-encodes the body, so a
 * string arrives as a JSON string literal, which the SDK parses back to the same text).
 */
export function dropboxErrorEnvelope(
  status: number,
  message: string,
  routeName: string,
  action: FaultAction | undefined,
): ErrorEnvelope {
  const json = { 'content-type': 'application/json' };
  const wrap = (error: Record<string, unknown>): unknown => ({ error_summary: errorSummary(error), error });
  if (status === 401) return { headers: json, body: wrap({ '.tag': 'expired_access_token' }) };
  if (status === 403) {
    return { headers: json, body: wrap({ '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'feature' } }) };
  }
  if (status === 409) return { headers: json, body: wrap({ '.tag': 'other' }) };
  if (status === 429) {
    const retryAfter = action?.kind === 'status' ? (action.retryAfterSeconds ?? 1) : 1;
    const error = { reason: { '.tag': 'too_many_requests' }, retry_after: retryAfter };
    return { headers: { ...json, 'retry-after': String(retryAfter) }, body: { error_summary: errorSummary(error), error } };
  }
  const text = { 'content-type': 'text/plain; charset=utf-8' };
  if (status === 400) return { headers: text, body: `Error in call to API function "${routeName}": ${message}` };
  return { headers: text, body: message };
}
