/**
 * A Backend on Google Drive, through the official @googleapis/drive client (v3). Drive has no paths, only file ids
 * and names that need not be unique, so this module maps repository names onto folder ids and name queries, makes
 * uploads atomic and verified, and resolves the duplicate names that Drive allows. It implements the Backend
 * contract and nothing more: retries belong to RetryBackend; requests are only paced here, never repeated, except
 * once after a 401 with a refreshed token and the protocol's own resumption of an interrupted upload session.
 *
 * Layout under My Drive (see README.md): `<folder>/config` and one flat folder per type,
 * `<folder>/{keys,locks,snapshots,index,data}/<id>`. Data files are not fanned out into `data/ab/`: Drive looks
 * files up by parent id and name in one query whatever the folder's size, a folder holds hundreds of thousands of
 * files, and each extra folder would be one more id to resolve, one more listing per `list('data')`, and one more
 * place where two processes could create same-named folders at once.
 */

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { auth as googleAuth, drive as driveApi } from '@googleapis/drive';
import type { MethodOptions, drive_v3 } from '@googleapis/drive';
import {
  BackupError,
  FILE_TYPES,
  checkFileType,
  checkHandle,
  checkRangeArguments,
  handlePath,
  isBackupError,
  resolveRange,
  RequestPacer,
} from '@backup-manager/core-archive';
import type { Backend, FileInfo, FileType, Handle, OAuthSession, ResolvedRange, Usage } from '@backup-manager/core-archive';
import { isInterruption, isStorageFull, statusOf, translateDriveError } from './errors.ts';
import type { DriveErrorContext } from './errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Drive requires every resumable chunk but the last to be a multiple of this. */
export const UPLOAD_CHUNK_GRANULARITY = 256 * KiB;
export const DEFAULT_UPLOAD_CHUNK_BYTES = 8 * MiB;
/** Files up to this size go in one multipart request; larger ones through a resumable session (Drive's guidance). */
export const MULTIPART_MAX_BYTES = 5 * MiB;
/** Interruptions one upload session survives (each followed by a status query and a resume) before giving up. */
const MAX_SESSION_RESUMES = 3;
const PAGE_SIZE = 1000;
const FOLDER_MIME = 'application/vnd.google-apps.folder';
const FILE_MIME = 'application/octet-stream';
const FILE_FIELDS = 'id,name,size,md5Checksum,sha256Checksum,createdTime';
const DEFAULT_ROOT_URL = 'https://www.googleapis.com/';
const HEX_ID = /^[0-9a-f]{64}$/;
/** Name → file id entries kept to spare a lookup per load; old entries are dropped first. */
const ID_CACHE_MAX = 20_000;
/** Folders holding each type; config sits directly in the repository folder. */
const TYPE_FOLDERS = FILE_TYPES.filter((t): t is Exclude<FileType, 'config'> => t !== 'config');

export interface GdriveBackendOptions {
  /** Path of the repository folder under My Drive, e.g. `backup-manager/repo1`. */
  folder: string;
  /** The signed-in Google account (see googleDriveOAuthConfig). */
  session: OAuthSession;
  /** API origin, e.g. a local fake's URL in tests; default `https://www.googleapis.com/`. */
  rootUrl?: string;
  /** Size of a resumable upload's chunks: a multiple of 256 KiB, default 8 MiB. */
  uploadChunkBytes?: number;
  /** Requests per second this backend starts at most (default 10); ignored when `pacer` is given. */
  requestsPerSecond?: number;
  /** A pacer shared by every backend of one Google account, so that together they stay under its rate limits. */
  pacer?: RequestPacer;
  /** Milliseconds since the epoch (default Date.now), for Retry-After dates. */
  now?: () => number;
}

/** A Drive file as this backend needs it. */
interface DriveFile {
  readonly id: string;
  readonly name: string;
  readonly size: number;
  readonly md5: string | undefined;
  readonly sha256: string | undefined;
  readonly createdTime: string;
}

type RequestContext = Pick<DriveErrorContext, 'operation' | 'target' | 'uploadSession'>;

export class GdriveBackend implements Backend {
  readonly location: string;
  readonly #segments: readonly string[];
  readonly #session: OAuthSession;
  readonly #rootUrl: string;
  readonly #chunkBytes: number;
  readonly #pacer: RequestPacer;
  readonly #now: () => number;
  readonly #drive: drive_v3.Drive;
  /** The SDK's own HTTP client (gaxios), for the resumable-upload requests the generated API has no method for. */
  readonly #http: InstanceType<typeof googleAuth.OAuth2>['transporter'];
  /** Folder ids by key ('' for the repository folder, else the type); only found ids are kept. */
  readonly #folders = new Map<string, Promise<string | undefined>>();
  readonly #ids = new Map<string, DriveFile>();
  /** Work on one name, in order: saves and removes of the same file never overlap within this process. */
  readonly #perName = new Map<string, Promise<void>>();
  #account: Promise<string | undefined> | undefined;

  /**
   * Opens a repository folder that already exists; nothing is sent until the first operation. A missing
   * repository folder lists as empty and makes saves fail with NOT_FOUND: create it with `GdriveBackend.create`.
   */
  constructor(options: GdriveBackendOptions) {
    this.#segments = folderSegments(options.folder);
    this.location = `gdrive:${this.#segments.join('/')}`;
    this.#session = options.session;
    this.#rootUrl = normalizeRootUrl(options.rootUrl);
    const chunk = options.uploadChunkBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunk) || chunk < UPLOAD_CHUNK_GRANULARITY || chunk % UPLOAD_CHUNK_GRANULARITY !== 0) {
      throw new BackupError('INVALID_ARGUMENT', `uploadChunkBytes must be a positive multiple of 256 KiB (262144), got ${String(chunk)}`);
    }
    this.#chunkBytes = chunk;
    this.#pacer = options.pacer ?? new RequestPacer({ requestsPerSecond: options.requestsPerSecond ?? 10 });
    this.#now = options.now ?? Date.now;
    this.#drive = driveApi({ version: 'v3', rootUrl: this.#rootUrl });
    this.#http = new googleAuth.OAuth2().transporter;
  }

  /** Opens the repository folder, creating it, the folders above it and the type folders where missing. */
  static async create(options: GdriveBackendOptions): Promise<GdriveBackend> {
    const backend = new GdriveBackend(options);
    const ctx: RequestContext = { operation: 'create', target: backend.#segments.join('/') };
    const root = await backend.#repositoryFolder(true, ctx);
    if (root === undefined) throw new Error('unreachable: the repository folder was just created');
    for (const type of TYPE_FOLDERS) await backend.#folderFor(type, true, ctx);
    return backend;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    await this.#serialized(handlePath(h), () => this.#save(h, data));
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Uint8Array> {
    checkHandle(h);
    checkRangeArguments(h, offset, length);
    const ctx: RequestContext = { operation: 'load', target: handlePath(h) };
    const cached = this.#ids.get(handlePath(h));
    const file = cached ?? (await this.#lookup(h, ctx));
    try {
      return await this.#download(h, file, resolveRange(h, file.size, offset, length), ctx);
    } catch (e) {
      // Another process may have replaced the file since its id was cached: look it up once more.
      if (cached === undefined || !isBackupError(e, 'NOT_FOUND')) throw e;
      this.#ids.delete(handlePath(h));
      const fresh = await this.#lookup(h, ctx);
      return await this.#download(h, fresh, resolveRange(h, fresh.size, offset, length), ctx);
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    checkHandle(h);
    const file = await this.#lookup(h, { operation: 'stat', target: handlePath(h) });
    return { name: h.name, size: file.size };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    checkFileType(type);
    const ctx: RequestContext = { operation: 'list', target: type === 'config' ? 'config' : `${type}/` };
    const folder = await this.#folderFor(type, false, ctx);
    if (folder === undefined) return;
    const q = type === 'config' ? filesNamed(folder, 'config') : filesIn(folder);
    // Name → the copy kept so far; Drive may hold a name twice, and each name is yielded once.
    const seen = new Map<string, DriveFile>();
    for await (const page of this.#pages(q, ctx)) {
      for (const file of page) {
        if (!(type === 'config' ? file.name === 'config' : HEX_ID.test(file.name))) continue;
        const h: Handle = { type, name: file.name };
        const prior = seen.get(file.name);
        if (prior === undefined) {
          seen.set(file.name, file);
          this.#remember(h, file);
          yield { name: file.name, size: file.size };
        } else {
          seen.set(file.name, await this.#resolveDuplicates(h, [prior, file], ctx));
        }
      }
    }
  }

  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    await this.#serialized(handlePath(h), async () => {
      const ctx: RequestContext = { operation: 'remove', target: handlePath(h) };
      const folder = await this.#folderFor(h.type, false, ctx);
      this.#ids.delete(handlePath(h));
      if (folder === undefined) return;
      for (const copy of await this.#copies(folder, h, ctx)) await this.#deleteFile(copy.id, ctx);
    });
  }

  /** From about.get: usage includes the trash, which Drive counts against the quota until it is emptied. */
  async usage(): Promise<Usage> {
    const ctx: RequestContext = { operation: 'usage', target: 'the Google account' };
    const res = await this.#authorized(ctx, (authorization) =>
      this.#drive.about.get({ fields: 'storageQuota(limit,usage,usageInDrive,usageInDriveTrash)' }, this.#options(authorization)),
    );
    const quota = res.data.storageQuota ?? {};
    const count = (value: string | null | undefined) => (value === null || value === undefined ? 0 : Number(value));
    return {
      usedBytes: count(quota.usage ?? quota.usageInDrive),
      totalBytes: quota.limit === null || quota.limit === undefined ? null : Number(quota.limit),
      trashBytes: count(quota.usageInDriveTrash),
    };
  }

  /** Forgets cached ids; HTTP connections belong to Node's shared pool, so there is nothing else to release. */
  async close(): Promise<void> {
    this.#ids.clear();
    this.#folders.clear();
  }

  // ---- saving ------------------------------------------------------------------------------------------------

  async #save(h: Handle, data: Uint8Array): Promise<void> {
    const ctx: RequestContext = { operation: 'save', target: handlePath(h) };
    const folder = await this.#folderFor(h.type, true, ctx);
    if (folder === undefined) {
      throw new BackupError(
        'NOT_FOUND',
        `cannot upload ${handlePath(h)}: the repository folder ${this.location} does not exist in Google Drive; initialise the repository first`,
        { subject: handlePath(h) },
      );
    }
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const md5 = createHash('md5').update(bytes).digest('hex');
    const existing = await this.#copies(folder, h, ctx);
    const keeper = keeperOf(h, existing);
    if (keeper !== undefined && keeper.size === bytes.length && keeper.md5 === md5) {
      // Already there with this content (a retried save, or the same pack written twice): nothing to upload.
      await this.#resolveDuplicates(h, existing, ctx);
      return;
    }
    let uploaded = bytes.length <= MULTIPART_MAX_BYTES
      ? await this.#uploadMultipart(folder, h, bytes, ctx)
      : await this.#uploadResumable(folder, h, bytes, ctx);
    if (uploaded.size === undefined || (uploaded.md5 === undefined && bytes.length > 0)) {
      uploaded = await this.#metadata(uploaded.id, ctx); // the answer left fields out: ask for them
    }
    if (uploaded.size !== bytes.length || (uploaded.md5 !== undefined && uploaded.md5 !== md5)) {
      await this.#deleteFile(uploaded.id, ctx).catch(() => undefined);
      throw new BackupError(
        'UNAVAILABLE',
        `the upload of ${handlePath(h)} arrived damaged at Google Drive (${uploaded.size} bytes, expected ${bytes.length}${uploaded.md5 === md5 ? '' : ', checksum differs'}); the damaged copy was deleted and the upload is to be retried`,
        { subject: handlePath(h) },
      );
    }
    const stored: DriveFile = { ...uploaded, name: h.name, size: bytes.length, md5 };
    this.#remember(h, stored);
    // The older copies under this name are replaced (config) or redundant: the new file is complete and visible.
    for (const old of existing) await this.#deleteFile(old.id, ctx).catch(() => undefined);
  }

  async #uploadMultipart(folder: string, h: Handle, bytes: Buffer, ctx: RequestContext): Promise<PartialFile> {
    const res = await this.#authorized(ctx, (authorization) =>
      this.#drive.files.create(
        {
          requestBody: { name: h.name, parents: [folder], mimeType: FILE_MIME },
          // A fresh stream per attempt: a stream cannot be replayed after a 401.
          media: { mimeType: FILE_MIME, body: Readable.from(bytes.length === 0 ? [] : [bytes]) },
          fields: FILE_FIELDS,
        },
        this.#options(authorization),
      ),
    );
    return partialFile(res.data);
  }

  /**
   * A resumable session: the bytes go in chunks of `uploadChunkBytes` (multiples of 256 KiB, the last one shorter),
   * each continuing from what the server says it has persisted. A dropped connection or a 5xx is followed by a
   * status query (`Content-Range: bytes *\/N`) and the upload resumes from the reported offset, at most
   * MAX_SESSION_RESUMES times; after that, or when the session expired, the save fails UNAVAILABLE and RetryBackend
   * decides whether to start over. Drive creates the file only when the last byte has arrived.
   */
  async #uploadResumable(folder: string, h: Handle, bytes: Buffer, ctx: RequestContext): Promise<PartialFile> {
    const total = bytes.length;
    const init = await this.#authorized(ctx, (authorization) =>
      this.#http.request({
        url: `${this.#rootUrl}upload/drive/v3/files`,
        method: 'POST',
        params: { uploadType: 'resumable', fields: FILE_FIELDS },
        headers: {
          Authorization: authorization,
          'Content-Type': 'application/json; charset=UTF-8',
          'X-Upload-Content-Type': FILE_MIME,
          'X-Upload-Content-Length': String(total),
        },
        data: { name: h.name, parents: [folder], mimeType: FILE_MIME },
        retry: false,
      }),
    );
    const sessionUri = init.headers.get('location');
    if (sessionUri === null || sessionUri === '') {
      throw new BackupError('UNAVAILABLE', `Google Drive did not open an upload session for ${handlePath(h)}; the upload is to be retried`, {
        subject: handlePath(h),
      });
    }
    const sessionCtx: RequestContext = { ...ctx, uploadSession: true };
    // The session URI is the credential for this upload: no bearer token is sent to it, so none can expire mid-way.
    const put = async (range: string, body?: Buffer) => {
      await this.#pacer.acquire();
      return this.#http.request<drive_v3.Schema$File>({
        url: sessionUri,
        method: 'PUT',
        headers: { 'Content-Range': range, ...(body === undefined ? {} : { 'Content-Type': FILE_MIME }) },
        ...(body === undefined ? {} : { data: body }),
        validateStatus: (s) => s === 308 || (s >= 200 && s < 300),
        retry: false,
        // gaxios's default redactor walks a Buffer body index by index (it mistakes it for form data): seconds of
        // CPU per failed 8 MiB chunk. These requests carry no header or body secret, and #fail keeps none of them.
        errorRedactor: false,
      });
    };

    let offset = 0;
    let resumesLeft = MAX_SESSION_RESUMES;
    let askStatus = false;
    for (;;) {
      const queried = askStatus || offset >= total;
      const sentFrom = offset;
      let res;
      try {
        if (queried) {
          res = await put(`bytes */${total}`);
        } else {
          const end = Math.min(offset + this.#chunkBytes, total);
          res = await put(`bytes ${offset}-${end - 1}/${total}`, bytes.subarray(offset, end));
        }
      } catch (e) {
        if (!isInterruption(e) || resumesLeft === 0) throw await this.#fail(e, sessionCtx);
        resumesLeft--;
        askStatus = true;
        continue;
      }
      askStatus = false;
      if (res.status !== 308) return partialFile(res.data);
      offset = persistedEnd(res.headers.get('range'));
      // A chunk the server kept none of, or a complete upload it does not finish, must not loop forever.
      const stalled = queried ? offset >= total : offset <= sentFrom;
      if (stalled) {
        if (resumesLeft === 0) {
          throw new BackupError('UNAVAILABLE', `Google Drive stopped accepting the upload of ${handlePath(h)} at byte ${offset} of ${total}; the upload is to be retried`, {
            subject: handlePath(h),
          });
        }
        resumesLeft--;
      }
    }
  }

  async #metadata(fileId: string, ctx: RequestContext): Promise<PartialFile> {
    const res = await this.#authorized(ctx, (authorization) =>
      this.#drive.files.get({ fileId, fields: FILE_FIELDS }, this.#options(authorization)),
    );
    return partialFile(res.data);
  }

  // ---- reading -----------------------------------------------------------------------------------------------

  async #download(h: Handle, file: DriveFile, range: ResolvedRange, ctx: RequestContext): Promise<Uint8Array> {
    if (range.length === 0) return new Uint8Array(0);
    const last = range.offset + range.length - 1;
    const res = await this.#authorized(ctx, (authorization) =>
      this.#drive.files.get(
        { fileId: file.id, alt: 'media' },
        { ...this.#options(authorization, { Range: `bytes=${range.offset}-${last}` }), responseType: 'arraybuffer' },
      ),
    );
    const body = new Uint8Array(res.data as unknown as ArrayBuffer);
    // 206 carries exactly the range; a 200 is the whole file (a server may ignore Range) and is cut to it.
    const start = res.status === 206 ? 0 : range.offset;
    if (body.byteLength < start + range.length) {
      throw new BackupError(
        'INVALID_RANGE',
        `Google Drive returned ${body.byteLength} bytes for bytes ${range.offset}..${range.offset + range.length} of ${handlePath(h)}; the file is shorter than its listing says, run a repository check`,
        { subject: handlePath(h) },
      );
    }
    return res.status === 206 && body.byteLength === range.length ? body : body.slice(start, start + range.length);
  }

  /** The copy of `h` to read, after resolving duplicates; NOT_FOUND when there is none. */
  async #lookup(h: Handle, ctx: RequestContext): Promise<DriveFile> {
    const folder = await this.#folderFor(h.type, false, ctx);
    const copies = folder === undefined ? [] : await this.#copies(folder, h, ctx);
    if (copies.length === 0) {
      this.#ids.delete(handlePath(h));
      throw new BackupError('NOT_FOUND', `${handlePath(h)} does not exist in the Google Drive repository ${this.location}`, {
        subject: handlePath(h),
      });
    }
    return await this.#resolveDuplicates(h, copies, ctx);
  }

  /** Every non-trashed file named like `h` in `folder` (normally one). */
  async #copies(folder: string, h: Handle, ctx: RequestContext): Promise<DriveFile[]> {
    const out: DriveFile[] = [];
    for await (const page of this.#pages(filesNamed(folder, h.name), ctx)) out.push(...page.filter((f) => f.name === h.name));
    return out;
  }

  /**
   * Drive allows several files with one name: a save whose answer was lost and was retried, or two processes
   * saving the same pack. Every process keeps the same copy — the newest intact one (content hash matching the
   * name where Drive reports it; ties broken by id) — and deletes the others, so at least that copy always
   * survives, and a replaced config is never brought back. Deleting is best-effort: another process may be first.
   */
  async #resolveDuplicates(h: Handle, copies: readonly DriveFile[], ctx: RequestContext): Promise<DriveFile> {
    const keeper = keeperOf(h, copies);
    if (keeper === undefined) throw new Error('unreachable: no copies to resolve');
    if (copies.length > 1 && intact(h, keeper)) {
      for (const copy of copies) {
        if (copy.id !== keeper.id) await this.#deleteFile(copy.id, ctx).catch(() => undefined);
      }
    }
    this.#remember(h, keeper);
    return keeper;
  }

  /** Files matching `q`, one page (up to 1000) at a time, following nextPageToken to the end. */
  async *#pages(q: string, ctx: RequestContext): AsyncGenerator<DriveFile[]> {
    let pageToken: string | undefined;
    do {
      const token = pageToken;
      const res = await this.#authorized(ctx, (authorization) =>
        this.#drive.files.list(
          {
            q,
            fields: `nextPageToken,files(${FILE_FIELDS})`,
            pageSize: PAGE_SIZE,
            spaces: 'drive',
            ...(token === undefined ? {} : { pageToken: token }),
          },
          this.#options(authorization),
        ),
      );
      yield (res.data.files ?? []).map(driveFile).filter((f): f is DriveFile => f !== undefined);
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken !== undefined && pageToken !== '');
  }

  /** Deletes permanently (files.delete skips the trash); a file that is already gone is fine. */
  async #deleteFile(fileId: string, ctx: RequestContext): Promise<void> {
    try {
      await this.#authorized(ctx, (authorization) => this.#drive.files.delete({ fileId }, this.#options(authorization)));
    } catch (e) {
      if (!isBackupError(e, 'NOT_FOUND')) throw e;
    }
  }

  // ---- folders -----------------------------------------------------------------------------------------------

  /**
   * The folder holding files of `type`; undefined when it does not exist and `create` is false. A missing type
   * folder is created when `create` is set, but never the repository folder itself: only `create()` makes that.
   */
  async #folderFor(type: FileType, create: boolean, ctx: RequestContext): Promise<string | undefined> {
    const root = await this.#repositoryFolder(false, ctx);
    if (root === undefined || type === 'config') return root;
    return await this.#memoFolder(type, create, () => this.#childFolder(root, type, create, ctx));
  }

  async #repositoryFolder(create: boolean, ctx: RequestContext): Promise<string | undefined> {
    return await this.#memoFolder('', create, async () => {
      let parent = 'root';
      for (const segment of this.#segments) {
        const id = await this.#childFolder(parent, segment, create, { ...ctx, operation: create ? 'create' : 'open' });
        if (id === undefined) return undefined;
        parent = id;
      }
      return parent;
    });
  }

  /** Found ids are kept; a miss is not, so that a folder created later (or by `create`) is found. */
  async #memoFolder(key: string, create: boolean, find: () => Promise<string | undefined>): Promise<string | undefined> {
    const known = this.#folders.get(key);
    if (known !== undefined) {
      const id = await known.catch(() => undefined);
      if (id !== undefined || !create) return id;
    }
    const pending = find();
    this.#folders.set(key, pending);
    const settle = () => {
      if (this.#folders.get(key) === pending) this.#folders.delete(key);
    };
    pending.then((id) => id === undefined && settle(), settle);
    return await pending;
  }

  /**
   * The folder `name` inside `parent`. Drive lets two processes create same-named folders at the same moment; after
   * creating one, the oldest of the same name is used by everyone and a newer one just made (still empty) is deleted.
   */
  async #childFolder(parent: string, name: string, create: boolean, ctx: RequestContext): Promise<string | undefined> {
    const found = await this.#folderCandidates(parent, name, ctx);
    if (found[0] !== undefined || !create) return found[0];
    const res = await this.#authorized(ctx, (authorization) =>
      this.#drive.files.create({ requestBody: { name, mimeType: FOLDER_MIME, parents: [parent] }, fields: 'id' }, this.#options(authorization)),
    );
    const created = res.data.id ?? undefined;
    const after = await this.#folderCandidates(parent, name, ctx);
    const chosen = after[0] ?? created;
    if (created !== undefined && chosen !== created) await this.#deleteFile(created, ctx).catch(() => undefined);
    return chosen;
  }

  /** Ids of the folders named `name` in `parent`, oldest first. */
  async #folderCandidates(parent: string, name: string, ctx: RequestContext): Promise<string[]> {
    const folders: { id: string; createdTime: string }[] = [];
    let pageToken: string | undefined;
    do {
      const token = pageToken;
      const res = await this.#authorized(ctx, (authorization) =>
        this.#drive.files.list(
          {
            q: `'${quote(parent)}' in parents and name = '${quote(name)}' and mimeType = '${FOLDER_MIME}' and trashed = false`,
            fields: 'nextPageToken,files(id,createdTime)',
            pageSize: PAGE_SIZE,
            spaces: 'drive',
            ...(token === undefined ? {} : { pageToken: token }),
          },
          this.#options(authorization),
        ),
      );
      for (const f of res.data.files ?? []) if (f.id) folders.push({ id: f.id, createdTime: f.createdTime ?? '' });
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken !== undefined && pageToken !== '');
    folders.sort((a, b) => compareText(a.createdTime, b.createdTime) || compareText(a.id, b.id));
    return folders.map((f) => f.id);
  }

  // ---- requests ----------------------------------------------------------------------------------------------

  /**
   * Runs one authorised request: paced, with the session's current token. On 401 the session is asked once for a
   * refreshed token (refreshAfterRejection fails UNAUTHORIZED when it cannot) and the request is repeated once;
   * every other failure, including a second 401, is translated by translateDriveError.
   */
  async #authorized<T>(ctx: RequestContext, send: (authorization: string) => Promise<T>): Promise<T> {
    const token = await this.#session.accessToken();
    try {
      await this.#pacer.acquire();
      return await send(`Bearer ${token}`);
    } catch (e) {
      if (statusOf(e) !== 401) throw await this.#fail(e, ctx);
    }
    const fresh = await this.#session.refreshAfterRejection(token);
    try {
      await this.#pacer.acquire();
      return await send(`Bearer ${fresh}`);
    } catch (e) {
      throw await this.#fail(e, ctx);
    }
  }

  /** Per-call SDK options: the token, no SDK-level retries (RetryBackend decides), and the API root. */
  #options(authorization: string, headers: Record<string, string> = {}): MethodOptions {
    return { headers: { ...headers, Authorization: authorization }, retry: false, rootUrl: this.#rootUrl };
  }

  async #fail(e: unknown, ctx: RequestContext): Promise<BackupError> {
    // A full Drive is reported with the account's address, looked up only now that it is needed.
    const account = isStorageFull(e) ? await this.#accountAddress() : undefined;
    return translateDriveError(e, {
      ...ctx,
      location: this.location,
      now: this.#now,
      ...(account === undefined ? {} : { account }),
    });
  }

  #accountAddress(): Promise<string | undefined> {
    this.#account ??= this.#authorized({ operation: 'usage', target: 'the Google account' }, (authorization) =>
      this.#drive.about.get({ fields: 'user(emailAddress)' }, this.#options(authorization)),
    ).then(
      (res) => res.data.user?.emailAddress ?? undefined,
      () => {
        this.#account = undefined;
        return undefined;
      },
    );
    return this.#account;
  }

  async #serialized(key: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.#perName.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const settled = run.catch(() => undefined);
    this.#perName.set(key, settled);
    try {
      await run;
    } finally {
      if (this.#perName.get(key) === settled) this.#perName.delete(key);
    }
  }

  #remember(h: Handle, file: DriveFile): void {
    const key = handlePath(h);
    this.#ids.delete(key);
    this.#ids.set(key, file);
    if (this.#ids.size > ID_CACHE_MAX) {
      const oldest = this.#ids.keys().next();
      if (oldest.done !== true) this.#ids.delete(oldest.value);
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------------------------------

/** A file as an upload answered it, size and checksum possibly missing. */
type PartialFile = Omit<DriveFile, 'size'> & { readonly size: number | undefined };

function partialFile(data: drive_v3.Schema$File): PartialFile {
  if (typeof data.id !== 'string' || data.id === '') {
    throw new BackupError('UNAVAILABLE', 'Google Drive answered an upload without a file id; the upload is to be retried');
  }
  return {
    id: data.id,
    name: data.name ?? '',
    size: data.size === null || data.size === undefined ? undefined : Number(data.size),
    md5: data.md5Checksum ?? undefined,
    sha256: data.sha256Checksum ?? undefined,
    createdTime: data.createdTime ?? '',
  };
}

function driveFile(data: drive_v3.Schema$File): DriveFile | undefined {
  if (typeof data.id !== 'string' || typeof data.name !== 'string') return undefined;
  return {
    id: data.id,
    name: data.name,
    size: Number(data.size ?? 0),
    md5: data.md5Checksum ?? undefined,
    sha256: data.sha256Checksum ?? undefined,
    createdTime: data.createdTime ?? '',
  };
}

/** A copy whose content can be trusted: every name but config is the SHA-256 of the file (docs/format.md). */
function intact(h: Handle, file: DriveFile): boolean {
  return h.type === 'config' || file.sha256 === undefined || file.sha256 === h.name;
}

/** The copy every process keeps: the newest intact one, ties broken by id; the newest of all when none is intact. */
function keeperOf(h: Handle, copies: readonly DriveFile[]): DriveFile | undefined {
  const intactCopies = copies.filter((c) => intact(h, c));
  const pool = intactCopies.length > 0 ? intactCopies : copies;
  let best: DriveFile | undefined;
  for (const c of pool) {
    if (best === undefined || (compareText(c.createdTime, best.createdTime) || compareText(c.id, best.id)) > 0) best = c;
  }
  return best;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One past the last byte a 308 says is persisted (`Range: bytes=0-N`); 0 when the header is absent. */
function persistedEnd(range: string | null): number {
  const match = /^bytes=0-(\d+)$/.exec(range?.trim() ?? '');
  return match?.[1] === undefined ? 0 : Number(match[1]) + 1;
}

/** A string literal inside a Drive query: backslashes first, then single quotes. */
function quote(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

function filesIn(folder: string): string {
  return `'${quote(folder)}' in parents and trashed = false and mimeType != '${FOLDER_MIME}'`;
}

function filesNamed(folder: string, name: string): string {
  return `${filesIn(folder)} and name = '${quote(name)}'`;
}

function folderSegments(folder: string): string[] {
  const segments = folder.split('/').filter((s) => s !== '');
  const bad = segments.find((s) => s === '.' || s === '..' || /[\u0000-\u001f]/.test(s));
  if (segments.length === 0 || bad !== undefined) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `invalid Google Drive folder ${JSON.stringify(folder)}: give a path under My Drive such as "backup-manager/repo1", without "." or ".." parts`,
    );
  }
  return segments;
}

/** The API origin with a trailing slash; the SDK drops any path after the origin anyway (cloud-apis.md §1.1). */
function normalizeRootUrl(rootUrl: string | undefined): string {
  if (rootUrl === undefined) return DEFAULT_ROOT_URL;
  let url: URL;
  try {
    url = new URL(rootUrl);
  } catch (e) {
    throw new BackupError('INVALID_ARGUMENT', `invalid Google Drive rootUrl ${JSON.stringify(rootUrl)}: give an origin such as https://www.googleapis.com/`, { cause: e });
  }
  return `${url.origin}/`;
}
