import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import { bytesToId, idToBytes, isId, randomId, sha256, sha256Hex, sha256HexOfParts } from './hash.ts';
import { utf8 } from './bytes.ts';

describe('sha256', () => {
  it('matches the FIPS 180-2 test vector for "abc"', () => {
    const expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(sha256Hex(utf8('abc'))).toBe(expected);
    expect(bytesToId(sha256(utf8('abc')))).toBe(expected);
  });

  it('returns a plain 32-byte Uint8Array that owns its memory', () => {
    const digest = sha256(new Uint8Array(0));
    expect(digest.constructor).toBe(Uint8Array);
    expect(digest.byteLength).toBe(32);
    expect(digest.buffer.byteLength).toBe(32);
  });

  it('hashes pieces as if they were concatenated', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 5 }), (parts) => {
        const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) {
          whole.set(p, at);
          at += p.length;
        }
        expect(sha256HexOfParts(parts)).toBe(sha256Hex(whole));
      }),
    );
  });
});

describe('ids', () => {
  it('round-trips bytes and hex', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const id = bytesToId(bytes);
        expect(id).toMatch(/^[0-9a-f]{64}$/);
        expect(idToBytes(id)).toEqual(bytes);
      }),
    );
  });

  it.each([
    ['too short', 'ab'],
    ['uppercase', 'A'.repeat(64)],
    ['not hex', 'g'.repeat(64)],
    ['too long', 'a'.repeat(66)],
    ['whitespace', ` ${'a'.repeat(63)}`],
    ['empty', ''],
  ])('idToBytes rejects an id that is %s', (_name, id) => {
    expect(isId(id)).toBe(false);
    try {
      idToBytes(id);
      expect.unreachable();
    } catch (e) {
      expect(isBackupError(e, 'INVALID_ARGUMENT')).toBe(true);
    }
  });

  it('bytesToId rejects anything but 32 bytes', () => {
    expect(() => bytesToId(new Uint8Array(31))).toThrowError(/32 bytes/);
    expect(() => bytesToId(new Uint8Array(33))).toThrowError(/32 bytes/);
  });

  it('randomId gives distinct valid ids', () => {
    const ids = new Set(Array.from({ length: 100 }, () => randomId()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(isId(id)).toBe(true);
  });
});
