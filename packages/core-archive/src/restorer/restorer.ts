/**
 * The restorer: recreates a snapshot (or part of it) under a target directory. It first lays out the tree
 * (directories, links, special files, and the files that need to exist before their content arrives), then reads
 * each pack once, in ranges, and lets the workers decrypt and write every blob where it belongs. The workers create
 * the files of one blob themselves, and finish every file whose last write they make: its SHA-256 is checked
 * against the snapshot, and ownership, mode and times are set through the descriptor of the writes. Directories get
 * theirs last, deepest first. Names come from validated trees and every file is created with O_NOFOLLOW|O_EXCL, so
 * nothing is ever written outside the target.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BackupError } from '../errors.ts';
import type { Id, TreeNode } from '../format.ts';
import { WorkerPool } from '../pool.ts';
import { READ_BUFFER_BYTES, unreadablePackMessage } from '../pool-protocol.ts';
import type { RestoreFile, WorkerRestoreTask } from '../pool-protocol.ts';
import { compilePattern } from '../archiver/excludes.ts';
import { cryptoMaterial } from '../repository/repository.ts';
import type { Repository } from '../repository/repository.ts';
import { releaseBytes } from '../crypto/bytes.ts';
import { decodeTree } from '../repository/tree.ts';
import { resolveSnapshotPath } from './resolve.ts';

/**
 * A tree read past the repository's tree cache: the layout reads each tree once, and caching them all would keep
 * every node of the snapshot in memory (the cache holds up to 200,000 nodes) while the files are filled. Its nodes
 * are made layout nodes at once: a directory of tens of thousands of files is held for as long as its layout takes.
 */
async function loadTreeOnce(repo: Repository, id: Id): Promise<(LayoutNode | undefined)[]> {
  const bytes = await repo.loadBlob('tree', id);
  const tree = decodeTree(bytes, `tree ${id.slice(0, 12)}`);
  // Decoded: free the bytes now (they are this call's alone), not with the next collection.
  releaseBytes(bytes, true);
  return tree.nodes.map(layoutNode);
}

export interface RestoreOptions {
  target: string;
  /** restore only this path inside the snapshot (`SNAPSHOT:subpath`) */
  subpath?: string;
  /** glob patterns on snapshot paths: only matching entries (and what is below them) are restored */
  include?: string[];
  /**
   * Like `include`, as a predicate on snapshot paths: for a set of exact paths too large for patterns (each pattern
   * is tried on every path; used by @backup-manager/verify's sampled recovery tests). Either one selecting is enough.
   */
  select?: (snapshotPath: string) => boolean;
  exclude?: string[];
  overwrite?: boolean;
  /** leave all-zero blocks as holes (default true) */
  sparse?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: RestoreEvent) => void;
  workers?: number;
  /** bytes read from packs but not yet written, at most (default: two reads per worker, 8 MiB with two workers) */
  maxInFlightBytes?: number;
}

export type RestoreEvent =
  | { type: 'planned'; files: number; bytes: number }
  | { type: 'progress'; bytesDone: number; bytesTotal: number; filesDone: number; filesTotal: number }
  | { type: 'problem'; problem: RestoreProblem };

export interface RestoreProblem {
  path: string;
  /** exists, mismatch, unreadable-data, unsupported, write-failed */
  code: string;
  message: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  bytes: number;
  problems: RestoreProblem[];
  /** files whose restored content did not match the snapshot's SHA-256 */
  mismatches: string[];
  durationMs: number;
}

/**
 * One ranged read of a pack; larger runs are split. Every byte read stays in memory until a worker has written it
 * out, and a worker needs only the read it works on and the next: 2 MiB reads (two per worker in flight) restore as
 * fast as 16 MiB ones from a local disk, with an eighth of the memory.
 */
const MAX_RUN_BYTES = 2 * 1024 * 1024;

/**
 * What the restore applies to a path at the end: ownership, mode and times (seconds, as fs.utimes takes them).
 * Kept instead of the tree node, whose content list, names and identity fields are not needed after planning.
 */
interface Metadata {
  type: TreeNode['type'];
  uid: number;
  gid: number;
  mode: number;
  atime: number;
  mtime: number;
}

function metadataOf(n: Metadata): Metadata {
  return { type: n.type, uid: n.uid, gid: n.gid, mode: n.mode, atime: n.atime, mtime: n.mtime };
}

/**
 * What the layout needs of a tree node: its metadata with the times as numbers, and no change-detection fields
 * (ctime, device and inode strings), which made up a third of a decoded node.
 */
interface LayoutNode extends Metadata {
  name: string;
  nlink: number;
  /** `dev:inode` of a non-directory with other hard links, to find the first of them */
  linkKey: string | undefined;
  size: number | undefined;
  content: Id[] | undefined;
  sha256: string | undefined;
  subtree: Id | undefined;
  linkTarget: string | undefined;
  rdev: number | undefined;
}

function layoutNode(n: TreeNode): LayoutNode {
  return {
    type: n.type, uid: n.uid, gid: n.gid, mode: n.mode, atime: utimeSeconds(n.atimeNs), mtime: utimeSeconds(n.mtimeNs),
    name: n.name, nlink: n.nlink, linkKey: n.nlink > 1 && n.type !== 'dir' ? `${n.dev}:${n.inode}` : undefined,
    size: n.size, content: n.content, sha256: n.sha256, subtree: n.subtree, linkTarget: n.linkTarget, rdev: n.rdev,
  };
}

/**
 * A file to fill. One per regular file of the snapshot (tens of thousands are common), so it holds only what the
 * checks and the metadata need; workers name it by its number in `files`.
 */
interface PlannedFile extends Metadata {
  path: string;
  size: number;
  /** SHA-256 of the whole content, from the snapshot */
  sha256: string;
  /**
   * not made by the layout: a worker creates it (O_CREAT|O_EXCL|O_NOFOLLOW) when it writes its one blob. Only in a
   * directory this restore made (nothing can stand there), for a file of at most one blob that no hard link needs
   */
  lazy: boolean;
  /** blob writes not yet handed to a worker */
  usesLeft: number;
  /** tasks with writes to this file that a worker has not finished yet */
  tasks: number;
  /** digest reported by the worker that finished the file */
  digest: string | undefined;
  /** a worker has set its ownership, mode and times */
  finished: boolean;
  failed: boolean;
}

/**
 * A blob to read and where it goes: most blobs belong to one file, which is held inline (`file` and its offset
 * `at`); further files that hold the same blob follow in `more` as pairs of file number and offset.
 */
interface BlobUse {
  id: Id;
  offset: number;
  length: number;
  rawLength: number;
  file: number;
  at: number;
  more?: number[];
}

function targetCount(use: BlobUse): number {
  return 1 + (use.more ? use.more.length / 2 : 0);
}

/** Files finished in one task of their own (empty files, files written by several tasks), at most. */
const FINISH_BATCH = 256;

/** The bytes of a task that carries none (the worker reads its range, or it only finishes files). */
const NO_BYTES: Uint8Array = new Uint8Array(0);

/** Subtrees read ahead of the one the layout works on, per directory: tree reads overlap instead of queueing. */
const TREE_READ_AHEAD = 4;

/**
 * How long the layout runs before it lets the workers' replies in. Subtrees read ahead resolve without a return to
 * the event loop, so the layout could plan for tens of milliseconds while a worker that had finished its two tasks
 * waited for the next; measured on the benchmark corpus, the workers' idle time between tasks fell by a third.
 */
const LAYOUT_SLICE_MS = 3;

/** Packs the layout must have moved on by before one is read (see Restorer.packs). */
const PACK_LAG = 2;

/**
 * Packs planned and not yet read, at most, before the layout waits for the writing to catch up: the plan then
 * holds a few packs' worth of files instead of every file of the snapshot. Above PACK_LAG, so one is always ready.
 */
const MAX_PENDING_PACKS = 3;

/**
 * Blob writes planned and not yet taken by fill(), at most, before the layout waits: a pack of small files holds
 * thousands of them, and a few such packs planned ahead made the plan (paths, digests, blob uses) tens of megabytes
 * that the heap then had to hold besides its garbage. When the layout waits for this bound, fill() may take the
 * pack being planned; its later writes are read as a pack entry of their own (see Restorer.packs).
 */
const MAX_QUEUED_WRITES = 2048;

/** What the include, exclude and select options make of a path. */
interface Selection {
  /** restore this entry */
  restore: boolean;
  /** look below it (a directory not selected itself may hold selected entries) */
  enter: boolean;
  /** selected itself, and so everything below it */
  included: boolean;
}
const INCLUDED: Selection = Object.freeze({ restore: true, enter: true, included: true });
const ENTERED: Selection = Object.freeze({ restore: false, enter: true, included: false });
const SKIPPED: Selection = Object.freeze({ restore: false, enter: false, included: false });

/** How the layout hands a directory to what is below it. */
interface ParentDir {
  /** makes the directory (once); false when it could not be made, and everything below it is skipped */
  make: () => boolean;
  /** after make(): this restore created it, so nothing else can stand in it and names need no checking */
  fresh: () => boolean;
}
class Restorer {
  private readonly repo: Repository;
  private readonly options: RestoreOptions;
  private readonly includes: RegExp[];
  private readonly excludes: RegExp[];
  readonly problems: RestoreProblem[] = [];
  /** by file number; a file is dropped (undefined) once finished and checked, so the plan holds what is in flight */
  private readonly files: (PlannedFile | undefined)[] = [];
  /** files whose restored content does not match the snapshot */
  private readonly mismatched: string[] = [];
  /**
   * Directories this restore made, for discardCreated: every regular file in them is this run's (the workers create
   * files only there), so they are not listed one by one, which took a path per file of the snapshot.
   */
  private readonly freshDirs: string[] = [];
  /**
   * Blob writes planned but not yet handed to a worker, per pack, in the order the layout first needed each pack
   * (`seq` counts those firsts). A pack's writes are sent once the layout has moved on by PACK_LAG packs, once it
   * waits for fill() (MAX_QUEUED_WRITES), or once it is done: backups write packs in about the order of the tree,
   * so the layout and the writing overlap. A write the layout plans later for a pack already sent starts a new
   * entry, read on its own.
   */
  private readonly packs = new Map<Id, { seq: number; uses: Map<Id, BlobUse>; writes: number }>();
  private packsSeen = 0;
  /** blob writes in `packs` (one per file a blob goes to), for MAX_QUEUED_WRITES */
  private queuedWrites = 0;
  /** the layout waits for fill() to take what it planned: any pack may be sent */
  private layoutWaiting = false;
  /** the layout is still adding files */
  private planning = true;
  /** the layout failed: send nothing more */
  private stopped = false;
  /** wakes fill() when it waits for the layout */
  private wake: (() => void) | undefined;
  /** wakes the layout when it waits for fill() */
  private resumeLayout: (() => void) | undefined;
  /** fill() has returned (or failed): the layout no longer waits for it */
  private fillEnded = false;
  private fillFailure: unknown;
  private readonly dirs: { path: string; meta: Metadata }[] = [];
  private readonly links = new Map<string, string>();
  /** files and hard links the layout created in directories that were there before, for discardCreated */
  private readonly createdFiles: string[] = [];
  private readonly fifos: { path: string; node: LayoutNode }[] = [];
  private readonly others: { path: string; node: LayoutNode }[] = [];
  private bytesTotal = 0;
  private readonly isRoot = process.getuid?.() === 0;
  /** files whose writes are all done, for a finishing task */
  private finishQueue: number[] = [];
  private filesDone = 0;
  /** when the layout last let the event loop in (see LAYOUT_SLICE_MS) */
  private sliceStart = performance.now();

  constructor(repo: Repository, options: RestoreOptions) {
    this.repo = repo;
    this.options = options;
    this.includes = (options.include ?? []).map(compilePattern);
    this.excludes = (options.exclude ?? []).map(compilePattern);
  }

  private problem(p: string, code: string, message: string): void {
    const pr = { path: p, code, message };
    this.problems.push(pr);
    this.options.onEvent?.({ type: 'problem', problem: pr });
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw new BackupError('INTERRUPTED', 'restore interrupted: the target holds a partial restore');
  }

  /**
   * Makes a directory that must be a real directory (not a symlink planted in the target). Returns false, with a
   * problem reported, when something else stands there and may not be replaced: the subtree is then skipped, like
   * a file that exists, instead of aborting the restore half-way with pre-sized but unfilled files behind it.
   */
  private ensureDir(p: string): 'fresh' | 'existing' | 'blocked' {
    try {
      try {
        fs.mkdirSync(p, { mode: 0o700 });
        return 'fresh';
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const st = fs.lstatSync(p);
      if (st.isDirectory()) return 'existing';
      if (!this.options.overwrite) {
        this.problem(p, 'exists', `${p} exists and is not a directory: refusing to write through it, skipped with its contents (use --overwrite to replace it)`);
        return 'blocked';
      }
      fs.rmSync(p, { force: true });
      fs.mkdirSync(p, { mode: 0o700 });
      return 'fresh';
    } catch (e) {
      this.problem(p, 'write-failed', `cannot create directory ${p}: ${(e as Error).message} (skipped with its contents)`);
      return 'blocked';
    }
  }

  /** Removes what stands at `p` when overwriting; otherwise reports it. Returns false when `p` must be skipped. */
  private clear(p: string): boolean {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return true;
    }
    if (!this.options.overwrite) {
      this.problem(p, 'exists', `${p} already exists: not overwritten (use --overwrite)`);
      return false;
    }
    if (st.isDirectory()) {
      this.problem(p, 'exists', `${p} is a directory where the snapshot has a ${'file'}: left as it is`);
      return false;
    }
    fs.unlinkSync(p);
    return true;
  }

  private selected(snapPath: string, parentIncluded: boolean): Selection {
    if (this.excludes.some((r) => r.test(snapPath))) return SKIPPED;
    if ((this.includes.length === 0 && !this.options.select) || parentIncluded) return INCLUDED;
    const inc = this.includes.some((r) => r.test(snapPath)) || this.options.select?.(snapPath) === true;
    return inc ? INCLUDED : ENTERED;
  }

  /** No include, exclude or select: everything is restored, and snapshot paths need not even be made. */
  private get everything(): boolean {
    return this.excludes.length === 0 && this.includes.length === 0 && !this.options.select;
  }

  /**
   * Creates directories, links, special-file placeholders and pre-sized files. Directories are made lazily through
   * `parent.make` (so include patterns create only the parents they need); `make` returns false when the directory
   * could not be made, and everything below it is skipped.
   */
  async layout(nodes: (LayoutNode | undefined)[], dir: string, snapDir: string, parentIncluded: boolean, parent: ParentDir): Promise<void> {
    const snapPathOf = (node: LayoutNode): string => (snapDir === '/' ? `/${node.name}` : `${snapDir}/${node.name}`);
    const sels = this.everything ? nodes.map(() => INCLUDED) : nodes.map((node) => this.selected(snapPathOf(node!), parentIncluded));
    // The subtrees this directory enters, read a few ahead of the one being laid out (in order: the first damaged
    // tree still stops the layout where it did). A read that fails is reported when its turn comes.
    const subtrees = nodes.filter((node, i) => node!.type === 'dir' && sels[i]!.enter).map((node) => node!.subtree!);
    const reads: (Promise<(LayoutNode | undefined)[]> | undefined)[] = [];
    const readAhead = (upTo: number): void => {
      for (let i = reads.length; i < Math.min(upTo, subtrees.length); i++) {
        const read = loadTreeOnce(this.repo, subtrees[i]!);
        read.catch(() => undefined);
        reads.push(read);
      }
    };
    readAhead(TREE_READ_AHEAD);
    let nextSubtree = 0;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      // Laid out nodes are let go of: the rest of a large directory is all the layout holds of it.
      nodes[i] = undefined;
      const sel = sels[i]!;
      this.checkAbort();
      if (performance.now() - this.sliceStart > LAYOUT_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        this.sliceStart = performance.now();
      }
      if (this.overPlanned() && !this.fillEnded) await this.waitForFill();
      if (!sel.enter) continue;
      // Names from a decoded tree are single safe components (tree.ts): joining needs no normalising.
      const p = dir.endsWith('/') ? dir + node.name : `${dir}/${node.name}`;
      if (node.type === 'dir') {
        const k = nextSubtree++;
        readAhead(k + 1 + TREE_READ_AHEAD);
        const tree = await reads[k]!;
        reads[k] = undefined;
        let state: 'pending' | 'fresh' | 'existing' | 'blocked' = 'pending';
        const make = (): boolean => {
          if (state === 'pending') {
            state = parent.make() ? this.ensureDir(p) : 'blocked';
            if (state !== 'blocked') this.dirs.push({ path: p, meta: metadataOf(node) });
            if (state === 'fresh') this.freshDirs.push(p);
          }
          return state !== 'blocked';
        };
        if (sel.restore && !make()) continue;
        await this.layout(tree, p, snapPathOf(node), sel.included, { make, fresh: () => state === 'fresh' });
        continue;
      }
      if (!sel.restore) continue;
      if (!parent.make()) continue;
      this.leaf(p, node, parent.fresh());
    }
  }

  /**
   * After a failed layout, once the writes already under way are done (see stopFill): removes every file this run
   * created, filled or not, so that nothing is left that looks restored.
   */
  discardCreated(): void {
    for (const p of this.createdFiles) fs.rmSync(p, { force: true });
    for (const dir of this.freshDirs) {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      // Regular files only, as listed one by one before: links, FIFOs and directories stay, as they always did.
      for (const entry of entries) if (entry.isFile()) fs.rmSync(path.join(dir, entry.name), { force: true });
    }
  }

  /** The target itself was made by this restore (see freshDirs). */
  madeTarget(target: string): void {
    this.freshDirs.push(target);
  }

  /** After a failed layout: fill() sends nothing more and returns once the tasks under way are done. */
  stopFill(): void {
    this.stopped = true;
    this.planning = false;
    this.wakeFill();
  }

  /** After a complete layout: fill() may send every pack; the list of created files is no longer needed. */
  layoutDone(): void {
    this.createdFiles.length = 0;
    this.freshDirs.length = 0;
    this.links.clear();
    this.planning = false;
    this.options.onEvent?.({ type: 'planned', files: this.files.length, bytes: this.bytesTotal });
    this.wakeFill();
  }

  private wakeFill(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** `fresh`: the directory was made by this restore, so nothing stands at `p` yet. */
  private leaf(p: string, node: LayoutNode, fresh: boolean): void {
    try {
      if (!fresh && !this.clear(p)) return;
      if (node.linkKey !== undefined) {
        const key = node.linkKey;
        const first = this.links.get(key);
        if (first !== undefined) {
          fs.linkSync(first, p);
          if (!fresh) this.createdFiles.push(p);
          return;
        }
        this.links.set(key, p);
      }
      switch (node.type) {
        case 'file':
          this.planFile(p, node, fresh);
          return;
        case 'symlink':
          fs.symlinkSync(node.linkTarget!, p);
          this.others.push({ path: p, node });
          return;
        case 'fifo':
          this.fifos.push({ path: p, node });
          return;
        case 'chardev':
        case 'blockdev':
          if (!this.isRoot) {
            this.problem(p, 'unsupported', `${p}: restoring a device needs root (skipped)`);
            return;
          }
          this.others.push({ path: p, node });
          return;
        case 'socket':
          this.problem(p, 'unsupported', `${p}: sockets are not restored (like tar, a socket is made by the program that listens on it)`);
          return;
      }
    } catch (e) {
      if (e instanceof BackupError) throw e;
      this.problem(p, 'write-failed', `cannot create ${p}: ${(e as Error).message}`);
    }
  }

  /**
   * Plans a file's blob writes. A file of at most one blob in a directory this restore made (`fresh`) that no hard
   * link needs is left for its worker to create; any other is created now, pre-sized, so that writes of several
   * tasks and hard links find it, and so that a name that already exists is reported before anything is written.
   */
  private planFile(p: string, node: LayoutNode, fresh: boolean): void {
    const content = node.content!;
    const locs = content.map((id) => this.repo.index.lookup(id));
    const missing = locs.findIndex((l) => l === undefined);
    const lazy = fresh && node.nlink <= 1 && content.length <= 1 && missing < 0;
    if (!lazy) {
      const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      if (!fresh) this.createdFiles.push(p);
      try {
        if (node.size! > 0) fs.ftruncateSync(fd, node.size!);
      } finally {
        fs.closeSync(fd);
      }
    }
    const planned: PlannedFile = {
      type: node.type, uid: node.uid, gid: node.gid, mode: node.mode, atime: node.atime, mtime: node.mtime,
      path: p, size: node.size!, sha256: node.sha256!, lazy, usesLeft: 0, tasks: 0, digest: undefined, finished: false, failed: false,
    };
    const file = this.files.length;
    this.files.push(planned);
    let offset = 0;
    for (let i = 0; i < content.length; i++) {
      const id = content[i]!;
      const loc = locs[i];
      if (!loc) {
        this.problem(p, 'unreadable-data', `${p}: data blob ${id.slice(0, 12)} is missing from the repository`);
        planned.failed = true;
        return;
      }
      let pack = this.packs.get(loc.packId);
      if (!pack) {
        pack = { seq: ++this.packsSeen, uses: new Map(), writes: 0 };
        this.packs.set(loc.packId, pack);
        if (this.wake && this.readyPack()) this.wakeFill();
      }
      const uses = pack.uses;
      const use = uses.get(id);
      if (!use) uses.set(id, { id, offset: loc.offset, length: loc.length, rawLength: loc.rawLength, file, at: offset });
      else (use.more ??= []).push(file, offset);
      pack.writes++;
      this.queuedWrites++;
      planned.usesLeft++;
      offset += loc.rawLength;
    }
    // An empty file has no writes: it is finished (created, for a lazy one) by a task of its own.
    if (content.length === 0) this.finishQueue.push(file);
    this.bytesTotal += node.size!;
  }

  /** Waits until fill() has taken enough of the plan (or has ended, after a failure that the layout then reports). */
  private async waitForFill(): Promise<void> {
    while (this.overPlanned() && !this.fillEnded) {
      this.layoutWaiting = true;
      // Every pack is ready now (see readyPack): fill() may be waiting for one.
      this.wakeFill();
      await new Promise<void>((resolve) => (this.resumeLayout = resolve));
    }
    this.layoutWaiting = false;
    if (this.fillFailure !== undefined) throw this.fillFailure;
  }

  /** The layout has planned enough ahead of the writing (see MAX_PENDING_PACKS and MAX_QUEUED_WRITES). */
  private overPlanned(): boolean {
    return this.packs.size > MAX_PENDING_PACKS || this.queuedWrites > MAX_QUEUED_WRITES;
  }

  private wakeLayout(): void {
    const resume = this.resumeLayout;
    this.resumeLayout = undefined;
    resume?.();
  }

  /** The next pack whose writes may be sent, if any (see `packs`). */
  private readyPack(): Id | undefined {
    if (this.stopped) return undefined;
    for (const [packId, pack] of this.packs) return !this.planning || this.layoutWaiting || pack.seq <= this.packsSeen - PACK_LAG ? packId : undefined;
    return undefined;
  }

  /**
   * Reads the packs and has the workers write their blobs, while the layout plans them (from its start to its
   * end: see `packs`); then finishes the files that several tasks wrote. Resolves when every write is done.
   */
  async fill(pool: WorkerPool): Promise<void> {
    try {
      await this.fillPacks(pool);
    } catch (e) {
      this.fillFailure = e;
      throw e;
    } finally {
      this.fillEnded = true;
      this.wakeLayout();
    }
  }

  private async fillPacks(pool: WorkerPool): Promise<void> {
    let bytesDone = 0;
    let inFlightBytes = 0;
    const maxInFlightBytes = this.options.maxInFlightBytes ?? pool.size * 2 * MAX_RUN_BYTES;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const sparse = this.options.sparse !== false;
    const backend = this.repo.backend;
    /**
     * A local repository's pack ranges are read by the workers (Backend.localFile). Read here, every read waited
     * for this thread's event loop, busy with the layout: measured on the benchmark corpus, 2.4 s of waiting in all
     * (6.5 ms a read), and the workers often had one task or none left when the next arrived.
     */
    const localFile = backend.localFile?.bind(backend);
    /**
     * Pack reads the workers gave back, for the next reads when the backend reads into a given buffer (loadInto):
     * fresh memory for every read cost a mapping, its zeroing page by page and its unmapping (measured: 0.26 s of
     * system time for the corpus's 570 MB of packs, against 0.1 s reading into reused buffers). A few more than
     * the reads in flight, all of READ_BUFFER_BYTES: a rare larger read pins nothing.
     */
    const spare: Uint8Array[] = [];
    const maxSpare = pool.size * 2 + 2;
    const keepBuffer = (b: Uint8Array): void => {
      if (backend.loadInto === undefined || spare.length >= maxSpare || b.byteLength > READ_BUFFER_BYTES) releaseBytes(b);
      else spare.push(b);
    };
    const readBuffer = (length: number): Uint8Array => {
      for (let i = 0; i < spare.length; i++) if (spare[i]!.byteLength >= length) return spare.splice(i, 1)[0]!;
      return new Uint8Array(length <= READ_BUFFER_BYTES ? READ_BUFFER_BYTES : length);
    };
    /**
     * Hands a task to the pool, and waits while what is read but not yet written exceeds the bounds. Not an async
     * function itself: its frame would hold the task's file and blob lists while it waits.
     */
    const dispatch = ({ task, files, bytes }: { task: Omit<WorkerRestoreTask, 'task'>; files: number[]; bytes: number }, ownBytes = task.data.byteLength): Promise<void> => {
      // Counted now (the bytes read, of a buffer that may be larger): once transferred to the worker, `task.data` is
      // detached and reads as empty.
      inFlightBytes += ownBytes;
      const job: Promise<void> = pool.restore(task).then(
        (r) => {
          if (r.data !== undefined) keepBuffer(r.data);
          for (const err of r.errors) {
            const f = this.files[err.file];
            if (!f) continue;
            if (err.metadata) this.problem(f.path, 'write-failed', `cannot set metadata of ${f.path}: ${err.message}`);
            else this.failFile(err.file, err.message);
          }
          for (const h of r.hashes) {
            const f = this.files[h.file];
            if (f) f.digest = h.sha256;
          }
          for (const n of r.finished) {
            const f = this.files[n];
            if (!f) continue;
            f.finished = true;
          }
          this.filesDone += r.finished.length;
          // Files written by several tasks are finished once the last of them is done.
          for (const n of files) {
            const f = this.files[n]!;
            if (--f.tasks === 0 && f.usesLeft === 0 && !f.finished && !f.failed) this.finishQueue.push(n);
          }
          for (const n of r.finished) this.settle(n);
          bytesDone += bytes;
          this.options.onEvent?.({ type: 'progress', bytesDone, bytesTotal: this.bytesTotal, filesDone: this.filesDone, filesTotal: this.files.length });
        },
        (e: unknown) => {
          failure ??= e;
        },
      );
      const tracked = job.finally(() => {
        inFlight.delete(tracked);
        inFlightBytes -= ownBytes;
      });
      inFlight.add(tracked);
      return backPressure();
    };
    /** Bounds what is read but not yet written, in tasks as well as in bytes, so memory stays flat. */
    const backPressure = async (): Promise<void> => {
      while (inFlight.size >= pool.size * 2 || inFlightBytes >= maxInFlightBytes) await Promise.race(inFlight);
      if (failure) throw failure;
    };
    /** Finishes queued files (hash, metadata) in tasks without blobs: `all` sends a partial batch too. */
    const finishQueued = async (all: boolean): Promise<void> => {
      const queue = this.finishQueue;
      while (queue.length > 0) {
        // A batch ends at FINISH_BATCH files or at MAX_RUN_BYTES of content to read back, so that large files are
        // hashed by both workers at once rather than one after the other by one.
        let n = 0;
        let bytes = 0;
        while (n < queue.length && n < FINISH_BATCH && bytes < MAX_RUN_BYTES) bytes += this.files[queue[n++]!]!.size;
        if (n === queue.length && n < FINISH_BATCH && bytes < MAX_RUN_BYTES && !all) return;
        const files = queue.splice(0, n).map((f) => this.fileSpec(f, true));
        await dispatch({ task: { packId: '', data: NO_BYTES, sparse, chown: this.isRoot, files, blobs: [] }, files: [], bytes: 0 });
      }
    };
    for (;;) {
      const packId = this.readyPack();
      if (packId === undefined) {
        if (!this.planning) break;
        if (!this.stopped) await finishQueued(false);
        if (this.readyPack() === undefined && this.planning) await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      this.checkAbort();
      // Taken out of the plan before the first await: writes planned from now on start a new entry.
      const entry = this.packs.get(packId)!;
      const blobs = [...entry.uses.values()].sort((a, b) => a.offset - b.offset);
      this.packs.delete(packId);
      this.queuedWrites -= entry.writes;
      if (!this.overPlanned()) this.wakeLayout();
      // Read runs of blobs that lie close together in one request: each pack is fetched once, without large gaps.
      let run: BlobUse[] = [];
      let runBytes = 0;
      const flush = async (): Promise<void> => {
        if (run.length === 0) return;
        let group: BlobUse[] | undefined = run;
        run = [];
        runBytes = 0;
        const start = group[0]!.offset;
        const end = group.at(-1)!.offset + group.at(-1)!.length;
        const length = end - start;
        // From a local repository the worker reads the range itself (see localFile); otherwise it is read here.
        let data: Uint8Array = NO_BYTES;
        let read: WorkerRestoreTask['read'];
        if (localFile !== undefined) {
          read = { file: localFile({ type: 'data', name: packId }), start, length };
        } else {
          try {
            if (backend.loadInto !== undefined) {
              // The task carries the whole buffer (a transfer moves whole buffers); its blobs lie in the first `length` bytes.
              data = readBuffer(length);
              try {
                await backend.loadInto({ type: 'data', name: packId }, start, data.subarray(0, length));
              } catch (e) {
                keepBuffer(data);
                throw e;
              }
            } else {
              const loaded = await backend.load({ type: 'data', name: packId }, start, length);
              // A backend may hand back a view into a larger buffer: transfer needs a buffer of its own.
              data = loaded.byteOffset === 0 && loaded.byteLength === loaded.buffer.byteLength ? loaded : loaded.slice();
            }
          } catch (e) {
            this.unreadable(group, unreadablePackMessage(packId, e));
            return;
          }
        }
        const sent = dispatch(this.task(packId, data, start, group, sparse, read), length);
        // Described in the task: the blob uses are no longer needed while it waits.
        group = undefined;
        await sent;
        await finishQueued(false);
      };
      for (const b of blobs) {
        const last = run.at(-1);
        // A run ends before a large gap, and before a blob that would take the read past a reused buffer's size.
        if (last && (b.offset - (last.offset + last.length) > 1024 * 1024 || b.offset + b.length - run[0]!.offset > READ_BUFFER_BYTES)) await flush();
        run.push(b);
        runBytes += b.length;
        if (runBytes >= MAX_RUN_BYTES) await flush();
      }
      await flush();
    }
    // The last finishing tasks wait for the writes before them; they add no further work.
    while (inFlight.size > 0 || (this.finishQueue.length > 0 && !this.stopped)) {
      await Promise.all(inFlight);
      if (failure) throw failure;
      if (!this.stopped) await finishQueued(true);
    }
    for (const b of spare.splice(0)) releaseBytes(b);
    if (failure) throw failure;
  }

  /**
   * A file that a worker finished, with nothing more to write: its SHA-256 is compared with the snapshot's, and
   * the plan lets go of it. A file that failed stays, for the metadata step.
   */
  private settle(file: number): void {
    const f = this.files[file];
    if (!f || !f.finished || f.tasks > 0 || f.usesLeft > 0 || f.failed || f.digest === undefined) return;
    if (f.digest !== f.sha256) {
      this.mismatched.push(f.path);
      this.problem(f.path, 'mismatch', `${f.path}: restored content does not match the snapshot (SHA-256 ${f.digest.slice(0, 12)}…, expected ${f.sha256.slice(0, 12)}…)`);
    }
    this.files[file] = undefined;
  }

  /** What a worker needs to know about a file. */
  private fileSpec(file: number, finish: boolean): RestoreFile {
    const f = this.files[file]!;
    return { file, path: f.path, size: f.size, create: f.lazy, finish, uid: f.uid, gid: f.gid, mode: f.mode, atime: f.atime, mtime: f.mtime };
  }

  /**
   * The task for one read of a pack: its blobs, where each goes, and the files it writes. A file whose every write
   * is in this task, with no earlier task still writing it, is finished by this task's worker.
   */
  private task(packId: Id, data: Uint8Array, start: number, group: BlobUse[], sparse: boolean, read?: WorkerRestoreTask['read']): { task: Omit<WorkerRestoreTask, 'task'>; files: number[]; bytes: number } {
    const slot = new Map<number, number>();
    const files: number[] = [];
    let bytes = 0;
    const blobs = group.map((b) => {
      const targets: number[] = [];
      const add = (file: number, at: number): void => {
        let i = slot.get(file);
        if (i === undefined) {
          i = files.length;
          slot.set(file, i);
          files.push(file);
        }
        targets.push(i, at);
        this.files[file]!.usesLeft--;
      };
      add(b.file, b.at);
      const more = b.more;
      if (more) for (let i = 0; i < more.length; i += 2) add(more[i]!, more[i + 1]!);
      bytes += b.rawLength * targetCount(b);
      return { id: b.id, rawLength: b.rawLength, offset: b.offset - start, length: b.length, targets };
    });
    const specs = files.map((n) => {
      const f = this.files[n]!;
      const finish = f.usesLeft === 0 && f.tasks === 0;
      f.tasks++;
      return this.fileSpec(n, finish);
    });
    return { task: { packId, data, ...(read ? { read } : {}), sparse, chown: this.isRoot, files: specs, blobs }, files, bytes };
  }

  /**
   * A range of a pack could not be read: its files fail. One that a worker was to create is created here, at its
   * size, so that the restored tree is complete and the problem names a file that exists.
   */
  private unreadable(group: BlobUse[], message: string): void {
    for (const b of group) {
      const targets = [b.file, ...(b.more ?? []).filter((_, i) => i % 2 === 0)];
      for (const file of targets) {
        const f = this.files[file]!;
        f.usesLeft--;
        this.failFile(file, message);
        if (!f.lazy) continue;
        try {
          const fd = fs.openSync(f.path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
          // Made here after all: the metadata step may set its mode and times.
          f.lazy = false;
          try {
            if (f.size > 0) fs.ftruncateSync(fd, f.size);
          } finally {
            fs.closeSync(fd);
          }
        } catch (e) {
          this.problem(f.path, 'write-failed', `cannot create ${f.path}: ${(e as Error).message}`);
        }
      }
    }
  }

  private failFile(file: number, message: string): void {
    const f = this.files[file];
    if (f && !f.failed) {
      f.failed = true;
      this.problem(f.path, 'unreadable-data', `${f.path}: ${message}`);
    }
  }

  /**
   * The files that were checked as they were finished are gone from the plan (see settle); any other file that
   * did not fail is read back and checked here: a safety net, since every finished file was hashed by its worker.
   */
  async check(pool: WorkerPool): Promise<string[]> {
    const compare = (f: PlannedFile, got: string): void => {
      if (got === f.sha256) return;
      this.mismatched.push(f.path);
      this.problem(f.path, 'mismatch', `${f.path}: restored content does not match the snapshot (SHA-256 ${got.slice(0, 12)}…, expected ${f.sha256.slice(0, 12)}…)`);
    };
    // A promise only for a file read back: this runs once the workers are done, so it adds to the restore's time.
    const readBack: Promise<void>[] = [];
    for (const f of this.files) {
      if (!f || f.failed) continue;
      if (f.digest !== undefined) compare(f, f.digest);
      else readBack.push(pool.hashFile(f.path).then((got) => compare(f, got)));
    }
    await Promise.all(readBack);
    return this.mismatched.sort();
  }

  specials(): void {
    if (this.fifos.length > 0) {
      for (const { path: p, node } of this.fifos) {
        try {
          execFileSync('mkfifo', ['-m', (node.mode & 0o777).toString(8), '--', p], { stdio: 'pipe' });
          this.others.push({ path: p, node });
        } catch (e) {
          this.problem(p, 'write-failed', `cannot create FIFO ${p}: ${(e as Error).message}`);
        }
      }
    }
    for (const { path: p, node } of this.others) {
      if (node.type !== 'chardev' && node.type !== 'blockdev') continue;
      const rdev = node.rdev ?? 0;
      // Linux dev_t encoding (glibc gnu_dev_major/minor).
      const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
      const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
      try {
        execFileSync('mknod', ['-m', (node.mode & 0o7777).toString(8), '--', p, node.type === 'chardev' ? 'c' : 'b', String(major), String(minor)], { stdio: 'pipe' });
      } catch (e) {
        this.problem(p, 'write-failed', `cannot create device ${p}: ${(e as Error).message}`);
      }
    }
  }

  /** Ownership, modes and times: files and links first, then directories deepest first. */
  metadata(): void {
    const apply = (p: string, m: Metadata): void => {
      try {
        if (m.type === 'symlink') {
          if (this.isRoot) fs.lchownSync(p, m.uid, m.gid);
          fs.lutimesSync(p, m.atime, m.mtime);
          return;
        }
        if (this.isRoot) fs.chownSync(p, m.uid, m.gid);
        // chmod after chown: chown clears set-id bits.
        fs.chmodSync(p, m.mode);
        fs.utimesSync(p, m.atime, m.mtime);
      } catch (e) {
        this.problem(p, 'write-failed', `cannot set metadata of ${p}: ${(e as Error).message}`);
      }
    };
    // Files the workers finished have theirs already; the others are those that failed.
    // A file left to a worker to create that it did not finish was never created by this run (something else
    // stands there): it is not touched.
    for (const f of this.files) if (f && !f.finished && !f.lazy) apply(f.path, f);
    for (const o of this.others) if (o.node.type !== 'fifo' || fs.existsSync(o.path)) apply(o.path, o.node);
    const dirs = [...this.dirs].sort((a, b) => b.path.length - a.path.length);
    for (const d of dirs) apply(d.path, d.meta);
  }

  get fileCount(): number {
    return this.files.length;
  }

  get dirCount(): number {
    return this.dirs.length;
  }

  get bytes(): number {
    return this.bytesTotal;
  }
}

/**
 * A nanosecond time as the float seconds fs.utimes takes. A double near 2^31..2^32 seconds only resolves ~0.24..0.48 µs,
 * and `Number(ns) / 1e9` rounds twice, so the restored time could land in the previous microsecond (or even the
 * previous second for .999999999). Aiming at the middle of the right microsecond keeps the restored time exact to
 * the microsecond, which is the most fs.utimes can promise.
 */
export function utimeSeconds(nsText: string): number {
  // The usual case, a non-negative time, without BigInt arithmetic (two per file and directory add up): the digits
  // split into seconds and nanoseconds exactly; the seconds stay exact as a double up to 16 digits.
  const n = nsText.length;
  if (n <= 25 && nsText.charCodeAt(0) !== 45 /* - */) {
    const sec = n > 9 ? Number(nsText.slice(0, n - 9)) : 0;
    const frac = Number(n > 9 ? nsText.slice(n - 9) : nsText);
    return sec + (Math.floor(frac / 1000) * 1000 + 500) / 1e9;
  }
  const ns = BigInt(nsText);
  let sec = ns / 1_000_000_000n;
  let frac = ns - sec * 1_000_000_000n;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    sec -= 1n;
  }
  return Number(sec) + (Number(frac / 1000n) * 1000 + 500) / 1e9;
}

/** Restores a snapshot into `options.target`. The caller holds a shared lock (or none, for a read-only repository). */
export async function restore(repo: Repository, snapshotId: Id, options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  if (repo.indexFiles.length === 0) await repo.loadIndex();
  const snapshot = await repo.loadSnapshot(snapshotId);
  const target = path.resolve(options.target);
  const r = new Restorer(repo, options);
  // mkdir returns the first directory it made: when it made the target, nothing stands in it.
  const rootFresh = fs.mkdirSync(target, { recursive: true, mode: 0o700 }) !== undefined;
  const start = await resolveSnapshotPath(repo, snapshot.tree, options.subpath ?? '/');
  const rootMade: ParentDir = { make: () => true, fresh: () => rootFresh };
  if (rootFresh) r.madeTarget(target);
  // The workers start (load their code) while the main thread lays out the tree.
  const m = cryptoMaterial(repo);
  const init = { key: m.key, chunkerSecret: m.chunkerSecret, chunkSizes: m.chunkSizes, compression: m.compression };
  const pool = new WorkerPool(init, { claim: () => [], store: async () => undefined }, options.workers);
  let mismatches: string[];
  try {
    // Filling starts while the layout goes on, with the packs the layout has planned (see Restorer.packs).
    const filling = r.fill(pool);
    filling.catch(() => undefined);
    try {
      if (start.node.type === 'dir') {
        await r.layout(await loadTreeOnce(repo, start.node.subtree!), target, start.path, false, rootMade);
      } else {
        await r.layout([layoutNode(start.node)], target, path.posix.dirname(start.path), false, rootMade);
      }
    } catch (e) {
      // A damaged or hostile tree (or an interruption) fails the whole restore: once the writes under way are
      // done, leave no file of this run behind that looks restored.
      r.stopFill();
      await filling.catch(() => undefined);
      r.discardCreated();
      throw e;
    }
    r.layoutDone();
    await filling;
    mismatches = await r.check(pool);
  } finally {
    await pool.close();
  }
  r.specials();
  r.metadata();
  return { files: r.fileCount, dirs: r.dirCount, bytes: r.bytes, problems: r.problems, mismatches, durationMs: Date.now() - started };
}
