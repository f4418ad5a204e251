/**
 * A wrapper for `--dry-run`: reads go to the real backend, while saves and removals only report what they would
 * have done. Nothing at the destination changes.
 */

import { BackupError } from '../errors.ts';
import type { Backend, FileInfo, FileType, Handle, StagedFile, Usage } from './backend.ts';
import { checkFileType, checkHandle } from './checks.ts';

export type DryRunAction =
  | { readonly kind: 'save'; readonly handle: Handle; readonly size: number }
  | { readonly kind: 'remove'; readonly handle: Handle };

/**
 * `save` and `remove` validate the handle (a dry run should catch the same bugs as a real one), report the action
 * and resolve without touching the inner backend. Because nothing is written, read-after-write does not hold: a
 * dry-run caller must not read back what it "saved".
 */
export class DryRunBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;
  readonly #onAction: ((action: DryRunAction) => void) | undefined;

  constructor(inner: Backend, onAction?: (action: DryRunAction) => void) {
    this.inner = inner;
    this.#onAction = onAction;
    this.location = inner.location;
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) this.usage = () => innerUsage.call(inner);
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    checkHandle(h);
    this.#onAction?.({ kind: 'save', handle: { type: h.type, name: h.name }, size: data.byteLength });
  }

  /**
   * A staged file that only counts its bytes and, on commit, reports the save `save` would have reported: the caller
   * streams instead of building the file in memory, and nothing is written.
   */
  stage(type: FileType): StagedFile {
    checkFileType(type);
    const report = this.#onAction;
    let size = 0;
    let open = true;
    const ended = () => new BackupError('INTERNAL', 'this staged file was already committed or discarded; this is a bug in the caller, please report it');
    return {
      get size() {
        return size;
      },
      async append(data: Uint8Array): Promise<void> {
        if (!open) throw ended();
        size += data.byteLength;
      },
      async commit(h: Handle): Promise<void> {
        if (!open) throw ended();
        open = false;
        checkHandle(h);
        if (h.type !== type) throw new BackupError('INVALID_ARGUMENT', `a file staged as ${type} cannot be committed as ${h.type}; this is a bug in the caller, please report it`);
        report?.({ kind: 'save', handle: { type: h.type, name: h.name }, size });
      },
      async discard(): Promise<void> {
        open = false;
      },
    };
  }

  load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    return this.inner.load(h, offset, length);
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.inner.stat(h);
  }

  list(type: FileType): AsyncIterable<FileInfo> {
    return this.inner.list(type);
  }

  async remove(h: Handle): Promise<void> {
    checkHandle(h);
    this.#onAction?.({ kind: 'remove', handle: { type: h.type, name: h.name } });
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
