/**
 * Worker thread of the verify pool: runs pack verifications and file hashes off the main thread, so that both
 * cores decrypt and hash while the main thread keeps reading. The main thread does all repository I/O.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BlobVerifier, hashFilesSync } from './pack-verify.ts';
import type { ToPool, ToVerifyWorker } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('verify-worker.ts must run as a worker thread');
const verifier = new BlobVerifier((workerData as { key: Uint8Array }).key);

/**
 * Frees a piece's memory as soon as it is verified: it was transferred here whole and nothing else holds it, and
 * waiting for the collector would let dead pieces of megabytes pile up in this thread.
 */
function release(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  if (!(buffer instanceof ArrayBuffer) || bytes.byteOffset !== 0 || bytes.byteLength !== buffer.byteLength) return;
  try {
    buffer.transfer?.(0);
  } catch {
    // Not detachable: the collector frees it.
  }
}

function handle(msg: ToVerifyWorker): ToPool {
  try {
    if (msg.t === 'piece') {
      try {
        return { t: 'piece', id: msg.id, bad: verifier.verify(msg.piece, true) };
      } finally {
        release(msg.piece.bytes);
      }
    }
    return { t: 'hash', id: msg.id, digests: hashFilesSync(msg.paths) };
  } catch (e) {
    return { t: 'error', id: msg.id, message: (e as Error).message ?? String(e), code: (e as NodeJS.ErrnoException).code ?? 'IO' };
  }
}

port.on('message', (msg: ToVerifyWorker) => port.postMessage(handle(msg)));
