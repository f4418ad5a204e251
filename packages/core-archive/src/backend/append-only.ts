/**
 * Enforces an append-only repository on the client side: nothing but lock files may be deleted, so a compromised
 * or mistaken client cannot destroy existing backups through this process.
 */

import { BackupError } from '../errors.ts';
import { handlePath } from './backend.ts';
import type { Backend, FileInfo, FileType, Handle, LocalFile, StagedFile, Usage } from './backend.ts';

/**
 * Refuses `remove` of every file type except `locks` (locks must still be released) with APPEND_ONLY; everything
 * else passes through. Saving an existing name is not refused: names are content hashes, so a save writes the
 * same bytes again. For the same reason a staged file's commit passes through too (`stage` is offered when the
 * inner backend offers it).
 */
export class AppendOnlyBackend implements Backend {
  readonly location: string;
  readonly usage?: () => Promise<Usage>;
  readonly stage?: (type: FileType) => StagedFile;
  readonly loadInto?: (h: Handle, offset: number, out: Uint8Array) => Promise<void>;
  readonly localFile?: (h: Handle) => LocalFile;
  /** The wrapped backend, for code that must reach through the wrapper (deliberately, and visibly so). */
  readonly inner: Backend;

  constructor(inner: Backend) {
    this.inner = inner;
    this.location = inner.location;
    const innerUsage = inner.usage;
    if (innerUsage !== undefined) this.usage = () => innerUsage.call(inner);
    const innerStage = inner.stage;
    if (innerStage !== undefined) this.stage = (type) => innerStage.call(inner, type);
    // Reads pass through unchanged, so the inner backend's ways of reading are offered as they are.
    const innerLoadInto = inner.loadInto;
    if (innerLoadInto !== undefined) this.loadInto = (h, offset, out) => innerLoadInto.call(inner, h, offset, out);
    const innerLocalFile = inner.localFile;
    if (innerLocalFile !== undefined) this.localFile = (h) => innerLocalFile.call(inner, h);
  }

  save(h: Handle, data: Uint8Array): Promise<void> {
    return this.inner.save(h, data);
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
    if (h.type !== 'locks') {
      throw new BackupError(
        'APPEND_ONLY',
        `this repository is append-only: deleting ${handlePath(h)} was refused; turn append-only off in the repository settings (appendOnly: false) if you really mean to delete`,
        { subject: handlePath(h) },
      );
    }
    await this.inner.remove(h);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
