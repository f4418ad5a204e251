/**
 * A small pool of worker threads for the data check and the recovery test: each task is a piece of a pack (whose
 * blobs are opened and re-hashed) or a batch of files (hashed). Size 0 runs the same code on the calling thread,
 * which tests and tiny repositories use. Each worker holds one task at a time; the others wait here, in order: the
 * pieces of a pack (a stream) for the one worker that hashes that pack, anything else for the first worker free.
 * Callers bound how many pieces they hand over at once; the pool itself queues without limit.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackupError } from '@backup-manager/core-archive';
import { BlobVerifier, PackHashes, hashFilesSync, toBlobTable } from './pack-verify.ts';
import type { BadBlob, PackPiece, PieceMessage } from './pack-verify.ts';

export type ToVerifyWorker =
  | { t: 'piece'; id: number; piece: PackPiece | PieceMessage }
  | { t: 'drop'; id: number; stream: number }
  | { t: 'hash'; id: number; paths: string[] };
/** A file's SHA-256, or why it could not be read. */
export type FileDigest = { sha256: string } | { error: string };
export type ToPool =
  | { t: 'piece'; id: number; bad: BadBlob[]; digest?: string }
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
  /** tasks handed to this worker and not answered yet: 0 or 1 */
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

export class VerifyPool {
  private readonly key: Uint8Array;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly queue: Queued[] = [];
  private next = 1;
  private failure: Error | undefined;
  private closed = false;
  /** with no workers: the verifier of this thread, made at the first piece */
  private local: BlobVerifier | undefined;
  private readonly localHashes = new PackHashes();
  private nextStream = 1;
  private readonly streams = new Map<number, Slot>();

  constructor(key: Uint8Array, size = defaultVerifyWorkers()) {
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

  /**
   * Opens the blobs of a piece of a pack held in memory; resolves with those that fail. The piece's bytes are handed
   * over (transferred to a worker, which frees them; with no workers, decrypted in place here): the caller must not
   * use them afterwards.
   */
  async verifyPiece(piece: PackPiece): Promise<BadBlob[]> {
    return (await this.verifyInStream(piece)).bad;
  }

  /**
   * Binds a pack to the worker with the fewest packs under way: its pieces, handed over in the pack's order with
   * verifyPiece's `hash`, are hashed there in that order (a worker answers its tasks one after another).
   */
  openStream(): PackStream {
    const id = this.nextStream++;
    const live = this.slots.filter((s) => !s.dead);
    if (live.length === 0) return { id, slot: 0 };
    const slot = live.reduce((a, b) => (b.streams < a.streams || (b.streams === a.streams && b.queue.length < a.queue.length) ? b : a));
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
    if (this.slots.length === 0) this.localHashes.drop(stream.id);
    else if (slot && !this.failure) await this.send({ t: 'drop', id: 0, stream: stream.id }, [], slot);
  }

  /**
   * verifyPiece, and for a piece of a stream (`piece.hash`) the pack's digest once its last piece is hashed. The
   * piece goes to the stream's worker.
   */
  async verifyInStream(piece: PackPiece): Promise<{ bad: BadBlob[]; digest?: string }> {
    if (this.slots.length === 0) {
      // Hashed before its blobs are decrypted in place.
      const digest = piece.hash ? this.localHashes.update(piece.hash, piece.bytes) : undefined;
      const bad = (this.local ??= new BlobVerifier(this.key)).verify(piece, true);
      return digest === undefined ? { bad } : { bad, digest };
    }
    if (this.failure) throw this.failed();
    const bytes = piece.bytes.byteOffset === 0 && piece.bytes.byteLength === piece.bytes.buffer.byteLength ? piece.bytes : piece.bytes.slice();
    const table = toBlobTable(piece.blobs);
    const hash = piece.hash ? { hash: piece.hash } : {};
    const sent: PackPiece | PieceMessage = table ? { packId: piece.packId, start: piece.start, bytes, table, ...hash } : { ...piece, bytes };
    const slot = piece.hash ? this.streams.get(piece.hash.stream) : undefined;
    if (piece.hash && !slot) throw new BackupError('INTERNAL', `verify stream ${piece.hash.stream} is not open`);
    const reply = await this.send({ t: 'piece', id: 0, piece: sent }, [bytes.buffer as ArrayBuffer], slot);
    if (reply.t !== 'piece') throw new BackupError('INTERNAL', `unexpected answer ${reply.t} from a verify worker`);
    return reply.digest === undefined ? { bad: reply.bad } : { bad: reply.bad, digest: reply.digest };
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
    return new Promise<ToPool>((resolve, reject) => {
      (slot?.queue ?? this.queue).push({ msg: { ...msg, id: this.next++ }, transfer, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy > 0 || slot.dead) continue;
      const q = slot.queue.shift() ?? this.queue.shift();
      if (!q) continue;
      slot.busy++;
      this.pending.set(q.msg.id, { resolve: q.resolve, reject: q.reject, slot });
      slot.worker.postMessage(q.msg, q.transfer);
    }
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
