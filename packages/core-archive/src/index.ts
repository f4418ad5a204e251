/**
 * @backup-manager/core-archive: the repository engine (content-defined chunking, deduplication, compression,
 * authenticated encryption, packs, indexes, snapshots), the Backend contract with its wrappers and local backend,
 * and the archiver, restorer and dump built on them.
 */
export { BackupError, ERROR_CODES, isBackupError, toBackupError } from './errors.ts';
export type { BackupErrorOptions, ErrorCode } from './errors.ts';

export { FILE_TYPES, assertValidHandle, handlePath } from './backend/backend.ts';
export type { Backend, FileInfo, FileType, Handle, LocalFile, StagedFile, Usage } from './backend/backend.ts';
export { LocalBackend, readLocalRangeSync } from './backend/local.ts';
export { MemoryBackend } from './backend/memory.ts';
export { RetryBackend } from './backend/retry.ts';
export type { RetryOptions } from './backend/retry.ts';
export { BandwidthLimitBackend, ConnectionLimitBackend } from './backend/limits.ts';
export { AppendOnlyBackend } from './backend/append-only.ts';
export { DryRunBackend } from './backend/dry-run.ts';
export { RequestPacer } from './backend/pacer.ts';
export { HeapKeeper, exposedCollector } from './heap-keeper.ts';
export type { HeapKeeperOptions } from './heap-keeper.ts';
export type { RequestPacerOptions } from './backend/pacer.ts';

export { FORMAT_VERSION } from './format.ts';
export type {
  BackupType, BlobType, Id, IndexDocument, KeyFile, LockDocument, NodeType, RepoConfigDocument, SnapshotDocument,
  SnapshotSummary, TreeDocument, TreeNode,
} from './format.ts';
export { DEFAULT_SCRYPT, TEST_SCRYPT } from './crypto/keys.ts';
export type { ScryptParams } from './crypto/kdf.ts';

export { DEFAULT_PACK_SIZE, Repository, compareTime, matchesFilter } from './repository/repository.ts';
export type { InitOptions, KeyInfo, ListSnapshotsOptions, OpenOptions, SnapshotEntry } from './repository/repository.ts';
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
export { prestartWorkers } from './pool.ts';
export type { RestoreEvent, RestoreOptions, RestoreProblem, RestoreResult } from './restorer/restorer.ts';
export { resolveSnapshotPath, walkSnapshot } from './restorer/resolve.ts';
export type { ResolvedPath } from './restorer/resolve.ts';
export { dump, fileContent } from './restorer/dump.ts';

// prune
export { DEFAULT_MAX_UNUSED, assertDeletable, executePrune, planPrune, reloadIndex } from './repository/prune.ts';
export type {
  PruneEvent, PruneExecuteOptions, PruneFileRef, PrunePhase, PrunePlan, PrunePlanOptions, PruneRepackJob, PruneResult, PruneStats,
} from './repository/prune.ts';

// used by @backup-manager/verify
export { cryptoMaterial } from './repository/repository.ts';
export type { CryptoMaterial } from './repository/repository.ts';
export { readPackHeader } from './pack/pack.ts';
export { openBlob } from './crypto/blob.ts';
export { idToBytes, sha256Hex } from './crypto/hash.ts';
export { releaseBytes } from './crypto/bytes.ts';
export { parseIndexDocument } from './index/index-file.ts';
export { IndexCache, indexCacheKey } from './index/index-cache.ts';
export type { CachedIndex } from './index/index-cache.ts';
export type { MasterIndexImage } from './index/master-index.ts';
export { PackSaver } from './repository/pack-saver.ts';
export { decodeTree, encodeTree } from './repository/tree.ts';
export type { IndexBlobEntry, IndexPackEntry } from './format.ts';

// auth
export { FileTokenStore, MemoryTokenStore } from './auth/token-store.ts';
export type { FileTokenStoreOptions, OAuthTokens, TokenStore } from './auth/token-store.ts';
export { describeEndpoint, parseRetryAfter, reauthHint, requestTokens } from './auth/token-endpoint.ts';
export type { OAuthClientConfig, TokenRequestOptions } from './auth/token-endpoint.ts';
export { OAuthSession } from './auth/session.ts';
export type { OAuthSessionOptions } from './auth/session.ts';
export { authorizeWithLoopback, pkcePair } from './auth/loopback.ts';
export type { LoopbackOptions } from './auth/loopback.ts';
// (argument checks every provider's Backend shares, so that all fail alike)
export { checkFileType, checkHandle, checkRangeArguments, resolveRange } from './backend/checks.ts';
export type { ResolvedRange } from './backend/checks.ts';
