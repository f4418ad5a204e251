/**
 * The main thread's side of the worker pool. It hands out file batches (backup) and blob batches (restore), answers
 * the workers' "which of these chunks are new?" questions through the PackSaver, and turns worker messages back
 * into promises. Queues are bounded so that memory stays flat whatever the size of the tree.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackupError } from './errors.ts';
import type { ToMain, ToWorker, WorkerFileJob, WorkerFileResult, WorkerInit, WorkerRestoreTask } from './pool-protocol.ts';

export interface PoolHandlers {
  /** For each id, true when the caller must store it (claims it); false when it is known or claimed already. */
  claim(ids: string[]): boolean[];
  /**
   * Stores sealed blobs; resolving releases the worker to continue (back-pressure). The envelopes are views into a
   * buffer that goes back to the worker as soon as the promise settles: copy what must be kept, before settling.
   */
  store(blobs: { id: string; envelope: Uint8Array; rawLength: number }[]): Promise<void>;
  /** Bytes a worker has read, for progress. */
  progress?(bytes: number): void;
}

/**
 * Where a file's outcome goes: its result, or the error that ended its batch (a worker that died or failed). A
 * callback rather than a promise per file: a backup submits tens of thousands of files, and each promise (with its
 * resolvers) outlived the young generation while the file waited its turn.
 */
export type FileSink = (result: WorkerFileResult | undefined, error?: unknown) => void;

interface Slot {
  worker: Worker;
  outstanding: number;
  dead: Error | undefined;
}

export function workerUrl(): URL {
  // Sources run directly under Node 24 (type stripping); the build emits worker.js next to the bundle.
  return new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(8, os.availableParallelism()));
}

/**
 * A small young generation makes the collector free the many short-lived chunk buffers soon, instead of letting a
 * worker's memory grow by tens of megabytes before each scavenge.
 */
const WORKER_OPTIONS = { resourceLimits: { maxYoungGenerationSizeMb: 8 } };

/** Workers started by prestartWorkers and not yet taken by a pool. */
const warm: Worker[] = [];

/**
 * Starts the worker threads of the next backup or restore now, so that their start (a Node environment and the
 * worker's code: about a tenth of a second of CPU each) overlaps with what comes first: deriving the key from the
 * password, loading the index, walking the first directories. The next WorkerPool takes them instead of starting
 * its own. Until then they do nothing and do not keep the process alive, so starting them costs only that CPU and
 * their memory when no pool follows (a wrong password, a backup with nothing to read).
 */
export function prestartWorkers(count = defaultWorkerCount()): void {
  while (warm.length < count) {
    const worker = new Worker(workerUrl(), WORKER_OPTIONS);
    worker.unref();
    // One that fails before a pool takes it is dropped; the pool starts a fresh one instead.
    const drop = (): void => {
      const i = warm.indexOf(worker);
      if (i >= 0) warm.splice(i, 1);
    };
    worker.once('error', drop);
    worker.once('exit', drop);
    warm.push(worker);
  }
}

/** Prestarted workers no pool has taken yet (for tests). */
export function warmWorkerCount(): number {
  return warm.length;
}

/** A prestarted worker when one is ready, else a new one. */
function takeWorker(): Worker {
  const worker = warm.shift();
  if (worker === undefined) return new Worker(workerUrl(), WORKER_OPTIONS);
  worker.removeAllListeners('error');
  worker.removeAllListeners('exit');
  worker.ref();
  return worker;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly handlers: PoolHandlers;
  private nextJob = 1;
  private readonly files = new Map<number, { sinks: Map<number, FileSink>; slot: Slot }>();
  private readonly tasks = new Map<number, { resolve(v: ToMain): void; reject(e: unknown): void; slot: Slot }>();
  private readonly capacityWaiters: (() => void)[] = [];
  private closed = false;
  readonly maxOutstandingPerWorker = 2;
  /**
   * Backup batches per worker: a worker's pipeline reports a batch done only once the main thread has stored its
   * blobs, up to two batches after it read them, so it needs the next batch queued before then not to pause.
   */
  readonly maxFileJobsPerWorker = 4;

  constructor(init: WorkerInit, handlers: PoolHandlers, size = defaultWorkerCount()) {
    this.handlers = handlers;
    for (let i = 0; i < size; i++) {
      const worker = takeWorker();
      const slot: Slot = { worker, outstanding: 0, dead: undefined };
      worker.on('message', (m: ToMain) => this.onMessage(slot, m));
      worker.on('error', (e) => this.onDeath(slot, e));
      worker.on('exit', (code) => {
        if (!this.closed) this.onDeath(slot, new Error(`worker exited with code ${code}`));
      });
      worker.postMessage({ t: 'init', init } satisfies ToWorker);
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  private pick(limit: number): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (s.dead || s.outstanding >= limit) continue;
      if (!best || s.outstanding < best.outstanding) best = s;
    }
    return best;
  }

  /** Waits until some worker has fewer than `limit` batches. */
  private async acquire(limit = this.maxOutstandingPerWorker): Promise<Slot> {
    for (;;) {
      const dead = this.slots.find((s) => s.dead);
      if (dead) throw new BackupError('INTERNAL', `a worker thread failed: ${dead.dead!.message}`, { cause: dead.dead });
      const slot = this.pick(limit);
      if (slot) {
        slot.outstanding++;
        return slot;
      }
      await new Promise<void>((r) => this.capacityWaiters.push(r));
    }
  }

  private release(slot: Slot): void {
    slot.outstanding--;
    this.capacityWaiters.shift()?.();
  }

  /**
   * Submits a batch of files, `sinks[i]` receiving the outcome of `files[i]`. Resolves once the batch is accepted
   * (which may wait for capacity).
   */
  async submitFiles(files: WorkerFileJob[], sinks: FileSink[]): Promise<void> {
    const slot = await this.acquire(this.maxFileJobsPerWorker);
    const job = this.nextJob++;
    const bySink = new Map<number, FileSink>();
    files.forEach((f, i) => bySink.set(f.index, sinks[i]!));
    this.files.set(job, { sinks: bySink, slot });
    slot.worker.postMessage({ t: 'files', job, files } satisfies ToWorker);
  }

  /**
   * Runs a restore task (blobs of one pack) on a worker. Not an async function: its frame would hold the task's
   * file and blob lists, sent already, for as long as the worker works on them.
   */
  restore(task: Omit<WorkerRestoreTask, 'task'>): Promise<Extract<ToMain, { t: 'restored' }>> {
    return this.acquire().then((slot) => {
      const id = this.nextJob++;
      // A task without bytes of its own (the worker reads them, or it only finishes files) transfers nothing.
      const transfer = task.data.byteLength > 0 ? [task.data.buffer as ArrayBuffer] : [];
      const result = new Promise<ToMain>((resolve, reject) => this.tasks.set(id, { resolve, reject, slot }));
      slot.worker.postMessage({ t: 'restore', task: { ...task, task: id } } satisfies ToWorker, transfer);
      return result as Promise<Extract<ToMain, { t: 'restored' }>>;
    });
  }

  /** Hashes a file on a worker (SHA-256 hex). */
  async hashFile(path: string): Promise<string> {
    const slot = await this.acquire();
    const id = this.nextJob++;
    const result = new Promise<ToMain>((resolve, reject) => this.tasks.set(id, { resolve, reject, slot }));
    slot.worker.postMessage({ t: 'hash', task: id, path } satisfies ToWorker);
    const r = (await result) as Extract<ToMain, { t: 'hashed' }>;
    if (r.error || r.sha256 === undefined) throw new BackupError('IO', `cannot read back ${path}: ${r.error?.message ?? 'unknown error'}`);
    return r.sha256;
  }

  private onMessage(slot: Slot, m: ToMain): void {
    switch (m.t) {
      case 'query': {
        this.handlers.progress?.(m.bytes);
        const isNew = this.handlers.claim(m.ids);
        slot.worker.postMessage({ t: 'known', req: m.req, isNew } satisfies ToWorker);
        return;
      }
      case 'blobs': {
        const data = m.data;
        const blobs = m.blobs.map((b) => ({ id: b.id, envelope: data.subarray(b.offset, b.offset + b.length), rawLength: b.rawLength }));
        // The buffer travels back with the answer: the worker seals its next batch into the same memory.
        const answer = (error?: { code: string; message: string }): void => {
          const msg: ToWorker = error ? { t: 'ack', req: m.req, error, data } : { t: 'ack', req: m.req, data };
          slot.worker.postMessage(msg, [data.buffer as ArrayBuffer]);
        };
        this.handlers.store(blobs).then(
          () => answer(),
          (e: unknown) => {
            const err = e instanceof BackupError ? e : new BackupError('IO', String(e), { cause: e });
            answer({ code: err.code, message: err.message });
          },
        );
        return;
      }
      case 'file': {
        this.deliver(m.job, m.result);
        return;
      }
      case 'results': {
        for (const r of m.results) this.deliver(r.job, r.result);
        for (const job of m.done) this.onMessage(slot, { t: 'done', job });
        return;
      }
      case 'done':
      case 'failed': {
        const job = this.files.get(m.job);
        if (!job) return;
        this.files.delete(m.job);
        const err = m.t === 'failed' ? this.toError(m.error) : undefined;
        for (const sink of job.sinks.values()) sink(undefined, err ?? new BackupError('INTERNAL', 'a worker finished a batch without a result for every file'));
        this.release(job.slot);
        return;
      }
      case 'restored':
      case 'hashed': {
        const t = this.tasks.get(m.task);
        if (!t) return;
        this.tasks.delete(m.task);
        this.release(t.slot);
        t.resolve(m);
        return;
      }
    }
  }

  private deliver(jobId: number, result: WorkerFileResult): void {
    const job = this.files.get(jobId);
    const sink = job?.sinks.get(result.index);
    if (sink === undefined) return;
    job!.sinks.delete(result.index);
    sink(result);
  }

  private toError(e: { code: string; message: string }): BackupError {
    const known = ['QUOTA_EXCEEDED', 'UNAVAILABLE', 'RATE_LIMITED', 'UNAUTHORIZED', 'PERMISSION_DENIED', 'IO', 'INTERRUPTED', 'CORRUPT', 'NOT_FOUND'];
    return new BackupError(known.includes(e.code) ? (e.code as BackupError['code']) : 'INTERNAL', e.message);
  }

  private onDeath(slot: Slot, e: Error): void {
    if (slot.dead) return;
    slot.dead = e;
    const err = new BackupError('INTERNAL', `a worker thread failed: ${e.message}`, { cause: e });
    for (const [id, job] of this.files) {
      if (job.slot !== slot) continue;
      this.files.delete(id);
      for (const sink of job.sinks.values()) sink(undefined, err);
    }
    for (const [id, t] of this.tasks) {
      if (t.slot !== slot) continue;
      this.tasks.delete(id);
      t.reject(err);
    }
    for (const w of this.capacityWaiters.splice(0)) w();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
