/**
 * The storage contract every destination implements (local disk, memory, Google Drive, Dropbox, OneDrive).
 * It is deliberately small: the repository engine needs nothing more, and every cross-cutting behaviour (retry,
 * connection and bandwidth limits, append-only, dry-run) is a wrapper around a Backend, never code inside one.
 */

/** The kinds of file a repository holds; each maps to one folder (data files are fanned out by id prefix). */
export type FileType = 'config' | 'keys' | 'locks' | 'snapshots' | 'index' | 'data';

export const FILE_TYPES: readonly FileType[] = ['config', 'keys', 'locks', 'snapshots', 'index', 'data'];

/** Names one repository file. `config` has the single name "config"; every other name is a lowercase hex id. */
export interface Handle {
  readonly type: FileType;
  readonly name: string;
}

export interface FileInfo {
  readonly name: string;
  readonly size: number;
}

export interface Usage {
  /** Bytes counted against the account or disk, including trash. */
  readonly usedBytes: number;
  /** Total capacity in bytes, or null when the service reports it as unlimited. */
  readonly totalBytes: number | null;
  /** Bytes held in a trash or recycle bin that still count against quota (0 when there is none). */
  readonly trashBytes: number;
}

export interface Backend {
  /** Where the repository lives, for messages and logs. Never contains credentials. */
  readonly location: string;

  /**
   * Stores `data` under `h` atomically: a reader sees either no file or the whole file, never a prefix, even if
   * the process dies mid-save. When the call resolves the file is durable and immediately visible to `load`,
   * `stat` and `list` (read-after-write). Saving a name that exists replaces it atomically; since repository names
   * are content hashes, the content is the same. A backend must never leave a visible partial file behind.
   */
  save(h: Handle, data: Uint8Array): Promise<void>;

  /**
   * Reads `length` bytes starting at `offset` (default: from 0 to the end). A missing file fails with NOT_FOUND.
   * A range that reaches past the end of the file fails with INVALID_RANGE, a permanent error: a short read is
   * never returned as success.
   */
  load(h: Handle, offset?: number, length?: number): Promise<Uint8Array>;

  /**
   * Optional: like `load` of `out.byteLength` bytes from `offset`, read into the caller's buffer, so that a caller
   * reading range after range (a restore) reuses its buffers instead of having fresh memory mapped and zeroed for
   * every read. Same errors as `load`. A backend without it (or a wrapper that does not forward it) is read with `load`.
   */
  loadInto?(h: Handle, offset: number, out: Uint8Array): Promise<void>;

  /**
   * Optional: where the file `h` lies in the local file system, for a backend that keeps each file there as it is
   * (the file need not exist). A reader that cannot call `load`, such as a worker thread, reads ranges of it with
   * `readLocalRangeSync`, which gives the bytes and the errors `load` would. A backend whose `load` does more than
   * read that file (a wrapper that counts, limits, retries or transforms the bytes) leaves this out; a wrapper
   * forwards it only when its `load` adds nothing.
   */
  localFile?(h: Handle): LocalFile;

  /** Size of the file, or NOT_FOUND. */
  stat(h: Handle): Promise<FileInfo>;

  /**
   * Yields every file of the given type exactly once, in no particular order, including files saved before the
   * call. Files saved or removed while the listing runs may or may not appear. Temporary files never appear.
   */
  list(type: FileType): AsyncIterable<FileInfo>;

  /** Deletes the file permanently (not into a trash when the service allows that). Removing a missing file succeeds. */
  remove(h: Handle): Promise<void>;

  /** Space used and available at the destination, when the destination can tell. */
  usage?(): Promise<Usage>;

  /**
   * Optional: starts a file whose bytes are given piece by piece and whose name is given only at the end (a pack's
   * name is the hash of its content), so that a large file never has to be held in memory whole. Nothing is visible
   * under any name until `commit`, which gives the same guarantees as `save`. A backend that cannot stream (or
   * whose wrapper would have to buffer the bytes anyway) leaves this out, and callers fall back to `save`.
   */
  stage?(type: FileType): StagedFile;

  /** Releases connections and handles. The backend is unusable afterwards. */
  close(): Promise<void>;
}

/** A file of a backend that keeps its files in the local file system (see Backend.localFile). */
export interface LocalFile {
  /** the file's absolute path */
  path: string;
  /** the repository folder, which error messages name */
  root: string;
}

/**
 * A file being written through `Backend.stage`. It is invisible to `load`, `stat` and `list` until `commit`
 * resolves; like `save`'s temporary files, what a process killed while staging leaves behind is the backend's own
 * business (it never appears in a listing and is cleaned up by the backend).
 */
export interface StagedFile {
  /** Bytes appended so far. */
  readonly size: number;

  /**
   * Appends `data` after the bytes appended before (in call order, also when the caller does not wait between
   * calls). The caller may reuse `data` once the promise settles. A failed append leaves the staged file failed:
   * every later append and `commit` reject, and `discard` is what remains to do.
   */
  append(data: Uint8Array): Promise<void>;

  /**
   * Makes the appended bytes durable and visible under `h`, atomically, exactly as `save(h, <all the bytes>)`
   * would: when it resolves the file is durable and readable; a name that exists is replaced (names are content
   * hashes). Waits for appends still running. If it fails, nothing partial is visible under `h` and the staged
   * bytes are gone (no `discard` needed, though calling it is harmless). Called at most once.
   */
  commit(h: Handle): Promise<void>;

  /**
   * Abandons the file: nothing becomes visible and the temporary bytes are removed. Harmless to call more than
   * once, after a failure, or after `commit` (it then does nothing: a committed file stays).
   */
  discard(): Promise<void>;
}

/** Path of a file inside a repository, as every path-based backend lays it out: `data/ab/abcd…`, `index/…`, `config`. */
export function handlePath(h: Handle): string {
  if (h.type === 'config') return 'config';
  if (h.type === 'data') return `data/${h.name.slice(0, 2)}/${h.name}`;
  return `${h.type}/${h.name}`;
}

const HEX_ID = /^[0-9a-f]{64}$/;

/** Checks a handle's name so that no backend ever builds a path from a hostile or malformed name. */
export function assertValidHandle(h: Handle): void {
  const ok = h.type === 'config' ? h.name === 'config' : HEX_ID.test(h.name);
  if (!ok) throw new TypeError(`invalid repository file name ${JSON.stringify(h.name)} for type ${h.type}`);
}
