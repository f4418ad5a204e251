/**
 * A Backend on a local (or mounted) folder, laid out as docs/format.md describes. Files are written into `tmp/`
 * (piece by piece for `stage`, in one piece for `save`), synced, renamed into place and the folder synced, so a
 * crash leaves either no file or the whole file, never a prefix.
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { BackupError } from '../errors.ts';
import { handlePath } from './backend.ts';
import type { Backend, FileInfo, FileType, Handle, LocalFile, StagedFile, Usage } from './backend.ts';
import { checkFileType, checkHandle, checkRangeArguments, resolveRange } from './checks.ts';

/** The folders a repository consists of; `data` holds the `ab/` fan-out folders, created when first needed. */
const FOLDERS = ['keys', 'locks', 'snapshots', 'index', 'data', 'tmp'] as const;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const DAY_MS = 24 * 60 * 60 * 1000;
const HEX_ID = /^[0-9a-f]{64}$/;
const FAN_OUT_DIR = /^[0-9a-f]{2}$/;

/** What the local backend was doing when the file system failed; it shapes the message. */
export type LocalOperation = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'usage' | 'cleanup';

const VERBS: Record<LocalOperation, string> = {
  create: 'create',
  save: 'write',
  load: 'read',
  stat: 'inspect',
  list: 'list',
  remove: 'delete',
  usage: 'measure the disk of',
  cleanup: 'clean up',
};

/**
 * The one place where Node file-system errors become BackupErrors. Decides by `code` only; the message names the
 * path and the repository folder and says what to do, and never contains file data.
 */
export function translateFsError(e: unknown, operation: LocalOperation, root: string, target: string): BackupError {
  if (e instanceof BackupError) return e;
  const code = errorCode(e);
  const verb = VERBS[operation];
  const options = { cause: e, subject: target };
  switch (code) {
    case 'ENOENT':
      if (operation === 'save' || operation === 'create' || operation === 'usage') {
        return new BackupError(
          'NOT_FOUND',
          `cannot ${verb} ${target}: the repository folder ${root} or one of its folders does not exist; check the repository path, or initialise the repository first`,
          options,
        );
      }
      return new BackupError('NOT_FOUND', `${target} does not exist in the repository at ${root}`, options);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new BackupError(
        'PERMISSION_DENIED',
        `cannot ${verb} ${target}: ${code === 'EROFS' ? 'the file system is read-only' : 'permission denied'}; make sure this user may read and write the repository folder ${root} and everything in it`,
        options,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new BackupError(
        'QUOTA_EXCEEDED',
        `the disk holding ${root} is full${code === 'EDQUOT' ? ' (disk quota exceeded)' : ''}: free space or move the repository to a larger disk, then run the operation again`,
        options,
      );
    default:
      return new BackupError(
        'IO',
        `cannot ${verb} ${target}: ${code ?? (e instanceof Error ? e.message : String(e))}; check the disk and the file system holding ${root}`,
        options,
      );
  }
}

function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : undefined;
}

function endedEarly(target: string, offset: number, length: number, done: number): BackupError {
  return new BackupError(
    'INVALID_RANGE',
    `${target} ended after ${offset + done} bytes while reading ${length} bytes from byte ${offset}; the file changed while being read, run a repository check`,
    { subject: target },
  );
}

/**
 * Reads `out.byteLength` bytes of `h` from `offset` into `out`, synchronously, from where `Backend.localFile` says
 * the file lies: what LocalBackend's `loadInto` does, with the same errors, for a thread that holds no backend.
 */
export function readLocalRangeSync(h: Handle, file: LocalFile, offset: number, out: Uint8Array): void {
  checkHandle(h);
  checkRangeArguments(h, offset, out.byteLength);
  let fd: number | undefined;
  try {
    fd = fs.openSync(file.path, 'r');
    const range = resolveRange(h, fs.fstatSync(fd).size, offset, out.byteLength);
    let done = 0;
    while (done < range.length) {
      const bytesRead = fs.readSync(fd, out, done, range.length - done, range.offset + done);
      if (bytesRead === 0) throw endedEarly(file.path, range.offset, range.length, done);
      done += bytesRead;
    }
  } catch (e) {
    throw translateFsError(e, 'load', file.root, file.path);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export class LocalBackend implements Backend {
  /** The absolute repository folder. */
  readonly location: string;
  readonly #root: string;

  /** Opens an existing repository folder; nothing is touched until the first operation. */
  constructor(root: string) {
    this.#root = path.resolve(root);
    this.location = this.#root;
  }

  /** Creates the repository folder and its sub-folders (mode 0700). Folders that already exist are kept. */
  static async create(root: string): Promise<LocalBackend> {
    const backend = new LocalBackend(root);
    for (const dir of [backend.#root, ...FOLDERS.map((f) => path.join(backend.#root, f))]) {
      try {
        await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
      } catch (e) {
        throw translateFsError(e, 'create', backend.#root, dir);
      }
    }
    return backend;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    // A save is a staged file of one piece: the same temporary file, sync, rename and folder sync as a pack.
    const staged = this.#staged(h.type, this.#pathOf(h));
    // A failed append fails the commit, which removes the temporary file and throws that failure.
    await staged.append(data).catch(() => undefined);
    await staged.commit(h);
  }

  /** A file written into `tmp/` as it is appended to, then synced and renamed into place like `save`. */
  stage(type: FileType): StagedFile {
    checkFileType(type);
    return this.#staged(type, undefined);
  }

  /** `target`: the final path when it is known already, which errors then name instead of the temporary file. */
  #staged(type: FileType, target: string | undefined): LocalStagedFile {
    const temp = path.join(this.#root, 'tmp', randomBytes(16).toString('hex'));
    return new LocalStagedFile(this.#root, type, temp, target ?? temp);
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Uint8Array> {
    return this.#read(h, offset, length, undefined);
  }

  async loadInto(h: Handle, offset: number, out: Uint8Array): Promise<void> {
    await this.#read(h, offset, out.byteLength, out);
  }

  localFile(h: Handle): LocalFile {
    checkHandle(h);
    return { path: this.#pathOf(h), root: this.#root };
  }

  /** Reads the range into `into` (exactly its length) or into a buffer of its own. */
  async #read(h: Handle, offset: number, length: number | undefined, into: Uint8Array | undefined): Promise<Uint8Array> {
    checkHandle(h);
    checkRangeArguments(h, offset, length);
    const target = this.#pathOf(h);
    let file: FileHandle | undefined;
    try {
      file = await fsp.open(target, 'r');
      const { size } = await file.stat();
      const range = resolveRange(h, size, offset, length);
      const out = into ?? new Uint8Array(range.length);
      let done = 0;
      // A single read may return fewer bytes than asked (large reads, network file systems): loop until complete.
      while (done < range.length) {
        const { bytesRead } = await file.read(out, done, range.length - done, range.offset + done);
        if (bytesRead === 0) throw endedEarly(target, range.offset, range.length, done);
        done += bytesRead;
      }
      return out;
    } catch (e) {
      throw translateFsError(e, 'load', this.#root, target);
    } finally {
      if (file !== undefined) await file.close().catch(() => {});
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    checkHandle(h);
    const target = this.#pathOf(h);
    try {
      const st = await fsp.stat(target);
      if (!st.isFile()) throw new Error(`${target} is not a regular file`);
      return { name: h.name, size: st.size };
    } catch (e) {
      throw translateFsError(e, 'stat', this.#root, target);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    checkFileType(type);
    if (type === 'config') {
      const info = await this.#statListed(path.join(this.#root, 'config'));
      if (info !== undefined) yield { name: 'config', size: info };
      return;
    }
    const dir = path.join(this.#root, type);
    if (type !== 'data') {
      yield* this.#listFolder(dir, '');
      return;
    }
    for await (const name of this.#entries(dir)) {
      if (FAN_OUT_DIR.test(name)) yield* this.#listFolder(path.join(dir, name), name);
    }
  }

  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    const target = this.#pathOf(h);
    try {
      await fsp.unlink(target);
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return;
      throw translateFsError(e, 'remove', this.#root, target);
    }
  }

  /** The disk holding the repository, from statfs. A local disk has no trash that counts against it. */
  async usage(): Promise<Usage> {
    try {
      const fs = await fsp.statfs(this.#root);
      return {
        usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
        totalBytes: fs.blocks * fs.bsize,
        trashBytes: 0,
      };
    } catch (e) {
      throw translateFsError(e, 'usage', this.#root, this.#root);
    }
  }

  /** Holds no open handles between calls, so there is nothing to release. */
  async close(): Promise<void> {}

  /**
   * Deletes files in `tmp/` last modified more than `maxAgeMs` ago: leftovers of saves that died with their process.
   * The default of a day keeps the temp files of saves that another process is still writing. Returns how many
   * files were removed. The repository calls this when it opens.
   */
  async cleanupStaleTemp(maxAgeMs: number = DAY_MS, now: () => Date = () => new Date()): Promise<number> {
    const dir = path.join(this.#root, 'tmp');
    const cutoff = now().getTime() - maxAgeMs;
    let removed = 0;
    for await (const name of this.#entries(dir)) {
      const temp = path.join(dir, name);
      try {
        const st = await fsp.lstat(temp);
        if (!st.isFile() || st.mtimeMs >= cutoff) continue;
        await fsp.unlink(temp);
        removed++;
      } catch (e) {
        if (errorCode(e) === 'ENOENT') continue; // another process cleaned it up first
        throw translateFsError(e, 'cleanup', this.#root, temp);
      }
    }
    return removed;
  }

  #pathOf(h: Handle): string {
    return path.join(this.#root, handlePath(h));
  }

  /** Names in a folder; a missing folder has none. */
  async *#entries(dir: string): AsyncGenerator<string> {
    let handle;
    try {
      handle = await fsp.opendir(dir);
    } catch (e) {
      const code = errorCode(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw translateFsError(e, 'list', this.#root, dir);
    }
    try {
      for await (const entry of handle) yield entry.name;
    } catch (e) {
      throw translateFsError(e, 'list', this.#root, dir);
    }
  }

  /** Files of one folder whose names are ids (and, in a fan-out folder, start with its prefix). */
  async *#listFolder(dir: string, prefix: string): AsyncGenerator<FileInfo> {
    for await (const name of this.#entries(dir)) {
      // Anything else (editor leftovers, misplaced files) could not be loaded by name, so it is not listed.
      if (!HEX_ID.test(name) || !name.startsWith(prefix)) continue;
      const size = await this.#statListed(path.join(dir, name));
      if (size !== undefined) yield { name, size };
    }
  }

  /** Size of a regular file, or undefined when it is gone (removed while listing) or is not a file. */
  async #statListed(file: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(file);
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return undefined;
      throw translateFsError(e, 'list', this.#root, file);
    }
  }
}

/** Moves a synced temporary file to its final path, creating the data fan-out folder on first use. */
async function renameIntoPlace(temp: string, target: string): Promise<void> {
  try {
    await fsp.rename(temp, target);
    return;
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
  }
  // The destination folder (a data fan-out folder on first use) does not exist yet.
  const created = await fsp.mkdir(path.dirname(target), { recursive: true, mode: DIR_MODE });
  await fsp.rename(temp, target);
  // Make the new folder's own entry durable too, not only the file's entry in it.
  if (created !== undefined) await syncDir(path.dirname(created));
}

const fsyncFd = promisify(fs.fsync);
const closeFd = promisify(fs.close);
/**
 * Appends smaller than half of this are gathered and written together: a write system call per small blob cost
 * ~6 µs each (measured: 60,000 blobs of 2-21 KB, 0.7 s of system time written one by one, 0.3 s gathered in
 * 256 KiB, as much as copying them into a pack buffer and writing that).
 */
const GATHER_BYTES = 256 * 1024;

/**
 * A staged file of LocalBackend. Appends are synchronous writes into the temporary file (opened on the first one),
 * small ones gathered first: the bytes go straight to the page cache, so no copy of the file is kept in memory and
 * no write waits in the thread pool, which the workers' file reads share. The sync to disk, the costly part,
 * happens once, asynchronously, at commit.
 * A killed process leaves the temporary file in `tmp/`, where `cleanupStaleTemp` finds it like any other.
 */
class LocalStagedFile implements StagedFile {
  readonly #root: string;
  readonly #type: FileType;
  readonly #temp: string;
  /** what errors of appends name: the final path when known, else the temporary file */
  readonly #subject: string;
  #fd: number | undefined;
  #size = 0;
  /** small appends not yet written: the first `#gathered` bytes of `#gather` */
  #gather: Uint8Array | undefined;
  #gathered = 0;
  #failure: BackupError | undefined;
  /** open: appends accepted; after commit or discard nothing more is (and discard has nothing left to do) */
  #state: 'open' | 'ended' = 'open';

  constructor(root: string, type: FileType, temp: string, subject: string) {
    this.#root = root;
    this.#type = type;
    this.#temp = temp;
    this.#subject = subject;
  }

  get size(): number {
    return this.#size;
  }

  append(data: Uint8Array): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(ended());
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    try {
      // Whatever is gathered goes first: before a large append, or when this one does not fit behind it.
      if (data.byteLength >= GATHER_BYTES / 2) {
        this.#flush();
        this.#write(data);
      } else {
        if (data.byteLength > GATHER_BYTES - this.#gathered) this.#flush();
        this.#gather ??= new Uint8Array(GATHER_BYTES);
        this.#gather.set(data, this.#gathered);
        this.#gathered += data.byteLength;
      }
      this.#size += data.byteLength;
      return Promise.resolve();
    } catch (e) {
      this.#failure = translateFsError(e, 'save', this.#root, this.#subject);
      return Promise.reject(this.#failure);
    }
  }

  async commit(h: Handle): Promise<void> {
    if (this.#state !== 'open') throw ended();
    this.#state = 'ended';
    let target = this.#temp;
    let renamed = false;
    try {
      checkHandle(h);
      target = path.join(this.#root, handlePath(h));
      if (h.type !== this.#type) {
        throw new BackupError('INVALID_ARGUMENT', `a file staged as ${this.#type} cannot be committed as ${h.type}; this is a bug in the caller, please report it`);
      }
      if (this.#failure !== undefined) throw this.#failure;
      this.#flush();
      this.#gather = undefined;
      const fd = this.#open();
      await fsyncFd(fd);
      this.#fd = undefined;
      await closeFd(fd);
      await renameIntoPlace(this.#temp, target);
      renamed = true;
      await syncDir(path.dirname(target));
    } catch (e) {
      // As in save: once renamed, the file is whole and stays; before, nothing may remain of it.
      if (!renamed) await this.#removeTemp();
      throw translateFsError(e, 'save', this.#root, target);
    }
  }

  async discard(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'ended';
    await this.#removeTemp();
  }

  /** Writes the gathered small appends. */
  #flush(): void {
    if (this.#gathered === 0) return;
    const gathered = this.#gather!.subarray(0, this.#gathered);
    this.#gathered = 0;
    this.#write(gathered);
  }

  #write(data: Uint8Array): void {
    const fd = this.#open();
    let written = 0;
    while (written < data.byteLength) {
      const n = fs.writeSync(fd, data, written, data.byteLength - written);
      if (n <= 0) throw new Error(`short write to ${this.#temp}`);
      written += n;
    }
  }

  /** The temporary file's descriptor, created on first use (also for a file committed empty). */
  #open(): number {
    if (this.#fd !== undefined) return this.#fd;
    try {
      this.#fd = fs.openSync(this.#temp, 'wx', FILE_MODE);
    } catch (e) {
      if (errorCode(e) !== 'ENOENT') throw e;
      // tmp/ is missing (a repository copied without its empty folders): recreate it, but never the root itself.
      try {
        fs.mkdirSync(path.dirname(this.#temp), { mode: DIR_MODE });
      } catch (e2) {
        if (errorCode(e2) !== 'EEXIST') throw e2;
      }
      this.#fd = fs.openSync(this.#temp, 'wx', FILE_MODE);
    }
    return this.#fd;
  }

  async #removeTemp(): Promise<void> {
    this.#gather = undefined;
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) await closeFd(fd).catch(() => {});
    await fsp.rm(this.#temp, { force: true }).catch(() => {});
  }
}

function ended(): BackupError {
  return new BackupError('INTERNAL', 'this staged file was already committed or discarded; this is a bug in the caller, please report it');
}

/** fsync a folder so that a rename or create in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  // Windows cannot open a folder for syncing; NTFS journals the rename itself.
  if (process.platform === 'win32') return;
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (e) {
    // Some file systems (certain network and FUSE mounts) do not support syncing a folder; the rename stands.
    const code = errorCode(e);
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
  } finally {
    await handle.close();
  }
}
