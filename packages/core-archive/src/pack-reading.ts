/**
 * @backup-manager/core-archive/pack-reading: what a worker thread needs to check packs and blobs held in memory,
 * without loading the rest of the engine. The main entry pulls in the backends, the archiver and the HTTP clients
 * of the cloud sign-in, some 25 MB per thread that a worker hashing packs never uses.
 */
export type { BlobType, IndexBlobEntry } from './format.ts';
export type { LocalFile } from './backend/backend.ts';
export { readLocalRangeSync } from './backend/local.ts';
export { BlobOpener } from './crypto/blob-opener.ts';
export { readPackHeader } from './pack/pack.ts';
export { idToBytes } from './crypto/hash.ts';
export { releaseBytes } from './crypto/bytes.ts';
