/**
 * A Backend on a folder of a Dropbox, through the official `dropbox` SDK: one `files/upload` per small file, upload
 * sessions (resumed at Dropbox's `correct_offset` after a lost answer) for large ones, ranged downloads, paged
 * listings. Every failure leaves through translateDropboxError; retrying is the RetryBackend wrapper's job.
 */

import { BackupError, FILE_TYPES, RequestPacer, checkFileType, checkHandle, checkRangeArguments, handlePath, resolveRange } from '@backup-manager/core-archive';
import type { Backend, FileInfo, FileType, Handle, OAuthSession, Usage } from '@backup-manager/core-archive';
import { Dropbox } from 'dropbox';
import type { DropboxResponse, files, users } from 'dropbox';
import {
  correctOffsetOf,
  dropboxErrorTags,
  isConnectionFailure,
  isDropboxHttpError,
  isRejectedAccessToken,
  translateDropboxError,
} from './errors.ts';
import type { DropboxErrorContext, DropboxOperation } from './errors.ts';

const MiB = 1024 * 1024;
/** "A single request should not upload more than 150 MiB." */
const MAX_REQUEST_BYTES = 150 * MiB;
const DEFAULT_SESSION_CHUNK_BYTES = 8 * MiB;
const DEFAULT_REQUESTS_PER_SECOND = 10;
/**
 * How often one save may pick up an upload session again after a lost answer (resend the chunk; Dropbox tells the
 * right offset). Beyond that the network is not flaky but down, and the save fails as UNAVAILABLE.
 */
const MAX_SESSION_RESUMES = 6;
const LIST_PAGE_LIMIT = 2000;
const HEX_ID = /^[0-9a-f]{64}$/;
const OVERWRITE = { '.tag': 'overwrite' } as const;

/** What the backend needs from an OAuthSession: the current access token, and a new one after Dropbox rejected one. */
export type DropboxTokenSource = Pick<OAuthSession, 'accessToken' | 'refreshAfterRejection'>;

/** The fetch the SDK calls, for API, content and download requests alike; the global `fetch` by default. */
export type DropboxFetch = (url: string, init?: RequestInit) => Promise<Response>;

export interface DropboxBackendOptions {
  /** Folder holding the repository, e.g. `/backup-manager/repo1` (inside the app folder for app-folder apps). */
  readonly root: string;
  /** The account's OAuth session; on a 401 the backend asks it for a new token once and repeats that one request. */
  readonly session: DropboxTokenSource;
  /** Replaces the HTTP client, e.g. `dropboxFakeFetch(fake.url)` in tests. */
  readonly fetch?: DropboxFetch;
  /** Files up to this size go up in one `files/upload`; larger ones in upload-session chunks of this size (default 8 MiB, below 150 MiB). */
  readonly sessionChunkBytes?: number;
  /** Upper bound on Dropbox requests started per second by this backend (default 10; Infinity disables pacing). */
  readonly requestsPerSecond?: number;
}

/** The repository's folders; `data/ab/` fan-out folders appear with their first file (uploads create parents). */
const FOLDERS = FILE_TYPES.filter((t) => t !== 'config');

export class DropboxBackend implements Backend {
  /** `dropbox:<root>`, for messages. */
  readonly location: string;
  readonly #root: string;
  /** Components of the root path, to recognise `<root>/data/ab/<id>` in recursive listings. */
  readonly #rootDepth: number;
  readonly #session: DropboxTokenSource;
  readonly #fetch: DropboxFetch | undefined;
  readonly #chunkBytes: number;
  readonly #pacer: RequestPacer;
  /** The SDK client for the current access token (a client holds exactly one token, so concurrent calls cannot mix them). */
  #client: { token: string; dbx: Dropbox } | undefined;
  #closed = false;

  /** Opens a repository folder; nothing is sent until the first operation. */
  constructor(options: DropboxBackendOptions) {
    this.#root = normalizeRoot(options.root);
    this.#rootDepth = this.#root.split('/').length - 1;
    this.location = `dropbox:${this.#root}`;
    this.#session = options.session;
    this.#fetch = options.fetch;
    this.#chunkBytes = options.sessionChunkBytes ?? DEFAULT_SESSION_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.#chunkBytes) || this.#chunkBytes < 1 || this.#chunkBytes >= MAX_REQUEST_BYTES) {
      throw new BackupError('INVALID_ARGUMENT', `sessionChunkBytes ${String(options.sessionChunkBytes)} is out of range: choose a whole number of bytes from 1 to below 150 MiB (the default is 8 MiB)`);
    }
    const rate = options.requestsPerSecond ?? DEFAULT_REQUESTS_PER_SECOND;
    if (!(rate > 0)) {
      throw new BackupError('INVALID_ARGUMENT', `requestsPerSecond ${String(options.requestsPerSecond)} must be a positive number (Infinity disables pacing)`);
    }
    this.#pacer = new RequestPacer({ requestsPerSecond: rate });
  }

  /** Opens the repository folder and creates it with its sub-folders; folders that exist are kept. */
  static async create(options: DropboxBackendOptions): Promise<DropboxBackend> {
    const backend = new DropboxBackend(options);
    // One folder at a time: parallel writes to one Dropbox provoke too_many_write_operations.
    for (const folder of FOLDERS) await backend.#createFolder(`${backend.#root}/${folder}`);
    return backend;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    this.#checkOpen();
    const path = this.#pathOf(h);
    if (data.byteLength <= this.#chunkBytes) {
      await this.#call('save', 'files/upload', path, (dbx) =>
        dbx.filesUpload({ path, mode: OVERWRITE, autorename: false, mute: true, contents: data }),
      );
      return;
    }
    await this.#saveInSession(path, data);
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Uint8Array> {
    checkHandle(h);
    checkRangeArguments(h, offset, length);
    this.#checkOpen();
    const path = this.#pathOf(h);
    if (length === 0) {
      // HTTP cannot ask for zero bytes; an empty range is valid wherever it starts inside the file or at its end.
      const { size } = await this.stat(h);
      resolveRange(h, size, offset, 0);
      return new Uint8Array(0);
    }
    const wantsRange = offset > 0 || length !== undefined;
    const range = `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    let response: DropboxResponse<files.FileMetadata & { fileBinary?: Uint8Array }>;
    try {
      response = await this.#request((dbx) => dbx.filesDownload({ path }, wantsRange ? { extraHeaders: { Range: range } } : undefined));
    } catch (e) {
      if (isDropboxHttpError(e) && e.status === 416) {
        // Starting at or past the end: legal only as the empty tail of the file (`load(h, size)`).
        const size = totalOfContentRange(e.headers?.get('content-range') ?? null);
        if (size !== undefined) {
          resolveRange(h, size, offset, length);
          return new Uint8Array(0);
        }
      }
      throw await this.#translate(e, { operation: 'load', route: 'files/download', target: path });
    }
    const body = response.result.fileBinary;
    if (body === undefined) {
      throw new BackupError('INTERNAL', `could not read ${path}: the Dropbox client returned no file content; this is a bug, please report it`, { subject: path });
    }
    // The metadata gives the whole file's size, so a range reaching past the end fails here, whatever the server sent.
    const wanted = resolveRange(h, response.result.size, offset, length);
    let bytes: Uint8Array;
    if (response.status === 206) {
      const start = startOfContentRange(headerOf(response.headers, 'content-range'));
      if (start !== wanted.offset) throw shortRead(path, 'Dropbox answered a different range than was asked for');
      bytes = body;
    } else {
      if (body.byteLength !== response.result.size) throw shortRead(path, `Dropbox sent ${body.byteLength} of ${response.result.size} bytes`);
      bytes = body.subarray(wanted.offset, wanted.offset + wanted.length);
    }
    if (bytes.byteLength !== wanted.length) throw shortRead(path, `Dropbox sent ${bytes.byteLength} of the ${wanted.length} bytes asked for`);
    // A plain Uint8Array over memory that nobody else holds (the SDK made a fresh Buffer for this download).
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async stat(h: Handle): Promise<FileInfo> {
    checkHandle(h);
    this.#checkOpen();
    const path = this.#pathOf(h);
    const { result } = await this.#call('stat', 'files/get_metadata', path, (dbx) => dbx.filesGetMetadata({ path }));
    if (result['.tag'] !== 'file') {
      throw new BackupError('NOT_FOUND', `${path} does not exist in Dropbox as a file (a ${result['.tag']} is there)`, { subject: path });
    }
    return { name: h.name, size: result.size };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    checkFileType(type);
    this.#checkOpen();
    if (type === 'config') {
      const info = await this.stat({ type: 'config', name: 'config' }).catch((e: unknown) => {
        if (e instanceof BackupError && e.code === 'NOT_FOUND') return undefined;
        throw e;
      });
      if (info !== undefined) yield info;
      return;
    }
    const folder = `${this.#root}/${type}`;
    const recursive = type === 'data';
    let page: files.ListFolderResult;
    try {
      ({ result: page } = await this.#request((dbx) => dbx.filesListFolder({ path: folder, recursive, limit: LIST_PAGE_LIMIT })));
    } catch (e) {
      // A repository copied without its empty folders simply has no files of this type.
      if (isDropboxHttpError(e) && e.status === 409 && dropboxErrorTags(e).join('/') === 'path/not_found') return;
      throw await this.#translate(e, { operation: 'list', route: 'files/list_folder', target: folder });
    }
    for (;;) {
      for (const entry of page.entries) {
        const info = recursive ? this.#dataFileOf(entry) : fileOf(entry);
        if (info !== undefined) yield info;
      }
      if (!page.has_more) return;
      const cursor = page.cursor;
      ({ result: page } = await this.#call('list', 'files/list_folder/continue', folder, (dbx) => dbx.filesListFolderContinue({ cursor })));
    }
  }

  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    this.#checkOpen();
    const path = this.#pathOf(h);
    try {
      await this.#request((dbx) => dbx.filesDeleteV2({ path }));
    } catch (e) {
      if (isDropboxHttpError(e) && e.status === 409 && dropboxErrorTags(e).join('/') === 'path_lookup/not_found') return;
      throw await this.#translate(e, { operation: 'remove', route: 'files/delete_v2', target: path });
    }
  }

  /**
   * The account's space from users/get_space_usage. In a team whose members share a pool without a personal limit,
   * the pool is what fills up, so it is reported; with a personal limit, the member's own use and limit. Deleted files
   * stay in Dropbox's history without counting against the quota, so there is no trash to report.
   */
  async usage(): Promise<Usage> {
    this.#checkOpen();
    const { result } = await this.#call('usage', 'users/get_space_usage', this.#root, (dbx) => dbx.usersGetSpaceUsage());
    return usageOf(result);
  }

  /** The SDK keeps no connections of its own (fetch pools them process-wide), so this only retires the backend. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#client = undefined;
  }

  // ---- uploads --------------------------------------------------------------------------------------------------

  /**
   * upload_session/start with the first chunk, append_v2 for the rest, finish with the commit. The file appears only
   * at finish (atomic at Dropbox), so a save that fails anywhere leaves no file under its name. An append whose answer
   * was lost is sent again; Dropbox either takes it or answers `incorrect_offset` with the offset it has, from where
   * the upload continues. A finish whose answer was lost is not repeated (it may have committed); it fails as
   * UNAVAILABLE, and the new save that RetryBackend starts overwrites the name with the same content.
   */
  async #saveInSession(path: string, data: Uint8Array): Promise<void> {
    const total = data.byteLength;
    const first = data.subarray(0, this.#chunkBytes);
    const { result: started } = await this.#call('save', 'files/upload_session/start', path, (dbx) =>
      dbx.filesUploadSessionStart({ close: false, contents: first }),
    );
    const sessionId = started.session_id;
    let offset = first.byteLength;
    let resumes = 0;
    while (offset < total) {
      const chunk = data.subarray(offset, Math.min(offset + this.#chunkBytes, total));
      const cursor = { session_id: sessionId, offset };
      try {
        await this.#request((dbx) => dbx.filesUploadSessionAppendV2({ cursor, close: false, contents: chunk }));
        offset += chunk.byteLength;
      } catch (e) {
        const correct = correctOffsetOf(e);
        const resumable = correct !== undefined ? correct <= total : isConnectionFailure(e);
        if (!resumable || resumes >= MAX_SESSION_RESUMES) {
          throw await this.#translate(e, { operation: 'save', route: 'files/upload_session/append_v2', target: path });
        }
        resumes++;
        if (correct !== undefined) offset = correct;
      }
    }
    await this.#call('save', 'files/upload_session/finish', path, (dbx) =>
      dbx.filesUploadSessionFinish({
        cursor: { session_id: sessionId, offset: total },
        commit: { path, mode: OVERWRITE, autorename: false, mute: true },
      }),
    );
  }

  async #createFolder(path: string): Promise<void> {
    try {
      await this.#request((dbx) => dbx.filesCreateFolderV2({ path, autorename: false }));
    } catch (e) {
      if (isDropboxHttpError(e) && e.status === 409 && dropboxErrorTags(e).join('/') === 'path/conflict/folder') return;
      throw await this.#translate(e, { operation: 'create', route: 'files/create_folder_v2', target: path });
    }
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  /** One paced SDK call with the current access token; a rejected token is refreshed once and the call repeated once. */
  async #request<T>(call: (dbx: Dropbox) => Promise<T>): Promise<T> {
    const token = await this.#session.accessToken();
    try {
      await this.#pacer.acquire();
      return await call(this.#clientFor(token));
    } catch (e) {
      if (!isRejectedAccessToken(e)) throw e;
    }
    const fresh = await this.#session.refreshAfterRejection(token);
    await this.#pacer.acquire();
    return await call(this.#clientFor(fresh));
  }

  /** #request, with every failure translated. */
  async #call<T>(operation: DropboxOperation, route: string, target: string, call: (dbx: Dropbox) => Promise<T>): Promise<T> {
    try {
      return await this.#request(call);
    } catch (e) {
      throw await this.#translate(e, { operation, route, target });
    }
  }

  /** translateDropboxError, after looking up whose Dropbox is full when that is the failure. */
  async #translate(e: unknown, context: DropboxErrorContext): Promise<BackupError> {
    if (isDropboxHttpError(e) && e.status === 409 && dropboxErrorTags(e).includes('insufficient_space')) {
      const account = await this.#accountName();
      if (account !== undefined) return translateDropboxError(e, { ...context, account });
    }
    return translateDropboxError(e, context);
  }

  /** `the Dropbox account of <email>`, or undefined when even that cannot be asked (the quota message then says less). */
  async #accountName(): Promise<string | undefined> {
    try {
      const { result } = await this.#request((dbx) => dbx.usersGetCurrentAccount());
      return `the Dropbox account of ${result.email}`;
    } catch {
      return undefined;
    }
  }

  #clientFor(token: string): Dropbox {
    if (this.#client?.token !== token) {
      // Only an access token: the SDK then never refreshes on its own; the session does.
      const dbx = new Dropbox(this.#fetch === undefined ? { accessToken: token } : { accessToken: token, fetch: this.#fetch });
      this.#client = { token, dbx };
    }
    return this.#client.dbx;
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new BackupError('INTERNAL', `the Dropbox backend for ${this.#root} was used after close(); this is a bug, please report it`);
    }
  }

  #pathOf(h: Handle): string {
    return `${this.#root}/${handlePath(h)}`;
  }

  /** A data file of a recursive listing of `<root>/data`, only where it belongs: `<root>/data/ab/ab…`. */
  #dataFileOf(entry: files.ListFolderResult['entries'][number]): FileInfo | undefined {
    const info = fileOf(entry);
    if (info === undefined) return undefined;
    const parts = (entry.path_lower ?? '').split('/');
    const inFanOut = parts.length === this.#rootDepth + 4 && parts.at(-2) === info.name.slice(0, 2) && parts.at(-3) === 'data';
    return inFanOut ? info : undefined;
  }
}

/** A listed file whose name is a repository id; folders, deleted entries and foreign files are not listed. */
function fileOf(entry: files.ListFolderResult['entries'][number]): FileInfo | undefined {
  if (entry['.tag'] !== 'file' || !HEX_ID.test(entry.name)) return undefined;
  return { name: entry.name, size: entry.size };
}

function usageOf(space: users.SpaceUsage): Usage {
  const allocation = space.allocation;
  switch (allocation['.tag']) {
    case 'individual':
      return { usedBytes: space.used, totalBytes: allocation.allocated, trashBytes: 0 };
    case 'team': {
      const limited = allocation.user_within_team_space_limit_type['.tag'] !== 'off' && allocation.user_within_team_space_allocated > 0;
      return limited
        ? { usedBytes: space.used, totalBytes: allocation.user_within_team_space_allocated, trashBytes: 0 }
        : { usedBytes: allocation.used, totalBytes: allocation.allocated, trashBytes: 0 };
    }
    default:
      return { usedBytes: space.used, totalBytes: null, trashBytes: 0 };
  }
}

/** `/a/b/` → `/a/b`; refuses what Dropbox would not take as a folder path, and the Dropbox root itself. */
function normalizeRoot(root: string): string {
  const trimmed = typeof root === 'string' ? root.replace(/\/+$/, '') : '';
  const parts = trimmed.split('/').slice(1);
  const ok = trimmed.startsWith('/') && parts.length > 0 && parts.every((p) => p !== '' && p !== '.' && p !== '..' && p.trim() === p);
  if (!ok) {
    throw new BackupError('INVALID_ARGUMENT', `the Dropbox repository folder ${JSON.stringify(root)} is not usable: give a folder path such as /backup-manager/repo1 (starting with "/", not the Dropbox root, no empty, "." or ".." parts, no leading or trailing spaces)`);
  }
  return trimmed;
}

function headerOf(headers: unknown, name: string): string | null {
  return typeof (headers as { get?: unknown } | undefined)?.get === 'function' ? (headers as Headers).get(name) : null;
}

/** `bytes 10-19/100` → 10. */
function startOfContentRange(value: string | null): number | undefined {
  const match = /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(value ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** The total size in a Content-Range value such as `bytes 10-19/100` (a 416 has an asterisk for the range) → 100. */
function totalOfContentRange(value: string | null): number | undefined {
  const match = /\/(\d+)\s*$/.exec(value ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function shortRead(path: string, what: string): BackupError {
  return new BackupError('UNAVAILABLE', `could not read ${path}: ${what}; the read will be retried`, { subject: path });
}
