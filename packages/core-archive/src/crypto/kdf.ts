/**
 * The password-based key derivation for key files: scrypt (node:crypto), 32-byte output. Parameters are checked
 * against hard bounds before any work, because a key file is read before anything in the repository is authenticated.
 */
import { scrypt } from 'node:crypto';
import { BackupError } from '../errors.ts';
import { ownedBytes } from './bytes.ts';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { N: 32768, r: 8, p: 1 };
/** Cheap parameters for tests only: never use them for a real repository. */
export const TEST_SCRYPT: ScryptParams = { N: 1024, r: 8, p: 1 };

export const DERIVED_KEY_BYTES = 32;
export const MAX_SCRYPT_N = 2 ** 22;
export const MAX_SCRYPT_R = 32;
export const MAX_SCRYPT_P = 16;
/** scrypt needs 128·N·r bytes; 1 GiB is 32 times the default. */
export const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;
/** N·r·p bounds the CPU time; 2^24 is 64 times the default (a few seconds). */
export const MAX_SCRYPT_WORK = 2 ** 24;

/** Why these parameters are unacceptable, or undefined when they are fine. */
export function scryptParamsProblem(params: ScryptParams): string | undefined {
  const { N, r, p } = params;
  if (!Number.isInteger(N) || N < 2 || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0) {
    return `scrypt N must be a power of two between 2 and ${MAX_SCRYPT_N}, got ${String(N)}`;
  }
  if (!Number.isInteger(r) || r < 1 || r > MAX_SCRYPT_R) {
    return `scrypt r must be an integer between 1 and ${MAX_SCRYPT_R}, got ${String(r)}`;
  }
  if (!Number.isInteger(p) || p < 1 || p > MAX_SCRYPT_P) {
    return `scrypt p must be an integer between 1 and ${MAX_SCRYPT_P}, got ${String(p)}`;
  }
  if (128 * N * r > MAX_SCRYPT_MEMORY) return `scrypt N·r needs more than ${MAX_SCRYPT_MEMORY} bytes of memory`;
  if (N * r * p > MAX_SCRYPT_WORK) return `scrypt N·r·p exceeds ${MAX_SCRYPT_WORK}`;
  return undefined;
}

export function deriveKey(password: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const problem = scryptParamsProblem(params);
  if (problem !== undefined) return Promise.reject(new BackupError('INVALID_ARGUMENT', problem));
  const { N, r, p } = params;
  return new Promise((resolve, reject) => {
    // The password's UTF-8 bytes exactly as typed (docs/format.md): no Unicode normalisation.
    scrypt(password, salt, DERIVED_KEY_BYTES, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => {
      if (err !== null) reject(new BackupError('INTERNAL', `scrypt failed: ${err.message}`, { cause: err }));
      else resolve(ownedBytes(key));
    });
  });
}
