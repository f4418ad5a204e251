/**
 * The CPU-heavy half of the data check, for one whole pack file in memory: hash the file against its name, read
 * and authenticate its header, and open every blob the index places in it (decrypt, decompress, re-hash against
 * the blob id). It runs on a worker thread (verify-worker.ts) or, with zero workers, on the caller's thread.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { idToBytes, openBlob, readPackHeader } from '@backup-manager/core-archive';
import type { IndexBlobEntry } from '@backup-manager/core-archive';

export interface PackTask {
  packId: string;
  bytes: Uint8Array;
  /** the blobs the index places in this pack */
  blobs: IndexBlobEntry[];
}

export interface BadBlob {
  id: string;
  type: IndexBlobEntry['type'];
  offset: number;
  length: number;
  reason: 'outside-pack' | 'unreadable' | 'hash-mismatch';
  message: string;
}

export interface PackVerdict {
  packId: string;
  size: number;
  /** sha256 of the file equals its name */
  hashMatches: boolean;
  header: { ok: true; blobs: IndexBlobEntry[] } | { ok: false; message: string };
  bad: BadBlob[];
  blobsChecked: number;
}

export async function verifyPack(key: Uint8Array, task: PackTask): Promise<PackVerdict> {
  const { packId, bytes } = task;
  const hashMatches = createHash('sha256').update(bytes).digest('hex') === packId;
  let header: PackVerdict['header'];
  try {
    const blobs = await readPackHeader(async (offset, length) => bytes.subarray(offset, offset + length), bytes.byteLength, key, packId);
    header = { ok: true, blobs };
  } catch (e) {
    header = { ok: false, message: (e as Error).message };
  }
  const bad: BadBlob[] = [];
  for (const b of task.blobs) {
    const where = { id: b.id, type: b.type, offset: b.offset, length: b.length };
    if (b.offset + b.length > bytes.byteLength) {
      bad.push({ ...where, reason: 'outside-pack', message: `bytes ${b.offset}–${b.offset + b.length} lie beyond the end of the ${bytes.byteLength}-byte pack` });
      continue;
    }
    let plain: Uint8Array;
    try {
      plain = openBlob(key, b.type, idToBytes(b.id), bytes.subarray(b.offset, b.offset + b.length), b.rawLength, `pack ${packId.slice(0, 12)} blob ${b.id.slice(0, 12)}`);
    } catch (e) {
      bad.push({ ...where, reason: 'unreadable', message: (e as Error).message });
      continue;
    }
    if (createHash('sha256').update(plain).digest('hex') !== b.id) {
      bad.push({ ...where, reason: 'hash-mismatch', message: 'it decrypts, but the SHA-256 of its content differs from its id' });
    }
  }
  return { packId, size: bytes.byteLength, hashMatches, header, bad, blobsChecked: task.blobs.length };
}

/** SHA-256 of each file, or the reason it could not be read. */
export function hashFilesSync(paths: readonly string[]): ({ sha256: string } | { error: string })[] {
  return paths.map((p) => {
    try {
      return { sha256: hashFileSync(p) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  });
}

let buffer: Buffer | undefined;

/** SHA-256 of a local file, read in 4 MiB pieces. */
export function hashFileSync(path: string): string {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const h = createHash('sha256');
    const buf = (buffer ??= Buffer.allocUnsafe(4 * 1024 * 1024));
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}
