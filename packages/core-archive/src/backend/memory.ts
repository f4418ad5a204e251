/**
 * A Backend that keeps every file in memory: the reference implementation of the contract for tests, and a fast
 * stand-in for a destination. Data is copied in and out, so callers may reuse or mutate their buffers.
 */

import { BackupError } from '../errors.ts';
import { handlePath } from './backend.ts';
import type { Backend, FileInfo, FileType, Handle, Usage } from './backend.ts';
import { checkFileType, checkHandle, checkRangeArguments, resolveRange } from './checks.ts';

export interface MemoryBackendOptions {
  /** Capacity in bytes; a save that would exceed it fails with QUOTA_EXCEEDED. Unlimited when absent. */
  readonly capacityBytes?: number;
  /** Shown as `location`, to tell several memory backends apart in logs. */
  readonly label?: string;
}

export class MemoryBackend implements Backend {
  readonly location: string;
  readonly #files = new Map<string, { readonly type: FileType; readonly name: string; readonly data: Uint8Array }>();
  readonly #capacityBytes: number | null;
  #usedBytes = 0;

  constructor(options: MemoryBackendOptions = {}) {
    const capacity = options.capacityBytes;
    if (capacity !== undefined && (!Number.isSafeInteger(capacity) || capacity < 0)) {
      throw new BackupError('INVALID_ARGUMENT', `memory backend capacity must be a non-negative integer, got ${capacity}`);
    }
    this.#capacityBytes = capacity ?? null;
    this.location = `memory:${options.label ?? 'default'}`;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    // new Uint8Array(view) copies; Buffer#slice would not.
    const copy = new Uint8Array(data);
    // Let other tasks run first, as real storage would, so tests see genuinely interleaved operations.
    await Promise.resolve();
    const key = handlePath(h);
    const previous = this.#files.get(key)?.data.byteLength ?? 0;
    const after = this.#usedBytes - previous + copy.byteLength;
    if (this.#capacityBytes !== null && after > this.#capacityBytes) {
      throw new BackupError(
        'QUOTA_EXCEEDED',
        `${this.location} is full (${this.#usedBytes} of ${this.#capacityBytes} bytes used; ${key} needs ${copy.byteLength}): free space or raise the capacity`,
        { subject: key },
      );
    }
    this.#files.set(key, { type: h.type, name: h.name, data: copy });
    this.#usedBytes = after;
  }

  async load(h: Handle, offset = 0, length?: number): Promise<Uint8Array> {
    checkHandle(h);
    checkRangeArguments(h, offset, length);
    const file = this.#get(h);
    const range = resolveRange(h, file.byteLength, offset, length);
    await Promise.resolve();
    return file.slice(range.offset, range.offset + range.length);
  }

  async stat(h: Handle): Promise<FileInfo> {
    checkHandle(h);
    return { name: h.name, size: this.#get(h).byteLength };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    checkFileType(type);
    // A snapshot of the entries: files saved or removed meanwhile may or may not appear, as the contract allows.
    const entries = [...this.#files.values()].filter((f) => f.type === type);
    for (const f of entries) yield { name: f.name, size: f.data.byteLength };
  }

  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    const key = handlePath(h);
    const file = this.#files.get(key);
    if (file === undefined) return;
    this.#files.delete(key);
    this.#usedBytes -= file.data.byteLength;
  }

  async usage(): Promise<Usage> {
    return { usedBytes: this.#usedBytes, totalBytes: this.#capacityBytes, trashBytes: 0 };
  }

  /** Nothing to release; the files stay, so a test can reopen a repository on the same memory backend. */
  async close(): Promise<void> {}

  #get(h: Handle): Uint8Array {
    const file = this.#files.get(handlePath(h));
    if (file === undefined) {
      throw new BackupError('NOT_FOUND', `${handlePath(h)} does not exist in ${this.location}`, {
        subject: handlePath(h),
      });
    }
    return file.data;
  }
}
