/**
 * @backup-manager/core-archive: the repository engine (content-defined chunking, deduplication, compression,
 * authenticated encryption, packs, indexes, snapshots), the Backend contract with its wrappers and local backend,
 * and the archiver, restorer and dump built on them.
 */
export { BackupError, ERROR_CODES, isBackupError, toBackupError } from './errors.ts';
export type { BackupErrorOptions, ErrorCode } from './errors.ts';

export { FILE_TYPES, assertValidHandle, handlePath } from './backend/backend.ts';
export type { Backend, FileInfo, FileType, Handle, Usage } from './backend/backend.ts';
export { LocalBackend } from './backend/local.ts';
export { MemoryBackend } from './backend/memory.ts';
export { RetryBackend } from './backend/retry.ts';
export type { RetryOptions } from './backend/retry.ts';
export { BandwidthLimitBackend, ConnectionLimitBackend } from './backend/limits.ts';
export { AppendOnlyBackend } from './backend/append-only.ts';
export { DryRunBackend } from './backend/dry-run.ts';

export { FORMAT_VERSION } from './format.ts';
export type {
  BackupType, BlobType, Id, IndexDocument, KeyFile, LockDocument, NodeType, RepoConfigDocument, SnapshotDocument,
  SnapshotSummary, TreeDocument, TreeNode,
} from './format.ts';
export { DEFAULT_SCRYPT, TEST_SCRYPT } from './crypto/keys.ts';
export type { ScryptParams } from './crypto/kdf.ts';

export { DEFAULT_PACK_SIZE, Repository, compareTime, matchesFilter } from './repository/repository.ts';
export type { InitOptions, KeyInfo, OpenOptions, SnapshotEntry } from './repository/repository.ts';
export { defaultContext } from './repository/context.ts';
export type { RunContext } from './repository/context.ts';
export { LOCK_STALE_MS, listLocks, lockRepository, removeLocks } from './repository/lock.ts';
export type { HeldLock, LockInfo, LockOptions } from './repository/lock.ts';
export { shortId } from './repository/snapshot.ts';

export { PROGRAM_VERSION, backup, findParent, resolveSources } from './archiver/archiver.ts';
export type { BackupEvent, BackupOptions, BackupResult, BackupWarning } from './archiver/archiver.ts';
export { createExcludeMatcher, readExcludeFile } from './archiver/excludes.ts';
export type { ExcludeOptions } from './archiver/excludes.ts';
export { restore } from './restorer/restorer.ts';
export type { RestoreEvent, RestoreOptions, RestoreProblem, RestoreResult } from './restorer/restorer.ts';
export { resolveSnapshotPath, walkSnapshot } from './restorer/resolve.ts';
export type { ResolvedPath } from './restorer/resolve.ts';
export { dump, fileContent } from './restorer/dump.ts';
