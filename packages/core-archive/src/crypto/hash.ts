/**
 * SHA-256 and the conversions between a repository id (64 lowercase hex characters, the SHA-256 of a file or blob)
 * and its 32 raw bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BackupError } from '../errors.ts';
import { ownedBytes } from './bytes.ts';

export const ID_BYTES = 32;

/** The value of each lowercase hexadecimal digit by character code; -1 for every other character below 128. */
export const HEX_DIGIT_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_DIGIT_VALUE['0123456789abcdef'.charCodeAt(i)] = i;

export function sha256(data: Uint8Array): Uint8Array {
  return ownedBytes(createHash('sha256').update(data).digest());
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 over several pieces as if they were concatenated, without concatenating them. */
export function sha256HexOfParts(parts: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest('hex');
}

/**
 * True when `value` is an id (64 lowercase hex characters). A table and no early exit rather than a regular
 * expression: it runs for every blob a backup stores and every entry of every index and tree read.
 */
export function isId(value: unknown): value is string {
  if (typeof value !== 'string' || value.length !== 64) return false;
  let bad = 0;
  for (let i = 0; i < 64; i++) {
    const c = value.charCodeAt(i);
    bad |= c < 128 ? HEX_DIGIT_VALUE[c]! : -1;
  }
  return bad >= 0;
}

export function idToBytes(id: string): Uint8Array {
  if (!isId(id)) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `"${String(id).slice(0, 80)}" is not a repository id: ids are 64 lowercase hexadecimal characters`,
    );
  }
  return ownedBytes(Buffer.from(id, 'hex'));
}

export function bytesToId(b: Uint8Array): string {
  if (b.byteLength !== ID_BYTES) {
    throw new BackupError('INVALID_ARGUMENT', `an id is ${ID_BYTES} bytes, got ${b.byteLength}`);
  }
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function randomId(): string {
  return randomBytes(ID_BYTES).toString('hex');
}
