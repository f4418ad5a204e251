// The Microsoft Graph (OneDrive) fake: serves /v1.0/me/drive…, upload-session URLs, pre-authenticated download
// URLs and the Microsoft identity token/authorize endpoints on one loopback port, faithfully enough that the real
// @microsoft/microsoft-graph-client cannot tell it from graph.microsoft.com, with the shared fault injection.

import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { FaultAction } from '../common/faults.ts';
import { resetSocket, startHttpFake } from '../common/server.ts';
import type { FakeServerBase } from '../common/server.ts';
import { TokenAuthority } from '../common/tokens.ts';
import { parseGraphRoute } from './addressing.ts';
import type { GraphRoute } from './addressing.ts';
import { CONFLICT_BEHAVIORS, DriveStore, drivePath } from './drive-store.ts';
import type { ConflictBehavior, DriveQuota, OnedriveItem, StoredItem } from './drive-store.ts';
import { IDENTITY_PATH, IdentityEndpoints } from './identity.ts';
import { pathProblem } from './names.ts';
import { bytesReply, emptyReply, graphError, graphErrorEnvelope, jsonReply, redirectReply } from './replies.ts';
import type { GraphErrorInput, GraphReply } from './replies.ts';
import { applyFragment, parseContentRange, sessionStatus, UploadSessions } from './upload-sessions.ts';
import type { UploadSession } from './upload-sessions.ts';

export interface OnedriveFakeOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** quota.total; default 5 GiB (a free OneDrive). */
  quotaBytes?: number;
  /** Children per page when the client sends no $top; default 200, as Graph. */
  pageSize?: number;
  /** Access-token lifetime at the identity endpoint; default 3600. */
  tokenTtlSeconds?: number;
  /** Largest body accepted by PUT …/content; default 4 MiB (Graph's documented simple-upload limit). */
  simpleUploadLimitBytes?: number;
  /** Upload-session lifetime, renewed by every fragment; default 24 h. */
  uploadSessionTtlSeconds?: number;
  /** Lifetime of pre-authenticated download URLs; default 3600 s. */
  downloadUrlTtlSeconds?: number;
  /**
   * Whether PUT …/content and createUploadSession by path create missing parent folders. Default false (the
   * request fails with 404 itemNotFound), so a client that relies on implicit folder creation is caught.
   */
  createMissingParents?: boolean;
  /** The fake's clock (tokens, sessions, download URLs, timestamps). */
  now?: () => Date;
}

export interface OnedriveFake extends FakeServerBase {
  /** Issues/expires tokens; `tokens.issue().access_token` is what a test hands the Graph client. */
  readonly tokens: TokenAuthority;
  readonly driveId: string;
  readonly rootId: string;
  /** Every item except the root, live and recycled. */
  items(): OnedriveItem[];
  /** A live item by decoded path ("/a/b.bin") or by id; recycled items only by id. */
  item(pathOrId: string): OnedriveItem | undefined;
  /** Bytes in the recycle bin (what quota.deleted reports). */
  recycleBinBytes(): number;
  emptyRecycleBin(): void;
  setQuota(totalBytes: number): void;
  quota(): DriveQuota;
  /** Upload sessions that are still open. */
  openUploadSessions(): number;
}

const DEFAULT_QUOTA_BYTES = 5 * 1024 ** 3;
const MAX_PAGE_SIZE = 1000;
/** Every listing grants a download URL per file; past this many, expired grants are swept. */
const MAX_DOWNLOAD_GRANTS = 10_000;
const GRAPH_VERSIONS = new Set(['v1.0', 'beta']);
/** What Graph sends with a 401, pointing the client at the identity platform. */
const WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"';

interface IncomingRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: Buffer;
  fault: FaultAction | undefined;
  note: (text: string) => void;
}

/** Where the URLs the fake hands out must point for the caller to reach it again. */
interface Origins {
  /** Origin for Graph API links (@odata.nextLink): the Graph host the client believes it talks to. */
  api: string;
  /** Origin for upload and download URLs: the fake itself, never a Graph host, so no token is attached there. */
  content: string;
}

export async function startOnedriveFake(options: OnedriveFakeOptions = {}): Promise<OnedriveFake> {
  const now = options.now ?? (() => new Date());
  const tokens = new TokenAuthority({
    accessTtlSeconds: options.tokenTtlSeconds ?? 3600,
    now: () => now().getTime(),
  });
  const service = new OnedriveService({
    now,
    tokens,
    store: new DriveStore({ quotaBytes: options.quotaBytes ?? DEFAULT_QUOTA_BYTES, now }),
    pageSize: options.pageSize ?? 200,
    simpleUploadLimitBytes: options.simpleUploadLimitBytes ?? 4 * 1024 * 1024,
    uploadSessionTtlSeconds: options.uploadSessionTtlSeconds ?? 24 * 3600,
    downloadUrlTtlSeconds: options.downloadUrlTtlSeconds ?? 3600,
    createMissingParents: options.createMissingParents ?? false,
  });

  const base = await startHttpFake(
    (req, res, ctx) => {
      const reply = service.handle({
        method: (req.method ?? 'GET').toUpperCase(),
        url: ctx.url,
        headers: req.headers,
        body: ctx.body,
        fault: ctx.fault,
        note: ctx.note,
      });
      if (ctx.fault?.kind === 'reset-after') {
        ctx.note(`applied (would have answered ${reply.status}), then reset the socket`);
        resetSocket(res);
        return;
      }
      send(res, reply);
    },
    {
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.host === undefined ? {} : { host: options.host }),
      serviceName: 'onedrive',
      errorEnvelope: (status, message) => graphErrorEnvelope(status, message, { now: now() }),
    },
  );

  const store = service.store;
  return {
    url: base.url,
    port: base.port,
    log: base.log,
    faults: base.faults,
    close: () => base.close(),
    tokens,
    driveId: store.driveId,
    rootId: store.rootId,
    items: () => store.snapshot().filter((item) => item.id !== store.rootId),
    item: (pathOrId) => service.inspect(pathOrId),
    recycleBinBytes: () => store.recycleBinBytes(),
    emptyRecycleBin: () => store.emptyRecycleBin(),
    setQuota: (totalBytes) => store.setQuota(totalBytes),
    quota: () => store.quota(),
    openUploadSessions: () => service.sessions.size,
  };
}

function send(res: ServerResponse, reply: GraphReply): void {
  const headers: Record<string, string> = { ...reply.headers };
  // RFC 9110 forbids Content-Length on 204; everything else gets an exact one (no chunked answers).
  if (reply.status !== 204) headers['content-length'] = String(reply.body.length);
  res.writeHead(reply.status, headers);
  res.end(reply.status === 204 ? undefined : reply.body);
}

interface ServiceConfig {
  now: () => Date;
  tokens: TokenAuthority;
  store: DriveStore;
  pageSize: number;
  simpleUploadLimitBytes: number;
  uploadSessionTtlSeconds: number;
  downloadUrlTtlSeconds: number;
  createMissingParents: boolean;
}

interface DownloadGrant {
  itemId: string;
  expiresAt: number;
}

/** Request handling, independent of the socket (the caller decides whether to answer or reset). */
class OnedriveService {
  readonly store: DriveStore;
  readonly sessions: UploadSessions;
  readonly #config: ServiceConfig;
  readonly #identity: IdentityEndpoints;
  readonly #downloads = new Map<string, DownloadGrant>();
  readonly #ownerId = randomBytes(8).toString('hex');

  constructor(config: ServiceConfig) {
    this.#config = config;
    this.store = config.store;
    this.sessions = new UploadSessions({ ttlSeconds: config.uploadSessionTtlSeconds, now: config.now });
    this.#identity = new IdentityEndpoints(config.tokens, config.now);
  }

  inspect(pathOrId: string): OnedriveItem | undefined {
    if (pathOrId.startsWith('/')) {
      const found = this.store.resolve(
        this.store.rootId,
        pathOrId.split('/').filter((s) => s !== ''),
      );
      return 'item' in found ? this.store.view(found.item) : undefined;
    }
    const item = this.store.snapshot().find((candidate) => candidate.id === pathOrId);
    return item;
  }

  handle(request: IncomingRequest): GraphReply {
    const path = request.url.pathname;
    const identity = IDENTITY_PATH.exec(path);
    if (identity !== null) {
      return identity[2] === 'authorize'
        ? this.#identity.authorize(request.method, request.url.searchParams)
        : this.#identity.token(request.method, header(request.headers, 'content-type'), request.body);
    }
    const upload = /^\/up\/([A-Za-z0-9_-]+)$/u.exec(path);
    if (upload !== null) return this.#uploadUrl(request, upload[1] ?? '');
    if (request.fault?.kind === 'expire-upload-session') {
      // Aimed at a request that names no session: every open session is gone.
      request.note(`expired ${this.sessions.deleteAll()} open upload session(s)`);
    }
    const download = /^\/dl\/([A-Za-z0-9_-]+)$/u.exec(path);
    if (download !== null) return this.#downloadUrl(request, download[1] ?? '');

    const version = /^\/([^/]+)(\/.*)?$/u.exec(path);
    if (version === null || !GRAPH_VERSIONS.has(version[1] ?? '')) {
      return this.#error(request, 400, `Invalid version: ${version?.[1] ?? ''}`, { code: 'BadRequest' });
    }
    return this.#graph(request, version[2] ?? '');
  }

  // ---- Graph API (/v1.0/…) ---------------------------------------------------------------------------------------

  #graph(request: IncomingRequest, rawRoute: string): GraphReply {
    const authFailure = this.#authenticate(request);
    if (authFailure !== undefined) return authFailure;

    const route = parseGraphRoute(rawRoute);
    if (route.kind === 'invalid') return this.#error(request, 400, route.message, { code: 'BadRequest' });
    if (route.driveId !== undefined && route.driveId.toLowerCase() !== this.store.driveId.toLowerCase()) {
      return this.#error(request, 404, `The drive ${route.driveId} does not exist.`, { code: 'itemNotFound' });
    }
    if (route.kind === 'drive') {
      if (request.method !== 'GET') return this.#methodNotAllowed(request);
      return this.#getDrive(request);
    }
    const { method } = request;
    switch (route.action) {
      case '':
        if (method === 'GET') return this.#withItem(request, route, (item) => this.#itemReply(request, 200, item));
        if (method === 'DELETE') return this.#withItem(request, route, (item) => this.#deleteItem(request, item));
        if (method === 'PATCH') {
          return this.#error(request, 501, 'Updating or moving items is not implemented by the OneDrive fake.', {
            code: 'notSupported',
          });
        }
        return this.#methodNotAllowed(request);
      case 'children':
        if (method === 'GET') return this.#withItem(request, route, (item) => this.#listChildren(request, item));
        if (method === 'POST') return this.#withItem(request, route, (item) => this.#createChild(request, item));
        return this.#methodNotAllowed(request);
      case 'content':
        if (method === 'GET') return this.#withItem(request, route, (item) => this.#contentRedirect(request, item));
        if (method === 'PUT') return this.#simpleUpload(request, route);
        return this.#methodNotAllowed(request);
      case 'createUploadSession':
        if (method === 'POST') return this.#createUploadSession(request, route);
        return this.#methodNotAllowed(request);
      case 'permanentDelete':
        if (method === 'POST') return this.#withItem(request, route, (item) => this.#permanentDelete(request, item));
        return this.#methodNotAllowed(request);
    }
  }

  #authenticate(request: IncomingRequest): GraphReply | undefined {
    const authorization = header(request.headers, 'authorization');
    const token = authorization?.match(/^Bearer\s+(\S+)$/iu)?.[1];
    if (token === undefined || token === '') {
      return this.#error(request, 401, 'Access token is empty.', {
        code: 'InvalidAuthenticationToken',
        headers: { 'www-authenticate': WWW_AUTHENTICATE },
      });
    }
    if (request.fault?.kind === 'expire-token') {
      this.#config.tokens.expire(token);
      request.note('expired the presented access token');
    }
    if (!this.#config.tokens.isValid(token)) {
      const known = this.#config.tokens.issued.includes(token);
      return this.#error(
        request,
        401,
        known ? 'Access token has expired or is not yet valid.' : 'Access token validation failure. Invalid audience.',
        { code: 'InvalidAuthenticationToken', headers: { 'www-authenticate': WWW_AUTHENTICATE } },
      );
    }
    return undefined;
  }

  #getDrive(request: IncomingRequest): GraphReply {
    const quota = this.store.quota({ forceFull: request.fault?.kind === 'quota-full' });
    const drive = {
      id: this.store.driveId,
      driveType: 'personal',
      name: 'OneDrive',
      owner: { user: { displayName: 'Fake OneDrive User', id: this.#ownerId } },
      quota: { ...quota, storagePlanInformation: { upgradeAvailable: false } },
    };
    return jsonReply(200, project(drive, request.url.searchParams.get('$select')));
  }

  #withItem(
    request: IncomingRequest,
    route: Extract<GraphRoute, { kind: 'item' }>,
    use: (item: StoredItem) => GraphReply,
  ): GraphReply {
    const baseId = route.base.root ? this.store.rootId : route.base.id;
    const found = this.store.resolve(baseId, route.segments);
    if (!('item' in found)) return this.#notFound(request);
    return use(found.item);
  }

  #itemReply(request: IncomingRequest, status: number, item: StoredItem): GraphReply {
    return jsonReply(status, project(this.#itemJson(request, item), request.url.searchParams.get('$select')));
  }

  #itemJson(request: IncomingRequest, item: StoredItem): Record<string, unknown> {
    const parent = item.parentId === undefined ? undefined : this.store.get(item.parentId);
    const json: Record<string, unknown> = {
      createdDateTime: item.createdDateTime,
      cTag: `"c:{${item.id}},${item.version}"`,
      eTag: `"{${item.id}},${item.version}"`,
      id: item.id,
      lastModifiedDateTime: item.lastModifiedDateTime,
      name: item.name,
      size: this.store.size(item),
      parentReference:
        parent === undefined
          ? { driveId: this.store.driveId, driveType: 'personal' }
          : {
              driveId: this.store.driveId,
              driveType: 'personal',
              id: parent.id,
              ...(parent.parentId === undefined ? {} : { name: parent.name }),
              path: drivePath(this.store.segmentsOf(parent)),
            },
      fileSystemInfo: { createdDateTime: item.createdDateTime, lastModifiedDateTime: item.lastModifiedDateTime },
    };
    if (item.isFolder) {
      json['folder'] = { childCount: this.store.childCount(item) };
      if (item.parentId === undefined) json['root'] = {};
    } else {
      json['@microsoft.graph.downloadUrl'] = this.#grantDownload(request, item);
      json['file'] = {
        mimeType: item.mimeType,
        hashes: { quickXorHash: item.quickXorHash, sha256Hash: item.sha256Hash },
      };
    }
    return json;
  }

  #listChildren(request: IncomingRequest, folder: StoredItem): GraphReply {
    if (!folder.isFolder) return this.#notFound(request);
    const params = request.url.searchParams;
    const unsupported = ['$filter', '$expand', '$search'].find((name) => params.has(name));
    if (unsupported !== undefined) {
      return this.#error(request, 501, `The OneDrive fake does not implement ${unsupported} on children.`, {
        code: 'notSupported',
      });
    }
    let children = this.store.childrenOf(folder.id);
    const orderBy = params.get('$orderby');
    if (orderBy !== null) {
      const sorted = sortChildren(children, orderBy, (item) => this.store.size(item));
      if (sorted === undefined) {
        return this.#error(request, 400, `Unsupported $orderby "${orderBy}".`, { innerCode: 'invalidQueryOption' });
      }
      children = sorted;
    }

    let pageSize = this.#config.pageSize;
    const top = params.get('$top');
    if (top !== null) {
      if (!/^\d+$/u.test(top)) return this.#error(request, 400, `Invalid $top value "${top}".`, { innerCode: 'invalidQueryOption' });
      const value = Number(top);
      if (value <= 0) {
        return this.#error(request, 400, '$top must be greater than zero.', { innerCode: 'zeroOrFewerResultsRequested' });
      }
      pageSize = Math.min(value, MAX_PAGE_SIZE);
    }
    let offset = 0;
    const skipToken = params.get('$skiptoken') ?? params.get('$skipToken');
    if (skipToken !== null) {
      const decoded = decodeSkipToken(skipToken, folder.id);
      if (decoded === undefined) return this.#error(request, 400, 'The $skiptoken is not valid for this request.');
      offset = decoded;
    }
    const select = params.get('$select');
    const page = children.slice(offset, offset + pageSize).map((item) => project(this.#itemJson(request, item), select));
    const body: Record<string, unknown> = { value: page };
    if (offset + pageSize < children.length) {
      const next = new URLSearchParams();
      for (const [name, value] of params) if (name !== '$skiptoken' && name !== '$skipToken') next.append(name, value);
      next.set('$skiptoken', encodeSkipToken(folder.id, offset + pageSize));
      // URLSearchParams would write "%24top"; Graph's links keep "$" literal, as clients and the SDK expect.
      const query = next.toString().replace(/%24/gu, '$').replace(/%2C/giu, ',');
      body['@odata.nextLink'] = `${this.#origins(request).api}${request.url.pathname}?${query}`;
    }
    return jsonReply(200, body);
  }

  #createChild(request: IncomingRequest, parent: StoredItem): GraphReply {
    if (!parent.isFolder) return this.#error(request, 400, 'Items can only be created inside a folder.');
    const body = parseJsonObject(request.body);
    if (body === undefined) return this.#error(request, 400, 'The request body must be a JSON driveItem.');
    const name = body['name'];
    if (typeof name !== 'string') return this.#error(request, 400, 'The driveItem to create must have a "name".');
    if (body['folder'] === undefined) {
      return this.#error(request, 400, 'The OneDrive fake creates folders only through POST …/children (send "folder": {}); upload files with PUT …/content or an upload session.', {
        code: 'notSupported',
      });
    }
    const behavior = conflictBehavior(
      body['@microsoft.graph.conflictBehavior'] ?? request.url.searchParams.get('@microsoft.graph.conflictBehavior'),
      'fail',
    );
    if (behavior === undefined) return this.#badConflictBehavior(request);
    const problem = pathProblem([...this.store.segmentsOf(parent), name]);
    if (problem !== undefined) return this.#error(request, 400, problem.message, { innerCode: problem.innerCode });
    if (request.fault?.kind === 'quota-full') return this.#quotaFull(request);

    let finalName = name;
    const existing = this.store.findChild(parent.id, name);
    if (existing !== undefined) {
      if (behavior === 'fail') return this.#nameExists(request, name);
      if (behavior === 'replace') {
        // Graph answers 200 with the folder that is already there, keeping its contents.
        if (existing.isFolder) return this.#itemReply(request, 200, existing);
        this.store.recycle(existing);
      } else {
        finalName = this.store.uniqueName(parent.id, name);
      }
    }
    return this.#itemReply(request, 201, this.store.createFolder(parent.id, finalName));
  }

  /** Parent folder and new name for a path-addressed create, creating missing folders when configured to. */
  #targetOf(
    request: IncomingRequest,
    route: Extract<GraphRoute, { kind: 'item' }>,
  ): { parent: StoredItem; name: string; existing: StoredItem | undefined } | GraphReply {
    const baseId = route.base.root ? this.store.rootId : route.base.id;
    if (route.segments.length === 0) {
      const item = this.store.get(baseId);
      if (item === undefined) return this.#notFound(request);
      if (item.isFolder || item.parentId === undefined) {
        return this.#error(request, 400, 'The target of an upload must be a file, not a folder.');
      }
      const parent = this.store.get(item.parentId);
      if (parent === undefined) return this.#notFound(request);
      return { parent, name: item.name, existing: item };
    }
    const parentSegments = route.segments.slice(0, -1);
    const name = route.segments[route.segments.length - 1] ?? '';
    const base = this.store.get(baseId);
    if (base === undefined) return this.#notFound(request);
    const problem = pathProblem([...this.store.segmentsOf(base), ...route.segments]);
    if (problem !== undefined) return this.#error(request, 400, problem.message, { innerCode: problem.innerCode });
    let parent = base;
    for (const segment of parentSegments) {
      let next = this.store.findChild(parent.id, segment);
      if (next === undefined && this.#config.createMissingParents) next = this.store.createFolder(parent.id, segment);
      if (next === undefined || !next.isFolder) return this.#notFound(request);
      parent = next;
    }
    if (!parent.isFolder) return this.#notFound(request);
    return { parent, name, existing: this.store.findChild(parent.id, name) };
  }

  #simpleUpload(request: IncomingRequest, route: Extract<GraphRoute, { kind: 'item' }>): GraphReply {
    const limit = this.#config.simpleUploadLimitBytes;
    if (request.body.length > limit) {
      return this.#error(
        request,
        413,
        `PUT …/content accepts at most ${limit} bytes; this request carried ${request.body.length}. Use createUploadSession for larger files.`,
        { code: 'invalidRequest', innerCode: 'maxRequestSizeExceeded' },
      );
    }
    const behavior = conflictBehavior(request.url.searchParams.get('@microsoft.graph.conflictBehavior'), 'replace');
    if (behavior === undefined) return this.#badConflictBehavior(request);
    const target = this.#targetOf(request, route);
    if ('status' in target) return target;
    return this.#commitFile(request, target.parent, target.name, target.existing, behavior, request.body);
  }

  /** Writes a file under the conflict behaviour (used by simple uploads and the last fragment of a session). */
  #commitFile(
    request: IncomingRequest,
    parent: StoredItem,
    name: string,
    existing: StoredItem | undefined,
    behavior: ConflictBehavior,
    content: Buffer,
  ): GraphReply {
    let finalName = name;
    let replacing: StoredItem | undefined;
    if (existing !== undefined) {
      if (behavior === 'fail' || (behavior === 'replace' && existing.isFolder)) return this.#nameExists(request, name);
      if (behavior === 'replace') replacing = existing;
      else finalName = this.store.uniqueName(parent.id, name);
    }
    const growth = content.length - (replacing?.content.length ?? 0);
    if (request.fault?.kind === 'quota-full' || this.store.wouldExceedQuota(growth)) return this.#quotaFull(request);
    if (replacing !== undefined) {
      this.store.replaceContent(replacing, content);
      return this.#itemReply(request, 200, replacing);
    }
    return this.#itemReply(request, 201, this.store.createFile(parent.id, finalName, content));
  }

  #createUploadSession(request: IncomingRequest, route: Extract<GraphRoute, { kind: 'item' }>): GraphReply {
    let item: Record<string, unknown> = {};
    if (request.body.length > 0) {
      const body = parseJsonObject(request.body);
      if (body === undefined) return this.#error(request, 400, 'The createUploadSession body must be JSON.');
      const rawItem = body['item'];
      if (rawItem !== undefined) {
        if (typeof rawItem !== 'object' || rawItem === null) return this.#error(request, 400, '"item" must be an object.');
        item = rawItem as Record<string, unknown>;
      }
    }
    const behavior = conflictBehavior(
      item['@microsoft.graph.conflictBehavior'] ?? request.url.searchParams.get('@microsoft.graph.conflictBehavior'),
      route.segments.length === 0 ? 'replace' : 'fail',
    );
    if (behavior === undefined) return this.#badConflictBehavior(request);
    if (item['deferCommit'] === true) {
      return this.#error(request, 501, 'deferCommit upload sessions are not implemented by the OneDrive fake.', {
        code: 'notSupported',
      });
    }
    const fileSize = item['fileSize'];
    if (fileSize !== undefined && !(typeof fileSize === 'number' && Number.isSafeInteger(fileSize) && fileSize >= 0)) {
      return this.#error(request, 400, '"item.fileSize" must be a non-negative integer.');
    }
    const target = this.#targetOf(request, route);
    if ('status' in target) return target;
    if (fileSize !== undefined) {
      const replaced = behavior === 'replace' && target.existing !== undefined ? target.existing.content.length : 0;
      if (request.fault?.kind === 'quota-full' || this.store.wouldExceedQuota(fileSize - replaced)) {
        return this.#quotaFull(request);
      }
    } else if (request.fault?.kind === 'quota-full') {
      return this.#quotaFull(request);
    }
    const session = this.sessions.create({
      parentId: target.parent.id,
      name: target.name,
      conflictBehavior: behavior,
      declaredSize: fileSize,
    });
    request.note(`upload session for ${target.name}`);
    return jsonReply(200, {
      '@odata.context': `${this.#origins(request).api}/v1.0/$metadata#microsoft.graph.uploadSession`,
      uploadUrl: `${this.#origins(request).content}/up/${session.id}`,
      expirationDateTime: session.expiresAt.toISOString(),
      nextExpectedRanges: ['0-'],
    });
  }

  #deleteItem(request: IncomingRequest, item: StoredItem): GraphReply {
    if (item.parentId === undefined) {
      return this.#error(request, 403, 'The root folder cannot be deleted.', { code: 'accessDenied', innerCode: 'cannotDeleteRootFolder' });
    }
    const ifMatch = header(request.headers, 'if-match');
    if (ifMatch !== undefined && ifMatch !== '*' && !etagMatches(ifMatch, item)) {
      return this.#error(request, 412, 'The item has changed since the eTag in If-Match was read.', { code: 'resourceModified' });
    }
    this.store.recycle(item);
    return emptyReply(204);
  }

  #permanentDelete(request: IncomingRequest, item: StoredItem): GraphReply {
    if (item.parentId === undefined) {
      return this.#error(request, 403, 'The root folder cannot be deleted.', { code: 'accessDenied', innerCode: 'cannotDeleteRootFolder' });
    }
    this.store.permanentlyDelete(item);
    return emptyReply(204);
  }

  #contentRedirect(request: IncomingRequest, item: StoredItem): GraphReply {
    if (item.isFolder) return this.#error(request, 400, 'Folders have no content to download.');
    // Like Graph: the bytes live on a pre-authenticated URL elsewhere; Range belongs on that request.
    return redirectReply(this.#grantDownload(request, item));
  }

  #grantDownload(request: IncomingRequest, item: StoredItem): string {
    if (this.#downloads.size > MAX_DOWNLOAD_GRANTS) {
      const nowMs = this.#config.now().getTime();
      for (const [token, grant] of this.#downloads) if (grant.expiresAt <= nowMs) this.#downloads.delete(token);
    }
    const token = randomBytes(24).toString('base64url');
    this.#downloads.set(token, {
      itemId: item.id,
      expiresAt: this.#config.now().getTime() + this.#config.downloadUrlTtlSeconds * 1000,
    });
    return `${this.#origins(request).content}/dl/${token}`;
  }

  // ---- pre-authenticated URLs -----------------------------------------------------------------------------------

  #uploadUrl(request: IncomingRequest, sessionId: string): GraphReply {
    if (request.fault?.kind === 'expire-upload-session') {
      this.sessions.delete(sessionId);
      request.note('upload session expired by fault');
    }
    const session = this.sessions.get(sessionId);
    if (session === undefined) {
      return this.#error(request, 404, 'The upload session does not exist or has expired; start a new upload session.', {
        code: 'itemNotFound',
        innerCode: 'uploadSessionNotFound',
      });
    }
    if (header(request.headers, 'authorization') !== undefined) {
      // Graph documents that sending the Authorization header to an uploadUrl may fail with 401.
      return this.#error(request, 401, 'Upload URLs are pre-authenticated; do not send an Authorization header.', {
        code: 'unauthenticated',
      });
    }
    switch (request.method) {
      case 'GET':
        return jsonReply(200, sessionStatus(session));
      case 'DELETE':
        this.sessions.delete(session.id);
        return emptyReply(204);
      case 'PUT':
        return this.#uploadFragment(request, session);
      default:
        return this.#methodNotAllowed(request);
    }
  }

  #uploadFragment(request: IncomingRequest, session: UploadSession): GraphReply {
    const contentRange = header(request.headers, 'content-range');
    const range = parseContentRange(contentRange);
    if (request.fault?.kind === 'quota-full') return this.#quotaFull(request);
    if (range !== undefined && range.first === 0 && session.received === 0) {
      const existing = this.store.findChild(session.parentId, session.name);
      const replaced = session.conflictBehavior === 'replace' && existing !== undefined ? existing.content.length : 0;
      if (this.store.wouldExceedQuota(range.total - replaced)) return this.#quotaFull(request);
    }
    const outcome = applyFragment(session, contentRange, request.body, {
      now: this.#config.now(),
      ...clientRequestId(request),
    });
    if (outcome.kind === 'rejected') return outcome.reply;
    this.sessions.touch(session);
    request.note(`fragment ${range === undefined ? '?' : `${range.first}-${range.last}/${range.total}`}`);
    if (outcome.kind === 'partial') return jsonReply(202, sessionStatus(session));

    const parent = this.store.get(session.parentId);
    if (parent === undefined) {
      this.sessions.delete(session.id);
      return this.#error(request, 404, 'The folder this upload session targets no longer exists.', { code: 'itemNotFound' });
    }
    const reply = this.#commitFile(
      request,
      parent,
      session.name,
      this.store.findChild(parent.id, session.name),
      session.conflictBehavior,
      outcome.content,
    );
    if (reply.status === 409) session.awaitingCommit = true;
    else this.sessions.delete(session.id);
    return reply;
  }

  #downloadUrl(request: IncomingRequest, token: string): GraphReply {
    if (request.method !== 'GET' && request.method !== 'HEAD') return this.#methodNotAllowed(request);
    const grant = this.#downloads.get(token);
    if (grant === undefined || grant.expiresAt <= this.#config.now().getTime()) {
      this.#downloads.delete(token);
      return this.#error(request, 401, 'The pre-authenticated download URL is unknown or has expired; request the item again.', {
        code: 'unauthenticated',
      });
    }
    const item = this.store.get(grant.itemId);
    if (item === undefined || item.isFolder) return this.#notFound(request);
    const size = item.content.length;
    const range = parseRange(header(request.headers, 'range'), size);
    if (range === 'unsatisfiable') {
      const reply = this.#error(request, 416, 'The requested range is not satisfiable.', { code: 'invalidRange' });
      reply.headers['content-range'] = `bytes */${size}`;
      return reply;
    }
    // For HEAD, node:http sends the headers (with the real Content-Length) and drops the body itself.
    const common = { 'accept-ranges': 'bytes', etag: `"{${item.id}},${item.version}"` };
    if (range === undefined) return bytesReply(200, item.content, common);
    return bytesReply(206, item.content.subarray(range.first, range.last + 1), {
      ...common,
      'content-range': `bytes ${range.first}-${range.last}/${size}`,
    });
  }

  // ---- helpers --------------------------------------------------------------------------------------------------

  #origins(request: IncomingRequest): Origins {
    const host = header(request.headers, 'host') ?? '127.0.0.1';
    const meant = header(request.headers, 'x-fake-host');
    // Behind the loopback middleware the client believes it talks https to graph.microsoft.com: links must keep that
    // host (so the SDK attaches the token) and absolute https URLs (the SDK mangles http:// ones).
    if (meant !== undefined && meant !== '') return { api: `https://${meant}`, content: `https://${host}` };
    return { api: `http://${host}`, content: `http://${host}` };
  }

  #error(request: IncomingRequest, status: number, message: string, input: GraphErrorInput = {}): GraphReply {
    return graphError(status, message, { now: this.#config.now(), ...clientRequestId(request), ...input });
  }

  #notFound(request: IncomingRequest): GraphReply {
    return this.#error(request, 404, 'The resource could not be found.', { code: 'itemNotFound' });
  }

  #nameExists(request: IncomingRequest, name: string): GraphReply {
    return this.#error(request, 409, `An item named "${name}" already exists in this folder.`, { code: 'nameAlreadyExists' });
  }

  #quotaFull(request: IncomingRequest): GraphReply {
    return this.#error(request, 507, 'Insufficient space available: the drive has reached its storage quota.', {
      code: 'quotaLimitReached',
    });
  }

  #methodNotAllowed(request: IncomingRequest): GraphReply {
    return this.#error(request, 405, `${request.method} is not allowed on this resource.`, { code: 'invalidRequest' });
  }

  #badConflictBehavior(request: IncomingRequest): GraphReply {
    return this.#error(request, 400, '@microsoft.graph.conflictBehavior must be fail, replace or rename.');
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function clientRequestId(request: IncomingRequest): { clientRequestId?: string } {
  const id = header(request.headers, 'client-request-id');
  return id === undefined ? {} : { clientRequestId: id };
}

function conflictBehavior(raw: unknown, fallback: ConflictBehavior): ConflictBehavior | undefined {
  if (raw === undefined || raw === null) return fallback;
  return CONFLICT_BEHAVIORS.find((b) => b === raw);
}

function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `$select=a,b` keeps only those top-level properties, as Graph does. */
function project(value: Record<string, unknown>, select: string | null): Record<string, unknown> {
  if (select === null || select.trim() === '') return value;
  const wanted = new Set(select.split(',').map((s) => s.trim()));
  return Object.fromEntries(Object.entries(value).filter(([key]) => wanted.has(key)));
}

function etagMatches(ifMatch: string, item: StoredItem): boolean {
  const current = [`"{${item.id}},${item.version}"`, `"c:{${item.id}},${item.version}"`];
  return ifMatch.split(',').some((tag) => current.includes(tag.trim()));
}

function encodeSkipToken(folderId: string, offset: number): string {
  return Buffer.from(JSON.stringify({ f: folderId, o: offset })).toString('base64url');
}

function decodeSkipToken(token: string, folderId: string): number | undefined {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { f?: unknown; o?: unknown };
    return value.f === folderId && typeof value.o === 'number' && Number.isSafeInteger(value.o) && value.o >= 0
      ? value.o
      : undefined;
  } catch {
    return undefined;
  }
}

function sortChildren(items: StoredItem[], orderBy: string, sizeOf: (item: StoredItem) => number): StoredItem[] | undefined {
  const match = /^\s*(name|size|lastModifiedDateTime)(?:\s+(asc|desc))?\s*$/u.exec(orderBy);
  if (match === null) return undefined;
  const key = match[1];
  const sign = match[2] === 'desc' ? -1 : 1;
  const keyOf = (item: StoredItem): string | number =>
    key === 'size' ? sizeOf(item) : key === 'name' ? item.name.toLowerCase() : item.lastModifiedDateTime;
  return [...items].sort((a, b) => {
    const x = keyOf(a);
    const y = keyOf(b);
    return (x < y ? -1 : x > y ? 1 : 0) * sign;
  });
}

/**
 * A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; undefined means "send everything" (no header, several
 * ranges or a form the service ignores, which Graph documents may happen).
 */
function parseRange(headerValue: string | undefined, size: number): { first: number; last: number } | 'unsatisfiable' | undefined {
  if (headerValue === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/u.exec(headerValue.trim());
  if (match === null) return undefined;
  const [, rawFirst = '', rawLast = ''] = match;
  if (rawFirst === '' && rawLast === '') return undefined;
  if (rawFirst === '') {
    const suffix = Number(rawLast);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { first: Math.max(0, size - suffix), last: size - 1 };
  }
  const first = Number(rawFirst);
  const last = rawLast === '' ? size - 1 : Math.min(Number(rawLast), size - 1);
  if (rawLast !== '' && Number(rawLast) < first) return undefined;
  if (first >= size) return 'unsatisfiable';
  return { first, last };
}
