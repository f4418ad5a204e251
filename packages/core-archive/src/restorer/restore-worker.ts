/**
 * The worker half of a restore (run inside the pool's worker threads): opens the blobs of one read of a pack,
 * writes each where it belongs, and finishes the files whose last write is in the task: hashes them, sets ownership,
 * mode and times through the descriptor the writes used, and closes them. A file made of one blob thus costs one
 * open (O_CREAT|O_EXCL|O_NOFOLLOW, so a name planted in the target is never written through), one write and the
 * metadata calls, with no path looked up again; its SHA-256 comes from the plaintext without reading it back.
 * From a local repository the worker reads the task's pack range itself, into a buffer it keeps.
 */
import { createHash, hash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import fs from 'node:fs';
import { readLocalRangeSync } from '../backend/local.ts';
import { BlobOpener } from '../crypto/blob-opener.ts';
import { idToBytes } from '../crypto/hash.ts';
import { READ_BUFFER_BYTES, unreadablePackMessage } from '../pool-protocol.ts';
import type { RestoreFile, ToMain, WorkerRestoreTask } from '../pool-protocol.ts';

type Restored = Extract<ToMain, { t: 'restored' }>;

const CREATE = fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const OPEN = fs.constants.O_RDWR | fs.constants.O_NOFOLLOW;
const READ_SIZE = 1024 * 1024;

/** What a task knows about one of its files while it writes it. */
interface FileState {
  spec: RestoreFile;
  fd: number;
  /** writes of this task still to come */
  uses: number;
  /** writes of this task in all */
  total: number;
  /** the SHA-256 of the file's one blob, when that blob is its whole content */
  digest: string | undefined;
  /** hash of the content from offset 0 to `next`, while the blobs come in file order */
  hash: Hash | undefined;
  next: number;
  inOrder: boolean;
  /** the end of the last byte written (a created file is truncated up to its size when the rest is holes) */
  end: number;
  failed: boolean;
}

let opener: BlobOpener | undefined;
let openerKey: Uint8Array | undefined;
let readBuffer: Uint8Array | undefined;
/** the pack ranges this worker reads itself (WorkerRestoreTask.read) go here, one task after the other */
let packBuffer: Uint8Array | undefined;

/**
 * The task's pack range: the bytes the main thread sent, or those read here from the local file; or why they could
 * not be read, which every blob of the task then fails with.
 */
function packBytes(task: WorkerRestoreTask): { bytes: Uint8Array; problem?: undefined } | { bytes?: undefined; problem: Error } {
  const read = task.read;
  if (read === undefined) return { bytes: task.data };
  let out: Uint8Array;
  if (read.length <= READ_BUFFER_BYTES) out = (packBuffer ??= new Uint8Array(READ_BUFFER_BYTES)).subarray(0, read.length);
  else out = new Uint8Array(read.length);
  try {
    readLocalRangeSync({ type: 'data', name: task.packId }, read.file, read.start, out);
    return { bytes: out };
  } catch (e) {
    return { problem: new Error(unreadablePackMessage(task.packId, e)) };
  }
}

/** Runs one restore task; the answer for the main thread. */
export function restoreTask(task: WorkerRestoreTask, key: Uint8Array): Restored {
  if (opener === undefined || openerKey !== key) {
    opener?.close();
    opener = new BlobOpener(key);
    openerKey = key;
  }
  const out: Restored = { t: 'restored', task: task.task, errors: [], hashes: [], finished: [] };
  const states: FileState[] = task.files.map((spec) => ({ spec, fd: -1, uses: 0, total: 0, digest: undefined, hash: undefined, next: 0, inOrder: true, end: 0, failed: false }));
  for (const b of task.blobs) for (let i = 0; i < b.targets.length; i += 2) states[b.targets[i]!]!.total++;
  try {
    // Files without writes here first: empty files, and files whose blobs other tasks wrote.
    for (const st of states) {
      st.uses = st.total;
      if (st.total === 0) complete(st, task.chown, out);
    }
    // One call per blob rather than the loop's body here: V8 then optimises the blob's work as a function, where it
    // compiled this loop on stack replacement and threw that code away at the end of every task (measured: 1,600
    // deoptimisations in a restore of the benchmark corpus).
    const pack = packBytes(task);
    for (const blob of task.blobs) writeBlob(opener, task, pack, blob, states, out);
  } finally {
    for (const st of states) if (st.fd >= 0) closeQuietly(st);
  }
  // The pack range is used up: it goes back (transferred, see worker.ts) for the main thread to read the next into.
  if (task.data.byteLength > 0) out.data = task.data;
  return out;
}

/** Opens one blob of the task and writes it to every file that holds it, finishing the files it completes. */
function writeBlob(blobOpener: BlobOpener, task: WorkerRestoreTask, pack: ReturnType<typeof packBytes>, blob: WorkerRestoreTask['blobs'][number], states: FileState[], out: Restored): void {
  let plain: Uint8Array | undefined;
  let problem: unknown = pack.problem;
  if (pack.bytes !== undefined) {
    try {
      const envelope = pack.bytes.subarray(blob.offset, blob.offset + blob.length);
      plain = blobOpener.open('data', idToBytes(blob.id), envelope, blob.rawLength, `pack ${task.packId.slice(0, 12)} blob ${blob.id.slice(0, 12)}`);
    } catch (e) {
      problem = e;
    }
  }
  const holes = plain !== undefined && task.sparse && isAllZero(plain);
  // A blob that is some file's whole content is hashed once for every file that holds it.
  let digest: string | undefined;
  const t = blob.targets;
  for (let i = 0; i < t.length; i += 2) {
    const st = states[t[i]!]!;
    const at = t[i + 1]!;
    if (plain === undefined) fail(st, problem, out);
    if (!st.failed && plain !== undefined) {
      try {
        if (st.spec.finish && st.inOrder) {
          if (at !== st.next) st.inOrder = false;
          else if (st.total === 1 && at === 0) st.digest = digest ??= hash('sha256', plain);
          else (st.hash ??= createHash('sha256')).update(plain);
          st.next = at + plain.length;
        }
        // Zero blocks are left as holes: the file is pre-sized, or truncated to its size when finished.
        if (!holes) {
          if (st.fd < 0) st.fd = fs.openSync(st.spec.path, st.spec.create ? CREATE : OPEN, 0o600);
          let off = 0;
          while (off < plain.length) off += fs.writeSync(st.fd, plain, off, plain.length - off, at + off);
          if (at + plain.length > st.end) st.end = at + plain.length;
        }
      } catch (e) {
        fail(st, e, out);
      }
    }
    if (--st.uses === 0) complete(st, task.chown, out);
  }
}

/** The file's first failure in the task is reported; it gets no more writes. */
function fail(st: FileState, e: unknown, out: Restored): void {
  if (st.failed) return;
  st.failed = true;
  out.errors.push({ file: st.spec.file, message: (e as Error).message, metadata: false });
}

/**
 * After a file's last write in the task: a finished file gets its hash, size, ownership, mode and times (chmod after
 * chown, which clears set-id bits; times last, after every write); every file gets its descriptor closed.
 */
function complete(st: FileState, chown: boolean, out: Restored): void {
  const f = st.spec;
  if (!f.finish) {
    closeQuietly(st);
    return;
  }
  try {
    // A created file whose blobs all failed, or that has no content, must still stand where the snapshot has it.
    if (st.fd < 0) st.fd = fs.openSync(f.path, f.create ? CREATE : OPEN, 0o600);
    if (f.create && st.end < f.size) fs.ftruncateSync(st.fd, f.size);
  } catch (e) {
    fail(st, e, out);
    closeQuietly(st);
    return;
  }
  if (!st.failed) {
    try {
      // From the plaintext when it covered the file from its start to its size without gaps, else read back.
      let sha: string;
      if (st.inOrder && st.next === f.size && st.digest !== undefined) sha = st.digest;
      else if (st.inOrder && st.next === f.size) sha = (st.hash ?? createHash('sha256')).digest('hex');
      else sha = hashBack(st.fd);
      out.hashes.push({ file: f.file, sha256: sha });
    } catch (e) {
      st.failed = true;
      out.errors.push({ file: f.file, message: `cannot read back ${f.path}: ${(e as Error).message}`, metadata: false });
    }
  }
  try {
    if (chown) fs.fchownSync(st.fd, f.uid, f.gid);
    fs.fchmodSync(st.fd, f.mode);
    fs.futimesSync(st.fd, f.atime, f.mtime);
  } catch (e) {
    out.errors.push({ file: f.file, message: (e as Error).message, metadata: true });
  }
  out.finished.push(f.file);
  closeQuietly(st);
}

function closeQuietly(st: FileState): void {
  if (st.fd < 0) return;
  const fd = st.fd;
  st.fd = -1;
  try {
    fs.closeSync(fd);
  } catch {
    // Nothing was buffered: every write went out with writeSync.
  }
}

/** SHA-256 of a file's content read back through `fd` (for files whose blobs were not all written in order here). */
function hashBack(fd: number): string {
  const h = createHash('sha256');
  const buf = (readBuffer ??= new Uint8Array(READ_SIZE));
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return h.digest('hex');
}

export function isAllZero(b: Uint8Array): boolean {
  // Compare 4 bytes at a time where alignment allows (a BigUint64Array would make a BigInt of every word).
  const n = b.length;
  let i = 0;
  if (b.byteOffset % 4 === 0) {
    const words = new Uint32Array(b.buffer, b.byteOffset, n >>> 2);
    for (; i < words.length; i++) if (words[i] !== 0) return false;
    i *= 4;
  }
  for (; i < n; i++) if (b[i] !== 0) return false;
  return true;
}
