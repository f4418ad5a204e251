/**
 * The archiver: turns source paths into a snapshot. The main thread walks the tree (lstat and readdir are cheap),
 * decides per file whether the parent snapshot can be trusted, and hands the files that must be read to the worker
 * pool in batches; trees are built as their children complete, so the walk never waits for file contents. Order
 * gives crash safety: packs, then index, then the snapshot.
 */
import { isAscii } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { cutPoint } from '../chunker/chunker.ts';
import { gearTable } from '../chunker/gear.ts';
import { sha256Hex } from '../crypto/hash.ts';
import { BackupError, isBackupError } from '../errors.ts';
import type { BackupType, Id, NodeType, SnapshotDocument, SnapshotSummary, TreeNode } from '../format.ts';
import { Worker } from 'node:worker_threads';
import { WorkerPool, workerUrl } from '../pool.ts';
import type { FileSink } from '../pool.ts';
import type { ToMain, ToWorker, WorkerFileJob, WorkerFileResult } from '../pool-protocol.ts';
import { releaseBytes } from '../crypto/bytes.ts';
import { PackSaver } from '../repository/pack-saver.ts';
import { compareTime, cryptoMaterial } from '../repository/repository.ts';
import type { ListSnapshotsOptions, Repository } from '../repository/repository.ts';
import { emptySummary } from '../repository/snapshot.ts';
import { decodeTree, encodeTree } from '../repository/tree.ts';
import { createExcludeMatcher } from './excludes.ts';
import type { ExcludeMatcher, ExcludeOptions } from './excludes.ts';

export const PROGRAM_VERSION = '0.1.0';

export interface BackupWarning {
  path: string;
  /** stable reason: unreadable, changed-while-reading, vanished, unsupported-name */
  code: string;
  message: string;
}

export type BackupEvent =
  | { type: 'start'; paths: string[]; backupType: BackupType; parent?: Id }
  | { type: 'scan'; files: number; bytes: number; done: boolean }
  | { type: 'progress'; filesDone: number; bytesDone: number; bytesRead: number; currentPath?: string }
  | { type: 'warning'; warning: BackupWarning }
  | { type: 'saved'; snapshotId: Id; summary: SnapshotSummary };

export interface BackupOptions {
  paths: string[];
  /** default incremental */
  type?: BackupType;
  tags?: string[];
  /** the snapshot's time (imports, tests); default now */
  time?: Date;
  /** trust this snapshot instead of choosing one by type */
  parent?: Id;
  /** the host name recorded in the snapshot and used to find its parent (default: the run context's) */
  hostname?: string;
  excludes?: ExcludeOptions;
  /** back up a stream instead of paths */
  stdin?: { stream: AsyncIterable<Uint8Array>; filename: string };
  signal?: AbortSignal;
  onEvent?: (e: BackupEvent) => void;
  /** count files and bytes first (on a separate thread) so progress can show totals and an ETA */
  scan?: boolean;
  workers?: number;
}

export interface BackupResult {
  snapshotId: Id;
  snapshot: SnapshotDocument;
  warnings: BackupWarning[];
  /** some files could not be read and are not in the snapshot */
  partial: boolean;
}

/**
 * The parent snapshot's listing of a directory, looked up by name. The walk asks for names in sorted order, the
 * order trees store them in, so a cursor moving forward finds each one without building a map of every name; a
 * listing out of order (not written by this program) or a look-up going backwards falls back to a map.
 */
export class Listing {
  private readonly nodes: readonly TreeNode[];
  private at = 0;
  private last = '';
  private byName: Map<string, TreeNode> | undefined;

  constructor(nodes: readonly TreeNode[]) {
    this.nodes = nodes;
    for (let i = 1; i < nodes.length; i++) {
      if (!(nodes[i - 1]!.name < nodes[i]!.name)) {
        this.byName = new Map(nodes.map((n) => [n.name, n]));
        break;
      }
    }
  }

  get(name: string): TreeNode | undefined {
    if (this.byName === undefined && name < this.last) this.byName = new Map(this.nodes.map((n) => [n.name, n]));
    if (this.byName !== undefined) return this.byName.get(name);
    this.last = name;
    const nodes = this.nodes;
    let at = this.at;
    while (at < nodes.length && nodes[at]!.name < name) at++;
    this.at = at;
    return at < nodes.length && nodes[at]!.name === name ? nodes[at] : undefined;
  }
}

/** A parent listing, or undefined when there is none (or it is damaged). */
type PrevListing = Listing | undefined;

/**
 * A parent tree as loaded, not yet decoded: what a directory loads ahead for its subdirectories. Held as bytes
 * until the walk gets there, because decoded listings waiting that long would outlive the young generation and
 * stay in memory until the next full collection.
 */
type PrevTree = { id: Id; bytes: Uint8Array } | undefined;

/** How many subdirectory listings of the parent each directory loads ahead of the walk. */
const TREE_READ_AHEAD = 4;

/**
 * A directory's children as the walk leaves them: a node known at once is added as it is, the others (a file
 * waiting for a worker, a subdirectory waiting for its own children) fill their slot when they complete. One
 * promise per directory, settled once every slot is filled, instead of a few per file: a first backup has tens of
 * thousands of files in flight, and their promises lived long enough to be copied by every scavenge. The first
 * failure of a child (a worker that died, a tree that could not be saved) rejects it.
 */
class Children {
  readonly nodes: (TreeNode | null)[] = [];
  private waiting = 0;
  private closed = false;
  private failure: { error: unknown } | undefined;
  private settle: { resolve(nodes: (TreeNode | null)[]): void; reject(e: unknown): void } | undefined;

  /** A child known now; null: left out of the tree. */
  add(node: TreeNode | null): void {
    this.nodes.push(node);
  }

  /** A child that completes later: the slot to fill. */
  reserve(): number {
    this.waiting++;
    return this.nodes.push(null) - 1;
  }

  fill(slot: number, node: TreeNode | null): void {
    this.nodes[slot] = node;
    if (--this.waiting === 0 && this.closed) this.settle?.resolve(this.nodes);
  }

  fail(error: unknown): void {
    if (this.failure) return;
    this.failure = { error };
    this.settle?.reject(error);
  }

  /** A child whose node a promise gives. */
  later(future: Promise<TreeNode | null>): void {
    const slot = this.reserve();
    future.then(
      (node) => this.fill(slot, node),
      (e: unknown) => this.fail(e),
    );
  }

  /** No more children: the nodes in the order they were added, at once when none is pending. */
  close(): (TreeNode | null)[] | Promise<(TreeNode | null)[]> {
    this.closed = true;
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.waiting === 0) return this.nodes;
    return new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
  }
}

interface Trie {
  /** this exact path was given as a source */
  source: boolean;
  children: Map<string, Trie>;
}

function nodeTypeOf(st: fs.BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

/** What names the same file in `hardlinks`: its device and inode. */
function linkKey(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

function baseNode(name: string, st: fs.BigIntStats): TreeNode {
  return {
    name,
    type: nodeTypeOf(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeNs: st.mtimeNs.toString(),
    atimeNs: st.atimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    dev: st.dev.toString(),
    inode: st.ino.toString(),
    nlink: Number(st.nlink),
  };
}

/** Validates and normalises source paths: absolute, existing, and none nested inside another. */
export function resolveSources(paths: string[], cwd = process.cwd()): string[] {
  if (paths.length === 0) throw new BackupError('INVALID_ARGUMENT', 'no path to back up: name at least one, or configure sources in config.json');
  const abs = [...new Set(paths.map((p) => path.resolve(cwd, p)))];
  for (const p of abs) {
    try {
      fs.lstatSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new BackupError('SOURCE_NOT_FOUND', code === 'ENOENT' ? `source path ${p} does not exist: check the path (nothing was backed up)` : `cannot access source path ${p}: ${(e as Error).message}`, { cause: e, subject: p });
    }
  }
  abs.sort();
  return abs.filter((p) => !abs.some((q) => q !== p && (q === '/' || p.startsWith(q + '/'))));
}

function buildTrie(paths: string[]): Trie {
  const root: Trie = { source: false, children: new Map() };
  for (const p of paths) {
    let t = root;
    for (const part of p.split('/').filter(Boolean)) {
      let next = t.children.get(part);
      if (!next) {
        next = { source: false, children: new Map() };
        t.children.set(part, next);
      }
      t = next;
    }
    t.source = true;
  }
  return root;
}

/** Picks the snapshot an incremental or differential backup trusts: same host and paths, newest (full for differential). */
export async function findParent(
  repo: Repository,
  paths: string[],
  type: BackupType,
  hostname: string,
  options: ListSnapshotsOptions = {},
): Promise<{ id: Id; snapshot: SnapshotDocument } | undefined> {
  const want = [...paths].sort().join('\0');
  const candidates = (await repo.listSnapshots(options)).filter(
    (s) => s.snapshot.hostname === hostname && [...s.snapshot.paths].sort().join('\0') === want && (type !== 'differential' || s.snapshot.type === 'full'),
  );
  candidates.sort((a, b) => compareTime(a.snapshot.time, b.snapshot.time));
  return candidates.at(-1);
}

class Archiver {
  private readonly repo: Repository;
  private readonly options: BackupOptions;
  private readonly excludes: ExcludeMatcher;
  private readonly saver: PackSaver;
  private pool: WorkerPool | undefined;
  private readonly summary: SnapshotSummary;
  readonly warnings: BackupWarning[] = [];
  private readonly trust: boolean;
  private batchJobs: WorkerFileJob[] = [];
  private batchSinks: FileSink[] = [];
  private batchBytes = 0;
  private nextIndex = 0;
  private readonly hardlinks = new Map<string, Promise<TreeNode | null>>();
  private filesDone = 0;
  private bytesDone = 0;
  private bytesRead = 0;
  private walked = 0;

  constructor(repo: Repository, options: BackupOptions, trust: boolean, start: string) {
    this.repo = repo;
    this.options = options;
    this.excludes = createExcludeMatcher(options.excludes);
    this.saver = new PackSaver(repo);
    this.summary = emptySummary(start);
    this.trust = trust;
  }

  private emit(e: BackupEvent): void {
    this.options.onEvent?.(e);
  }

  private warn(p: string, code: string, message: string): void {
    const w = { path: p, code, message };
    this.warnings.push(w);
    this.emit({ type: 'warning', warning: w });
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw interrupted();
  }

  private stopWatchingAbort: (() => void) | undefined;
  private cleanedUp = false;

  /**
   * Settles like `work`, or rejects with INTERRUPTED as soon as the signal fires. The walk notices the signal at
   * its next entry, but once every file is queued only the workers are busy, and a large file would otherwise be
   * read, chunked and uploaded to the end before anyone looked at the signal again.
   */
  untilAborted<T>(work: Promise<T>): Promise<T> {
    const signal = this.options.signal;
    if (!signal) return work;
    // When the signal wins, `work` is abandoned (cleanup stops the workers): keep its rejection from going unhandled.
    work.catch(() => undefined);
    return Promise.race([
      work,
      new Promise<never>((_, reject) => {
        const onAbort = (): void => reject(interrupted());
        if (signal.aborted) onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.stopWatchingAbort = () => signal.removeEventListener('abort', onAbort);
      }),
    ]);
  }

  private getPool(): WorkerPool {
    // After an interruption the abandoned walk may still reach here: it must not start workers nobody will stop.
    if (this.cleanedUp) throw interrupted();
    if (!this.pool) {
      const m = cryptoMaterial(this.repo);
      this.pool = new WorkerPool(
        { key: m.key, chunkerSecret: m.chunkerSecret, chunkSizes: m.chunkSizes, compression: m.compression },
        {
          claim: (ids) => ids.map((id) => this.saver.claim(id)),
          store: (blobs) => this.saver.addAll('data', blobs),
          progress: (bytes) => {
            this.bytesRead += bytes;
          },
        },
        this.options.workers,
      );
    }
    return this.pool;
  }

  private async flushBatch(): Promise<void> {
    if (this.batchJobs.length === 0) return;
    const jobs = this.batchJobs;
    const sinks = this.batchSinks;
    this.batchJobs = [];
    this.batchSinks = [];
    this.batchBytes = 0;
    await this.getPool().submitFiles(jobs, sinks);
  }

  /** Queues a file for the workers; a promise only when the batch went out and the walk must wait for room. */
  private readFile(p: string, st: fs.BigIntStats, sink: FileSink): Promise<void> | undefined {
    this.batchJobs.push({ index: this.nextIndex++, path: p, ino: st.ino.toString(), mtimeNs: st.mtimeNs.toString() });
    this.batchSinks.push(sink);
    this.batchBytes += Number(st.size);
    // A worker reads a batch while the main thread answers for the one before: batches large enough to take it longer
    // than a round trip, small enough that the workers finish together at the end.
    if (this.batchJobs.length >= 256 || this.batchBytes >= 16 * 1024 * 1024) return this.flushBatch();
    return undefined;
  }

  /** The file's node, in `into` now when the parent's can be trusted, or once a worker has read the file. */
  private fileNode(p: string, name: string, st: fs.BigIntStats, prev: TreeNode | undefined, into: Children): Promise<void> | undefined {
    if (st.nlink > 1n) {
      const first = this.hardlinks.get(linkKey(st));
      if (first) {
        // Another name of a file already in this backup: same content, read once.
        into.later(first.then((n) => (n ? { ...n, ...baseNode(name, st), size: n.size!, content: n.content!, sha256: n.sha256! } : null)));
        return undefined;
      }
    }
    const node = baseNode(name, st);
    const size = Number(st.size);
    const unchanged = this.trust && prev?.type === 'file' && prev.size === size && prev.mtimeNs === node.mtimeNs && prev.ctimeNs === node.ctimeNs && prev.inode === node.inode
      && this.allIndexed(prev.content!);
    if (!unchanged) return this.readFile(p, st, this.fileSink(p, st, node, prev, into));
    this.summary.filesUnchanged++;
    this.summary.bytesUnchanged += size;
    this.countDone(size, p);
    // The parent's strings for the values found equal: the node lives until its directory's tree is saved, and a
    // large directory's nodes outlive the young generation.
    const same: TreeNode = node;
    same.mtimeNs = prev.mtimeNs;
    same.ctimeNs = prev.ctimeNs;
    same.inode = prev.inode;
    if (same.dev === prev.dev) same.dev = prev.dev;
    same.size = size;
    same.content = prev.content!;
    same.sha256 = prev.sha256!;
    if (st.nlink > 1n) this.hardlinks.set(linkKey(st), Promise.resolve(same));
    into.add(same);
    return undefined;
  }

  /**
   * Where a worker's result for the file goes: its slot in `into` and, for a file with other names, the future
   * those names wait for. Called from the pool's message handler: whatever goes wrong goes to `into`.
   */
  private fileSink(p: string, st: fs.BigIntStats, node: TreeNode, prev: TreeNode | undefined, into: Children): FileSink {
    const slot = into.reserve();
    let other: { resolve(n: TreeNode | null): void; reject(e: unknown): void } | undefined;
    if (st.nlink > 1n) {
      const future = new Promise<TreeNode | null>((resolve, reject) => {
        other = { resolve, reject };
      });
      // Failures surface through `into`; a future no other name awaits is not an error.
      future.catch(() => undefined);
      this.hardlinks.set(linkKey(st), future);
    }
    return (result, error) => {
      try {
        if (result === undefined) throw error;
        const done = this.fileResult(p, node, result, prev);
        other?.resolve(done);
        into.fill(slot, done);
      } catch (e) {
        other?.reject(e);
        into.fail(e);
      }
    };
  }

  /** True when every blob is in the repository's index: a parent's node is trusted only if its content is there. */
  private allIndexed(ids: readonly Id[]): boolean {
    for (let i = 0; i < ids.length; i++) if (!this.repo.index.has(ids[i]!)) return false;
    return true;
  }

  private fileResult(p: string, node: TreeNode, r: WorkerFileResult, prev: TreeNode | undefined): TreeNode | null {
    if (r.error) {
      this.summary.filesSkipped++;
      this.warn(p, r.error.code === 'ENOENT' ? 'vanished' : 'unreadable', `cannot read ${p}: ${r.error.message} (skipped)`);
      return null;
    }
    if (r.changed) this.warn(p, 'changed-while-reading', `${p} changed while it was being read; the snapshot holds what was read`);
    if (prev?.type === 'file' && prev.sha256 === r.sha256) {
      this.summary.filesUnchanged++;
      this.summary.bytesUnchanged += r.size;
    } else if (prev?.type === 'file') {
      this.summary.filesChanged++;
      this.summary.bytesChanged += r.size;
    } else {
      this.summary.filesNew++;
      this.summary.bytesNew += r.size;
    }
    this.countDone(r.size, p);
    return { ...node, size: r.size, content: r.content, sha256: r.sha256 };
  }

  private countDone(bytes: number, p: string): void {
    this.filesDone++;
    this.bytesDone += bytes;
    this.summary.totalFiles++;
    this.summary.totalBytes += bytes;
    this.emit({ type: 'progress', filesDone: this.filesDone, bytesDone: this.bytesDone, bytesRead: this.bytesRead, currentPath: p });
  }

  private async saveTree(nodes: TreeNode[]): Promise<Id> {
    const bytes = encodeTree(nodes);
    const { id } = await this.saver.addPlain('tree', bytes);
    // Sealed into a pack: the encoded tree's buffer (this call's alone) is freed now, not with the next collection.
    releaseBytes(bytes);
    return id;
  }

  private async prevListing(prev: TreeNode | undefined): Promise<PrevListing> {
    return this.decodePrev(await this.loadPrev(prev));
  }

  private async loadPrev(prev: TreeNode | undefined): Promise<PrevTree> {
    if (prev?.type !== 'dir' || !prev.subtree) return undefined;
    try {
      // Past the repository's tree cache: a backup reads each tree of its parent once, and caching them would keep
      // up to 200,000 nodes of the parent in memory for nothing.
      return { id: prev.subtree, bytes: await this.repo.loadBlob('tree', prev.subtree) };
    } catch (e) {
      // A damaged parent only costs speed: everything below is read again.
      if (isBackupError(e, 'CORRUPT')) return undefined;
      throw e;
    }
  }

  private decodePrev(tree: PrevTree): PrevListing {
    if (tree === undefined) return undefined;
    try {
      return new Listing(decodeTree(tree.bytes, `tree ${tree.id.slice(0, 12)}`).nodes);
    } catch (e) {
      if (isBackupError(e, 'CORRUPT')) return undefined;
      throw e;
    } finally {
      releaseBytes(tree.bytes, true);
    }
  }

  /**
   * Any entry: dispatches on its type, and puts its node in `into` (now, or when it completes). Returns once it is
   * queued: a promise only when the walk must wait. `listing`, when given, is the parent snapshot's listing of
   * `prev.subtree`, already being loaded by the directory above.
   */
  private entry(p: string, name: string, prev: TreeNode | undefined, into: Children, listing?: Promise<PrevTree>): Promise<void> | undefined {
    this.checkAbort();
    // Now and then the walk lets the event loop run (worker results, uploads, the abort signal).
    if (++this.walked % 512 === 0) return yieldToEventLoop().then(() => this.entryNow(p, name, prev, into, listing));
    return this.entryNow(p, name, prev, into, listing);
  }

  private entryNow(p: string, name: string, prev: TreeNode | undefined, into: Children, listing: Promise<PrevTree> | undefined): Promise<void> | undefined {
    this.checkAbort();
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch (e) {
      this.summary.filesSkipped++;
      this.warn(p, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'vanished' : 'unreadable', `cannot stat ${p}: ${(e as Error).message} (skipped)`);
      return undefined;
    }
    if (st.isDirectory()) return this.dir(p, name, st, prev, into, listing);
    if (st.isFile()) {
      if (this.excludes.largerThan !== undefined && st.size > BigInt(this.excludes.largerThan)) return undefined;
      return this.fileNode(p, name, st, prev, into);
    }
    const node = baseNode(name, st);
    if (st.isSymbolicLink()) {
      let target: Buffer;
      try {
        target = fs.readlinkSync(p, { encoding: 'buffer' });
      } catch (e) {
        this.summary.filesSkipped++;
        this.warn(p, 'unreadable', `cannot read symlink ${p}: ${(e as Error).message} (skipped)`);
        return undefined;
      }
      const text = strictUtf8(target);
      if (text === undefined) {
        this.summary.filesSkipped++;
        this.warn(p, 'unsupported-name', `the target of symlink ${p} is not valid UTF-8 and cannot be stored exactly (skipped)`);
        return undefined;
      }
      node.linkTarget = text;
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      node.rdev = Number(st.rdev);
    }
    // FIFOs, sockets and devices are recorded, never opened.
    into.add(node);
    return undefined;
  }

  /**
   * The names in a directory that can be stored exactly; the others are warned about and skipped. Read as text
   * first, without a buffer per name. Text decoding turns invalid UTF-8 into U+FFFD, and the mangled name would then
   * fail lstat and be reported as vanished (or, worse, name a different file): a listing holding U+FFFD is read
   * again as bytes, to tell the names that really hold it from those that are not UTF-8.
   */
  private listNames(p: string): string[] {
    const text = fs.readdirSync(p);
    if (!text.some((n) => n.includes('\uFFFD'))) return text;
    const names: string[] = [];
    for (const b of fs.readdirSync(p, { encoding: 'buffer' })) {
      const n = strictUtf8(b);
      if (n !== undefined) {
        names.push(n);
        continue;
      }
      const shown = `${p === '/' ? '' : p}/${b.toString('utf8')}`;
      this.summary.filesSkipped++;
      this.warn(shown, 'unsupported-name', `${JSON.stringify(shown)}: the name is not valid UTF-8 and cannot be stored exactly (skipped)`);
    }
    return names;
  }

  private async dir(p: string, name: string, st: fs.BigIntStats, prev: TreeNode | undefined, into: Children, listing?: Promise<PrevTree>): Promise<void> {
    let names: string[];
    try {
      names = this.listNames(p);
    } catch (e) {
      this.summary.filesSkipped++;
      this.warn(p, 'unreadable', `cannot list directory ${p}: ${(e as Error).message} (skipped with its contents)`);
      return;
    }
    if (this.excludes.ifPresent.some((marker) => names.includes(marker))) return;
    names.sort();
    const prevChildren = this.decodePrev(await (listing ?? this.loadPrev(prev)));
    const prefix = p === '/' ? '/' : `${p}/`;
    // The entries to walk, and the parent's directories among them in walk order (whose listings load ahead).
    const kept: string[] = [];
    const prevs: (TreeNode | undefined)[] = [];
    const subtrees: TreeNode[] = [];
    for (const child of names) {
      if (this.excludes.matches(prefix + child)) continue;
      const prevChild = prevChildren?.get(child);
      kept.push(child);
      prevs.push(prevChild);
      if (prevChild?.type === 'dir' && prevChild.subtree !== undefined) subtrees.push(prevChild);
    }
    // The parent's listings of the next few subdirectories load while this directory's files are examined, so the
    // walk rarely waits for a tree: each load is several round trips to the backend, most of a rescan's time
    // otherwise. Only a few per level, so memory stays a few listings per level of depth; a listing loaded for an
    // entry that turns out not to be a directory any more is simply dropped.
    const loads: (Promise<PrevTree> | undefined)[] = [];
    const loadUpTo = (n: number): void => {
      for (let i = loads.length; i < Math.min(n, subtrees.length); i++) {
        const load = this.loadPrev(subtrees[i]);
        // Failures surface when the subdirectory awaits its listing; one never awaited is not an error.
        load.catch(() => undefined);
        loads.push(load);
      }
    };
    loadUpTo(TREE_READ_AHEAD);
    const children = new Children();
    let subdirs = 0;
    for (let i = 0; i < kept.length; i++) {
      const child = kept[i]!;
      const prevChild = prevs[i];
      let childListing: Promise<PrevTree> | undefined;
      if (prevChild?.type === 'dir' && prevChild.subtree !== undefined) {
        const k = subdirs++;
        childListing = loads[k];
        loads[k] = undefined;
        loadUpTo(k + 1 + TREE_READ_AHEAD);
      }
      const q = this.entry(prefix + child, child, prevChild, children, childListing);
      if (q !== undefined) await q;
    }
    this.completeDir(name, st, children, into);
  }

  /** Once every child is in, saves the directory's tree and puts the directory's node in `into`. */
  private completeDir(name: string, st: fs.BigIntStats, children: Children, into: Children): void {
    const finish = async (nodes: (TreeNode | null)[]): Promise<TreeNode> => {
      const subtree = await this.saveTree(nodes.filter((n): n is TreeNode => n !== null));
      this.summary.dirs++;
      return { ...baseNode(name, st), subtree };
    };
    // Without a file to wait for (nothing changed here), the tree is saved at once.
    const nodes = children.close();
    into.later(nodes instanceof Promise ? nodes.then(finish) : finish(nodes));
  }

  /** Intermediate directories of the source paths (`/home`, `/home/ann`) and the sources below them, into `into`. */
  private async trieDir(p: string, trie: Trie, prevListing: PrevListing, into: Children): Promise<void> {
    for (const [name, child] of [...trie.children].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const cp = p === '/' ? `/${name}` : `${p}/${name}`;
      const prev = prevListing?.get(name);
      if (child.source) {
        const q = this.entry(cp, name, prev, into);
        if (q !== undefined) await q;
        continue;
      }
      // An intermediate component may be a symlink (`/var/run` → `/run`): the walk goes through it, so the tree
      // records the directory it leads to. lstat would give a symlink node with a subtree, which readers reject.
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(cp, { bigint: true });
      } catch (e) {
        throw new BackupError('SOURCE_NOT_FOUND', `cannot access ${cp}, a directory above a source path: ${(e as Error).message}`, { cause: e, subject: cp });
      }
      if (!st.isDirectory()) throw new BackupError('SOURCE_NOT_FOUND', `${cp}, a directory above a source path, is not a directory`, { subject: cp });
      const below = new Children();
      await this.trieDir(cp, child, await this.prevListing(prev), below);
      this.completeDir(name, st, below, into);
    }
  }

  async run(sources: string[], parentTree: Id | undefined): Promise<Id> {
    const parentRoot = parentTree ? ({ type: 'dir', subtree: parentTree } as TreeNode) : undefined;
    const trie = buildTrie(sources);
    if (trie.source) {
      // Backing up `/` itself: the root tree is the listing of `/`.
      const st = fs.lstatSync('/', { bigint: true });
      const root = new Children();
      await this.dir('/', '/', st, parentRoot, root);
      await this.flushBatch();
      const node = (await root.close())[0];
      if (!node?.subtree) throw new BackupError('IO', 'cannot read the root directory');
      return node.subtree;
    }
    const top = new Children();
    await this.trieDir('/', trie, await this.prevListing(parentRoot), top);
    await this.flushBatch();
    const nodes = (await top.close()).filter((n): n is TreeNode => n !== null);
    return this.saveTree(nodes);
  }

  async runStdin(stream: AsyncIterable<Uint8Array>, filename: string, now: Date): Promise<Id> {
    const m = cryptoMaterial(this.repo);
    const params = { gear: gearTable(m.chunkerSecret), ...m.chunkSizes };
    const whole = (await import('node:crypto')).createHash('sha256');
    const content: Id[] = [];
    let buf = new Uint8Array(0);
    let size = 0;
    const emitChunks = async (eof: boolean): Promise<void> => {
      let start = 0;
      for (;;) {
        const n = buf.length - start;
        if (n === 0) break;
        const len = cutPoint(params, buf, start, buf.length, eof);
        if (len < 0) break;
        const chunk = buf.subarray(start, start + len);
        whole.update(chunk);
        const { id } = await this.saver.addPlain('data', chunk);
        content.push(id);
        start += len;
        size += len;
        this.bytesRead += len;
      }
      buf = buf.slice(start);
    };
    for await (const piece of stream) {
      this.checkAbort();
      const merged = new Uint8Array(buf.length + piece.length);
      merged.set(buf);
      merged.set(piece, buf.length);
      buf = merged;
      if (buf.length >= m.chunkSizes.maxSize * 2) await emitChunks(false);
    }
    await emitChunks(true);
    const nowNs = (BigInt(now.getTime()) * 1_000_000n).toString();
    const ctx = this.repo.context;
    const node: TreeNode = {
      name: filename, type: 'file', mode: 0o644, uid: ctx.uid, gid: ctx.gid, mtimeNs: nowNs, atimeNs: nowNs, ctimeNs: nowNs,
      dev: '0', inode: '0', nlink: 1, size, content, sha256: whole.digest('hex'),
    };
    this.summary.filesNew++;
    this.summary.bytesNew += size;
    this.countDone(size, filename);
    return this.saveTree([node]);
  }

  async finish(rootTree: Id, meta: Omit<SnapshotDocument, 'tree' | 'summary' | 'version'>, end: Date): Promise<{ id: Id; doc: SnapshotDocument }> {
    this.checkAbort();
    await this.saver.finish();
    this.summary.dataAdded = this.saver.stats.bytes;
    this.summary.blobsAdded = this.saver.stats.blobs;
    this.summary.backupEnd = end.toISOString();
    const doc: SnapshotDocument = { version: 1, ...meta, tree: rootTree, summary: this.summary };
    this.checkAbort();
    const id = await this.repo.saveSnapshot(doc);
    return { id, doc };
  }

  /** After a failure: keep what was uploaded usable by indexing finished packs, then stop the workers. */
  async cleanup(failed: boolean): Promise<void> {
    this.cleanedUp = true;
    this.stopWatchingAbort?.();
    // Abandon first: blobs the workers already handed over must not start uploads while the pool shuts down.
    const abandoned = failed ? this.saver.abandon() : undefined;
    await this.pool?.close();
    if (failed) {
      await abandoned;
      // Index what did land, so a later backup need not upload it again. If this fails too, the packs are merely
      // unreferenced (prune removes them) and the in-memory index does not claim them.
      await this.saver.indexWritten().catch(() => undefined);
    }
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as a string when they are valid UTF-8 (names and link targets are stored as JSON strings). */
function strictUtf8(bytes: Buffer): string | undefined {
  // Most names are ASCII, which reads the same as Latin-1 and needs no validation: one native call, no decoder.
  if (isAscii(bytes)) return bytes.toString('latin1');
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

function interrupted(): BackupError {
  return new BackupError('INTERRUPTED', 'backup interrupted: no snapshot was written; earlier snapshots are intact');
}

/** Backs up paths (or a stream) into a new snapshot. The caller holds a (shared) repository lock. */
export async function backup(repo: Repository, options: BackupOptions): Promise<BackupResult> {
  const type = options.type ?? 'incremental';
  const ctx = repo.context;
  const start = ctx.now();
  const time = options.time ?? start;
  const stdin = options.stdin;
  if (stdin) {
    const name = stdin.filename;
    if (!name || name.includes('/') || name === '.' || name === '..' || name.includes('\0')) {
      throw new BackupError('INVALID_ARGUMENT', `--stdin-filename ${JSON.stringify(name)} must be a plain file name without "/"`);
    }
  }
  const sources = stdin ? [`/${stdin.filename}`] : resolveSources(options.paths);
  if (repo.index.blobCount === 0 && repo.indexFiles.length === 0) await repo.loadIndex();
  let parent: { id: Id; snapshot: SnapshotDocument } | undefined;
  // A damaged snapshot cannot be a parent, but it must not stop new backups either: it is reported and skipped.
  const damaged: BackupWarning[] = [];
  const onDamaged = (id: Id, e: BackupError): void => {
    const w = { path: `snapshots/${id}`, code: 'damaged-snapshot', message: `snapshot ${id.slice(0, 12)} cannot be read and was not considered as a parent: ${e.message}` };
    damaged.push(w);
    options.onEvent?.({ type: 'warning', warning: w });
  };
  const hostname = options.hostname ?? ctx.hostname;
  if (options.parent) parent = await repo.findSnapshot(options.parent);
  else if (!stdin) parent = await findParent(repo, sources, type === 'full' ? 'incremental' : type, hostname, { onDamaged });
  // A full backup reads everything but still compares with the latest snapshot to report what changed.
  const trust = type !== 'full' && parent !== undefined;
  const archiver = new Archiver(repo, options, trust, start.toISOString());
  archiver.warnings.push(...damaged);
  options.onEvent?.({ type: 'start', paths: sources, backupType: type, ...(trust && parent ? { parent: parent.id } : {}) });
  const scanner = options.scan && !stdin && options.onEvent ? startScan(sources, options) : undefined;
  let failed = true;
  try {
    const rootTree = await archiver.untilAborted(stdin ? archiver.runStdin(stdin.stream, stdin.filename, time) : archiver.run(sources, parent?.snapshot.tree));
    const meta: Omit<SnapshotDocument, 'tree' | 'summary' | 'version'> = {
      time: time.toISOString(),
      paths: sources,
      hostname,
      username: ctx.username,
      uid: ctx.uid,
      gid: ctx.gid,
      tags: [...new Set(options.tags ?? [])].sort(),
      type,
      excludes: [...(options.excludes?.patterns ?? [])],
      programVersion: PROGRAM_VERSION,
    };
    if (trust && parent) meta.parent = parent.id;
    const { id, doc } = await archiver.finish(rootTree, meta, ctx.now());
    failed = false;
    options.onEvent?.({ type: 'saved', snapshotId: id, summary: doc.summary });
    return { snapshotId: id, snapshot: doc, warnings: archiver.warnings, partial: doc.summary.filesSkipped > 0 };
  } finally {
    await scanner?.terminate();
    await archiver.cleanup(failed);
  }
}

function startScan(sources: string[], options: BackupOptions): Worker {
  const w = new Worker(workerUrl());
  const ex = options.excludes ?? {};
  w.on('message', (m: ToMain) => {
    if (m.t !== 'scanned') return;
    options.onEvent?.({ type: 'scan', files: m.files, bytes: m.bytes, done: m.done });
    // Its totals are in: the thread's 15-20 MB are given back now rather than at the end of the backup.
    if (m.done) void w.terminate();
  });
  // A scan that fails only costs the progress totals.
  w.on('error', () => undefined);
  w.postMessage({ t: 'scan', paths: sources, patterns: ex.patterns ?? [], ifPresent: ex.ifPresent ?? [], ...(ex.largerThan !== undefined ? { largerThan: ex.largerThan } : {}) } satisfies ToWorker);
  return w;
}

/** SHA-256 of a buffer as hex, for callers comparing restored content. */
export function contentHash(data: Uint8Array): string {
  return sha256Hex(data);
}
