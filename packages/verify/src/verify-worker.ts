/**
 * Worker thread of the verify pool: runs pack verifications (hashing each pack against its name, and opening its
 * blobs) and file hashes off the main thread, so that both cores decrypt and hash while the main thread keeps
 * reading. The main thread does all repository I/O.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { releaseBytes } from '@backup-manager/core-archive/pack-reading';
import { BlobVerifier, PackHashes, hashFilesSync } from './pack-verify.ts';
import type { ToPool, ToVerifyWorker } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('verify-worker.ts must run as a worker thread');
const verifier = new BlobVerifier((workerData as { key: Uint8Array }).key);
const hashes = new PackHashes();

function handle(msg: ToVerifyWorker): ToPool {
  try {
    if (msg.t === 'piece') {
      try {
        // Hashed before its blobs are decrypted in place.
        const digest = msg.piece.hash ? hashes.update(msg.piece.hash, msg.piece.bytes) : undefined;
        return { t: 'piece', id: msg.id, bad: verifier.verify(msg.piece, true), ...(digest === undefined ? {} : { digest }) };
      } finally {
        // The piece was transferred here whole and nothing else holds it: freed now rather than by the collector,
        // so that dead pieces of megabytes do not pile up in this thread.
        releaseBytes(msg.piece.bytes);
      }
    }
    if (msg.t === 'drop') {
      hashes.drop(msg.stream);
      return { t: 'drop', id: msg.id };
    }
    return { t: 'hash', id: msg.id, digests: hashFilesSync(msg.paths) };
  } catch (e) {
    return { t: 'error', id: msg.id, message: (e as Error).message ?? String(e), code: (e as NodeJS.ErrnoException).code ?? 'IO' };
  }
}

port.on('message', (msg: ToVerifyWorker) => port.postMessage(handle(msg)));
