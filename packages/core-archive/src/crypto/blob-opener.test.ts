import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { CompressionOptions } from '../compress.ts';
import { BlobOpener } from './blob-opener.ts';
import { ENVELOPE_OVERHEAD } from './aead.ts';
import { openBlob, sealBlob } from './blob.ts';
import { sha256 } from './hash.ts';

const key = new Uint8Array(randomBytes(32));
const zstd: CompressionOptions = { compression: 'zstd', level: 3 };
const none: CompressionOptions = { compression: 'none', level: 0 };

/** Compressible bytes of a given length (so that zstd is chosen), different for each seed. */
function text(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = 97 + ((i * 7 + seed + (i >> 9)) % 23);
  return out;
}

function corruptMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    return (e as Error).message;
  }
  return expect.unreachable('expected CORRUPT');
}

describe('BlobOpener', () => {
  it('opens what openBlob opens, blob after blob, small and large (sliced decryption), raw and compressed', () => {
    const opener = new BlobOpener(key);
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: 300_000 }).map((n) => text(n, n)), fc.nat({ max: 200_000 }).map((n) => new Uint8Array(randomBytes(n)))),
        fc.constantFrom('data' as const, 'tree' as const),
        fc.constantFrom(zstd, none),
        (plaintext, type, opts) => {
          const id = sha256(plaintext);
          const envelope = sealBlob(key, type, id, plaintext, opts);
          const opened = opener.open(type, id, envelope, plaintext.byteLength, 'blob');
          expect(Buffer.from(opened).equals(Buffer.from(plaintext))).toBe(true);
          expect(Buffer.from(opened).equals(Buffer.from(openBlob(key, type, id, envelope, plaintext.byteLength, 'blob')))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
    opener.close();
  });

  it('fails as openBlob does: wrong type or id, a flipped byte, a wrong length, a short envelope', () => {
    const opener = new BlobOpener(key);
    for (const plaintext of [text(1000, 1), text(200_000, 2), new Uint8Array(randomBytes(150_000))]) {
      const id = sha256(plaintext);
      const envelope = sealBlob(key, 'data', id, plaintext, zstd);
      expect(corruptMessage(() => opener.open('tree', id, envelope, plaintext.byteLength, 'blob x'))).toMatch(/blob x failed authentication/);
      expect(corruptMessage(() => opener.open('data', sha256(text(10, 3)), envelope, plaintext.byteLength, 'blob x'))).toMatch(/failed authentication/);
      const flipped = envelope.slice();
      flipped[flipped.byteLength >> 1]! ^= 1;
      expect(corruptMessage(() => opener.open('data', id, flipped, plaintext.byteLength, 'blob x'))).toMatch(/failed authentication/);
      for (const wrong of [plaintext.byteLength - 1, plaintext.byteLength + 1]) {
        const mine = corruptMessage(() => opener.open('data', id, envelope, wrong, 'blob x'));
        const theirs = corruptMessage(() => openBlob(key, 'data', id, envelope, wrong, 'blob x'));
        expect(mine).toMatch(/^blob x is damaged/);
        expect(theirs).toMatch(/^blob x is damaged/);
      }
      // After a failure the next blob opens normally.
      expect(Buffer.from(opener.open('data', id, envelope, plaintext.byteLength, 'blob x')).equals(Buffer.from(plaintext))).toBe(true);
    }
    expect(corruptMessage(() => opener.open('data', sha256(new Uint8Array(0)), new Uint8Array(10), 0, 'blob y'))).toMatch(/blob y failed authentication/);
    opener.close();
  });

  it('digest hashes what open opens, small and large, raw and compressed, in place or not', () => {
    const opener = new BlobOpener(key);
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: 1_200_000 }).map((n) => text(n, n)), fc.integer({ min: 65_400, max: 65_700 }).map((n) => new Uint8Array(randomBytes(n))), fc.nat({ max: 200_000 }).map((n) => new Uint8Array(randomBytes(n)))),
        fc.constantFrom('data' as const, 'tree' as const),
        fc.constantFrom(zstd, none),
        fc.boolean(),
        (plaintext, type, opts, inPlace) => {
          const id = sha256(plaintext);
          const envelope = sealBlob(key, type, id, plaintext, opts);
          const copy = envelope.slice();
          expect(opener.digest(type, id, copy, plaintext.byteLength, 'blob', inPlace)).toBe(Buffer.from(id).toString('hex'));
          // Only in place does the envelope change, and then only one whose ciphertext exceeds a 64 KiB slice.
          expect(Buffer.from(copy).equals(Buffer.from(envelope))).toBe(!inPlace || envelope.byteLength - ENVELOPE_OVERHEAD <= 64 * 1024);
        },
      ),
      { numRuns: 60 },
    );
    // Sizes around the steps the decompression buffer grows by.
    for (const n of [256 * 1024 - 1, 256 * 1024, 1024 * 1024, 2 * 1024 * 1024 + 1, 1024 * 1024 + 5]) {
      const plaintext = text(n, 5);
      const id = sha256(plaintext);
      expect(opener.digest('data', id, sealBlob(key, 'data', id, plaintext, zstd), n, 'blob')).toBe(Buffer.from(id).toString('hex'));
    }
    opener.close();
  });

  it('digest fails as open does, also on a large frame whose length the index gets wrong', () => {
    const opener = new BlobOpener(key);
    for (const plaintext of [text(1000, 1), text(900_000, 2), new Uint8Array(randomBytes(150_000))]) {
      const id = sha256(plaintext);
      const envelope = sealBlob(key, 'data', id, plaintext, zstd);
      expect(corruptMessage(() => opener.digest('tree', id, envelope.slice(), plaintext.byteLength, 'blob x', true))).toMatch(/blob x failed authentication/);
      const flipped = envelope.slice();
      flipped[flipped.byteLength >> 1]! ^= 1;
      expect(corruptMessage(() => opener.digest('data', id, flipped, plaintext.byteLength, 'blob x', true))).toMatch(/failed authentication/);
      for (const wrong of [plaintext.byteLength - 1, plaintext.byteLength + 1, plaintext.byteLength >> 1]) {
        const mine = corruptMessage(() => opener.digest('data', id, envelope.slice(), wrong, 'blob x'));
        expect(mine).toMatch(/^blob x is damaged/);
      }
      expect(opener.digest('data', id, envelope.slice(), plaintext.byteLength, 'blob x', true)).toBe(Buffer.from(id).toString('hex'));
    }
    opener.close();
  });

  it('frees an outgrown decompression buffer at once, and grows it to little more than the largest blob', () => {
    const opener = new BlobOpener(key);
    const sealed = (n: number) => {
      const plaintext = text(n, n);
      const id = sha256(plaintext);
      return { id, n, envelope: sealBlob(key, 'data', id, plaintext, zstd) };
    };
    const small = sealed(300_000);
    const large = sealed(3_000_000);
    const first = opener.open('data', small.id, small.envelope, small.n, 'blob');
    expect(first.buffer.byteLength).toBeGreaterThan(small.n);
    const second = opener.open('data', large.id, large.envelope, large.n, 'blob');
    expect(first.buffer.byteLength).toBe(0);
    expect(second.buffer.byteLength).toBeLessThanOrEqual(large.n + 256 * 1024);
    opener.close();
  });

  it('refuses a key of the wrong size', () => {
    expect(() => new BlobOpener(new Uint8Array(16))).toThrow(/32 bytes/);
  });
});
