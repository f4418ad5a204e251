/**
 * The worker half of a backup (run inside the pool's worker threads): reads files, cuts them into chunks, hashes
 * them, asks the main thread which chunks are new, then compresses and seals only those into an outbox that travels
 * to the main thread. The main thread keeps the repository, the index and all backend I/O.
 *
 * Pipelined, so that waiting for the main thread (which answers between its own work: the walk, trees, packs) does
 * not idle the worker: a batch's dedup question goes out when the batch is full, and the worker reads the next batch
 * while the answer travels; it seals the earlier batch only when the next one is full. Sealed envelopes go out in one
 * of two outboxes, so the worker seals into one while the main thread stores the other. A file's result goes out
 * only once the main thread has stored every blob sent for it and for the files before it: a tree never names a
 * blob that is not in the pack saver, and a job's 'done' always follows its results.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { FdChunkReader } from '../chunker/chunker.ts';
import type { ChunkerParams } from '../chunker/chunker.ts';
import { ZstdCompressor } from '../compress.ts';
import { blobAad } from '../crypto/aead.ts';
import { idToBytes } from '../crypto/hash.ts';
import { releaseBytes } from '../crypto/bytes.ts';
import { sealChunkInto, sealedChunkBound } from '../pack/pack.ts';
import type { SealedBlobRef, ToMain, ToWorker, WorkerFileJob, WorkerFileResult, WorkerInit } from '../pool-protocol.ts';

/** How the pipeline talks to the main thread (the worker's port, or a fake in tests). */
export interface BackupPort {
  post(msg: ToMain, transfer?: ArrayBuffer[]): void;
  /** posts a message with a `req` and resolves with the answer that names it */
  request(msg: Extract<ToMain, { req: number }>, transfer?: ArrayBuffer[]): Promise<ToWorker>;
  /**
   * Delivers the messages that have arrived, without waiting: a worker reading files gives its event loop no turn,
   * so answers would otherwise wait for its next await.
   */
  poll(): void;
}

/**
 * Chunk bytes a batch holds before its dedup question goes out: the size of an arena, of which a worker has up to
 * MAX_ASKED + 1. Every byte is a copy held in memory; a chunk (1 MiB on average) larger than an arena is not
 * copied (see addLargeChunk).
 */
export const BATCH_BYTES = 2 * 1024 * 1024;
/** Files a batch holds at most, so that results of small files do not wait long. */
export const BATCH_FILES = 256;
/**
 * Batches asked about and not yet sealed while the worker reads on (each holds an arena). One: the main thread
 * answers within the time a batch takes to read, and a second arena per worker cost 2 MiB of peak memory for no
 * speed measured.
 */
const MAX_ASKED = 1;
/** Outboxes in flight at most: the one being filled and the one the main thread is storing. */
const OUTBOXES = 2;
const OUTBOX_BYTES = BATCH_BYTES + 64 * 1024;
const READ_SIZE = 1024 * 1024;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Chunks of one or more files, asked about together to amortise the round trip. */
interface Batch {
  /** where the chunks are copied; each batch in flight has its own */
  arena: Uint8Array;
  /** stores of chunks too large for an arena, sealed and sent at once: the batch's results wait for them too */
  sent?: Promise<void>[];
  ids: string[];
  /** views into `arena` */
  chunks: Uint8Array[];
  /** chunk bytes, for progress */
  bytes: number;
  /** bytes of `arena` in use */
  used: number;
  results: { job: number; result: WorkerFileResult }[];
  /** jobs whose last result is in this batch: their 'done' follows the results */
  done: number[];
  /** the main thread's answer to this batch's dedup question, once asked */
  answer?: Promise<ToWorker>;
  /** true once `answer` has arrived (or when there was nothing to ask) */
  answered?: boolean;
}

class FatalError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function errorOf(e: unknown): { code: string; message: string } {
  const err = e as NodeJS.ErrnoException;
  return { code: err.code ?? 'IO', message: err.message ?? String(e) };
}

function sameVersion(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

function* chunksOf(reader: FdChunkReader): Generator<Uint8Array> {
  for (let chunk = reader.next(); chunk !== null; chunk = reader.next()) yield chunk;
}

export class BackupPipeline {
  private readonly port: BackupPort;
  private readonly init: WorkerInit;
  private readonly chunker: ChunkerParams;
  private nextReq: () => number;
  /** this worker's zstd context, made once (undefined for a repository without compression) */
  private readonly zstd: ZstdCompressor | undefined;
  private filling: Batch | undefined;
  /** batches whose question is out, oldest first: each is sealed once its answer is in, or when too many wait */
  private readonly asked: Batch[] = [];
  private readonly spareArenas: Uint8Array[] = [];
  private readonly spareOutboxes: Uint8Array[] = [];
  private outboxes = 0;
  private readonly sends = new Set<Promise<void>>();
  /** settles once every batch handed to seal() so far has posted its results */
  private tail: Promise<void> = Promise.resolve();
  /** jobs accepted and not yet reported 'done' */
  private readonly open = new Set<number>();
  private failure: Error | undefined;
  /** the chunker's buffer, also holding whole small files */
  private readerBuffer: Uint8Array | undefined;
  /** the store of the last chunk sealed by addLargeChunk, until the main thread has it */
  private largeSend: Promise<void> | undefined;

  constructor(port: BackupPort, init: WorkerInit, chunker: ChunkerParams, nextReq: () => number) {
    this.port = port;
    this.init = init;
    this.chunker = chunker;
    this.nextReq = nextReq;
    this.zstd = init.compression.compression === 'zstd' ? new ZstdCompressor(init.compression.level) : undefined;
  }

  /** Jobs accepted whose 'done' has not been posted: the ones to report failed if the pipeline fails. */
  get openJobs(): number[] {
    return [...this.open];
  }

  /**
   * Reads, chunks and hashes the job's files, sealing earlier batches as new ones fill. Resolves when every file
   * has been read; their results and the job's 'done' may still be in the pipeline (see finish).
   */
  async addFiles(job: number, files: WorkerFileJob[]): Promise<void> {
    this.open.add(job);
    for (const f of files) {
      const result = await this.readFile(f);
      const batch = this.batch();
      batch.results.push({ job, result });
      if (batch.results.length >= BATCH_FILES) await this.flush();
    }
    // A batch ends with its job: the job's 'done' then follows as soon as the next batch is full, which keeps the
    // main thread handing out batches (it gives each worker only a few at a time).
    this.batch().done.push(job);
    await this.flush();
  }

  /** Asks about and seals everything pending, and resolves once every result and 'done' is posted. */
  async finish(): Promise<void> {
    if (this.filling && (this.filling.results.length > 0 || this.filling.done.length > 0 || this.filling.ids.length > 0)) await this.flush();
    await this.sealAsked();
    await this.tail;
    this.throwIfFailed();
  }

  /** Forgets everything pending after a failure (the jobs are reported failed by the caller). */
  reset(): void {
    this.filling = undefined;
    this.largeSend = undefined;
    this.asked.length = 0;
    this.open.clear();
    this.tail = Promise.resolve();
    this.failure = undefined;
  }

  close(): void {
    this.zstd?.close();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private batch(): Batch {
    return (this.filling ??= {
      arena: this.spareArenas.pop() ?? new Uint8Array(BATCH_BYTES),
      ids: [],
      chunks: [],
      bytes: 0,
      used: 0,
      results: [],
      done: [],
    });
  }

  private async readFile(f: WorkerFileJob): Promise<WorkerFileResult> {
    let fd = -1;
    let reader: FdChunkReader | undefined;
    try {
      // O_NONBLOCK: if the path was swapped for a FIFO since it was listed, open must not hang.
      fd = fs.openSync(f.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      const before = fs.fstatSync(fd, { bigint: true });
      if (!before.isFile()) return { index: f.index, error: { code: 'NOT_REGULAR', message: 'is no longer a regular file' } };
      const content: string[] = [];
      let size = 0;
      // Most files fit in one chunk (at most minSize bytes is always one chunk): read them with positioned reads
      // into a reused buffer. A file that turns out larger is chunked from offset 0 by the streaming reader.
      const small = this.readSmall(fd);
      // A one-chunk file's SHA-256 is its chunk's id: only multi-chunk files need a second hash over the whole.
      const whole = small ? undefined : createHash('sha256');
      const chunks: Iterable<Uint8Array> = small ?? chunksOf((reader = new FdChunkReader(fd, this.chunker, READ_SIZE, this.buffer())));
      for (const chunk of chunks) {
        whole?.update(chunk);
        const id = createHash('sha256').update(chunk).digest('hex');
        content.push(id);
        size += chunk.length;
        await this.addChunk(id, chunk);
      }
      const after = fs.fstatSync(fd, { bigint: true });
      const changed = !sameVersion(before, after) || BigInt(size) !== after.size || before.ino !== BigInt(f.ino) || before.mtimeNs !== BigInt(f.mtimeNs);
      const sha256 = whole ? whole.digest('hex') : (content[0] ?? EMPTY_SHA256);
      return { index: f.index, content, sha256, size, changed };
    } catch (e) {
      // A failure of the pipeline itself (the main thread could not store blobs) ends the backup, not just this file.
      if (e instanceof FatalError || e === this.failure) throw e;
      return { index: f.index, error: errorOf(e) };
    } finally {
      if (fd >= 0) fs.closeSync(fd);
      // Every chunk of the file is copied into an arena by now.
      const grown = reader?.grown;
      if (grown) releaseBytes(grown);
    }
  }

  /**
   * The read buffer: room for a chunk of minSize and a read behind it (1.5 MiB by default); resumed scans make its
   * size cost no hashing. A chunk that does not fit (many large files have one, and runs of zeros cut at maxSize)
   * makes the reader swap in a buffer twice as large, up to maxSize + READ_SIZE, for that file only, freed after it,
   * instead of every worker keeping 9 MiB for them.
   */
  private buffer(): Uint8Array {
    return (this.readerBuffer ??= new Uint8Array(this.chunker.minSize + READ_SIZE));
  }

  /** Reads a whole file of at most minSize bytes (one chunk, possibly empty); undefined when it is larger. */
  private readSmall(fd: number): Uint8Array[] | undefined {
    const limit = this.chunker.minSize;
    const buffer = this.buffer().subarray(0, limit + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buffer, n, buffer.length - n, n);
      if (got === 0) break;
      n += got;
      if (n > limit) return undefined;
    }
    return n === 0 ? [] : [buffer.subarray(0, n)];
  }

  /**
   * Queues a chunk for the dedup question. A chunk is a view into a buffer that the next read overwrites, so it is
   * copied into the batch's arena.
   */
  private async addChunk(id: string, chunk: Uint8Array): Promise<void> {
    if (chunk.length > BATCH_BYTES) return this.addLargeChunk(id, chunk);
    let batch = this.batch();
    if (batch.used + chunk.length > batch.arena.length && batch.ids.length > 0) {
      await this.flush();
      batch = this.batch();
    }
    batch.arena.set(chunk, batch.used);
    batch.ids.push(id);
    batch.chunks.push(batch.arena.subarray(batch.used, batch.used + chunk.length));
    batch.used += chunk.length;
    batch.bytes += chunk.length;
    if (batch.bytes >= BATCH_BYTES) await this.flush();
  }

  /**
   * A chunk larger than an arena (a few percent of a large file's chunks, and runs of zeros cut at maxSize) is asked
   * about on its own and, when new, sealed straight from the reader's buffer, before the next read overwrites it.
   * The worker waits for that one answer instead of reading on: a copy of the chunk (up to 8 MiB per worker) was
   * a large part of a backup's peak memory. The store joins the filling batch, whose results (this file's among
   * them, or in a later batch) wait for it like for the batch's own.
   */
  private async addLargeChunk(id: string, chunk: Uint8Array): Promise<void> {
    this.throwIfFailed();
    const batch = this.batch();
    const answer = await this.port.request({ t: 'query', job: batch.results[0]?.job ?? 0, req: this.nextReq(), ids: [id], bytes: chunk.length });
    if (answer.t !== 'known') throw new FatalError('INTERNAL', `unexpected answer ${answer.t}`);
    this.throwIfFailed();
    if (!answer.isNew[0]) return;
    // One such buffer at a time: a file of large chunks must not pile them up while the main thread stores slowly.
    if (this.largeSend) await this.largeSend.catch(() => undefined);
    this.throwIfFailed();
    const own = new Uint8Array(sealedChunkBound(chunk.length, this.zstd));
    const length = sealChunkInto(own, 0, this.init.key, blobAad('data', idToBytes(id)), chunk, this.zstd);
    const sent = this.send(own, [{ id, offset: 0, length, rawLength: chunk.length }], false);
    this.largeSend = sent;
    (batch.sent ??= []).push(sent);
  }

  /**
   * Asks about the filling batch, then seals the batches asked about before it whose answers are in. The worker reads
   * on into a new batch while at most MAX_ASKED answers are awaited: a main thread slow to answer (busy, or short of
   * CPU) then costs an arena of memory instead of the worker's time.
   */
  private async flush(): Promise<void> {
    this.throwIfFailed();
    const batch = this.filling;
    if (!batch) return;
    this.filling = undefined;
    if (batch.ids.length > 0) {
      const answer = this.port.request({ t: 'query', job: batch.results[0]?.job ?? 0, req: this.nextReq(), ids: batch.ids, bytes: batch.bytes });
      batch.answer = answer;
      void answer.then(() => {
        batch.answered = true;
      });
    } else {
      batch.answered = true;
    }
    this.asked.push(batch);
    this.port.poll();
    // Lets the answers just delivered mark their batches.
    await undefined;
    while (this.asked.length > 0 && (this.asked[0]!.answered || this.asked.length > MAX_ASKED)) await this.seal(this.asked.shift()!);
  }

  /** Seals every asked batch, oldest first. */
  private async sealAsked(): Promise<void> {
    while (this.asked.length > 0) await this.seal(this.asked.shift()!);
  }

  /** Compresses and seals the new chunks of an asked batch into outboxes, and queues its results behind their acks. */
  private async seal(batch: Batch): Promise<void> {
    const sent: Promise<void>[] = batch.sent ?? [];
    if (batch.answer) {
      const answer = await batch.answer;
      if (answer.t !== 'known') throw new FatalError('INTERNAL', `unexpected answer ${answer.t}`);
      const key = this.init.key;
      const zstd = this.zstd;
      let box: Uint8Array | undefined;
      let blobs: SealedBlobRef[] = [];
      let used = 0;
      for (let i = 0; i < batch.ids.length; i++) {
        if (!answer.isNew[i]) continue;
        const id = batch.ids[i]!;
        const chunk = batch.chunks[i]!;
        const bound = sealedChunkBound(chunk.length, zstd);
        if (bound > OUTBOX_BYTES) {
          // Larger than an outbox: not for a chunk of an arena while OUTBOX_BYTES leaves room for its bound, but a
          // change of sizes must not overflow an outbox. A buffer of its own, sent alone.
          const own = new Uint8Array(bound);
          const length = sealChunkInto(own, 0, key, blobAad('data', idToBytes(id)), chunk, zstd);
          sent.push(this.send(own, [{ id, offset: 0, length, rawLength: chunk.length }], false));
          continue;
        }
        if (box && used + bound > box.length) {
          sent.push(this.send(box, blobs, true));
          box = undefined;
        }
        if (!box) {
          box = await this.takeOutbox();
          blobs = [];
          used = 0;
        }
        const length = sealChunkInto(box, used, key, blobAad('data', idToBytes(id)), chunk, zstd);
        blobs.push({ id, offset: used, length, rawLength: chunk.length });
        used += length;
      }
      if (box) sent.push(this.send(box, blobs, true));
    }
    // The chunks are sealed: the arena can take the next batch's.
    this.spareArenas.push(batch.arena);
    batch.chunks = [];
    const port = this.port;
    this.tail = Promise.all([this.tail, ...sent]).then(() => {
      if (batch.results.length === 0 && batch.done.length === 0) return;
      for (const job of batch.done) this.open.delete(job);
      // One message for the batch: a message per file cost both threads more than the results themselves.
      port.post({ t: 'results', results: batch.results, done: batch.done });
    });
    // Failures surface through `failure` (checked before every batch) and through finish(), which awaits the tail.
    this.tail.catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new Error(String(e));
    });
  }

  /** An outbox to seal into: a spare one, a new one while fewer than OUTBOXES exist, else the next one to come back. */
  private async takeOutbox(): Promise<Uint8Array> {
    for (;;) {
      this.throwIfFailed();
      const spare = this.spareOutboxes.pop();
      if (spare) return spare;
      if (this.outboxes < OUTBOXES) {
        this.outboxes++;
        return new Uint8Array(OUTBOX_BYTES);
      }
      await Promise.race(this.sends);
    }
  }

  /**
   * Hands sealed blobs to the main thread (the buffer is transferred); resolves when it has stored them and sent the
   * buffer back, which then becomes a spare outbox (`outbox`) or is freed.
   */
  private send(data: Uint8Array, blobs: SealedBlobRef[], outbox: boolean): Promise<void> {
    const done = this.port.request({ t: 'blobs', job: 0, req: this.nextReq(), data, blobs }, [data.buffer as ArrayBuffer]).then((ack) => {
      if (ack.t !== 'ack') throw new FatalError('INTERNAL', `unexpected answer ${ack.t}`);
      const back = ack.data;
      if (outbox) {
        if (back && back.byteLength === OUTBOX_BYTES) this.spareOutboxes.push(back);
        else this.outboxes--;
      } else if (back) {
        releaseBytes(back);
      }
      if (ack.error) throw new FatalError(ack.error.code, ack.error.message);
    });
    const tracked = done.then(
      () => undefined,
      (e: unknown) => {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
      },
    );
    this.sends.add(tracked);
    void tracked.finally(() => this.sends.delete(tracked));
    return done;
  }
}
