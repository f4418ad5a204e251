// The Google Drive v3 fake: an in-memory My Drive served over loopback HTTP in Drive's own wire format, so the
// real @googleapis/drive client and google-auth-library can run against it (files, resumable uploads, ranged
// downloads, trash, quota, OAuth token and consent endpoints), with the common fault injection on every route.

import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FaultAction } from '../common/faults.ts';
import { resetSocket, startHttpFake } from '../common/server.ts';
import type { FakeRequestContext, FakeServerBase } from '../common/server.ts';
import { TokenAuthority } from '../common/tokens.ts';
import {
  badRequest,
  driveError,
  errorForStatus,
  fileNotFound,
  invalidCredentials,
  invalidParameter,
  missingCredentials,
  rangeNotSatisfiable,
  requiredParameter,
  storageQuotaExceeded,
  uploadSessionNotFound,
} from './errors.ts';
import type { DriveErrorReply } from './errors.ts';
import {
  ABOUT_SCHEMA,
  DEFAULT_FILE_FIELDS,
  DEFAULT_LIST_FIELDS,
  FILE_LIST_SCHEMA,
  FILE_SCHEMA,
  FieldsError,
  GENERATED_IDS_SCHEMA,
  parseFields,
  project,
  validateFields,
} from './fields.ts';
import type { FieldSchema } from './fields.ts';
import { MultipartError, multipartBoundary, parseMultipart } from './multipart.ts';
import { QueryError, compileQuery } from './query.ts';

export const FOLDER_MIME_TYPE = 'application/vnd.google-apps.folder';
const DEFAULT_QUOTA_BYTES = 15 * 1024 ** 3; // a free Google account
const DEFAULT_SCOPE = 'https://www.googleapis.com/auth/drive';
const WEEK_SECONDS = 7 * 24 * 3600;

export interface GdriveFakeOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Storage limit in bytes; null = unlimited (about.get then omits `limit`). Default 15 GiB. */
  quotaBytes?: number | null;
  /** Caps every files.list page (the service may return fewer than pageSize), to exercise pagination. */
  pageSizeMax?: number;
  /** Non-final resumable chunks must be multiples of this; default 256 KiB, as Drive requires. */
  resumableChunkGranularity?: number;
  /** Access-token lifetime; default 3600. */
  tokenTtlSeconds?: number;
  /** Resumable session lifetime; default one week, as Drive documents. */
  uploadSessionTtlSeconds?: number;
  /** Milliseconds since the epoch; default Date.now. Drives token, session and timestamp behaviour. */
  now?: () => number;
}

/** A file or folder as the fake stores it; tests may read it freely. */
export interface GdriveFile {
  readonly id: string;
  name: string;
  parents: string[];
  mimeType: string;
  /** Byte length of `content` (0 for folders, which have no size in the API). */
  size: number;
  /** Hex digests of `content`; undefined for folders. */
  md5Checksum: string | undefined;
  sha1Checksum: string | undefined;
  sha256Checksum: string | undefined;
  trashed: boolean;
  /** True when this item itself was trashed, false when it is trashed because an ancestor folder was. */
  explicitlyTrashed: boolean;
  trashedTime: string | undefined;
  content: Buffer;
  description: string | undefined;
  appProperties: Record<string, string>;
  properties: Record<string, string>;
  starred: boolean;
  createdTime: string;
  modifiedTime: string;
  version: number;
}

export interface CreateFileDirectOptions {
  name: string;
  /** Parent folder id ('root' allowed); default the My Drive root. */
  parents?: string[];
  mimeType?: string;
  content?: Buffer | string;
  trashed?: boolean;
  id?: string;
  appProperties?: Record<string, string>;
}

export interface UploadSessionInfo {
  id: string;
  /** Contiguous bytes persisted so far. */
  received: number;
  /** Total declared by X-Upload-Content-Length or a Content-Range, if known yet. */
  total: number | undefined;
  /** Set once the final chunk created the file. */
  fileId: string | undefined;
}

export interface GdriveFake extends FakeServerBase {
  readonly server: Server;
  readonly tokens: TokenAuthority;
  /** Every file and folder except the My Drive root, trashed ones included, keyed by id. */
  readonly files: ReadonlyMap<string, GdriveFile>;
  /** The id 'root' stands for. */
  readonly rootId: string;
  /** Bytes held by trashed files (they still count against the quota). */
  trashBytes(): number;
  /** Bytes counted against the quota (trash included). */
  usedBytes(): number;
  setQuota(bytes: number | null): void;
  /** Adds a file without going through HTTP, e.g. to set up duplicate names. */
  createFileDirect(opts: CreateFileDirectOptions): GdriveFile;
  uploadSessions(): UploadSessionInfo[];
}

interface UploadSession {
  id: string;
  metadata: Record<string, unknown>;
  fields: string | undefined;
  declaredType: string | undefined;
  total: number | undefined;
  chunks: Buffer[];
  received: number;
  expiresAt: number;
  file: GdriveFile | undefined;
}

interface PageCursor {
  signature: string;
  ids: string[];
  offset: number;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  raw?: Buffer;
  note?: string;
}

export async function startGdriveFake(options: GdriveFakeOptions = {}): Promise<GdriveFake> {
  const now = options.now ?? Date.now;
  const granularity = options.resumableChunkGranularity ?? 256 * 1024;
  const sessionTtlMs = (options.uploadSessionTtlSeconds ?? WEEK_SECONDS) * 1000;
  const tokens = new TokenAuthority({ accessTtlSeconds: options.tokenTtlSeconds ?? 3600, now });
  let quotaBytes = options.quotaBytes === undefined ? DEFAULT_QUOTA_BYTES : options.quotaBytes;

  const files = new Map<string, GdriveFile>();
  const sessions = new Map<string, UploadSession>();
  const cursors = new Map<string, PageCursor>();
  const codeScopes = new Map<string, string>();
  const refreshScopes = new Map<string, string>();
  const isoNow = (): string => new Date(now()).toISOString();
  const root: GdriveFile = newRecord({ id: newFileId(), name: 'My Drive', parents: [], mimeType: FOLDER_MIME_TYPE });
  let baseUrl = '';

  function newRecord(init: { id: string; name: string; parents: string[]; mimeType: string; content?: Buffer }): GdriveFile {
    const folder = init.mimeType === FOLDER_MIME_TYPE;
    const content = init.content ?? Buffer.alloc(0);
    const time = isoNow();
    return {
      id: init.id,
      name: init.name,
      parents: init.parents,
      mimeType: init.mimeType,
      size: content.length,
      md5Checksum: folder ? undefined : digest('md5', content),
      sha1Checksum: folder ? undefined : digest('sha1', content),
      sha256Checksum: folder ? undefined : digest('sha256', content),
      trashed: false,
      explicitlyTrashed: false,
      trashedTime: undefined,
      content,
      description: undefined,
      appProperties: {},
      properties: {},
      starred: false,
      createdTime: time,
      modifiedTime: time,
      version: 1,
    };
  }

  const resolveId = (id: string): string => (id === 'root' ? root.id : id);
  const lookup = (id: string): GdriveFile | undefined => {
    const real = resolveId(id);
    return real === root.id ? root : files.get(real);
  };
  const usedBytes = (): number => {
    let sum = 0;
    for (const f of files.values()) sum += f.size;
    return sum;
  };
  const trashBytes = (): number => {
    let sum = 0;
    for (const f of files.values()) if (f.trashed) sum += f.size;
    return sum;
  };
  const wouldExceedQuota = (extraBytes: number): boolean => quotaBytes !== null && usedBytes() + extraBytes > quotaBytes;
  const descendants = (folderId: string): GdriveFile[] => {
    const out: GdriveFile[] = [];
    const queue = [folderId];
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      for (const f of files.values()) {
        if (f.parents.includes(id)) {
          out.push(f);
          if (f.mimeType === FOLDER_MIME_TYPE) queue.push(f.id);
        }
      }
    }
    return out;
  };

  /** Validates parents and metadata, then stores a new file. Returns an error reply instead when Drive would refuse. */
  function createFile(metadata: Record<string, unknown>, content: Buffer | undefined, mediaType: string | undefined): GdriveFile | DriveErrorReply {
    const parentsRaw = metadata['parents'];
    let parents: string[] = [root.id];
    if (parentsRaw !== undefined && parentsRaw !== null) {
      if (!Array.isArray(parentsRaw) || !parentsRaw.every((p) => typeof p === 'string')) {
        return invalidParameter('parents', "Invalid value for field 'parents'.");
      }
      if (parentsRaw.length > 1) {
        return driveError(403, {
          domain: 'global',
          reason: 'cannotAddParent',
          message: 'A shared drive item must have exactly one parent.',
        });
      }
      if (parentsRaw.length === 1) {
        const parent = lookup(parentsRaw[0] as string);
        if (parent === undefined) return fileNotFound(parentsRaw[0] as string, 'parents');
        if (parent.mimeType !== FOLDER_MIME_TYPE) {
          return badRequest('The specified parent is not a folder.');
        }
        parents = [parent.id];
      }
    }
    let id = newFileId();
    if (typeof metadata['id'] === 'string') {
      id = metadata['id'];
      if (files.has(id) || id === root.id) {
        return driveError(409, { domain: 'global', reason: 'duplicate', message: 'A file already exists with the provided ID.' });
      }
    }
    const mimeType =
      typeof metadata['mimeType'] === 'string' ? metadata['mimeType'] : (mediaType ?? 'application/octet-stream');
    if (mimeType === FOLDER_MIME_TYPE && content !== undefined && content.length > 0) {
      return badRequest('A folder cannot have content.');
    }
    const name = typeof metadata['name'] === 'string' ? metadata['name'] : 'Untitled';
    const size = content?.length ?? 0;
    if (size > 0 && wouldExceedQuota(size)) return storageQuotaExceeded();
    const file = newRecord({ id, name, parents, mimeType, ...(content === undefined ? {} : { content }) });
    applyMetadata(file, metadata);
    files.set(file.id, file);
    return file;
  }

  function applyMetadata(file: GdriveFile, metadata: Record<string, unknown>): void {
    if (typeof metadata['description'] === 'string') file.description = metadata['description'];
    if (typeof metadata['starred'] === 'boolean') file.starred = metadata['starred'];
    for (const key of ['appProperties', 'properties'] as const) {
      const value = metadata[key];
      if (typeof value !== 'object' || value === null) continue;
      for (const [k, v] of Object.entries(value)) {
        if (v === null) delete file[key][k];
        else file[key][k] = String(v);
      }
    }
  }

  function setTrashed(file: GdriveFile, trashed: boolean): void {
    if (file.trashed === trashed && file.explicitlyTrashed === trashed) return;
    const time = trashed ? isoNow() : undefined;
    file.trashed = trashed;
    file.explicitlyTrashed = trashed;
    file.trashedTime = time;
    if (file.mimeType !== FOLDER_MIME_TYPE) return;
    for (const child of descendants(file.id)) {
      if (trashed && !child.trashed) {
        child.trashed = true;
        child.trashedTime = time;
      } else if (!trashed && !child.explicitlyTrashed) {
        child.trashed = false;
        child.trashedTime = undefined;
      }
    }
  }

  function deletePermanently(file: GdriveFile): void {
    if (file.mimeType === FOLDER_MIME_TYPE) for (const child of descendants(file.id)) files.delete(child.id);
    files.delete(file.id);
  }

  function fileJson(file: GdriveFile): Record<string, unknown> {
    const folder = file.mimeType === FOLDER_MIME_TYPE;
    const dot = file.name.lastIndexOf('.');
    return {
      kind: 'drive#file',
      id: file.id,
      name: file.name,
      mimeType: file.mimeType,
      description: file.description,
      starred: file.starred,
      trashed: file.trashed,
      explicitlyTrashed: file.explicitlyTrashed,
      trashedTime: file.trashedTime,
      parents: file.id === root.id ? undefined : [...file.parents],
      properties: Object.keys(file.properties).length > 0 ? { ...file.properties } : undefined,
      appProperties: Object.keys(file.appProperties).length > 0 ? { ...file.appProperties } : undefined,
      spaces: ['drive'],
      version: String(file.version),
      webViewLink: `${baseUrl}/fake-web/${folder ? 'folders' : 'file/d'}/${file.id}`,
      createdTime: file.createdTime,
      modifiedTime: file.modifiedTime,
      ownedByMe: true,
      originalFilename: folder ? undefined : file.name,
      fullFileExtension: folder || dot <= 0 ? undefined : file.name.slice(dot + 1),
      fileExtension: folder || dot <= 0 ? undefined : file.name.slice(dot + 1),
      md5Checksum: file.md5Checksum,
      sha1Checksum: file.sha1Checksum,
      sha256Checksum: file.sha256Checksum,
      size: folder ? undefined : String(file.size),
      quotaBytesUsed: String(folder ? 0 : file.size),
      headRevisionId: folder ? undefined : `rev-${file.id.slice(0, 8)}-${file.version}`,
    };
  }

  /** Applies `fields` (or Drive's default selection) and validates it against the schema. */
  function selectFields(value: unknown, fields: string | null | undefined, defaults: string, schema: FieldSchema): Reply {
    try {
      const selection = parseFields(fields === null || fields === undefined || fields === '' ? defaults : fields);
      validateFields(selection, schema);
      return { status: 200, json: project(value, selection) };
    } catch (error) {
      if (error instanceof FieldsError) return fromError(invalidParameter('fields', error.message));
      throw error;
    }
  }

  // ---- OAuth endpoints -------------------------------------------------------------------------------------

  function tokenEndpoint(req: IncomingMessage, body: Buffer): Reply {
    const params = parseForm(req, body);
    const basic = basicClient(req.headers.authorization);
    const clientId = params.get('client_id') ?? basic;
    const grant = params.get('grant_type');
    const oauthError = (status: number, error: string, description: string): Reply => ({
      status,
      headers: { 'cache-control': 'no-store' },
      json: { error, error_description: description },
      note: `token endpoint: ${error}`,
    });
    if (grant === 'refresh_token') {
      const refreshToken = params.get('refresh_token');
      if (refreshToken === null) return oauthError(400, 'invalid_request', 'Missing required parameter: refresh_token');
      const fresh = tokens.refresh(refreshToken);
      if (fresh === undefined) return oauthError(400, 'invalid_grant', 'Token has been expired or revoked.');
      return {
        status: 200,
        headers: { 'cache-control': 'no-store' },
        json: { ...fresh, scope: refreshScopes.get(refreshToken) ?? DEFAULT_SCOPE, token_type: 'Bearer' },
        note: 'token endpoint: refresh_token grant',
      };
    }
    if (grant === 'authorization_code') {
      const code = params.get('code');
      const redirectUri = params.get('redirect_uri');
      if (code === null || redirectUri === null) {
        return oauthError(400, 'invalid_request', 'Missing required parameter: code or redirect_uri');
      }
      if (clientId === null || clientId === undefined) return oauthError(401, 'invalid_client', 'The OAuth client was not found.');
      const verifier = params.get('code_verifier');
      const result = tokens.exchangeCode({
        code,
        redirectUri,
        clientId,
        ...(verifier === null ? {} : { codeVerifier: verifier }),
      });
      const scope = codeScopes.get(code) ?? DEFAULT_SCOPE;
      codeScopes.delete(code);
      if ('error' in result) {
        const status = result.error === 'invalid_client' ? 401 : 400;
        const description =
          result.error === 'invalid_request' ? 'Missing code verifier.' : 'Malformed auth code, or code verifier/redirect_uri mismatch.';
        return oauthError(status, result.error, description);
      }
      refreshScopes.set(result.refresh_token, scope);
      return {
        status: 200,
        headers: { 'cache-control': 'no-store' },
        json: { ...result, scope, token_type: 'Bearer' },
        note: 'token endpoint: authorization_code grant',
      };
    }
    return oauthError(400, 'unsupported_grant_type', `Invalid grant_type: ${grant ?? ''}`);
  }

  /** The consent screen, already consented: redirects straight back to the loopback redirect_uri with a code. */
  function authEndpoint(url: URL): Reply {
    const q = url.searchParams;
    const page = (message: string): Reply => ({
      status: 400,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      raw: Buffer.from(`Error 400: ${message}\n`),
      note: `auth endpoint: ${message}`,
    });
    const clientId = q.get('client_id');
    const redirectUri = q.get('redirect_uri');
    if (clientId === null || clientId === '') return page('invalid_request (missing client_id)');
    if (redirectUri === null || !isLoopbackRedirect(redirectUri)) return page('redirect_uri_mismatch');
    if (q.get('response_type') !== 'code') return page('unsupported_response_type');
    const challenge = q.get('code_challenge');
    const method = q.get('code_challenge_method') ?? (challenge === null ? null : 'plain');
    if (method !== null && method !== 'S256' && method !== 'plain') return page('invalid_request (code_challenge_method)');
    const code = tokens.createAuthCode({
      clientId,
      redirectUri,
      ...(challenge === null ? {} : { codeChallenge: challenge }),
      ...(method === 'S256' || method === 'plain' ? { codeChallengeMethod: method } : {}),
    });
    const scope = q.get('scope') ?? DEFAULT_SCOPE;
    codeScopes.set(code, scope);
    const target = new URL(redirectUri);
    const state = q.get('state');
    if (state !== null) target.searchParams.set('state', state);
    target.searchParams.set('code', code);
    target.searchParams.set('scope', scope);
    return { status: 302, headers: { location: target.toString() }, raw: Buffer.alloc(0), note: 'auth endpoint: consent granted' };
  }

  // ---- Drive API ---------------------------------------------------------------------------------------------

  function route(req: IncomingMessage, ctx: FakeRequestContext): Reply {
    const method = (req.method ?? 'GET').toUpperCase();
    const { url, body } = ctx;
    const path = url.pathname;
    const q = url.searchParams;

    if (path === '/token' && method === 'POST') return tokenEndpoint(req, body);
    if (path === '/auth' && method === 'GET') return authEndpoint(url);

    const isApi = path.startsWith('/drive/v3/');
    const isUpload = path.startsWith('/upload/drive/v3/');
    if (!isApi && !isUpload) return fromError(driveError(404, { domain: 'global', reason: 'notFound', message: 'Not Found' }));

    // Credentials: the session URI of a resumable upload is itself the credential; elsewhere a bearer is required.
    const uploadId = q.get('upload_id');
    const token = bearerToken(req.headers.authorization) ?? q.get('access_token') ?? undefined;
    if (ctx.fault?.kind === 'expire-token') {
      if (token !== undefined) tokens.expire(token);
      return { ...fromError(invalidCredentials()), note: 'access token expired by fault' };
    }
    const sessionRequest = isUpload && uploadId !== null && method === 'PUT';
    if (token === undefined && !sessionRequest) return fromError(missingCredentials());
    if (token !== undefined && !tokens.isValid(token)) return fromError(invalidCredentials());

    if (ctx.fault?.kind === 'quota-full') return { ...fromError(storageQuotaExceeded()), note: 'quota-full fault' };
    if (ctx.fault?.kind === 'expire-upload-session') {
      if (uploadId !== null) sessions.delete(uploadId);
      return { ...fromError(uploadSessionNotFound()), note: 'upload session expired by fault' };
    }

    if (isUpload) {
      if (path === '/upload/drive/v3/files' && method === 'POST') return uploadCreate(req, ctx);
      if (path === '/upload/drive/v3/files' && method === 'PUT' && uploadId !== null) return uploadChunk(req, uploadId, body);
      return fromError(badRequest(`${method} ${path} is not implemented by the Drive fake (media updates are not supported).`));
    }

    if (path === '/drive/v3/about' && method === 'GET') return about(q);
    if (path === '/drive/v3/files' && method === 'GET') return listFiles(q);
    if (path === '/drive/v3/files' && method === 'POST') {
      const metadata = parseJsonObject(body);
      if (metadata === undefined) return fromError(badRequest('The request body is not a JSON object.'));
      const created = createFile(metadata, undefined, undefined);
      if ('status' in created) return fromError(created);
      return selectFields(fileJson(created), q.get('fields'), DEFAULT_FILE_FIELDS, FILE_SCHEMA);
    }
    if (path === '/drive/v3/files/generateIds' && method === 'GET') {
      const count = Number(q.get('count') ?? '10');
      if (!Number.isInteger(count) || count < 1 || count > 1000) return fromError(invalidParameter('count'));
      const ids = Array.from({ length: count }, () => newFileId());
      return selectFields({ kind: 'drive#generatedIds', space: 'drive', ids }, q.get('fields'), 'kind,space,ids', GENERATED_IDS_SCHEMA);
    }
    if (path === '/drive/v3/files/trash' && method === 'DELETE') {
      const trashed = [...files.values()].filter((f) => f.trashed);
      for (const f of trashed) if (files.has(f.id)) deletePermanently(f);
      return { status: 204, raw: Buffer.alloc(0), note: `emptied trash: ${trashed.length} item(s)` };
    }
    const match = /^\/drive\/v3\/files\/([^/]+)$/.exec(path);
    if (match !== null) {
      const fileId = decodeURIComponent(match[1] ?? '');
      const file = lookup(fileId);
      if (file === undefined) return fromError(fileNotFound(fileId));
      if (method === 'GET') return q.get('alt') === 'media' ? download(req, file) : selectFields(fileJson(file), q.get('fields'), DEFAULT_FILE_FIELDS, FILE_SCHEMA);
      if (method === 'DELETE') {
        if (file === root) return fromError(driveError(403, { domain: 'global', reason: 'insufficientFilePermissions', message: 'The user does not have sufficient permissions for this file.' }));
        deletePermanently(file);
        return { status: 204, raw: Buffer.alloc(0) };
      }
      if (method === 'PATCH') return updateFile(file, q, body);
    }
    return fromError(driveError(404, { domain: 'global', reason: 'notFound', message: 'Not Found' }));
  }

  function updateFile(file: GdriveFile, q: URLSearchParams, body: Buffer): Reply {
    const patch = body.length === 0 ? {} : parseJsonObject(body);
    if (patch === undefined) return fromError(badRequest('The request body is not a JSON object.'));
    if (file === root) return fromError(driveError(403, { domain: 'global', reason: 'insufficientFilePermissions', message: 'The user does not have sufficient permissions for this file.' }));
    const addParents = splitIds(q.get('addParents'));
    const removeParents = splitIds(q.get('removeParents'));
    for (const id of addParents) {
      const parent = lookup(id);
      if (parent === undefined) return fromError(fileNotFound(id, 'addParents'));
      if (parent.mimeType !== FOLDER_MIME_TYPE) return fromError(badRequest('The specified parent is not a folder.'));
    }
    const nextParents = [
      ...file.parents.filter((p) => !removeParents.map(resolveId).includes(p)),
      ...addParents.map(resolveId).filter((p) => !file.parents.includes(p)),
    ];
    if (nextParents.length > 1) {
      return fromError(driveError(403, { domain: 'global', reason: 'teamDrivesParentLimit', message: 'Increasing the number of parents is not allowed. A file can only have one parent folder.' }));
    }
    if (typeof patch['name'] === 'string') file.name = patch['name'];
    if (typeof patch['mimeType'] === 'string' && file.mimeType !== FOLDER_MIME_TYPE) file.mimeType = patch['mimeType'];
    applyMetadata(file, patch);
    file.parents = nextParents.length === 0 ? [root.id] : nextParents;
    if (typeof patch['trashed'] === 'boolean') setTrashed(file, patch['trashed']);
    file.modifiedTime = isoNow();
    file.version += 1;
    return selectFields(fileJson(file), q.get('fields'), DEFAULT_FILE_FIELDS, FILE_SCHEMA);
  }

  function about(q: URLSearchParams): Reply {
    const fields = q.get('fields');
    if (fields === null || fields === '') return fromError(requiredParameter('fields'));
    const used = String(usedBytes());
    const storageQuota: Record<string, string> = {};
    if (quotaBytes !== null) storageQuota['limit'] = String(quotaBytes);
    storageQuota['usage'] = used;
    storageQuota['usageInDrive'] = used;
    storageQuota['usageInDriveTrash'] = String(trashBytes());
    const value = {
      kind: 'drive#about',
      user: { kind: 'drive#user', displayName: 'Fake User', emailAddress: 'fake.user@example.com', me: true, permissionId: '00000000000000000000' },
      storageQuota,
      maxUploadSize: String(5120 * 1024 ** 3),
      appInstalled: false,
      canCreateDrives: false,
    };
    return selectFields(value, fields, '', ABOUT_SCHEMA);
  }

  function listFiles(q: URLSearchParams): Reply {
    const query = q.get('q') ?? '';
    const orderBy = q.get('orderBy') ?? '';
    const spaces = q.get('spaces') ?? 'drive';
    const signature = JSON.stringify([query, orderBy, spaces]);
    const pageSizeText = q.get('pageSize');
    let pageSize = Infinity;
    if (pageSizeText !== null) {
      pageSize = Number(pageSizeText);
      if (!Number.isInteger(pageSize) || pageSize < 1) return fromError(invalidParameter('pageSize'));
      pageSize = Math.min(pageSize, 1000);
    }
    pageSize = Math.min(pageSize, options.pageSizeMax ?? Infinity);

    let cursor: PageCursor;
    const pageToken = q.get('pageToken');
    if (pageToken !== null && pageToken !== '') {
      const found = cursors.get(pageToken);
      if (found === undefined || found.signature !== signature) return fromError(invalidParameter('pageToken'));
      cursor = found;
    } else {
      let matches: GdriveFile[];
      if (spaces.split(',').map((s) => s.trim()).includes('drive')) {
        let predicate;
        try {
          predicate = compileQuery(query, resolveId);
        } catch (error) {
          if (error instanceof QueryError) return { ...fromError(invalidParameter('q')), note: `q rejected: ${error.message}` };
          throw error;
        }
        matches = [...files.values()].filter(predicate);
      } else {
        matches = []; // appDataFolder and photos spaces hold nothing here
      }
      const sorted = sortFiles(matches, orderBy);
      if (sorted === undefined) return fromError(invalidParameter('orderBy', 'Invalid sort field.'));
      cursor = { signature, ids: sorted.map((f) => f.id), offset: 0 };
    }
    const pageIds = cursor.ids.slice(cursor.offset, cursor.offset + pageSize);
    const nextOffset = cursor.offset + pageIds.length;
    const page = pageIds.map((id) => files.get(id)).filter((f): f is GdriveFile => f !== undefined);
    let nextPageToken: string | undefined;
    if (nextOffset < cursor.ids.length) {
      nextPageToken = randomBytes(18).toString('base64url');
      cursors.set(nextPageToken, { signature, ids: cursor.ids, offset: nextOffset });
    }
    const value = { kind: 'drive#fileList', nextPageToken, incompleteSearch: false, files: page.map(fileJson) };
    return selectFields(value, q.get('fields'), DEFAULT_LIST_FIELDS, FILE_LIST_SCHEMA);
  }

  function download(req: IncomingMessage, file: GdriveFile): Reply {
    if (file.mimeType === FOLDER_MIME_TYPE || file.mimeType.startsWith('application/vnd.google-apps.')) {
      return fromError(driveError(403, {
        domain: 'global',
        reason: 'fileNotDownloadable',
        message: 'Only files with binary content can be downloaded. Use Export with Docs Editors files.',
        locationType: 'parameter',
        location: 'alt',
      }));
    }
    const size = file.content.length;
    const headers = { 'content-type': file.mimeType };
    const range = parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') return fromError(rangeNotSatisfiable(size));
    if (range === undefined) return { status: 200, headers, raw: file.content };
    const [start, end] = range;
    return {
      status: 206,
      headers: { ...headers, 'content-range': `bytes ${start}-${end}/${size}` },
      raw: file.content.subarray(start, end + 1),
      note: `range ${start}-${end}`,
    };
  }

  // ---- Uploads -----------------------------------------------------------------------------------------------

  function uploadCreate(req: IncomingMessage, ctx: FakeRequestContext): Reply {
    const q = ctx.url.searchParams;
    const uploadType = q.get('uploadType');
    const fields = q.get('fields');
    const finish = (created: GdriveFile | DriveErrorReply): Reply =>
      'status' in created ? fromError(created) : selectFields(fileJson(created), fields, DEFAULT_FILE_FIELDS, FILE_SCHEMA);

    if (uploadType === 'multipart') {
      const boundary = multipartBoundary(req.headers['content-type']);
      if (boundary === undefined) return fromError(badRequest('Multipart upload needs a multipart/related Content-Type with a boundary.'));
      let parts;
      try {
        parts = parseMultipart(ctx.body, boundary);
      } catch (error) {
        if (error instanceof MultipartError) return fromError(badRequest(`Malformed multipart body: ${error.message}`));
        throw error;
      }
      const [metaPart, mediaPart] = parts;
      if (metaPart === undefined || mediaPart === undefined || parts.length !== 2) {
        return fromError(badRequest('Multipart upload needs exactly a metadata part and a media part.'));
      }
      const metadata = metaPart.body.length === 0 ? {} : parseJsonObject(metaPart.body);
      if (metadata === undefined) return fromError(badRequest('The metadata part is not a JSON object.'));
      return { ...finish(createFile(metadata, Buffer.from(mediaPart.body), mediaPart.headers['content-type'])), note: `multipart ${mediaPart.body.length} bytes` };
    }
    if (uploadType === 'media') {
      return finish(createFile({}, ctx.body, req.headers['content-type']));
    }
    if (uploadType === 'resumable') {
      const metadata = ctx.body.length === 0 ? {} : parseJsonObject(ctx.body);
      if (metadata === undefined) return fromError(badRequest('The request body is not a JSON object.'));
      const declared = headerValue(req.headers['x-upload-content-length']);
      let total: number | undefined;
      if (declared !== undefined) {
        total = Number(declared);
        if (!Number.isSafeInteger(total) || total < 0) return fromError(badRequest('Invalid X-Upload-Content-Length.'));
        if (wouldExceedQuota(total)) return fromError(storageQuotaExceeded());
      }
      const parentCheck = validateParents(metadata);
      if (parentCheck !== undefined) return fromError(parentCheck);
      const id = randomBytes(27).toString('base64url');
      sessions.set(id, {
        id,
        metadata,
        fields: fields ?? undefined,
        declaredType: headerValue(req.headers['x-upload-content-type']),
        total,
        chunks: [],
        received: 0,
        expiresAt: now() + sessionTtlMs,
        file: undefined,
      });
      const location = new URL(`${baseUrl}/upload/drive/v3/files`);
      location.searchParams.set('uploadType', 'resumable');
      if (fields !== null) location.searchParams.set('fields', fields);
      location.searchParams.set('upload_id', id);
      return {
        status: 200,
        headers: { location: location.toString(), 'x-guploader-uploadid': id },
        raw: Buffer.alloc(0),
        note: `resumable session opened${total === undefined ? '' : ` for ${total} bytes`}`,
      };
    }
    return fromError(invalidParameter('uploadType', `Invalid value for uploadType: ${uploadType ?? '(missing)'}`));
  }

  function validateParents(metadata: Record<string, unknown>): DriveErrorReply | undefined {
    const parents = metadata['parents'];
    if (!Array.isArray(parents)) return undefined;
    for (const p of parents) {
      if (typeof p !== 'string') return invalidParameter('parents');
      const parent = lookup(p);
      if (parent === undefined) return fileNotFound(p, 'parents');
    }
    return undefined;
  }

  function uploadChunk(req: IncomingMessage, uploadId: string, body: Buffer): Reply {
    const session = sessions.get(uploadId);
    if (session === undefined || session.expiresAt <= now()) {
      sessions.delete(uploadId);
      return { ...fromError(uploadSessionNotFound()), note: 'unknown or expired upload session' };
    }
    const completed = (): Reply => ({
      ...selectFields(fileJson(session.file as GdriveFile), session.fields, DEFAULT_FILE_FIELDS, FILE_SCHEMA),
      note: `upload complete: ${session.received} bytes`,
    });
    const incomplete = (note: string): Reply => ({
      status: 308,
      // Never a Location header on a 308: HTTP clients would follow it as a redirect.
      headers: session.received > 0 ? { range: `bytes=0-${session.received - 1}` } : {},
      raw: Buffer.alloc(0),
      note,
    });
    const contentRange = headerValue(req.headers['content-range']);
    const parsed = parseContentRange(contentRange, body.length);
    if (parsed === undefined) return fromError(badRequest(`Invalid Content-Range header: ${contentRange ?? ''}`));

    if (parsed.kind === 'status') {
      if (session.file !== undefined) return completed();
      // `bytes */T` once all T bytes are in finalizes an upload whose chunks were sent with an unknown total.
      if (parsed.total !== undefined && parsed.total === session.received && (session.total ?? parsed.total) === parsed.total) {
        return finalize(Buffer.alloc(0));
      }
      return incomplete(`status query: ${session.received} bytes persisted`);
    }
    if (session.file !== undefined) return completed();
    const { start, end, total } = parsed;
    if (total !== undefined) {
      if (session.total !== undefined && session.total !== total) {
        return fromError(badRequest(`Content-Range total ${total} differs from the declared upload size ${session.total}.`));
      }
      if (end >= total) return fromError(badRequest('Content-Range ends beyond the total size.'));
    }
    const length = end - start + 1;
    if (length !== body.length) {
      return fromError(badRequest(`Content-Range covers ${length} bytes but the body has ${body.length}.`));
    }
    if (start > session.received) {
      return fromError(badRequest(`Content-Range starts at ${start} but only ${session.received} bytes were received; resume from the offset in the Range header of a status query.`));
    }
    const effectiveTotal = total ?? session.total;
    const isFinal = effectiveTotal !== undefined && end + 1 === effectiveTotal;
    if (!isFinal && length % granularity !== 0) {
      return {
        ...fromError(badRequest(`Invalid request. The number of bytes uploaded is required to be a multiple of ${granularity}, except for the final request. The received request contained ${length} bytes, which does not meet this requirement.`)),
        note: `rejected non-final chunk of ${length} bytes`,
      };
    }
    // Bytes before session.received are a retransmission: keep what is already stored, append the rest.
    const fresh = body.subarray(Math.min(body.length, session.received - start));
    if (isFinal) return finalize(fresh);
    if (fresh.length > 0) session.chunks.push(Buffer.from(fresh));
    session.received += fresh.length;
    if (total !== undefined) session.total = total;
    return incomplete(`chunk ${start}-${end}/${total ?? '*'} (${length} bytes), persisted ${session.received}`);

    /** Creates the file from everything received plus the last bytes; the session then answers with it. */
    function finalize(last: Buffer): Reply {
      if (session === undefined) throw new Error('unreachable: finalize without a session');
      const size = session.received + last.length;
      if (wouldExceedQuota(size)) return { ...fromError(storageQuotaExceeded()), note: 'final chunk refused: storage quota' };
      const created = createFile(session.metadata, Buffer.concat([...session.chunks, last]), session.declaredType);
      if ('status' in created) return fromError(created);
      session.chunks = [];
      session.received = size;
      session.total = size;
      session.file = created;
      return completed();
    }
  }

  // ---- Wiring --------------------------------------------------------------------------------------------------

  async function handler(req: IncomingMessage, res: ServerResponse, ctx: FakeRequestContext): Promise<void> {
    if (ctx.url.pathname.startsWith('/__fake/')) {
      controlPlane(req, res, ctx);
      return;
    }
    const reply = route(req, ctx);
    const fault: FaultAction | undefined = ctx.fault;
    if (fault?.kind === 'reset-after') {
      ctx.note(`applied (would have answered ${reply.status}${reply.note === undefined ? '' : `: ${reply.note}`}), then socket reset`);
      resetSocket(res);
      return;
    }
    if (reply.note !== undefined) ctx.note(reply.note);
    send(res, reply);
  }

  /** Fake-only helpers for tests in another process: POST /__fake/token issues tokens, PUT /__fake/quota sets the limit. */
  function controlPlane(req: IncomingMessage, res: ServerResponse, ctx: FakeRequestContext): void {
    const method = (req.method ?? 'GET').toUpperCase();
    if (ctx.url.pathname === '/__fake/token' && method === 'POST') {
      send(res, { status: 200, json: tokens.issue() });
    } else if (ctx.url.pathname === '/__fake/quota' && method === 'PUT') {
      const parsed = parseJsonObject(ctx.body);
      const bytes = parsed?.['bytes'];
      if (bytes !== null && typeof bytes !== 'number') {
        send(res, { status: 400, json: { error: 'expected {"bytes": number | null}' } });
        return;
      }
      quotaBytes = bytes;
      send(res, { status: 204 });
    } else {
      send(res, { status: 404, json: { error: 'unknown control endpoint' } });
    }
  }

  const base = await startHttpFake(handler, {
    serviceName: 'gdrive',
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.host === undefined ? {} : { host: options.host }),
    errorEnvelope: (status, message) => {
      const e = errorForStatus(status, message);
      return { headers: e.headers, body: e.body };
    },
  });
  baseUrl = base.url;

  return {
    get url() {
      return base.url;
    },
    get port() {
      return base.port;
    },
    log: base.log,
    faults: base.faults,
    server: base.server,
    close: () => base.close(),
    tokens,
    files,
    rootId: root.id,
    trashBytes,
    usedBytes,
    setQuota(bytes: number | null): void {
      quotaBytes = bytes;
    },
    createFileDirect(opts: CreateFileDirectOptions): GdriveFile {
      const content = typeof opts.content === 'string' ? Buffer.from(opts.content) : opts.content;
      const parents = (opts.parents ?? ['root']).map(resolveId);
      const file = newRecord({
        id: opts.id ?? newFileId(),
        name: opts.name,
        parents,
        mimeType: opts.mimeType ?? 'application/octet-stream',
        ...(content === undefined ? {} : { content }),
      });
      if (opts.appProperties !== undefined) file.appProperties = { ...opts.appProperties };
      files.set(file.id, file);
      if (opts.trashed === true) setTrashed(file, true);
      return file;
    },
    uploadSessions(): UploadSessionInfo[] {
      return [...sessions.values()].map((s) => ({ id: s.id, received: s.received, total: s.total, fileId: s.file?.id }));
    },
  };
}

// ---- Helpers ---------------------------------------------------------------------------------------------------

function fromError(e: DriveErrorReply): Reply {
  return { status: e.status, headers: e.headers, json: e.body, note: e.body.error.errors[0]?.reason ?? 'error' };
}

function send(res: ServerResponse, reply: Reply): void {
  let payload: Buffer;
  const headers: Record<string, string> = {};
  if (reply.json !== undefined) {
    payload = Buffer.from(JSON.stringify(reply.json));
    headers['content-type'] = 'application/json; charset=UTF-8';
  } else {
    payload = reply.raw ?? Buffer.alloc(0);
  }
  Object.assign(headers, reply.headers);
  headers['content-length'] = String(payload.length);
  res.writeHead(reply.status, headers);
  res.end(payload);
}

function newFileId(): string {
  return `1${randomBytes(24).toString('base64url')}`;
}

function digest(algorithm: 'md5' | 'sha1' | 'sha256', content: Buffer): string {
  return createHash(algorithm).update(content).digest('hex');
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return match?.[1];
}

function basicClient(authorization: string | undefined): string | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(authorization ?? '');
  if (match?.[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return decodeURIComponent(colon < 0 ? decoded : decoded.slice(0, colon));
}

function parseForm(req: IncomingMessage, body: Buffer): URLSearchParams {
  const type = req.headers['content-type'] ?? '';
  if (/application\/json/i.test(type)) {
    const json = parseJsonObject(body) ?? {};
    return new URLSearchParams(Object.entries(json).map(([k, v]): [string, string] => [k, String(v)]));
  }
  return new URLSearchParams(body.toString('utf8'));
}

function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const SORT_KEYS = new Set([
  'createdTime', 'folder', 'modifiedByMeTime', 'modifiedTime', 'name', 'name_natural', 'quotaBytesUsed',
  'recency', 'sharedWithMeTime', 'starred', 'viewedByMeTime',
]);

/**
 * Sorts by Drive's orderBy keys (`name`, `createdTime desc`, `folder,name`, …); keys the fake has no data for
 * (viewedByMeTime, recency, …) are accepted and leave the order unchanged. Undefined for an unknown key.
 */
function sortFiles(list: GdriveFile[], orderBy: string): GdriveFile[] | undefined {
  const keys: Array<{ key: string; desc: boolean }> = [];
  for (const part of orderBy.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const [key = '', direction, ...rest] = part.split(/\s+/);
    if (!SORT_KEYS.has(key) || rest.length > 0 || (direction !== undefined && !/^(asc|desc)$/i.test(direction))) {
      return undefined;
    }
    keys.push({ key, desc: direction?.toLowerCase() === 'desc' });
  }
  const value = (f: GdriveFile, key: string): string | number => {
    switch (key) {
      case 'createdTime':
        return f.createdTime;
      case 'modifiedTime':
      case 'modifiedByMeTime':
        return f.modifiedTime;
      case 'folder':
        return f.mimeType === FOLDER_MIME_TYPE ? 0 : 1;
      case 'name':
      case 'name_natural':
        return f.name.toLowerCase();
      case 'quotaBytesUsed':
        return f.size;
      case 'starred':
        return f.starred ? 0 : 1;
      default:
        return 0;
    }
  };
  return list
    .map((file, index) => ({ file, index }))
    .sort((a, b) => {
      for (const { key, desc } of keys) {
        const x = value(a.file, key);
        const y = value(b.file, key);
        if (x !== y) return (x < y ? -1 : 1) * (desc ? -1 : 1);
      }
      return a.index - b.index;
    })
    .map((entry) => entry.file);
}

function splitIds(text: string | null): string[] {
  return text === null ? [] : text.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function isLoopbackRedirect(uri: string): boolean {
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

/** `[start, end]` inclusive, undefined to serve the whole body (no or unusable Range header), or 'unsatisfiable'. */
function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined; // multi-range or malformed: ignored, as HTTP allows
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}

type ContentRange =
  | { kind: 'status'; total: number | undefined }
  | { kind: 'bytes'; start: number; end: number; total: number | undefined };

/**
 * `bytes a-b/T`, `bytes a-b/*`, `bytes *\/T` or `bytes *\/*` (status query, empty body), or absent: the whole
 * upload in one request (or, with an empty body, a status query). Undefined when malformed.
 */
function parseContentRange(header: string | undefined, bodyLength: number): ContentRange | undefined {
  if (header === undefined) {
    return bodyLength === 0
      ? { kind: 'status', total: undefined }
      : { kind: 'bytes', start: 0, end: bodyLength - 1, total: bodyLength };
  }
  const status = /^bytes \*\/(\d+|\*)$/.exec(header.trim());
  if (status !== null) {
    if (bodyLength !== 0) return undefined;
    return { kind: 'status', total: status[1] === '*' ? undefined : Number(status[1]) };
  }
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return undefined;
  return { kind: 'bytes', start, end, total: match[3] === '*' ? undefined : Number(match[3]) };
}
