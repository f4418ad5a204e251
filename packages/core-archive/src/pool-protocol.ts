/**
 * Messages between the main thread and the engine's worker threads (structured-clone data only), and what both sides
 * of a restore must agree on: the size of a pack read and the words for one that fails.
 */
import type { LocalFile } from './backend/backend.ts';
import type { CompressionOptions } from './compress.ts';

export interface WorkerInit {
  key: Uint8Array;
  chunkerSecret: Uint8Array;
  chunkSizes: { minSize: number; avgSize: number; maxSize: number };
  compression: CompressionOptions;
}

export interface WorkerFileJob {
  index: number;
  path: string;
  /** identity from the walker's lstat, to notice a file replaced before it was opened */
  ino: string;
  mtimeNs: string;
}

export type WorkerFileResult =
  | { index: number; content: string[]; sha256: string; size: number; changed: boolean; error?: undefined }
  | { index: number; error: { code: string; message: string } };

/** Where one envelope lies in a 'blobs' message's buffer. */
export interface SealedBlobRef {
  id: string;
  offset: number;
  length: number;
  rawLength: number;
}

/**
 * The most a restore task's read of a pack spans (the restorer's runs end before a blob that would take them past
 * it), and the size of the buffers that reads reuse, on the main thread and in the workers that read themselves. A
 * blob larger than this alone is read into a buffer of its own, freed once written.
 */
export const READ_BUFFER_BYTES = 2.5 * 1024 * 1024;

/** How a restore names a pack range it could not read, on whichever thread read it. */
export function unreadablePackMessage(packId: string, error: unknown): string {
  return `cannot read pack ${packId.slice(0, 12)}: ${(error as Error).message}`;
}

/** A file a restore task writes to, and what to do with it. */
export interface RestoreFile {
  /** the file's number in the restore's plan, by which results name it */
  file: number;
  path: string;
  size: number;
  /** create it here (O_CREAT|O_EXCL|O_NOFOLLOW): the layout did not, because it is one blob written by one task */
  create: boolean;
  /**
   * every write of the file is in this task: once written, hash it (from the plaintext when its blobs came in order,
   * else by reading it back), set its ownership, mode and times through the open descriptor, and close it
   */
  finish: boolean;
  uid: number;
  gid: number;
  mode: number;
  /** seconds, as fs.futimes takes them */
  atime: number;
  mtime: number;
}

export interface WorkerRestoreTask {
  task: number;
  packId: string;
  /**
   * one read of a pack's byte range, transferred whole: blobs are views into it, so nothing is copied. Empty when
   * the worker reads the range itself (`read`), and for tasks that only finish files.
   */
  data: Uint8Array;
  /**
   * the pack's byte range, for the worker to read from the local file the backend keeps it in (Backend.localFile),
   * when `data` is empty: blob offsets count from `start`
   */
  read?: { file: LocalFile; start: number; length: number };
  /** leave all-zero blobs as holes (the files are pre-sized, or truncated to their size when finished) */
  sparse: boolean;
  /** set ownership from uid and gid (only root may) */
  chown: boolean;
  files: RestoreFile[];
  /** `targets`: pairs of an index into `files` and the offset in that file where the plaintext goes */
  blobs: { id: string; rawLength: number; offset: number; length: number; targets: number[] }[];
}

export type ToWorker =
  | { t: 'init'; init: WorkerInit }
  | { t: 'files'; job: number; files: WorkerFileJob[] }
  | { t: 'known'; req: number; isNew: boolean[] }
  /** `data`: the buffer of the 'blobs' message it answers, handed back for the worker's next batch */
  | { t: 'ack'; req: number; error?: { code: string; message: string }; data?: Uint8Array }
  | { t: 'restore'; task: WorkerRestoreTask }
  | { t: 'hash'; task: number; path: string }
  | { t: 'scan'; paths: string[]; patterns: string[]; ifPresent: string[]; largerThan?: number };

export type ToMain =
  | { t: 'query'; job: number; req: number; ids: string[]; bytes: number }
  /**
   * Sealed blobs, their envelopes back to back in `data` (transferred, not copied; the 'ack' returns it, so one
   * buffer carries every batch of a worker and neither thread makes garbage of it).
   */
  | { t: 'blobs'; job: number; req: number; data: Uint8Array; blobs: SealedBlobRef[] }
  | { t: 'file'; job: number; result: WorkerFileResult }
  /** many 'file' messages and then 'done' messages in one: a backup worker reports a whole batch of files at once */
  | { t: 'results'; results: { job: number; result: WorkerFileResult }[]; done: number[] }
  | { t: 'done'; job: number }
  | { t: 'failed'; job: number; error: { code: string; message: string } }
  /**
   * `errors`: the file's content could not be written (`metadata` false) or its ownership, mode or times could not
   * be set; `hashes`: SHA-256 of each finished file that has no content error; `finished`: files whose metadata step ran
   */
  /** `data`: the task's pack read, transferred back once its blobs are written, for the main thread's next read */
  | { t: 'restored'; task: number; errors: { file: number; message: string; metadata: boolean }[]; hashes: { file: number; sha256: string }[]; finished: number[]; data?: Uint8Array }
  | { t: 'hashed'; task: number; sha256?: string; error?: { code: string; message: string } }
  | { t: 'scanned'; files: number; bytes: number; done: boolean };
