import { describe, expect, it } from 'vitest';
import { bytesEqual, concatBytes, ownedBytes, releaseBytes, strictUtf8Decode, utf8 } from './bytes.ts';

describe('ownedBytes', () => {
  it('copies a view into a larger buffer', () => {
    const big = new Uint8Array([1, 2, 3, 4, 5]);
    const owned = ownedBytes(big.subarray(1, 3));
    expect(owned).toEqual(new Uint8Array([2, 3]));
    expect(owned.buffer.byteLength).toBe(2);
    big[1] = 99;
    expect(owned[0]).toBe(2);
  });

  it('wraps a whole Buffer without copying and returns a plain Uint8Array', () => {
    const buf = Buffer.allocUnsafeSlow(8).fill(7);
    const owned = ownedBytes(buf);
    expect(owned.constructor).toBe(Uint8Array);
    expect(owned.buffer).toBe(buf.buffer);
  });
});

describe('helpers', () => {
  it('concatenates and compares', () => {
    const joined = concatBytes([Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)]);
    expect(joined).toEqual(Uint8Array.of(1, 2, 3));
    expect(bytesEqual(joined, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(bytesEqual(joined, Uint8Array.of(1, 2, 4))).toBe(false);
    expect(bytesEqual(joined, Uint8Array.of(1, 2))).toBe(false);
  });

  it('decodes UTF-8 strictly', () => {
    expect(strictUtf8Decode(utf8('wörld'))).toBe('wörld');
    expect(() => strictUtf8Decode(Uint8Array.of(0xff, 0xfe))).toThrow(TypeError);
  });
});

describe('releaseBytes', () => {
  it('frees a buffer of its own at once, and a part of one only when the caller owns all of it', () => {
    const whole = new Uint8Array(200_000).fill(1);
    releaseBytes(whole);
    expect(whole.byteLength).toBe(0);

    const shared = new Uint8Array(200_000);
    const part = shared.subarray(10, 100);
    releaseBytes(part);
    expect(shared.byteLength).toBe(200_000);
    releaseBytes(part, true);
    expect(shared.byteLength).toBe(0);
  });

  it('leaves slices of Node\'s shared Buffer pool alone, and ignores buffers already released', () => {
    const pooled = Buffer.from('a few bytes from the pool');
    const neighbour = Buffer.from('another slice of the same pool');
    releaseBytes(pooled, true);
    releaseBytes(pooled);
    expect(pooled.toString()).toBe('a few bytes from the pool');
    expect(neighbour.toString()).toBe('another slice of the same pool');
    const gone = new Uint8Array(10);
    releaseBytes(gone);
    expect(() => releaseBytes(gone)).not.toThrow();
  });
});
