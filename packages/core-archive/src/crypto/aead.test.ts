import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BackupError, isBackupError } from '../errors.ts';
import { ENVELOPE_OVERHEAD, blobAad, metadataAad, open, seal, sealParts } from './aead.ts';
import { idToBytes } from './hash.ts';

const key = new Uint8Array(randomBytes(32));
const aad = metadataAad('snapshot');

function expectCorrupt(fn: () => unknown, what: string): void {
  try {
    fn();
    expect.unreachable('expected a CORRUPT error');
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    const err = e as BackupError;
    expect(err.subject).toBe(what);
    expect(err.message).toBe(
      `${what} failed authentication: it is damaged, or it was not written with this repository's key`,
    );
  }
}

describe('metadataAad and blobAad', () => {
  it('are the ASCII strings of docs/format.md', () => {
    const ascii = (b: Uint8Array) => Buffer.from(b).toString('latin1');
    expect(ascii(metadataAad('config'))).toBe('bam:config');
    expect(ascii(metadataAad('lock'))).toBe('bam:lock');
    expect(ascii(metadataAad('snapshot'))).toBe('bam:snapshot');
    expect(ascii(metadataAad('index'))).toBe('bam:index');
    expect(ascii(metadataAad('key'))).toBe('bam:key');
    expect(ascii(metadataAad('pack-header'))).toBe('bam:pack-header');
    const id = idToBytes('ab'.repeat(32));
    const data = blobAad('data', id);
    expect(ascii(data.subarray(0, 14))).toBe('bam:blob:data:');
    expect(data.subarray(14)).toEqual(id);
    expect(ascii(blobAad('tree', id).subarray(0, 14))).toBe('bam:blob:tree:');
  });

  it('returns copies that callers cannot use to corrupt later calls', () => {
    metadataAad('config').fill(0);
    expect(Buffer.from(metadataAad('config')).toString('latin1')).toBe('bam:config');
  });

  it('rejects a blob id that is not 32 bytes', () => {
    expect(() => blobAad('data', new Uint8Array(31))).toThrowError(/32 bytes/);
  });
});

describe('seal and open', () => {
  it('round-trip any plaintext, adding exactly ENVELOPE_OVERHEAD bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (plaintext) => {
        const envelope = seal(key, plaintext, aad);
        expect(envelope.byteLength).toBe(plaintext.byteLength + ENVELOPE_OVERHEAD);
        expect(open(key, envelope, aad, 'x')).toEqual(plaintext);
      }),
    );
  });

  it('sealParts equals sealing the concatenation', () => {
    const envelope = sealParts(key, [Uint8Array.of(1), Uint8Array.of(2, 3), new Uint8Array(0)], aad);
    expect(open(key, envelope, aad, 'x')).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('uses a fresh nonce every time', () => {
    const a = seal(key, Uint8Array.of(1, 2, 3), aad);
    const b = seal(key, Uint8Array.of(1, 2, 3), aad);
    expect(Buffer.from(a.subarray(0, 12)).equals(Buffer.from(b.subarray(0, 12)))).toBe(false);
  });

  it('opens an envelope made by an independent AES-GCM implementation (Python cryptography)', () => {
    // AESGCM(bytes(range(32))).encrypt(bytes(range(100, 112)), b'\x00' + json.dumps(doc).encode(), b'bam:snapshot')
    const envelope = Buffer.from(
      '6465666768696a6b6c6d6e6f4860fc101c9b25f7510c7dd2eb49489527ae6a65a956d105fba49c789d95d724f0cb3d937accc8e25d4945fef6ef8f6b84cd3b',
      'hex',
    );
    const plaintext = open(Uint8Array.from({ length: 32 }, (_, i) => i), envelope, metadataAad('snapshot'), 'vector');
    expect(plaintext[0]).toBe(0);
    expect(Buffer.from(plaintext.subarray(1)).toString('utf8')).toBe('{"version":1,"hello":"w\\u00f6rld"}');
  });

  it('is CORRUPT when any single byte is flipped', () => {
    const envelope = seal(key, new Uint8Array(64).fill(5), aad);
    fc.assert(
      fc.property(fc.nat({ max: envelope.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const tampered = envelope.slice();
        tampered[pos] = tampered[pos]! ^ x;
        expectCorrupt(() => open(key, tampered, aad, 'snapshot 1a2b3c4d'), 'snapshot 1a2b3c4d');
      }),
    );
  });

  it('is CORRUPT with the wrong AAD, the wrong key, or a truncated envelope', () => {
    const envelope = seal(key, Uint8Array.of(1, 2, 3), aad);
    expectCorrupt(() => open(key, envelope, metadataAad('index'), 'index 1'), 'index 1');
    expectCorrupt(() => open(new Uint8Array(randomBytes(32)), envelope, aad, 'snapshot 2'), 'snapshot 2');
    for (const length of [0, 1, 27, 28, envelope.byteLength - 1]) {
      expectCorrupt(() => open(key, envelope.subarray(0, length), aad, 'snapshot 3'), 'snapshot 3');
    }
    expectCorrupt(() => open(key, Buffer.concat([envelope, Uint8Array.of(0)]), aad, 'snapshot 4'), 'snapshot 4');
  });

  it('binds a blob envelope to its type and id', () => {
    const id = idToBytes('11'.repeat(32));
    const envelope = seal(key, Uint8Array.of(9), blobAad('data', id));
    expect(open(key, envelope, blobAad('data', id), 'b')).toEqual(Uint8Array.of(9));
    expectCorrupt(() => open(key, envelope, blobAad('tree', id), 'b'), 'b');
    expectCorrupt(() => open(key, envelope, blobAad('data', idToBytes('12'.repeat(32))), 'b'), 'b');
  });

  it('rejects a key that is not 32 bytes', () => {
    expect(() => seal(new Uint8Array(16), Uint8Array.of(1), aad)).toThrowError(/32 bytes/);
    expect(() => open(new Uint8Array(16), new Uint8Array(40), aad, 'x')).toThrowError(/32 bytes/);
  });
});
