/**
 * Worker thread of the engine's pool: the CPU-heavy half of backup and restore. For backup it reads files
 * synchronously (fast inside a worker), cuts them into chunks, hashes, asks the main thread which chunks are new,
 * then compresses and seals only those (archiver/backup-worker.ts). For restore it opens, decompresses and writes
 * blobs with positioned writes (restorer/restore-worker.ts).
 * The main thread keeps the repository, the index and all network or backend I/O.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import type { ChunkerParams } from './chunker/chunker.ts';
import { gearTable } from './chunker/gear.ts';
import { BackupPipeline } from './archiver/backup-worker.ts';
import type { BackupPort } from './archiver/backup-worker.ts';
import { restoreTask } from './restorer/restore-worker.ts';
import { HeapKeeper } from './heap-keeper.ts';
import { createExcludeMatcher } from './archiver/excludes.ts';
import type { ToMain, ToWorker, WorkerInit } from './pool-protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker.ts must run as a worker thread');

let init: WorkerInit | undefined;
let chunker: ChunkerParams | undefined;
let nextReq = 1;
const waiting = new Map<number, (value: ToWorker) => void>();
const queue: ToWorker[] = [];
let busy = false;

const READ_SIZE = 1024 * 1024;

function post(msg: ToMain, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function request(msg: Extract<ToMain, { req: number }>, transfer: ArrayBuffer[] = []): Promise<ToWorker> {
  return new Promise((resolve) => {
    waiting.set(msg.req, resolve);
    post(msg, transfer);
  });
}

function poll(): void {
  for (let m = receiveMessageOnPort(port!); m !== undefined; m = receiveMessageOnPort(port!)) onMessage(m.message as ToWorker);
}

const backupPort: BackupPort = { post, request, poll };
/** The backup pipeline, made with the first batch of files and kept (with its buffers) for the next. */
let pipeline: BackupPipeline | undefined;

function errorOf(e: unknown): { code: string; message: string } {
  const err = e as NodeJS.ErrnoException;
  return { code: err.code ?? 'IO', message: err.message ?? String(e) };
}

/**
 * Runs one batch of files through the pipeline. The pipeline is drained (every result and 'done' posted) only when
 * no other batch of files is waiting: while one is, the batches flow on without a pause at the boundary.
 */
async function backupFiles(msg: Extract<ToWorker, { t: 'files' }>): Promise<void> {
  const p = (pipeline ??= new BackupPipeline(backupPort, init!, chunker!, () => nextReq++));
  try {
    await p.addFiles(msg.job, msg.files);
    // Let messages already sent to this thread arrive first: the next batch may be among them.
    if (queue.length === 0) await new Promise((resolve) => setImmediate(resolve));
    if (queue[0]?.t !== 'files') await p.finish();
  } catch (e) {
    const error = errorOf(e);
    for (const job of new Set([...p.openJobs, msg.job])) post({ t: 'failed', job, error });
    p.reset();
  }
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

/**
 * After each message's work, a full collection once the heap has grown by 4 MiB: a worker holds ~7 MB, and V8 let
 * its heap grow to 18-27 MB of mostly dead batch and task descriptions before collecting on its own.
 */
const heapKeeper = HeapKeeper.create({ slackBytes: 4 * 1024 * 1024 });

async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    while (queue.length > 0) {
      const msg = queue.shift()!;
      if (msg.t === 'files') {
        await backupFiles(msg);
      } else if (msg.t === 'restore') {
        const restored = restoreTask(msg.task, init!.key);
        post(restored, restored.data ? [restored.data.buffer as ArrayBuffer] : []);
      } else if (msg.t === 'hash') {
        hashFile(msg.task, msg.path);
      } else if (msg.t === 'scan') {
        scan(msg);
      }
      heapKeeper?.check();
    }
  } finally {
    busy = false;
  }
}

function onMessage(msg: ToWorker): void {
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
}

port.on('message', onMessage);
