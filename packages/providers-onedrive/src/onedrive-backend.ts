/**
 * A Backend on a folder of a OneDrive, through the official Microsoft Graph client: one `PUT …:/content` per small
 * file, an upload session with 320 KiB-aligned fragments for a large one (picked up again where the session's
 * nextExpectedRanges says after a lost connection), ranged downloads through `/content`, paged children listings and
 * permanent deletes. Every failure leaves through translateGraphError; repeating operations is RetryBackend's job.
 *
 * Atomicity needs no temporary names: a simple upload and the last fragment of an upload session each create or
 * replace the file in one step, so a save that fails anywhere leaves nothing (or the previous, identical file) under
 * its name, and upload sessions are invisible in listings.
 */

import { GraphError, ResponseType } from '@microsoft/microsoft-graph-client';
import type { Client, GraphRequest } from '@microsoft/microsoft-graph-client';
import {
  BackupError,
  FILE_TYPES,
  RequestPacer,
  checkFileType,
  checkHandle,
  checkRangeArguments,
  handlePath,
  resolveRange,
} from '@backup-manager/core-archive';
import type { Backend, FileInfo, FileType, Handle, OAuthSession, Usage } from '@backup-manager/core-archive';
import {
  isConnectionFailure,
  isItemNotFound,
  isNameConflict,
  isRejectedToken,
  graphStatusOf,
  throttleWaitMsOf,
  translateGraphError,
} from './errors.ts';
import type { GraphErrorContext } from './errors.ts';
import { createGraphClient, normalizeGraphBaseUrl, withToken } from './graph-client.ts';
import type { GraphFetch } from './graph-client.ts';
import { rootSegments } from './names.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Every fragment of an upload session but the last must be a multiple of this (320 KiB). */
export const FRAGMENT_ALIGNMENT_BYTES = 320 * KiB;
/** Each fragment request must be smaller than this (60 MiB). */
export const MAX_FRAGMENT_BYTES = 60 * MiB;
/** 32 × 320 KiB = 10 MiB, the fragment size Microsoft recommends for stable connections. */
export const DEFAULT_FRAGMENT_BYTES = 32 * FRAGMENT_ALIGNMENT_BYTES;
/** Files up to this size go up in one `PUT …:/content` (the limit every OneDrive flavour has documented). */
export const SIMPLE_UPLOAD_MAX_BYTES = 4 * MiB;
/** Children per listing page (`$top`): Graph's own default page size, accepted everywhere. */
export const DEFAULT_LIST_PAGE_SIZE = 200;
const MAX_LIST_PAGE_SIZE = 1000;
/**
 * How often one save may pick its upload session up again (after a lost answer, or when the session holds other
 * bytes than sent) before it fails as UNAVAILABLE: beyond that the network is not flaky but down.
 */
const MAX_SESSION_RESUMES = 5;
const HEX_ID = /^[0-9a-f]{64}$/;
const FAN_OUT_NAME = /^[0-9a-f]{2}$/;
const ITEM_FIELDS = ['id', 'name', 'size', 'file', 'folder'];
/** The repository's folders below its root; `data/ab/` fan-out folders are made on first use. */
const TYPE_FOLDERS = FILE_TYPES.filter((t) => t !== 'config');

/** What the backend needs from an OAuthSession: the current access token, and a new one after Graph rejected one. */
export type OnedriveTokenSource = Pick<OAuthSession, 'accessToken' | 'refreshAfterRejection'>;

export interface OnedriveBackendOptions {
  /** Folder holding the repository, as a path under the drive root, e.g. `backup-manager/repo1`. */
  readonly root: string;
  /** The account's OAuth session; on a 401 the backend asks it for a new token once and repeats that one request. */
  readonly session: OnedriveTokenSource;
  /** Microsoft Graph's origin (default `https://graph.microsoft.com/`), e.g. a national cloud's. */
  readonly graphBaseUrl?: string;
  /**
   * Replaces the fetch every request goes out through (Graph, upload and download URLs alike); tests pass
   * `loopbackFetch(fake.url)` from `@backup-manager/cloud-fakes`.
   */
  readonly fetchOverride?: GraphFetch;
  /** Upload-session fragment size: a multiple of 320 KiB below 60 MiB (default 10 MiB). */
  readonly fragmentBytes?: number;
  /** Files up to this size go up in one simple upload, larger ones in an upload session (0 to 4 MiB, default 4 MiB). */
  readonly simpleUploadMaxBytes?: number;
  /** Children per listing page (1 to 1000, default 200). */
  readonly listPageSize?: number;
  /** Most Graph requests this backend starts per second (default 10; Infinity turns spacing off). Ignored with `pacer`. */
  readonly requestsPerSecond?: number;
  /** A pacer shared by every backend of one account, so that together they respect the rate and Graph's throttling. */
  readonly pacer?: RequestPacer;
  /** Milliseconds since the epoch (default Date.now), for Retry-After dates. */
  readonly now?: () => number;
}

/** The driveItem properties this backend reads. */
interface DriveItem {
  readonly id?: string;
  readonly name?: string;
  readonly size?: number;
  readonly file?: object;
  readonly folder?: object;
}

interface ChildrenPage {
  readonly value?: DriveItem[];
  readonly '@odata.nextLink'?: string;
}

/** An upload session as createUploadSession, a fragment's 202 and the status GET describe it. */
interface UploadSessionAnswer {
  readonly uploadUrl?: string;
  readonly nextExpectedRanges?: string[];
}

interface DriveQuotaFacet {
  readonly total?: unknown;
  readonly used?: unknown;
  readonly deleted?: unknown;
}

interface Identity {
  readonly displayName?: unknown;
  readonly email?: unknown;
}

interface DriveResource {
  readonly quota?: DriveQuotaFacet;
  readonly owner?: { readonly user?: Identity; readonly group?: Identity; readonly application?: Identity };
}

export class OnedriveBackend implements Backend {
  /** `onedrive:<root>`, for messages. */
  readonly location: string;
  readonly #root: readonly string[];
  readonly #session: OnedriveTokenSource;
  readonly #client: Client;
  readonly #fragmentBytes: number;
  readonly #simpleMaxBytes: number;
  readonly #pageSize: number;
  readonly #pacer: RequestPacer;
  readonly #now: () => number;
  /** Folder creations in flight, by lower-cased path, shared by the saves that found the folder missing. */
  readonly #creatingFolders = new Map<string, Promise<void>>();
  /** Whose OneDrive this is, looked up once for a full-quota message. */
  #account: Promise<string | undefined> | undefined;
  /** Set once the drive answered that it cannot delete permanently; removes then use the recycle bin. */
  #recycleOnly = false;
  #closed = false;

  /** Opens a repository folder; nothing is sent until the first operation. Use `create` to make the folders. */
  constructor(options: OnedriveBackendOptions) {
    this.#root = rootSegments(options.root);
    this.location = `onedrive:${this.#root.join('/')}`;
    this.#session = options.session;
    this.#fragmentBytes = options.fragmentBytes ?? DEFAULT_FRAGMENT_BYTES;
    if (!Number.isSafeInteger(this.#fragmentBytes) || this.#fragmentBytes < FRAGMENT_ALIGNMENT_BYTES ||
      this.#fragmentBytes % FRAGMENT_ALIGNMENT_BYTES !== 0 || this.#fragmentBytes >= MAX_FRAGMENT_BYTES) {
      throw new BackupError('INVALID_ARGUMENT', `fragmentBytes ${String(options.fragmentBytes)} is not usable: OneDrive needs a multiple of 320 KiB (327680 bytes) below 60 MiB; the default is 10 MiB (32 × 320 KiB)`);
    }
    this.#simpleMaxBytes = options.simpleUploadMaxBytes ?? SIMPLE_UPLOAD_MAX_BYTES;
    if (!Number.isSafeInteger(this.#simpleMaxBytes) || this.#simpleMaxBytes < 0 || this.#simpleMaxBytes > SIMPLE_UPLOAD_MAX_BYTES) {
      throw new BackupError('INVALID_ARGUMENT', `simpleUploadMaxBytes ${String(options.simpleUploadMaxBytes)} is out of range: choose a whole number of bytes from 0 to 4 MiB (the default)`);
    }
    this.#pageSize = options.listPageSize ?? DEFAULT_LIST_PAGE_SIZE;
    if (!Number.isSafeInteger(this.#pageSize) || this.#pageSize < 1 || this.#pageSize > MAX_LIST_PAGE_SIZE) {
      throw new BackupError('INVALID_ARGUMENT', `listPageSize ${String(options.listPageSize)} is out of range: choose 1 to 1000 (the default is 200)`);
    }
    this.#pacer = options.pacer ?? new RequestPacer(options.requestsPerSecond === undefined ? {} : { requestsPerSecond: options.requestsPerSecond });
    this.#now = options.now ?? Date.now;
    this.#client = createGraphClient({
      baseUrl: normalizeGraphBaseUrl(options.graphBaseUrl),
      ...(options.fetchOverride === undefined ? {} : { fetch: options.fetchOverride }),
    });
  }

  /** Opens the repository folder, creating it, the folders above it and its type folders where missing. */
  static async create(options: OnedriveBackendOptions): Promise<OnedriveBackend> {
    const backend = new OnedriveBackend(options);
    // One folder at a time, so that the first one creates the path above it once.
    for (const type of TYPE_FOLDERS) {
      const folder = [...backend.#root, type];
      try {
        await backend.#ensureFolder(folder);
      } catch (e) {
        throw await backend.#translate(e, { operation: 'create', target: folder.join('/') });
      }
    }
    return backend;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    this.#checkOpen();
    const segments = this.#segmentsOf(h);
    if (data.byteLength <= this.#simpleMaxBytes) await this.#saveSimple(segments, data);
    else await this.#saveInSession(segments, data);
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Uint8Array> {
    checkHandle(h);
    checkRangeArguments(h, offset, length);
    this.#checkOpen();
    if (length === 0) {
      // HTTP cannot ask for zero bytes; an empty range is valid wherever it starts inside the file or at its end.
      const { size } = await this.stat(h);
      resolveRange(h, size, offset, 0);
      return new Uint8Array(0);
    }
    const segments = this.#segmentsOf(h);
    const target = segments.join('/');
    const wantsRange = offset > 0 || length !== undefined;
    const range = `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    let body: Uint8Array;
    let response: Response;
    try {
      // /content answers 302 to a pre-authenticated download URL; the SDK follows it and keeps the Range header.
      response = await this.#graph(`${itemRef(segments)}/content`, async (request) => {
        let get = request.responseType(ResponseType.RAW);
        if (wantsRange) get = get.header('Range', range);
        const answer = (await get.get()) as Response;
        if (!answer.ok && answer.status !== 416) throw await graphErrorOf(answer);
        return answer;
      });
      body = new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw await this.#translate(e, { operation: 'load', target });
    }
    if (response.status === 416) {
      // Starting at or past the end: legal only as the empty tail of the file (`load(h, size)`).
      const size = totalOfContentRange(response.headers.get('content-range'));
      if (size === undefined) {
        throw new BackupError('INVALID_RANGE', `cannot read ${range.slice(6)} of ${target}: OneDrive says the range lies outside the file; run a repository check`, { subject: target });
      }
      resolveRange(h, size, offset, length);
      return new Uint8Array(0);
    }
    if (response.status === 206) {
      const answered = contentRangeOf(response.headers.get('content-range'));
      if (answered === undefined || answered.start !== offset) throw shortRead(target, 'OneDrive answered a different range than was asked for');
      const wanted = resolveRange(h, answered.total, offset, length);
      if (body.byteLength !== wanted.length) throw shortRead(target, `OneDrive sent ${body.byteLength} of the ${wanted.length} bytes asked for`);
      return body;
    }
    // 200: the whole file (no range asked for, or the service ignored it, which Graph documents it may do).
    const wanted = resolveRange(h, body.byteLength, offset, length);
    return wanted.offset === 0 && wanted.length === body.byteLength ? body : body.slice(wanted.offset, wanted.offset + wanted.length);
  }

  async stat(h: Handle): Promise<FileInfo> {
    checkHandle(h);
    this.#checkOpen();
    const segments = this.#segmentsOf(h);
    const target = segments.join('/');
    const item = await this.#call<DriveItem>({ operation: 'stat', target }, itemRef(segments), (request) => request.select(ITEM_FIELDS).get());
    if (item.file === undefined || typeof item.size !== 'number') {
      throw new BackupError('NOT_FOUND', `${target} does not exist in OneDrive as a file (a folder is there)`, { subject: target });
    }
    return { name: h.name, size: item.size };
  }

  /**
   * Yields the files of one type. Each folder is read to its last page before its files are yielded, so that files
   * removed while a listing runs cannot make the paging skip a file that stays; a folder holds few enough entries
   * for that (data files are spread over 256 fan-out folders).
   */
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
    const folder = [...this.#root, type];
    if (type !== 'data') {
      for (const item of await this.#children(folder)) {
        const info = fileInfoOf(item);
        if (info !== undefined) yield info;
      }
      return;
    }
    const fanOut = (await this.#children(folder)).filter((item) => item.folder !== undefined && FAN_OUT_NAME.test(item.name ?? ''));
    for (const sub of fanOut) {
      const prefix = sub.name ?? '';
      for (const item of await this.#children([...folder, prefix])) {
        const info = fileInfoOf(item);
        if (info !== undefined && info.name.startsWith(prefix)) yield info;
      }
    }
  }

  /**
   * Deletes the file for good with `permanentDelete`, because OneDrive's recycle bin still counts against the quota.
   * Where the drive cannot delete permanently, the file goes to the recycle bin (and `usage().trashBytes` shows it).
   * A missing file, or a folder where the file would be, is left as it is.
   */
  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    this.#checkOpen();
    const segments = this.#segmentsOf(h);
    const target = segments.join('/');
    try {
      const item = await this.#graph<DriveItem>(itemRef(segments), (request) => request.select(['id', 'file']).get());
      if (item.file === undefined || typeof item.id !== 'string') return;
      const byId = `/me/drive/items/${encodeURIComponent(item.id)}`;
      if (!this.#recycleOnly) {
        try {
          await this.#graph(`${byId}/permanentDelete`, (request) => request.post(undefined));
          return;
        } catch (e) {
          if (!cannotDeletePermanently(e)) throw e;
        }
      }
      await this.#graph(byId, (request) => request.delete());
      this.#recycleOnly = true;
    } catch (e) {
      if (isItemNotFound(e)) return;
      throw await this.#translate(e, { operation: 'remove', target });
    }
  }

  /**
   * The drive's quota facet from GET /me/drive. `used` counts the recycle bin, which `deleted` reports on its own;
   * a drive without a usable total (unlimited plans report none) has `totalBytes: null`.
   */
  async usage(): Promise<Usage> {
    this.#checkOpen();
    const drive = await this.#call<DriveResource>({ operation: 'usage', target: this.#root.join('/') }, '/me/drive', (request) => request.select(['quota']).get());
    const quota = drive.quota;
    const used = byteCount(quota?.used);
    if (used === undefined) {
      // Graph documents the quota facet as optional; without it there is nothing to report, and asking again will not help.
      throw new BackupError('INTERNAL', `could not read the quota of ${this.#root.join('/')}: OneDrive reports no storage quota for this drive, so its capacity cannot be monitored`, { subject: this.#root.join('/') });
    }
    const total = byteCount(quota?.total);
    return { usedBytes: used, totalBytes: total === undefined || total === 0 ? null : total, trashBytes: byteCount(quota?.deleted) ?? 0 };
  }

  /** The Graph client keeps no connections of its own (fetch pools them process-wide), so this only retires the backend. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  // ---- uploads --------------------------------------------------------------------------------------------------

  /** One `PUT …:/content` that creates or replaces the file (conflict behaviour `replace`). */
  async #saveSimple(segments: readonly string[], data: Uint8Array): Promise<void> {
    const target = segments.join('/');
    const body = asBuffer(data);
    let item: DriveItem;
    try {
      item = await this.#inParentFolder(segments, () =>
        this.#graph<DriveItem>(`${itemRef(segments)}/content`, (request) =>
          request
            .query({ '@microsoft.graph.conflictBehavior': 'replace' })
            .header('Content-Type', 'application/octet-stream')
            .put(body),
        ),
      );
    } catch (e) {
      throw await this.#translate(e, { operation: 'save', target });
    }
    checkStoredSize(item, data.byteLength, target);
  }

  /**
   * createUploadSession (declaring the size, so that a full drive refuses before any byte is sent), then the
   * fragments in order. The file appears only when the last fragment commits it. A session that fails is cancelled
   * (best effort; it would expire anyway) and the save fails with the translated error: an expired or out-of-step
   * session is UNAVAILABLE, so RetryBackend starts the save over in a new one.
   */
  async #saveInSession(segments: readonly string[], data: Uint8Array): Promise<void> {
    const target = segments.join('/');
    const name = segments.at(-1) ?? '';
    let uploadUrl: string;
    try {
      const session = await this.#inParentFolder(segments, () =>
        this.#graph<UploadSessionAnswer>(`${itemRef(segments)}/createUploadSession`, (request) =>
          request.post({ item: { '@microsoft.graph.conflictBehavior': 'replace', name, fileSize: data.byteLength } }),
        ),
      );
      if (typeof session.uploadUrl !== 'string' || !session.uploadUrl.startsWith('https://')) {
        throw new BackupError('INTERNAL', `could not save ${target}: OneDrive answered createUploadSession without a usable uploadUrl; this is a bug, please report it`, { subject: target });
      }
      uploadUrl = session.uploadUrl;
    } catch (e) {
      throw await this.#translate(e, { operation: 'save', target });
    }
    try {
      await this.#sendFragments(uploadUrl, segments, data);
    } catch (e) {
      const error = await this.#translate(e, { operation: 'save', target, uploadSession: true });
      if (!isItemNotFound(e)) await this.#cancelSession(uploadUrl);
      throw error;
    }
  }

  /**
   * PUTs `data` to the session in fragments of `fragmentBytes` with `Content-Range`, each starting where the service
   * expects the next byte. After a fragment's answer is lost, or when the service says it holds other bytes than
   * were sent (416), the session's status (GET on the uploadUrl) tells where to go on, a bounded number of times.
   */
  async #sendFragments(uploadUrl: string, segments: readonly string[], data: Uint8Array): Promise<void> {
    const target = segments.join('/');
    const total = data.byteLength;
    let offset = 0;
    /** The end of the furthest fragment sent: the session cannot hold bytes beyond it. */
    let sentUpTo = 0;
    let resumes = 0;
    const resume = async (cause: unknown): Promise<number | 'committed'> => {
      if (resumes >= MAX_SESSION_RESUMES) throw cause;
      resumes++;
      return this.#resumePoint(uploadUrl, segments, total, sentUpTo);
    };
    for (;;) {
      const end = Math.min(offset + this.#fragmentBytes, total);
      sentUpTo = Math.max(sentUpTo, end);
      const fragment = asBuffer(data.subarray(offset, end));
      const contentRange = `bytes ${offset}-${end - 1}/${total}`;
      let answer: UploadSessionAnswer & DriveItem;
      try {
        answer = await this.#paced(() =>
          this.#client
            .api(uploadUrl)
            .headers({ 'Content-Type': 'application/octet-stream', 'Content-Range': contentRange })
            .put(fragment) as Promise<UploadSessionAnswer & DriveItem>,
        );
      } catch (e) {
        if (!isConnectionFailure(e) && graphStatusOf(e) !== 416) throw e;
        const next = await resume(e);
        if (next === 'committed') return;
        offset = next;
        continue;
      }
      if (typeof answer?.id === 'string') {
        // 200/201 with the driveItem: the last fragment committed the file.
        checkStoredSize(answer, total, target);
        return;
      }
      const next = nextExpectedOffset(answer, total);
      if (next !== undefined && next > sentUpTo) throw outOfStep(target);
      if (next === undefined || next === total) {
        throw new BackupError('UNAVAILABLE', `could not save ${target}: the OneDrive upload session accepted every byte but did not create the file; the save will start over`, { subject: target });
      }
      if (next < end) {
        // The service kept less than was sent: go on from where it says, within the same bound as a lost answer.
        if (resumes >= MAX_SESSION_RESUMES) {
          throw new BackupError('UNAVAILABLE', `could not save ${target}: the OneDrive upload session keeps losing fragments; the save will start over`, { subject: target });
        }
        resumes++;
      }
      offset = next;
    }
  }

  /**
   * Where to continue a session after a lost answer: the start of its first nextExpectedRanges entry. When the lost
   * answer was the last fragment's, the session may be gone because it committed the file: then the file, if it is
   * there with every byte, means the save is done.
   */
  async #resumePoint(uploadUrl: string, segments: readonly string[], total: number, sentUpTo: number): Promise<number | 'committed'> {
    let status: UploadSessionAnswer;
    try {
      status = await this.#paced(() => this.#client.api(uploadUrl).get() as Promise<UploadSessionAnswer>);
    } catch (e) {
      if (sentUpTo === total && isItemNotFound(e)) {
        const size = await this.#sizeOf(segments);
        if (size === total) return 'committed';
      }
      throw e;
    }
    const next = nextExpectedOffset(status, total);
    // The session cannot hold bytes that were never sent: it is not in step with this save.
    if (next !== undefined && next > sentUpTo) throw outOfStep(segments.join('/'));
    if (next === undefined || next === total) {
      throw new BackupError('UNAVAILABLE', `could not save ${segments.join('/')}: the OneDrive upload session holds every byte but did not create the file; the save will start over`, { subject: segments.join('/') });
    }
    return next;
  }

  /** DELETE on the uploadUrl, so that a failed save leaves no session behind; its own failure changes nothing. */
  async #cancelSession(uploadUrl: string): Promise<void> {
    try {
      await this.#paced(() => this.#client.api(uploadUrl).delete() as Promise<unknown>);
    } catch {
      // The session expires on its own; the save's error is what matters.
    }
  }

  /** Size of the file at `segments`, or undefined when there is none. */
  async #sizeOf(segments: readonly string[]): Promise<number | undefined> {
    try {
      const item = await this.#graph<DriveItem>(itemRef(segments), (request) => request.select(ITEM_FIELDS).get());
      return item.file !== undefined && typeof item.size === 'number' ? item.size : undefined;
    } catch (e) {
      if (isItemNotFound(e)) return undefined;
      throw e;
    }
  }

  // ---- folders --------------------------------------------------------------------------------------------------

  /**
   * Runs a request that creates the file at `segments`; when it fails because the parent folder is missing (a new
   * `data/ab/` fan-out folder, or a repository copied without its empty folders), creates the folder and runs it once
   * more. OneDrive may create missing parents of a path upload by itself, but that is not documented.
   */
  async #inParentFolder<T>(segments: readonly string[], request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (e) {
      if (!isItemNotFound(e)) throw e;
    }
    await this.#ensureFolder(segments.slice(0, -1));
    return await request();
  }

  /** Makes sure the folder exists, creating it and the folders above it where missing. Concurrent callers share the work. */
  #ensureFolder(segments: readonly string[]): Promise<void> {
    const key = segments.join('/').toLowerCase();
    let pending = this.#creatingFolders.get(key);
    if (pending === undefined) {
      pending = this.#createFolder(segments).finally(() => this.#creatingFolders.delete(key));
      this.#creatingFolders.set(key, pending);
    }
    return pending;
  }

  async #createFolder(segments: readonly string[]): Promise<void> {
    const parent = segments.slice(0, -1);
    const name = segments.at(-1) ?? '';
    const children = parent.length === 0 ? '/me/drive/root/children' : `${itemRef(parent)}/children`;
    const post = () =>
      this.#graph(children, (request) => request.post({ name, folder: {}, '@microsoft.graph.conflictBehavior': 'fail' }));
    try {
      await post();
      return;
    } catch (e) {
      if (isNameConflict(e)) return this.#checkIsFolder(segments);
      // A 400 here usually means the parent is a file, not a folder: say so rather than "malformed request".
      if (graphStatusOf(e) === 400 && parent.length > 0) await this.#checkIsFolder(parent);
      if (!isItemNotFound(e) || parent.length === 0) throw e;
    }
    await this.#ensureFolder(parent);
    try {
      await post();
    } catch (e) {
      if (isNameConflict(e)) return this.#checkIsFolder(segments);
      throw e;
    }
  }

  /** After a name conflict: a folder of that name is what was wanted; a file there is refused. */
  async #checkIsFolder(segments: readonly string[]): Promise<void> {
    const item = await this.#graph<DriveItem>(itemRef(segments), (request) => request.select(ITEM_FIELDS).get());
    if (item.folder === undefined) {
      const path = segments.join('/');
      throw new BackupError('PERMISSION_DENIED', `could not create the folder ${path}: a file of that name is in the way in OneDrive; move or rename it, then run the operation again`, { subject: path });
    }
  }

  /** Every child of a folder, across all pages; none when the folder does not exist. */
  async #children(segments: readonly string[]): Promise<DriveItem[]> {
    const target = segments.join('/');
    const context: GraphErrorContext = { operation: 'list', target };
    let page: ChildrenPage;
    try {
      page = await this.#graph<ChildrenPage>(`${itemRef(segments)}/children`, (request) => request.top(this.#pageSize).select(ITEM_FIELDS).get());
    } catch (e) {
      // A repository copied without its empty folders simply has no files of this type.
      if (isItemNotFound(e)) return [];
      throw await this.#translate(e, context);
    }
    const items: DriveItem[] = [...(page.value ?? [])];
    for (let next = page['@odata.nextLink']; next !== undefined; next = page['@odata.nextLink']) {
      if (typeof next !== 'string' || !next.startsWith('https://')) {
        throw new BackupError('INTERNAL', `could not list ${target}: OneDrive gave an unusable link to the next page; this is a bug, please report it`, { subject: target });
      }
      const link = next;
      page = await this.#call<ChildrenPage>(context, link, (request) => request.get());
      items.push(...(page.value ?? []));
    }
    return items;
  }

  // ---- requests -------------------------------------------------------------------------------------------------

  /**
   * One paced Graph API request with the current access token; when Graph rejects the token (401), the session is
   * asked for a new one once and the request is repeated once. `path` is relative to the Graph base URL, or absolute.
   */
  async #graph<T>(path: string, send: (request: GraphRequest) => Promise<T>): Promise<T> {
    const token = await this.#session.accessToken();
    try {
      return await this.#paced(() => send(withToken(this.#client.api(path), token)));
    } catch (e) {
      if (!isRejectedToken(e)) throw e;
    }
    const fresh = await this.#session.refreshAfterRejection(token);
    return await this.#paced(() => send(withToken(this.#client.api(path), fresh)));
  }

  /** #graph, with every failure translated. */
  async #call<T>(context: GraphErrorContext, path: string, send: (request: GraphRequest) => Promise<T>): Promise<T> {
    try {
      return await this.#graph(path, send);
    } catch (e) {
      throw await this.#translate(e, context);
    }
  }

  /** Waits for the pacer, sends, and holds the account's later requests when Graph answers with Retry-After. */
  async #paced<T>(send: () => Promise<T>): Promise<T> {
    await this.#pacer.acquire();
    try {
      return await send();
    } catch (e) {
      const waitMs = throttleWaitMsOf(e, this.#now);
      if (waitMs !== undefined) this.#pacer.holdFor(waitMs);
      throw e;
    }
  }

  /** translateGraphError, after looking up whose OneDrive is full when that is the failure. */
  async #translate(e: unknown, context: GraphErrorContext): Promise<BackupError> {
    const full = { ...context, now: this.#now };
    const status = graphStatusOf(e);
    if (status === 507 || (e instanceof GraphError && e.code === 'quotaLimitReached')) {
      const account = await this.#accountName();
      if (account !== undefined) return translateGraphError(e, { ...full, account });
    }
    return translateGraphError(e, full);
  }

  /** `the OneDrive of <name> (<email>)` from the drive's owner, or undefined when it cannot be looked up. */
  #accountName(): Promise<string | undefined> {
    this.#account ??= this.#graph<DriveResource>('/me/drive', (request) => request.select(['owner']).get()).then(
      (drive) => {
        const owner = drive.owner?.user ?? drive.owner?.group ?? drive.owner?.application;
        const name = typeof owner?.displayName === 'string' && owner.displayName !== '' ? owner.displayName : undefined;
        const email = typeof owner?.email === 'string' && owner.email !== '' ? owner.email : undefined;
        if (name === undefined && email === undefined) return undefined;
        return `the OneDrive of ${name ?? email}${name !== undefined && email !== undefined ? ` (${email})` : ''}`;
      },
      () => {
        this.#account = undefined;
        return undefined;
      },
    );
    return this.#account;
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new BackupError('INTERNAL', `the OneDrive backend for ${this.#root.join('/')} was used after close(); this is a bug, please report it`);
    }
  }

  #segmentsOf(h: Handle): string[] {
    return [...this.#root, ...handlePath(h).split('/')];
  }
}

/** Graph's path-based address of a drive item: `/me/drive/root:/a/b:` (each segment percent-encoded; the SDK does not). */
function itemRef(segments: readonly string[]): string {
  return `/me/drive/root:/${segments.map((s) => encodeURIComponent(s)).join('/')}:`;
}

/** A Buffer over exactly the bytes of `data` (the SDK would send the whole underlying ArrayBuffer of any other view). */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A listed child whose name is a repository id; folders and foreign files are not listed. */
function fileInfoOf(item: DriveItem): FileInfo | undefined {
  if (item.file === undefined || typeof item.name !== 'string' || !HEX_ID.test(item.name) || typeof item.size !== 'number') return undefined;
  return { name: item.name, size: item.size };
}

/** The start of the first `nextExpectedRanges` entry (`"26-"`, `"12345-55232"`), if it is one within the file. */
function nextExpectedOffset(answer: UploadSessionAnswer | undefined, total: number): number | undefined {
  const ranges = answer?.nextExpectedRanges;
  if (!Array.isArray(ranges)) return undefined;
  if (ranges.length === 0) return total;
  const match = /^(\d+)-(\d*)$/.exec(String(ranges[0]).trim());
  if (match === null) return undefined;
  const start = Number(match[1]);
  return Number.isSafeInteger(start) && start <= total ? start : undefined;
}

/** Permanent deletion is not offered on this drive (personal OneDrive may refuse it); the recycle bin is the fallback. */
function cannotDeletePermanently(e: unknown): boolean {
  const status = graphStatusOf(e);
  return status === 400 || status === 403 || status === 405 || status === 501;
}

function checkStoredSize(item: DriveItem, expected: number, target: string): void {
  if (typeof item.size === 'number' && item.size !== expected) {
    throw new BackupError('UNAVAILABLE', `could not save ${target}: OneDrive stored ${item.size} of ${expected} bytes; the save will start over`, { subject: target });
  }
}

/** A byte count from Graph's JSON (Int64 numbers), or undefined when it is absent or not one. */
function byteCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/** A GraphError made from a raw (ResponseType.RAW) answer, in the shape the SDK gives to the others. */
async function graphErrorOf(response: Response): Promise<GraphError> {
  const text = await response.text().catch(() => '');
  let envelope: { error?: { code?: unknown; message?: unknown } } | undefined;
  try {
    envelope = JSON.parse(text) as typeof envelope;
  } catch {
    envelope = undefined;
  }
  const error = envelope?.error;
  const e = new GraphError(response.status, typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`);
  e.code = typeof error?.code === 'string' ? error.code : null;
  e.body = error === undefined ? text : JSON.stringify(error);
  e.headers = response.headers;
  return e;
}

/** `bytes 10-19/100` → start 10, total 100. */
function contentRangeOf(value: string | null): { start: number; total: number } | undefined {
  const match = /^\s*bytes\s+(\d+)-\d+\/(\d+)\s*$/i.exec(value ?? '');
  return match?.[1] === undefined || match[2] === undefined ? undefined : { start: Number(match[1]), total: Number(match[2]) };
}

/** The total size at the end of a Content-Range value (`bytes 0-9/100`, or the asterisk form of a 416) → 100. */
function totalOfContentRange(value: string | null): number | undefined {
  const match = /\/(\d+)\s*$/.exec(value ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function outOfStep(target: string): BackupError {
  return new BackupError('UNAVAILABLE', `could not save ${target}: the OneDrive upload session reports bytes that were never sent; the save will start over`, { subject: target });
}

function shortRead(target: string, what: string): BackupError {
  return new BackupError('UNAVAILABLE', `could not read ${target}: ${what}; the read will be retried`, { subject: target });
}
