import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { BackupError } from '../errors.ts';
import type { CompressionOptions } from '../compress.ts';
import { openBlob, sealBlob } from './blob.ts';
import { sha256 } from './hash.ts';

const key = new Uint8Array(randomBytes(32));
const zstd: CompressionOptions = { compression: 'zstd', level: 3 };

function corruptSubject(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    return (e as BackupError).subject;
  }
  return expect.unreachable('expected CORRUPT');
}

describe('sealBlob and openBlob', () => {
  it('round-trip data and tree blobs, compressed or not', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 5000 }), fc.nat({ max: 5000 }).map((n) => new Uint8Array(n).fill(3))),
        fc.constantFrom('data' as const, 'tree' as const),
        fc.constantFrom<CompressionOptions>(zstd, { compression: 'none', level: 0 }),
        (plaintext, type, opts) => {
          const id = sha256(plaintext);
          const envelope = sealBlob(key, type, id, plaintext, opts);
          expect(openBlob(key, type, id, envelope, plaintext.byteLength, 'blob')).toEqual(plaintext);
        },
      ),
    );
  });

  it('reads a blob written by an independent implementation (Python cryptography)', () => {
    const plaintext = new TextEncoder().encode('independent implementation check');
    const id = sha256(plaintext);
    expect(Buffer.from(id).toString('hex')).toBe('1e18787f47af631ff65ec52bd84b5ec620c1775493568bb3401c0e406087b3d4');
    const envelope = Buffer.from(
      '6465666768696a6b6c6d6e6f4872b0021c9933f05a07319cfa0c078d2ea76b6fe5189206cebec26898cbc02bffa1de9ce6cda94f72f5a27eb7ba7ea5a1',
      'hex',
    );
    const vectorKey = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(openBlob(vectorKey, 'data', id, envelope, plaintext.byteLength, 'b')).toEqual(plaintext);
  });

  it('is CORRUPT under another id or type, tampering, or a wrong raw length', () => {
    const plaintext = new Uint8Array(10_000).fill(1);
    const id = sha256(plaintext);
    const envelope = sealBlob(key, 'data', id, plaintext, zstd);
    const what = 'pack abcd… blob 1234…';
    expect(corruptSubject(() => openBlob(key, 'tree', id, envelope, 10_000, what))).toBe(what);
    expect(corruptSubject(() => openBlob(key, 'data', sha256(Uint8Array.of(1)), envelope, 10_000, what))).toBe(what);
    const tampered = envelope.slice();
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0x80;
    expect(corruptSubject(() => openBlob(key, 'data', id, tampered, 10_000, what))).toBe(what);
    expect(corruptSubject(() => openBlob(key, 'data', id, envelope, 9_999, what))).toBe(what);
    expect(corruptSubject(() => openBlob(key, 'data', id, envelope, 10_001, what))).toBe(what);
  });
});
