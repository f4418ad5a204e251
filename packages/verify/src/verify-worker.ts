/**
 * Worker thread of the verify pool: runs pack verifications (hashing each pack against its name, and opening its
 * blobs) and file hashes off the main thread, so that both cores decrypt and hash while the main thread keeps
 * reading. Pieces come as bytes or, from a local repository, as a file range this thread reads itself.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { releaseBytes } from '@backup-manager/core-archive/pack-reading';
import { PieceRunner, hashFilesSync } from './pack-verify.ts';
import type { ToPool, ToVerifyWorker } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('verify-worker.ts must run as a worker thread');
// The key comes with the thread, or (a pool started before the repository was opened) as the first message.
const given = (workerData as { key?: Uint8Array }).key;
let runner = given ? new PieceRunner(given) : undefined;

function handle(msg: Exclude<ToVerifyWorker, { t: 'key' }>): ToPool {
  try {
    if (msg.t === 'piece') {
      try {
        if (!runner) throw new Error('a piece came before the key');
        return { t: 'piece', id: msg.id, ...runner.run(msg.piece) };
      } finally {
        // Bytes transferred here whole, which nothing else holds: freed now rather than by the collector, so that
        // dead pieces of megabytes do not pile up in this thread. (A piece read from its file is in the runner's buffer.)
        if (msg.piece.bytes instanceof Uint8Array) releaseBytes(msg.piece.bytes);
      }
    }
    if (msg.t === 'drop') {
      runner?.drop(msg.stream);
      return { t: 'drop', id: msg.id };
    }
    return { t: 'hash', id: msg.id, digests: hashFilesSync(msg.paths) };
  } catch (e) {
    return { t: 'error', id: msg.id, message: (e as Error).message ?? String(e), code: (e as NodeJS.ErrnoException).code ?? 'IO' };
  }
}

port.on('message', (msg: ToVerifyWorker) => {
  if (msg.t === 'key') runner ??= new PieceRunner(msg.key);
  else port.postMessage(handle(msg));
});
