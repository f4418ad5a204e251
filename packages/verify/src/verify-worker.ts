/**
 * Worker thread of the verify pool: runs pack verifications and file hashes off the main thread, so that both
 * cores decrypt and hash while the main thread keeps reading. The main thread does all repository I/O.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { hashFilesSync, verifyPack } from './pack-verify.ts';
import type { ToPool, ToVerifyWorker } from './pool.ts';

const port = parentPort;
if (!port) throw new Error('verify-worker.ts must run as a worker thread');
const key = (workerData as { key: Uint8Array }).key;

port.on('message', (msg: ToVerifyWorker) => {
  void (async (): Promise<void> => {
    let reply: ToPool;
    try {
      if (msg.t === 'pack') {
        reply = { t: 'pack', id: msg.id, verdict: await verifyPack(key, msg.task) };
      } else {
        reply = { t: 'hash', id: msg.id, digests: hashFilesSync(msg.paths) };
      }
    } catch (e) {
      reply = { t: 'error', id: msg.id, message: (e as Error).message ?? String(e), code: (e as NodeJS.ErrnoException).code ?? 'IO' };
    }
    port.postMessage(reply);
  })();
});
