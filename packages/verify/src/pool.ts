/**
 * A small pool of worker threads for the data check and the recovery test: each task is one pack (verified whole)
 * or one file (hashed). Size 0 runs the same code on the calling thread, which tests and tiny repositories use.
 * Callers bound how many packs they hand over at once; the pool itself queues without limit.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackupError } from '@backup-manager/core-archive';
import { hashFilesSync, verifyPack } from './pack-verify.ts';
import type { PackTask, PackVerdict } from './pack-verify.ts';

export type ToVerifyWorker = { t: 'pack'; id: number; task: PackTask } | { t: 'hash'; id: number; paths: string[] };
/** A file's SHA-256, or why it could not be read. */
export type FileDigest = { sha256: string } | { error: string };
export type ToPool =
  | { t: 'pack'; id: number; verdict: PackVerdict }
  | { t: 'hash'; id: number; digests: FileDigest[] }
  | { t: 'error'; id: number; message: string; code: string };

interface Pending {
  resolve(v: ToPool): void;
  reject(e: unknown): void;
  slot: Slot;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export function defaultVerifyWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

function workerUrl(): URL {
  // Sources run directly under Node 24; the build emits verify-worker.js next to the bundle.
  return new URL(import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js', import.meta.url);
}

export class VerifyPool {
  private readonly key: Uint8Array;
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private next = 1;
  private failure: Error | undefined;
  private closed = false;

  constructor(key: Uint8Array, size = defaultVerifyWorkers()) {
    this.key = key;
    const url = workerUrl();
    // Running from sources, the worker must resolve sibling packages to their sources as well.
    const execArgv = url.pathname.endsWith('.ts') ? [...process.execArgv, '--conditions=source'] : undefined;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, { workerData: { key }, ...(execArgv ? { execArgv } : {}) });
      const slot: Slot = { worker, busy: 0 };
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

  /** Verifies a pack held in memory. Its buffer is transferred to the worker: the caller must not use it afterwards. */
  async verifyPack(task: PackTask): Promise<PackVerdict> {
    if (this.slots.length === 0) return verifyPack(this.key, task);
    const bytes = task.bytes.byteOffset === 0 && task.bytes.byteLength === task.bytes.buffer.byteLength ? task.bytes : task.bytes.slice();
    const reply = await this.send({ t: 'pack', id: 0, task: { ...task, bytes } }, [bytes.buffer as ArrayBuffer]);
    if (reply.t !== 'pack') throw new BackupError('INTERNAL', `unexpected answer ${reply.t} from a verify worker`);
    return reply.verdict;
  }

  /** SHA-256 of local files, in one round trip (batches amortise the message cost over many small files). */
  async hashFiles(paths: string[]): Promise<FileDigest[]> {
    if (this.slots.length === 0) return hashFilesSync(paths);
    const reply = await this.send({ t: 'hash', id: 0, paths });
    if (reply.t !== 'hash') throw new BackupError('INTERNAL', `unexpected answer ${reply.t} from a verify worker`);
    return reply.digests;
  }

  private send(msg: ToVerifyWorker, transfer: ArrayBuffer[] = []): Promise<ToPool> {
    if (this.failure) return Promise.reject(new BackupError('INTERNAL', `a verify worker failed: ${this.failure.message}`, { cause: this.failure }));
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.next++;
    slot.busy++;
    return new Promise<ToPool>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  private onMessage(m: ToPool): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    p.slot.busy--;
    if (m.t === 'error') p.reject(new BackupError('IO', m.message));
    else p.resolve(m);
  }

  private onDeath(slot: Slot, e: Error): void {
    this.failure ??= e;
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(new BackupError('INTERNAL', `a verify worker failed: ${e.message}`, { cause: e }));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
