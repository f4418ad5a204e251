import { describe, expect, it } from 'vitest';
import { isBackupError } from '../errors.ts';
import type { BackupError } from '../errors.ts';
import type { KeyFile } from '../format.ts';
import { seal, metadataAad } from './aead.ts';
import { utf8 } from './bytes.ts';
import { sha256Hex } from './hash.ts';
import { deriveKey } from './kdf.ts';
import {
  TEST_SCRYPT,
  createKeyFile,
  decodeBase64Strict,
  encodeBase64,
  generateMasterKey,
  openKeyFile,
  parseKeyFile,
} from './keys.ts';

const info = { hostname: 'host', username: 'ann', now: new Date('2026-11-22T00:00:00.000Z') };

function parseError(bytes: Uint8Array | string): BackupError {
  try {
    parseKeyFile(typeof bytes === 'string' ? utf8(bytes) : bytes, 'key 1a2b');
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as BackupError;
  }
  return expect.unreachable('expected parseKeyFile to throw');
}

describe('key files', () => {
  it('create, parse and open with the right password; null with a wrong one', async () => {
    const master = generateMasterKey();
    expect(master.byteLength).toBe(32);
    const { doc, bytes } = await createKeyFile('s3cret', master, TEST_SCRYPT, info);
    expect(doc).toMatchObject({ version: 1, created: '2026-11-22T00:00:00.000Z', hostname: 'host', username: 'ann' });
    expect(doc).toMatchObject({ kdf: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(decodeBase64Strict(doc.salt)?.byteLength).toBe(32);
    expect(JSON.parse(new TextDecoder().decode(bytes))).toEqual(doc);
    expect(sha256Hex(bytes)).toMatch(/^[0-9a-f]{64}$/);
    const parsed = parseKeyFile(bytes, 'key x');
    expect(parsed).toEqual(doc);
    expect(await openKeyFile(parsed, 's3cret')).toEqual(master);
    expect(await openKeyFile(parsed, 's3cret ')).toBeNull();
    expect(await openKeyFile(parsed, '')).toBeNull();
  });

  it('never stores the password or the master key in the clear', async () => {
    const master = generateMasterKey();
    const { bytes } = await createKeyFile('hunter2-password', master, TEST_SCRYPT, info);
    const text = new TextDecoder().decode(bytes);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain(encodeBase64(master));
  });

  it('opens a key file written by an independent implementation (Python hashlib.scrypt + cryptography)', async () => {
    const text =
      '{"version": 1, "created": "2026-11-22T00:00:00.000Z", "hostname": "h", "username": "u", "kdf": "scrypt", ' +
      '"N": 1024, "r": 8, "p": 1, "salt": "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFE=", "data": ' +
      '"ZGVmZ2hpamtsbW5vS5MUX6z+KXFu9ZCU9PT19RDcOA8oJSszD63phWAaHh0bNSMjl4PsOaBwFwXMQSVcW1fMg7TLhB2Z4s4EXdx/zLPblTqS1EuMzxof"}';
    const doc = parseKeyFile(utf8(text), 'key py');
    const master = await openKeyFile(doc, 'correct horse');
    expect(Buffer.from(master!).toString('hex')).toBe('c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7');
    expect(await openKeyFile(doc, 'Correct horse')).toBeNull();
  });

  it('gives null for a damaged sealed key (GCM cannot tell damage from a wrong password)', async () => {
    const { doc } = await createKeyFile('pw', generateMasterKey(), TEST_SCRYPT, info);
    const envelope = decodeBase64Strict(doc.data)!;
    envelope[40] = envelope[40]! ^ 1;
    expect(await openKeyFile({ ...doc, data: encodeBase64(envelope) }, 'pw')).toBeNull();
  });

  it('is CORRUPT when the opened plaintext is not a master key document', async () => {
    const salt = new Uint8Array(32).fill(9);
    const kek = await deriveKey('pw', salt, TEST_SCRYPT);
    const base = { version: 1 as const, created: '2026-01-01T00:00:00Z', hostname: 'h', username: 'u', kdf: 'scrypt' as const };
    const make = (plaintext: string): KeyFile => ({
      ...base,
      ...TEST_SCRYPT,
      salt: encodeBase64(salt),
      data: encodeBase64(seal(kek, utf8(plaintext), metadataAad('key'))),
    });
    for (const plaintext of ['not json', '[]', '{"encrypt":5}', '{"encrypt":"AAAA"}', '{"encrypt":"!!"}']) {
      await expect(openKeyFile(make(plaintext), 'pw', 'key k')).rejects.toSatisfy(
        (e) => isBackupError(e, 'CORRUPT') && (e as BackupError).subject === 'key k',
      );
    }
    // The right AAD matters too: sealed as a config, it does not open as a key.
    const wrongAad = { ...make('{}'), data: encodeBase64(seal(kek, utf8('{}'), metadataAad('config'))) };
    expect(await openKeyFile(wrongAad, 'pw')).toBeNull();
  });

  it('rejects a wrong-sized master key and bad parameters when creating', async () => {
    await expect(createKeyFile('pw', new Uint8Array(16), TEST_SCRYPT, info)).rejects.toSatisfy((e) =>
      isBackupError(e, 'INVALID_ARGUMENT'),
    );
    await expect(createKeyFile('pw', generateMasterKey(), { N: 1000, r: 8, p: 1 }, info)).rejects.toSatisfy((e) =>
      isBackupError(e, 'INVALID_ARGUMENT'),
    );
  });
});

describe('parseKeyFile', () => {
  const valid: KeyFile = {
    version: 1,
    created: '2026-11-22T00:00:00.000Z',
    hostname: 'h',
    username: 'u',
    kdf: 'scrypt',
    N: 32768,
    r: 8,
    p: 1,
    salt: encodeBase64(new Uint8Array(32)),
    data: encodeBase64(new Uint8Array(85)),
  };

  it('accepts a valid key file and drops unknown fields', () => {
    expect(parseKeyFile(utf8(JSON.stringify({ ...valid, extra: 1 })), 'k')).toEqual(valid);
  });

  it.each<[string, Record<string, unknown>]>([
    ['version 0', { version: 0 }],
    ['version as a string', { version: '1' }],
    ['a bad date', { created: 'yesterday' }],
    ['a non-string hostname', { hostname: 5 }],
    ['a huge username', { username: 'x'.repeat(5000) }],
    ['another kdf', { kdf: 'argon2id' }],
    ['N not a power of two', { N: 30000 }],
    ['N above 2^22', { N: 2 ** 23 }],
    ['N as a string', { N: '32768' }],
    ['r of zero', { r: 0 }],
    ['p of 1000', { p: 1000 }],
    ['a short salt', { salt: encodeBase64(new Uint8Array(16)) }],
    ['a non-base64 salt', { salt: '!'.repeat(44) }],
    ['an unpadded salt', { salt: encodeBase64(new Uint8Array(32)).replace('=', '') }],
    ['data too short for an envelope', { data: encodeBase64(new Uint8Array(28)) }],
    ['missing data', { data: undefined }],
  ])('is CORRUPT for %s', (_name, change) => {
    const err = parseError(JSON.stringify({ ...valid, ...change }));
    expect(isBackupError(err, 'CORRUPT')).toBe(true);
    expect(err.subject).toBe('key 1a2b');
  });

  it('is CORRUPT for bytes that are not a JSON object', () => {
    for (const text of ['', 'null', '[]', '{', '"x"']) expect(isBackupError(parseError(text), 'CORRUPT')).toBe(true);
    expect(isBackupError(parseError(Uint8Array.of(0xff, 0x7b, 0x7d)), 'CORRUPT')).toBe(true);
    expect(isBackupError(parseError(new Uint8Array(100_000).fill(0x20)), 'CORRUPT')).toBe(true);
  });

  it('reports a newer version as UNSUPPORTED_VERSION', () => {
    expect(isBackupError(parseError(JSON.stringify({ ...valid, version: 2 })), 'UNSUPPORTED_VERSION')).toBe(true);
  });

  it('re-validates a KeyFile passed to openKeyFile, so a hostile N cannot hang us', async () => {
    await expect(openKeyFile({ ...valid, N: 2 ** 30 }, 'pw')).rejects.toSatisfy((e) => isBackupError(e, 'CORRUPT'));
  });
});
