// The Dropbox API v2 routes a backup provider uses (files/*, users/get_space_usage, users/get_current_account),
// each turning validated arguments into the result or the route error Dropbox documents in its Stone specs.
import type { FaultAction } from '../common/faults.ts';
import {
  asObject,
  optionalBoolean,
  optionalString,
  optionalTimestamp,
  optionalUint,
  PATH_R_OR_ID,
  READ_PATH,
  requiredObject,
  requiredString,
  requiredUint,
  unionTag,
  WRITE_PATH,
  WRITE_PATH_OR_ID,
  writeMode,
  BadInputError,
} from './args.ts';
import type { Args } from './args.ts';
import { dropboxContentHash } from './content-hash.ts';
import type { ListCursors } from './cursors.ts';
import { accessError, headerSafeJson, jsonReply, routeError, badInput } from './replies.ts';
import type { DropboxReply, Tagged } from './replies.ts';
import { appendToSession, assembleForFinish } from './sessions.ts';
import type { UploadSession, UploadSessions } from './sessions.ts';
import { lowerOf, parsePath } from './store.ts';
import type { DropboxStore, Entry } from './store.ts';

/** "A single request should not upload more than 150 MiB." */
export const MAX_REQUEST_PAYLOAD_BYTES = 150 * 1024 * 1024;
export const MAX_LIST_LIMIT = 2000;

export interface DropboxAccount {
  account_id: string;
  uid: string;
  email: string;
  given_name: string;
  surname: string;
}

export interface DropboxServiceState {
  readonly store: DropboxStore;
  readonly sessions: UploadSessions;
  readonly cursors: ListCursors;
  readonly account: DropboxAccount;
  quotaBytes: number;
  /** Upper bound on entries per list_folder page, below the caller's `limit` when smaller. */
  listLimit: number;
}

export interface RouteCall {
  route: string;
  /** Where the arguments came from, for 400 messages: 'request body' or 'HTTP header "Dropbox-API-Arg"'. */
  where: string;
  arg: unknown;
  /** Upload routes: the file data. */
  body: Buffer;
  /** Download routes: the Range request header, if any. */
  range: string | undefined;
  fault: FaultAction | undefined;
  note(text: string): void;
}

export type RouteStyle = 'rpc' | 'upload' | 'download';

export interface RouteDef {
  host: 'api' | 'content';
  style: RouteStyle;
  /** Void-argument routes accept an empty body or `null`. */
  voidArg?: boolean;
  handle(state: DropboxServiceState, call: RouteCall): DropboxReply;
}

const ok = (value: unknown): DropboxReply => jsonReply(200, value);

function notFound(): Tagged {
  return { '.tag': 'not_found' };
}

type Resolved = { entry: Entry } | { root: true } | { error: Tagged };

/** Looks up a ReadPath / PathROrId / WritePathOrId value; errors are LookupError values. */
function resolve(store: DropboxStore, raw: string): Resolved {
  if (raw.startsWith('id:')) {
    const entry = store.findById(raw);
    return entry ? { entry } : { error: notFound() };
  }
  if (raw.startsWith('rev:')) {
    const entry = store.findByRev(raw.slice(4));
    return entry ? { entry } : { error: notFound() };
  }
  // Namespace-relative paths (ns:123/...) address shared/team namespaces, which a personal fake account lacks.
  if (raw.startsWith('ns:')) return { error: notFound() };
  const parsed = parsePath(raw);
  if (parsed.kind === 'root') return { root: true };
  if (parsed.kind === 'malformed') return { error: { '.tag': 'malformed_path' } };
  const entry = store.get(lowerOf(parsed.components));
  return entry ? { entry } : { error: notFound() };
}

/** Components of a write target; ids resolve to the entry's current path. Errors are WriteError values. */
function writeTarget(store: DropboxStore, raw: string): { components: string[] } | { error: Tagged } {
  if (raw.startsWith('id:')) {
    const entry = store.findById(raw);
    if (!entry) return { error: { '.tag': 'malformed_path' } };
    return { components: entry.record.path_display.slice(1).split('/') };
  }
  if (raw.startsWith('ns:')) return { error: { '.tag': 'malformed_path' } };
  const parsed = parsePath(raw);
  if (parsed.kind !== 'components') return { error: { '.tag': 'malformed_path' } };
  return { components: parsed.components };
}

function checkContentHash(args: Args, where: string, data: Buffer): boolean {
  const expected = optionalString(where, args, 'content_hash');
  if (expected === undefined) return true;
  if (expected.length !== 64) throw new BadInputError(`${where}: content_hash: '${expected}' must be 64 characters`);
  return expected.toLowerCase() === dropboxContentHash(data);
}

interface CommitArgs {
  path: string;
  mode: ReturnType<typeof writeMode>;
  autorename: boolean;
  strictConflict: boolean;
  clientModified: string | undefined;
}

function readCommit(where: string, args: Args): CommitArgs {
  const path = requiredString(where, args, 'path', WRITE_PATH_OR_ID);
  const mode = writeMode(where, args);
  const autorename = optionalBoolean(where, args, 'autorename', false);
  optionalBoolean(where, args, 'mute', false); // notifications do not exist in the fake
  const strictConflict = optionalBoolean(where, args, 'strict_conflict', false);
  const clientModified = optionalTimestamp(where, args, 'client_modified');
  return { path, mode, autorename, strictConflict, clientModified };
}

/** Stores `content` at the commit target; returns the file entry or a WriteError. */
function commitFile(state: DropboxServiceState, call: RouteCall, commit: CommitArgs, content: Buffer): { entry: Entry } | { error: Tagged } {
  if (call.fault?.kind === 'quota-full') {
    call.note('quota-full fault: insufficient_space');
    return { error: { '.tag': 'insufficient_space' } };
  }
  const target = writeTarget(state.store, commit.path);
  if ('error' in target) return target;
  const outcome = state.store.writeFile(target.components, content, {
    mode: commit.mode,
    autorename: commit.autorename,
    strictConflict: commit.strictConflict,
    clientModified: commit.clientModified,
    quotaBytes: state.quotaBytes,
  });
  return 'ok' in outcome ? { entry: outcome.ok } : outcome;
}

function upload(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const commit = readCommit(call.where, args);
  if (call.body.byteLength > MAX_REQUEST_PAYLOAD_BYTES) return routeError({ '.tag': 'payload_too_large' });
  if (!checkContentHash(args, call.where, call.body)) return routeError({ '.tag': 'content_hash_mismatch' });
  const result = commitFile(state, call, commit, call.body);
  if ('error' in result) {
    // UploadWriteFailed: the data is kept in a session so the commit can be retried with upload_session/finish.
    const session = state.sessions.start(false);
    appendToSession(session, 0, call.body, false);
    return routeError({ '.tag': 'path', reason: result.error, upload_session_id: session.id });
  }
  return ok(state.store.metadata(result.entry, false));
}

function uploadSessionStart(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg ?? {});
  const close = optionalBoolean(call.where, args, 'close', false);
  const rawType = args['session_type'];
  const concurrent = rawType !== undefined && rawType !== null && unionTag(call.where, 'session_type', rawType).tag === 'concurrent';
  if (call.body.byteLength > MAX_REQUEST_PAYLOAD_BYTES) return routeError({ '.tag': 'payload_too_large' });
  if (!checkContentHash(args, call.where, call.body)) return routeError({ '.tag': 'content_hash_mismatch' });
  if (concurrent && call.body.byteLength > 0) return routeError({ '.tag': 'concurrent_session_data_not_allowed' });
  if (concurrent && close) return routeError({ '.tag': 'concurrent_session_close_not_allowed' });
  const session = state.sessions.start(concurrent);
  if (!concurrent) appendToSession(session, 0, call.body, close);
  call.note(`session started with ${call.body.byteLength} bytes`);
  return ok({ session_id: session.id });
}

interface CursorArgs {
  sessionId: string;
  offset: number;
}

function readCursor(where: string, args: Args): CursorArgs {
  return { sessionId: requiredString(where, args, 'session_id'), offset: requiredUint(where, args, 'offset') };
}

function liveSession(state: DropboxServiceState, call: RouteCall, sessionId: string): UploadSession | undefined {
  if (call.fault?.kind === 'expire-upload-session') {
    call.note('expire-upload-session fault: session dropped');
    state.sessions.expire(sessionId);
  }
  return state.sessions.lookup(sessionId);
}

function appendCommon(state: DropboxServiceState, call: RouteCall, args: Args, cursor: CursorArgs, close: boolean): DropboxReply {
  const session = liveSession(state, call, cursor.sessionId);
  if (!session) return routeError(notFound());
  if (call.body.byteLength > MAX_REQUEST_PAYLOAD_BYTES) return routeError({ '.tag': 'payload_too_large' });
  if (!checkContentHash(args, call.where, call.body)) return routeError({ '.tag': 'content_hash_mismatch' });
  const refused = appendToSession(session, cursor.offset, call.body, close);
  if (refused) {
    call.note(`append refused: ${refused['.tag']}`);
    return routeError(refused);
  }
  return ok(null);
}

function uploadSessionAppendV2(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const cursor = readCursor(`${call.where}: cursor`, requiredObject(call.where, args, 'cursor'));
  const close = optionalBoolean(call.where, args, 'close', false);
  return appendCommon(state, call, args, cursor, close);
}

/** The deprecated v1 append: the argument is the cursor itself and it never closes the session. */
function uploadSessionAppendV1(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  return appendCommon(state, call, {}, readCursor(call.where, args), false);
}

function uploadSessionFinish(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const cursor = readCursor(`${call.where}: cursor`, requiredObject(call.where, args, 'cursor'));
  const commit = readCommit(`${call.where}: commit`, requiredObject(call.where, args, 'commit'));
  const session = liveSession(state, call, cursor.sessionId);
  if (!session) return routeError({ '.tag': 'lookup_failed', lookup_failed: notFound() });
  if (call.body.byteLength > MAX_REQUEST_PAYLOAD_BYTES) return routeError({ '.tag': 'payload_too_large' });
  if (!checkContentHash(args, call.where, call.body)) return routeError({ '.tag': 'content_hash_mismatch' });
  const assembled = assembleForFinish(session, cursor.offset, call.body);
  if ('error' in assembled) {
    call.note(`finish refused: ${JSON.stringify(assembled.error)}`);
    return routeError(assembled.error);
  }
  // From here on the call's data belongs to the session: a failed commit can be retried with an empty body.
  const result = commitFile(state, call, commit, assembled.content);
  if ('error' in result) return routeError({ '.tag': 'path', path: result.error });
  session.committed = true;
  session.chunks = [];
  session.pieces.clear();
  return ok(state.store.metadata(result.entry, false));
}

function download(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const path = requiredString(call.where, args, 'path', READ_PATH);
  const rev = optionalString(call.where, args, 'rev');
  const found = resolve(state.store, rev !== undefined ? `rev:${rev}` : path);
  if ('root' in found) return routeError({ '.tag': 'path', path: { '.tag': 'not_file' } });
  if ('error' in found) return routeError({ '.tag': 'path', path: found.error });
  if (found.entry.kind !== 'file') return routeError({ '.tag': 'path', path: { '.tag': 'not_file' } });
  const content = found.entry.record.content;
  const headers = {
    'content-type': 'application/octet-stream',
    'dropbox-api-result': headerSafeJson(state.store.metadata(found.entry, false)),
    'accept-ranges': 'bytes',
    etag: `W/"${found.entry.record.rev}"`,
  };
  const range = parseRange(call.range, content.byteLength);
  if (range === 'unsatisfiable') {
    call.note('range not satisfiable');
    return { status: 416, headers: { 'content-range': `bytes */${content.byteLength}` }, body: Buffer.alloc(0) };
  }
  if (range === undefined) return { status: 200, headers, body: content };
  return {
    status: 206,
    headers: { ...headers, 'content-range': `bytes ${range.start}-${range.end}/${content.byteLength}` },
    body: content.subarray(range.start, range.end + 1),
  };
}

/**
 * A single `bytes=` range per RFC 9110: `a-b`, `a-` or `-n`. Multiple or malformed ranges are ignored (full 200);
 * a range starting at or beyond the end, or a zero-length suffix, is unsatisfiable (416).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  if (end < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}

function getMetadata(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const path = requiredString(call.where, args, 'path', READ_PATH);
  const includeDeleted = optionalBoolean(call.where, args, 'include_deleted', false);
  optionalBoolean(call.where, args, 'include_media_info', false);
  optionalBoolean(call.where, args, 'include_has_explicit_shared_members', false);
  const found = resolve(state.store, path);
  if ('root' in found) return badInput(call.route, `${call.where}: path: The root folder is unsupported.`);
  if ('error' in found) {
    const parsed = parsePath(path);
    if (includeDeleted && found.error['.tag'] === 'not_found' && parsed.kind === 'components') {
      const deleted = state.store.deletedMetadata(lowerOf(parsed.components));
      if (deleted) return ok(deleted);
    }
    return routeError({ '.tag': 'path', path: found.error });
  }
  return ok(state.store.metadata(found.entry, true));
}

function listFolder(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const path = requiredString(call.where, args, 'path', PATH_R_OR_ID);
  if (path === '/') {
    return badInput(call.route, `${call.where}: path: Specify the root folder as an empty string rather than as "/".`);
  }
  const recursive = optionalBoolean(call.where, args, 'recursive', false);
  const limit = optionalUint(call.where, args, 'limit', 1, MAX_LIST_LIMIT);
  optionalBoolean(call.where, args, 'include_deleted', false);
  optionalBoolean(call.where, args, 'include_media_info', false);
  optionalBoolean(call.where, args, 'include_has_explicit_shared_members', false);
  optionalBoolean(call.where, args, 'include_mounted_folders', true);
  optionalBoolean(call.where, args, 'include_non_downloadable_files', true);
  const found = resolve(state.store, path);
  let scope: string;
  if ('root' in found) scope = '';
  else if ('error' in found) return routeError({ '.tag': 'path', path: found.error });
  else if (found.entry.kind !== 'folder') return routeError({ '.tag': 'path', path: { '.tag': 'not_folder' } });
  else scope = found.entry.lower;
  const pageSize = Math.max(1, Math.min(limit ?? MAX_LIST_LIMIT, state.listLimit));
  const page = state.cursors.page({
    scope,
    recursive,
    pageSize,
    baseSeq: state.store.changeSeq,
    pending: state.store.list(scope, recursive),
  });
  call.note(`listed ${page.entries.length} entries, has_more=${page.has_more}`);
  return ok(page);
}

function listFolderContinue(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const cursor = requiredString(call.where, args, 'cursor');
  if (cursor === '') throw new BadInputError(`${call.where}: cursor: '' has fewer than 1 character(s)`);
  const current = state.cursors.get(cursor);
  if (!current) return routeError({ '.tag': 'reset' });
  if (current.pending.length > 0) return ok(state.cursors.page(current));
  const baseSeq = state.store.changeSeq;
  const changes = state.store.changesSince(current.scope, current.recursive, current.baseSeq);
  return ok(state.cursors.page({ ...current, baseSeq, pending: changes }));
}

function deleteV2(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const path = requiredString(call.where, args, 'path', WRITE_PATH_OR_ID);
  const parentRev = optionalString(call.where, args, 'parent_rev');
  const found = resolve(state.store, path);
  if ('root' in found) return routeError({ '.tag': 'path_lookup', path_lookup: { '.tag': 'malformed_path' } });
  if ('error' in found) return routeError({ '.tag': 'path_lookup', path_lookup: found.error });
  if (parentRev !== undefined && (found.entry.kind !== 'file' || found.entry.record.rev !== parentRev)) {
    return routeError({ '.tag': 'path_write', path_write: { '.tag': 'conflict', conflict: { '.tag': found.entry.kind } } });
  }
  const metadata = state.store.metadata(found.entry, true);
  state.store.remove(found.entry);
  return ok({ metadata });
}

/**
 * permanently_delete "is only available for Dropbox Business apps"; the fake is a personal (individual) account,
 * so it answers with the AccessError for an endpoint the account type cannot use.
 */
function permanentlyDelete(_state: DropboxServiceState, call: RouteCall): DropboxReply {
  requiredString(call.where, asObject(call.where, call.arg), 'path', WRITE_PATH_OR_ID);
  return accessError({ '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'endpoint' } });
}

function createFolderV2(state: DropboxServiceState, call: RouteCall): DropboxReply {
  const args = asObject(call.where, call.arg);
  const path = requiredString(call.where, args, 'path', WRITE_PATH);
  const autorename = optionalBoolean(call.where, args, 'autorename', false);
  if (call.fault?.kind === 'quota-full') {
    call.note('quota-full fault: insufficient_space');
    return routeError({ '.tag': 'path', path: { '.tag': 'insufficient_space' } });
  }
  const target = writeTarget(state.store, path);
  if ('error' in target) return routeError({ '.tag': 'path', path: target.error });
  const outcome = state.store.createFolder(target.components, autorename);
  if ('error' in outcome) return routeError({ '.tag': 'path', path: outcome.error });
  return ok({ metadata: state.store.metadata(outcome.ok, false) });
}

function getSpaceUsage(state: DropboxServiceState): DropboxReply {
  return ok({ used: state.store.usedBytes(), allocation: { '.tag': 'individual', allocated: state.quotaBytes } });
}

function getCurrentAccount(state: DropboxServiceState): DropboxReply {
  const { account } = state;
  const display = `${account.given_name} ${account.surname}`;
  return ok({
    account_id: account.account_id,
    name: {
      given_name: account.given_name,
      surname: account.surname,
      familiar_name: account.given_name,
      display_name: display,
      abbreviated_name: `${account.given_name[0] ?? ''}${account.surname[0] ?? ''}`,
    },
    email: account.email,
    email_verified: true,
    disabled: false,
    country: 'US',
    locale: 'en',
    referral_link: 'https://db.tt/fake',
    is_paired: false,
    account_type: { '.tag': 'basic' },
    root_info: { '.tag': 'user', root_namespace_id: '3235641', home_namespace_id: '3235641' },
  });
}

export const ROUTES: ReadonlyMap<string, RouteDef> = new Map<string, RouteDef>([
  ['files/upload', { host: 'content', style: 'upload', handle: upload }],
  ['files/upload_session/start', { host: 'content', style: 'upload', handle: uploadSessionStart }],
  ['files/upload_session/append_v2', { host: 'content', style: 'upload', handle: uploadSessionAppendV2 }],
  ['files/upload_session/append', { host: 'content', style: 'upload', handle: uploadSessionAppendV1 }],
  ['files/upload_session/finish', { host: 'content', style: 'upload', handle: uploadSessionFinish }],
  ['files/download', { host: 'content', style: 'download', handle: download }],
  ['files/get_metadata', { host: 'api', style: 'rpc', handle: getMetadata }],
  ['files/list_folder', { host: 'api', style: 'rpc', handle: listFolder }],
  ['files/list_folder/continue', { host: 'api', style: 'rpc', handle: listFolderContinue }],
  ['files/delete_v2', { host: 'api', style: 'rpc', handle: deleteV2 }],
  ['files/permanently_delete', { host: 'api', style: 'rpc', handle: permanentlyDelete }],
  ['files/create_folder_v2', { host: 'api', style: 'rpc', handle: createFolderV2 }],
  ['users/get_space_usage', { host: 'api', style: 'rpc', voidArg: true, handle: getSpaceUsage }],
  ['users/get_current_account', { host: 'api', style: 'rpc', voidArg: true, handle: getCurrentAccount }],
]);
