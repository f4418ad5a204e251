// Dropbox's content_hash: split the bytes into 4 MiB blocks, SHA-256 each block, then SHA-256 the
// concatenation of the block digests and print it as lowercase hex (the empty file hashes zero blocks).
import { createHash } from 'node:crypto';

export const CONTENT_HASH_BLOCK_BYTES = 4 * 1024 * 1024;

export function dropboxContentHash(bytes: Uint8Array): string {
  const overall = createHash('sha256');
  for (let offset = 0; offset < bytes.byteLength; offset += CONTENT_HASH_BLOCK_BYTES) {
    const block = bytes.subarray(offset, Math.min(offset + CONTENT_HASH_BLOCK_BYTES, bytes.byteLength));
    overall.update(createHash('sha256').update(block).digest());
  }
  return overall.digest('hex');
}
