import { scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isBackupError } from '../errors.ts';
import { DEFAULT_SCRYPT, TEST_SCRYPT, deriveKey, scryptParamsProblem } from './kdf.ts';

describe('deriveKey', () => {
  it('matches the RFC 7914 scrypt test vector (N=1024, r=8, p=16)', async () => {
    const key = await deriveKey('password', new TextEncoder().encode('NaCl'), { N: 1024, r: 8, p: 16 });
    // First 32 bytes of the 64-byte RFC 7914 §12 vector.
    expect(Buffer.from(key).toString('hex')).toBe('fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162');
  });

  it('derives 32 bytes, depending on password and salt', async () => {
    const salt = new Uint8Array(32).fill(1);
    const a = await deriveKey('pw', salt, TEST_SCRYPT);
    expect(a.byteLength).toBe(32);
    expect(await deriveKey('pw', salt, TEST_SCRYPT)).toEqual(a);
    expect(await deriveKey('pw2', salt, TEST_SCRYPT)).not.toEqual(a);
    expect(await deriveKey('pw', new Uint8Array(32).fill(2), TEST_SCRYPT)).not.toEqual(a);
  });

  it('uses the UTF-8 bytes of the password without normalisation', async () => {
    const salt = new Uint8Array(32);
    const composed = 'caf\u00e9';
    const decomposed = 'cafe\u0301';
    const a = await deriveKey(composed, salt, TEST_SCRYPT);
    expect(a).toEqual(new Uint8Array(scryptSync(Buffer.from(composed, 'utf8'), salt, 32, TEST_SCRYPT)));
    expect(await deriveKey(decomposed, salt, TEST_SCRYPT)).not.toEqual(a);
  });

  it('accepts the default parameters', () => {
    expect(scryptParamsProblem(DEFAULT_SCRYPT)).toBeUndefined();
    expect(scryptParamsProblem(TEST_SCRYPT)).toBeUndefined();
  });

  it.each([
    { N: 1000, r: 8, p: 1 },
    { N: 0, r: 8, p: 1 },
    { N: 2 ** 23, r: 1, p: 1 },
    { N: 2 ** 21, r: 8, p: 1 }, // 2 GiB of memory
    { N: 2 ** 20, r: 8, p: 16 }, // too much CPU
    { N: 1024, r: 0, p: 1 },
    { N: 1024, r: 8, p: 0 },
    { N: 1024, r: 8.5, p: 1 },
    { N: Number.NaN, r: 8, p: 1 },
  ])('rejects absurd parameters %o before doing any work', async (params) => {
    expect(scryptParamsProblem(params)).toBeTypeOf('string');
    await expect(deriveKey('pw', new Uint8Array(32), params)).rejects.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT'));
  });
});
