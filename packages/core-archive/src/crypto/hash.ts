/**
 * SHA-256 and the conversions between a repository id (64 lowercase hex characters, the SHA-256 of a file or blob)
 * and its 32 raw bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BackupError } from '../errors.ts';
import { ownedBytes } from './bytes.ts';

export const ID_BYTES = 32;
const ID_PATTERN = /^[0-9a-f]{64}$/;

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

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
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
