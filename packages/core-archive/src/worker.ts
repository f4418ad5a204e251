/**
 * Worker thread of the engine's pool: the CPU-heavy half of backup and restore. For backup it reads files
 * synchronously (fast inside a worker), cuts them into chunks, hashes, asks the main thread which chunks are new,
 * then compresses and seals only those. For restore it opens, decompresses and writes blobs with positioned writes.
 * The main thread keeps the repository, the index and all network or backend I/O.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { FdChunkReader } from './chunker/chunker.ts';
import type { ChunkerParams } from './chunker/chunker.ts';
import { gearTable } from './chunker/gear.ts';
import { blobAad, ENVELOPE_OVERHEAD } from './crypto/aead.ts';
import { idToBytes } from './crypto/hash.ts';
import { encodeBlobPayload, openBlobOnce, releaseBytes, releasePayload, sealBlobInto } from './pack/pack.ts';
import { createExcludeMatcher } from './archiver/excludes.ts';
import type { SealedBlobRef, ToMain, ToWorker, WorkerFileJob, WorkerFileResult, WorkerInit, WorkerRestoreTask } from './pool-protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker.ts must run as a worker thread');

let init: WorkerInit | undefined;
let chunker: ChunkerParams | undefined;
let nextReq = 1;
const waiting = new Map<number, (value: ToWorker) => void>();
const queue: ToWorker[] = [];
let busy = false;

// Chunks waiting for the main thread's dedup answer. Small, because every byte here is a copy held in memory.
const BATCH_BYTES = 4 * 1024 * 1024;
const READ_SIZE = 1024 * 1024;
let readerBuffer: Uint8Array | undefined;
const BATCH_FILES = 256;
// Every buffer a batch needs is allocated once and reused: the chunk copies go into `arena`, and the sealed envelopes
// into `outbox`, which travels to the main thread and comes back with its answer. Buffers made per chunk would be
// garbage that V8 frees only after tens of megabytes of it have piled up, in every thread.
let arena: Uint8Array | undefined;
let outbox: Uint8Array | undefined;
const OUTBOX_BYTES = BATCH_BYTES + 64 * 1024;

function post(msg: ToMain, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function request(msg: ToMain, transfer: ArrayBuffer[] = []): Promise<ToWorker> {
  return new Promise((resolve) => {
    waiting.set((msg as { req: number }).req, resolve);
    post(msg, transfer);
  });
}

function errorOf(e: unknown): { code: string; message: string } {
  const err = e as NodeJS.ErrnoException;
  return { code: err.code ?? 'IO', message: err.message ?? String(e) };
}

/** Pending chunks of one or more files, flushed to the main thread together to amortise the round trip. */
interface Batch {
  ids: string[];
  /** views into `arena`, or (alone in its batch) a chunk too large for it, still in the reader's buffer */
  chunks: Uint8Array[];
  bytes: number;
  /** bytes of `arena` in use */
  used: number;
  results: WorkerFileResult[];
}

/**
 * Queues a chunk for the dedup question. A chunk is a view into a buffer that the next read overwrites, so it is
 * copied into the arena; one too large for the arena is sent on its own before the caller reads on.
 */
async function addChunk(job: number, batch: Batch, id: string, chunk: Uint8Array): Promise<void> {
  const room = (arena ??= new Uint8Array(BATCH_BYTES));
  if (batch.used + chunk.length > room.length && batch.ids.length > 0) await flush(job, batch);
  let kept = chunk;
  if (chunk.length <= room.length) {
    room.set(chunk, batch.used);
    kept = room.subarray(batch.used, batch.used + chunk.length);
    batch.used += chunk.length;
  }
  batch.ids.push(id);
  batch.chunks.push(kept);
  batch.bytes += chunk.length;
  if (batch.bytes >= BATCH_BYTES || kept === chunk) await flush(job, batch);
}

/** Hands sealed blobs to the main thread and waits until it has taken them; returns the buffer it sends back. */
async function sendBlobs(job: number, data: Uint8Array, blobs: SealedBlobRef[]): Promise<Uint8Array | undefined> {
  const ack = await request({ t: 'blobs', job, req: nextReq++, data, blobs }, [data.buffer as ArrayBuffer]);
  if (ack.t !== 'ack') throw new Error(`unexpected answer ${ack.t}`);
  if (ack.error) throw Object.assign(new Error(ack.error.message), { code: ack.error.code, fatal: true });
  return ack.data;
}

async function flush(job: number, batch: Batch): Promise<void> {
  if (batch.ids.length > 0) {
    const req = nextReq++;
    const answer = await request({ t: 'query', job, req, ids: batch.ids, bytes: batch.bytes });
    if (answer.t !== 'known') throw new Error(`unexpected answer ${answer.t}`);
    const m = init!;
    let box = (outbox ??= new Uint8Array(OUTBOX_BYTES));
    let blobs: SealedBlobRef[] = [];
    let used = 0;
    for (let i = 0; i < batch.ids.length; i++) {
      if (!answer.isNew[i]) continue;
      const id = batch.ids[i]!;
      const chunk = batch.chunks[i]!;
      const parts = encodeBlobPayload(chunk, m.compression);
      const length = ENVELOPE_OVERHEAD + parts[0].byteLength + parts[1].byteLength;
      if (used + length > box.length && blobs.length > 0) {
        box = outbox = (await sendBlobs(job, box, blobs)) ?? new Uint8Array(OUTBOX_BYTES);
        blobs = [];
        used = 0;
      }
      if (length > box.length) {
        // Larger than the outbox (an incompressible chunk above BATCH_BYTES): a buffer of its own, sent alone.
        const own = new Uint8Array(length);
        sealBlobInto(own, 0, m.key, blobAad('data', idToBytes(id)), parts);
        releasePayload(parts, chunk);
        const back = await sendBlobs(job, own, [{ id, offset: 0, length, rawLength: chunk.length }]);
        if (back) releaseBytes(back);
        continue;
      }
      sealBlobInto(box, used, m.key, blobAad('data', idToBytes(id)), parts);
      releasePayload(parts, chunk);
      blobs.push({ id, offset: used, length, rawLength: chunk.length });
      used += length;
    }
    if (blobs.length > 0) outbox = (await sendBlobs(job, box, blobs)) ?? new Uint8Array(OUTBOX_BYTES);
  }
  // Results go out only after their blobs are with the main thread: a tree never names a blob that was not sent.
  for (const r of batch.results) post({ t: 'file', job, result: r });
  batch.ids = [];
  batch.chunks = [];
  batch.bytes = 0;
  batch.used = 0;
  batch.results = [];
}

let smallBuffer: Uint8Array | undefined;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Reads a whole file of at most minSize bytes (one chunk, possibly empty); undefined when it is larger. */
function readSmall(fd: number): Uint8Array[] | undefined {
  const limit = chunker!.minSize;
  smallBuffer ??= new Uint8Array(limit + 1);
  let n = 0;
  for (;;) {
    const got = fs.readSync(fd, smallBuffer, n, smallBuffer.length - n, n);
    if (got === 0) break;
    n += got;
    if (n > limit) return undefined;
  }
  return n === 0 ? [] : [smallBuffer.subarray(0, n)];
}

function* chunksOf(reader: FdChunkReader): Generator<Uint8Array> {
  for (let chunk = reader.next(); chunk !== null; chunk = reader.next()) yield chunk;
}

function sameVersion(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

async function backupFiles(job: number, files: WorkerFileJob[]): Promise<void> {
  const batch: Batch = { ids: [], chunks: [], bytes: 0, used: 0, results: [] };
  for (const f of files) {
    let fd = -1;
    try {
      // O_NONBLOCK: if the path was swapped for a FIFO since it was listed, open must not hang.
      fd = fs.openSync(f.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      const before = fs.fstatSync(fd, { bigint: true });
      if (!before.isFile()) {
        batch.results.push({ index: f.index, error: { code: 'NOT_REGULAR', message: 'is no longer a regular file' } });
        continue;
      }
      const content: string[] = [];
      let size = 0;
      // Most files fit in one chunk (at most minSize bytes is always one chunk): read them with positioned reads
      // into a reused buffer. A file that turns out larger is chunked from offset 0 by the streaming reader.
      const small = readSmall(fd);
      // A one-chunk file's SHA-256 is its chunk's id: only multi-chunk files need a second hash over the whole.
      const whole = small ? undefined : createHash('sha256');
      readerBuffer ??= small ? undefined : new Uint8Array(chunker!.maxSize + READ_SIZE);
      const chunks: Iterable<Uint8Array> = small ?? chunksOf(new FdChunkReader(fd, chunker!, READ_SIZE, readerBuffer));
      for (const chunk of chunks) {
        whole?.update(chunk);
        const id = createHash('sha256').update(chunk).digest('hex');
        content.push(id);
        size += chunk.length;
        await addChunk(job, batch, id, chunk);
      }
      const after = fs.fstatSync(fd, { bigint: true });
      const changed = !sameVersion(before, after) || BigInt(size) !== after.size || before.ino !== BigInt(f.ino) || before.mtimeNs !== BigInt(f.mtimeNs);
      const sha256 = whole ? whole.digest('hex') : (content[0] ?? EMPTY_SHA256);
      batch.results.push({ index: f.index, content, sha256, size, changed });
    } catch (e) {
      if ((e as { fatal?: boolean }).fatal) throw e;
      batch.results.push({ index: f.index, error: errorOf(e) });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
    if (batch.results.length >= BATCH_FILES) await flush(job, batch);
  }
  await flush(job, batch);
}

/** Restore: open each blob, write it at its offsets, and hash files whose every blob passes through here. */
function restoreTask(task: WorkerRestoreTask): void {
  const m = init!;
  const errors: { file: number; message: string }[] = [];
  const hashes: { file: number; sha256: string }[] = [];
  for (const blob of task.blobs) {
    let plain: Uint8Array;
    try {
      const envelope = task.data.subarray(blob.offset, blob.offset + blob.length);
      plain = openBlobOnce(m.key, 'data', blob.id, envelope, blob.rawLength, `pack ${task.packId.slice(0, 12)} blob ${blob.id.slice(0, 12)}`);
    } catch (e) {
      for (const t of blob.targets) errors.push({ file: t.file, message: (e as Error).message });
      continue;
    }
    const zero = isAllZero(plain);
    let digest: string | undefined;
    for (const t of blob.targets) {
      if (t.whole) {
        digest ??= createHash('sha256').update(plain).digest('hex');
        hashes.push({ file: t.file, sha256: digest });
      }
      // Zero blocks are left as holes: the file was truncated to its full size, so they read back as zeros.
      if (zero && task.sparse) continue;
      let fd = -1;
      try {
        fd = fs.openSync(t.path, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
        let off = 0;
        while (off < plain.length) off += fs.writeSync(fd, plain, off, plain.length - off, t.offset + off);
      } catch (e) {
        errors.push({ file: t.file, message: (e as Error).message });
      } finally {
        if (fd >= 0) fs.closeSync(fd);
      }
    }
    // The plaintext's buffer is this blob's alone (see openBlobOnce).
    releaseBytes(plain, true);
  }
  // The pack range was transferred here and is used up: free it now (it is up to MAX_RUN_BYTES of the restorer).
  releaseBytes(task.data);
  post({ t: 'restored', task: task.task, errors, hashes });
}

function isAllZero(b: Uint8Array): boolean {
  // Compare 8 bytes at a time where alignment allows.
  const n = b.length;
  let i = 0;
  if (b.byteOffset % 8 === 0) {
    const words = new BigUint64Array(b.buffer, b.byteOffset, Math.floor(n / 8));
    for (; i < words.length; i++) if (words[i] !== 0n) return false;
    i *= 8;
  }
  for (; i < n; i++) if (b[i] !== 0) return false;
  return true;
}

let hashBuffer: Uint8Array | undefined;

/** Hashes a restored file by reading it back: used for files whose blobs arrived from several packs. */
function hashFile(task: number, path: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const h = createHash('sha256');
    const buf = (hashBuffer ??= new Uint8Array(READ_SIZE));
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    post({ t: 'hashed', task, sha256: h.digest('hex') });
  } catch (e) {
    post({ t: 'hashed', task, error: errorOf(e) });
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** Counts what a backup will read, for progress totals; runs on its own worker so it never slows the backup's. */
function scan(msg: Extract<ToWorker, { t: 'scan' }>): void {
  const ex = createExcludeMatcher({ patterns: msg.patterns, ifPresent: msg.ifPresent, ...(msg.largerThan !== undefined ? { largerThan: msg.largerThan } : {}) });
  let files = 0;
  let bytes = 0;
  let last = Date.now();
  const visit = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = fs.readdirSync(p);
      } catch {
        return;
      }
      if (ex.ifPresent.some((m) => names.includes(m))) return;
      for (const n of names) {
        const c = p === '/' ? `/${n}` : `${p}/${n}`;
        if (!ex.matches(c)) visit(c);
      }
      return;
    }
    if (st.isFile() && ex.largerThan !== undefined && st.size > ex.largerThan) return;
    files++;
    if (st.isFile()) bytes += st.size;
    if ((files & 1023) === 0 && Date.now() - last > 250) {
      last = Date.now();
      post({ t: 'scanned', files, bytes, done: false });
    }
  };
  for (const p of msg.paths) visit(p);
  post({ t: 'scanned', files, bytes, done: true });
}

async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    while (queue.length > 0) {
      const msg = queue.shift()!;
      if (msg.t === 'files') {
        try {
          await backupFiles(msg.job, msg.files);
          post({ t: 'done', job: msg.job });
        } catch (e) {
          post({ t: 'failed', job: msg.job, error: errorOf(e) });
        }
      } else if (msg.t === 'restore') {
        restoreTask(msg.task);
      } else if (msg.t === 'hash') {
        hashFile(msg.task, msg.path);
      } else if (msg.t === 'scan') {
        scan(msg);
      }
    }
  } finally {
    busy = false;
  }
}

port.on('message', (msg: ToWorker) => {
  switch (msg.t) {
    case 'init':
      init = msg.init;
      chunker = { gear: gearTable(msg.init.chunkerSecret), ...msg.init.chunkSizes };
      return;
    case 'known':
    case 'ack': {
      const resolve = waiting.get(msg.req);
      waiting.delete(msg.req);
      resolve?.(msg);
      return;
    }
    default:
      queue.push(msg);
      void drain();
  }
});
