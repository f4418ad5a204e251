/**
 * A small pool of worker threads for the data check and the recovery test: each task is a piece of a pack (whose
 * blobs are opened and re-hashed) or a batch of files (hashed). Size 0 runs the same code on the calling thread,
 * which tests and tiny repositories use. The pieces of a pack (a stream) go, in order and at once, to the one worker
 * that hashes that pack; anything else waits here, in order, for the first worker free. Callers bound how many
 * pieces they hand over at once; the pool itself queues without limit.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackupError, toBackupError } from '@backup-manager/core-archive';
import { PieceRunner, hashFilesSync, toBlobTable } from './pack-verify.ts';
import type { BadBlob, PackPiece, PieceMessage, PieceResult } from './pack-verify.ts';

export type ToVerifyWorker =
  | { t: 'key'; id: number; key: Uint8Array }
  | { t: 'piece'; id: number; piece: PackPiece | PieceMessage }
  | { t: 'drop'; id: number; stream: number }
  | { t: 'hash'; id: number; paths: string[] };
/** A file's SHA-256, or why it could not be read. */
export type FileDigest = { sha256: string } | { error: string };
export type ToPool =
  | ({ t: 'piece'; id: number } & PieceResult)
  | { t: 'drop'; id: number }
  | { t: 'hash'; id: number; digests: FileDigest[] }
  | { t: 'error'; id: number; message: string; code: string };

interface Pending {
  resolve(v: ToPool): void;
  reject(e: unknown): void;
  slot: Slot;
}

interface Slot {
  worker: Worker;
  /** tasks handed to this worker and not answered yet */
  busy: number;
  dead?: boolean;
  /** tasks for this worker alone (the pieces of its streams), served before the shared queue */
  queue: Queued[];
  /** streams bound to this worker and not ended */
  streams: number;
}

/** The pieces of one pack, which go in order to one worker that hashes them (see PackHashes). */
export interface PackStream {
  readonly id: number;
  /** the worker it is bound to (0 with no workers) */
  readonly slot: number;
}

interface Queued {
  msg: ToVerifyWorker;
  transfer: ArrayBuffer[];
  resolve(v: ToPool): void;
  reject(e: unknown): void;
}

/** The error of a piece that could not be read (PieceResult.loadError), as it was thrown where it was read. */
export function loadFailure(loadError: NonNullable<PieceResult['loadError']>): BackupError {
  return toBackupError(loadError, 'IO', loadError.message);
}

function noKeyYet(): BackupError {
  return new BackupError('INTERNAL', 'the verify pool was given a task before its key (VerifyPool.start)');
}

export function defaultVerifyWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

function workerUrl(): URL {
  // Sources run directly under Node 24; the build emits verify-worker.js next to the bundle.
  return new URL(import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js', import.meta.url);
}

/**
 * Whether a flag of this process may be handed to a worker: V8 flags (the launcher's --max-semi-space-size and
 * --expose-gc) are refused in a worker's execArgv, which would stop the check from starting when it runs from
 * sources.
 */
function workerAccepts(flag: string): boolean {
  return !/^--(expose-gc|max-semi-space-size|max-old-space-size|max-young-generation-size|stack-size|trace-gc|v8-)/.test(flag);
}

/**
 * A pool whose worker threads start now, before the repository is opened (its key is not known yet): they load
 * their code while the key is derived from the password, instead of after. `start` gives them the key; until then
 * the pool takes no task. Close it also when the repository does not open.
 */
export function startVerifyPool(workers = defaultVerifyWorkers()): VerifyPool {
  return new VerifyPool(undefined, workers);
}

export class VerifyPool {
  private key: Uint8Array | undefined;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly queue: Queued[] = [];
  private next = 1;
  private failure: Error | undefined;
  private closed = false;
  /** with no workers: the piece runner of this thread, made at the first piece */
  private local: PieceRunner | undefined;
  private nextStream = 1;
  private readonly streams = new Map<number, Slot>();

  /** Without a key (see startVerifyPool), the pool takes tasks once `start` has given it one. */
  constructor(key: Uint8Array | undefined, size = defaultVerifyWorkers()) {
    this.key = key;
    const url = workerUrl();
    // Running from sources, the worker must resolve sibling packages to their sources as well.
    const execArgv = url.pathname.endsWith('.ts') ? [...process.execArgv.filter(workerAccepts), '--conditions=source'] : undefined;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, { workerData: { key }, ...(execArgv ? { execArgv } : {}) });
      const slot: Slot = { worker, busy: 0, queue: [], streams: 0 };
      worker.on('message', (m: ToPool) => this.onMessage(m));
      worker.on('error', (e) => this.onDeath(slot, e));
      worker.on('exit', (code) => {
        if (!this.closed) this.onDeath(slot, new Error(`verify worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Gives the workers the repository's key, when the pool was started without it; returns the pool. */
  start(key: Uint8Array): this {
    if (this.key === undefined) {
      this.key = key;
      for (const slot of this.slots) slot.worker.postMessage({ t: 'key', id: 0, key });
    } else if (Buffer.compare(this.key, key) !== 0) {
      throw new BackupError('INTERNAL', 'a verify pool serves one repository: it was started with another key');
    }
    return this;
  }

  private requireKey(): Uint8Array {
    if (this.key === undefined) throw noKeyYet();
    return this.key;
  }

  /**
   * Opens the blobs of a piece of a pack; resolves with those that fail. Bytes in memory are handed over
   * (transferred to a worker, which frees them; with no workers, decrypted in place here): the caller must not use
   * them afterwards. A piece that cannot be read rejects with that failure.
   */
  async verifyPiece(piece: PackPiece): Promise<BadBlob[]> {
    const result = await this.verifyInStream(piece);
    if (result.loadError) throw loadFailure(result.loadError);
    return result.bad;
  }

  /**
   * Binds a pack to the worker with the fewest packs under way: its pieces, handed over in the pack's order with
   * verifyPiece's `hash`, are hashed there in that order (a worker answers its tasks one after another).
   */
  openStream(): PackStream {
    const id = this.nextStream++;
    const live = this.slots.filter((s) => !s.dead);
    if (live.length === 0) return { id, slot: 0 };
    const slot = live.reduce((a, b) => (b.streams < a.streams || (b.streams === a.streams && b.busy < a.busy) ? b : a));
    slot.streams++;
    this.streams.set(id, slot);
    return { id, slot: this.slots.indexOf(slot) };
  }

  /** Ends a stream; `complete` when its last piece was handed over, otherwise its worker forgets its running hash. */
  async closeStream(stream: PackStream, complete: boolean): Promise<void> {
    const slot = this.streams.get(stream.id);
    this.streams.delete(stream.id);
    if (slot) slot.streams--;
    if (complete) return;
    if (this.slots.length === 0) this.local?.drop(stream.id);
    else if (slot && !this.failure) await this.send({ t: 'drop', id: 0, stream: stream.id }, [], slot);
  }

  /**
   * verifyPiece, and for a piece of a stream (`piece.hash`) the pack's digest once its last piece is hashed. The
   * piece goes to the stream's worker. A piece that cannot be read resolves with `loadError`: after it, the pieces
   * of its stream are skipped, and the pack's outcome is that failure.
   */
  async verifyInStream(piece: PackPiece): Promise<PieceResult> {
    if (this.slots.length === 0) return (this.local ??= new PieceRunner(this.requireKey())).run(piece);
    if (this.failure) throw this.failed();
    let bytes = piece.bytes;
    const transfer: ArrayBuffer[] = [];
    if (bytes instanceof Uint8Array) {
      if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength) bytes = bytes.slice();
      transfer.push(bytes.buffer as ArrayBuffer);
    }
    const table = toBlobTable(piece.blobs);
    const hash = piece.hash ? { hash: piece.hash } : {};
    const sent: PackPiece | PieceMessage = table ? { packId: piece.packId, start: piece.start, bytes, table, ...hash } : { ...piece, bytes };
    const slot = piece.hash ? this.streams.get(piece.hash.stream) : undefined;
    if (piece.hash && !slot) throw new BackupError('INTERNAL', `verify stream ${piece.hash.stream} is not open`);
    const reply = await this.send({ t: 'piece', id: 0, piece: sent }, transfer, slot);
    if (reply.t !== 'piece') throw new BackupError('INTERNAL', `unexpected answer ${reply.t} from a verify worker`);
    const { t: _t, id: _id, ...result } = reply;
    return result;
  }

  /** SHA-256 of local files, in one round trip (batches amortise the message cost over many small files). */
  async hashFiles(paths: string[]): Promise<FileDigest[]> {
    if (this.slots.length === 0) return hashFilesSync(paths);
    const reply = await this.send({ t: 'hash', id: 0, paths });
    if (reply.t !== 'hash') throw new BackupError('INTERNAL', `unexpected answer ${reply.t} from a verify worker`);
    return reply.digests;
  }

  /**
   * Hands the task to the first worker that is free, or queues it here until one is: a pack waits on this thread
   * instead of in one worker's queue while another worker has nothing to do. A task for one worker (`slot`) waits
   * for that worker.
   */
  private send(msg: ToVerifyWorker, transfer: ArrayBuffer[] = [], slot?: Slot): Promise<ToPool> {
    if (this.failure) return Promise.reject(this.failed());
    if (this.closed) return Promise.reject(new BackupError('INTERNAL', 'the verify pool is closed'));
    if (this.key === undefined) return Promise.reject(noKeyYet());
    return new Promise<ToPool>((resolve, reject) => {
      (slot?.queue ?? this.queue).push({ msg: { ...msg, id: this.next++ }, transfer, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.dead) continue;
      // A worker's own tasks go to it at once (their number is bounded by the caller): queued in the worker, the
      // next piece is there when the last is done, whatever this thread is busy with at that moment. A shared task
      // waits here until some worker is free.
      for (let q = slot.queue.shift(); q !== undefined; q = slot.queue.shift()) this.post(slot, q);
      if (slot.busy > 0) continue;
      const q = this.queue.shift();
      if (q) this.post(slot, q);
    }
  }

  private post(slot: Slot, q: Queued): void {
    slot.busy++;
    this.pending.set(q.msg.id, { resolve: q.resolve, reject: q.reject, slot });
    slot.worker.postMessage(q.msg, q.transfer);
  }

  private failed(): BackupError {
    const e = this.failure!;
    return new BackupError('INTERNAL', `a verify worker failed: ${e.message}`, { cause: e });
  }

  private onMessage(m: ToPool): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    p.slot.busy--;
    if (m.t === 'error') p.reject(new BackupError('IO', m.message));
    else p.resolve(m);
    this.dispatch();
  }

  private onDeath(slot: Slot, e: Error): void {
    this.failure ??= e;
    slot.dead = true;
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(new BackupError('INTERNAL', `a verify worker failed: ${e.message}`, { cause: e }));
    }
    // Once a worker has failed no new task starts (as send refuses them): the queued ones fail with it.
    for (const q of [...this.queue.splice(0), ...this.slots.flatMap((s) => s.queue.splice(0))]) q.reject(this.failed());
  }

  /** Stops the workers; closing again does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.local?.close();
    this.local = undefined;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
