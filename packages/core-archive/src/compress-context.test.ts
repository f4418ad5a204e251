import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { isBackupError } from './errors.ts';
import { ZstdCompressor, ZstdDecompressor, zstdFrameBound } from './compress.ts';

function text(n: number, seed = 1): Uint8Array {
  const words = ['alpha ', 'beta ', 'gamma\n', '#include <stdio.h>\n', 'return 0;\n'];
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; ) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[x % words.length]!;
    for (let j = 0; j < w.length && i < n; j++) out[i++] = w.charCodeAt(j);
  }
  return out;
}

function compressOne(c: ZstdCompressor, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(zstdFrameBound(data.byteLength) + 7);
  const n = c.compressInto(data, out, 7);
  return out.slice(7, 7 + n);
}

describe('ZstdCompressor', () => {
  it('writes one complete, independent frame per call, which plain zstd decodes', () => {
    const c = new ZstdCompressor(3);
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.integer({ min: 0, max: 300_000 }).map((n) => text(n, n))), { maxLength: 6 }), (inputs) => {
        for (const data of inputs) {
          const frame = compressOne(c, data);
          expect(Buffer.from(zstdDecompressSync(frame)).equals(Buffer.from(data))).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
    c.close();
  });

  it('compresses as well as the one-shot function and records the content size', () => {
    const c = new ZstdCompressor(3);
    const data = text(200_000);
    const frame = compressOne(c, data);
    const oneShot = zstdCompressSync(data, { pledgedSrcSize: data.byteLength });
    expect(Math.abs(frame.byteLength - oneShot.byteLength)).toBeLessThan(oneShot.byteLength * 0.02);
    // Frame header descriptor: the content-size flag (bits 6-7) is set.
    expect(frame[4]! >> 6).toBeGreaterThan(0);
  });

  it('refuses an output buffer below the bound instead of writing a partial frame', () => {
    const c = new ZstdCompressor(3);
    expect(() => c.compressInto(text(1000), new Uint8Array(100), 0)).toThrow(RangeError);
    // still usable afterwards
    expect(compressOne(c, text(1000)).byteLength).toBeGreaterThan(0);
  });

  it('keeps its level for every frame, not only the first', () => {
    // Node's reset() makes a new native context at the default level: a compressor that reset between frames
    // compressed every frame after the first at level 3 whatever its level.
    const data = text(300_000, 5);
    for (const level of [1, 9]) {
      const c = new ZstdCompressor(level);
      const oneShot = zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level }, pledgedSrcSize: data.byteLength });
      for (let i = 0; i < 3; i++) expect(compressOne(c, data).byteLength).toBe(oneShot.byteLength);
      c.close();
    }
  });

  it('rejects invalid levels like the options check', () => {
    expect(() => new ZstdCompressor(99)).toThrow(/out of range/);
  });
});

describe('ZstdDecompressor', () => {
  const c = new ZstdCompressor(3);

  it('decodes frames one after another into a caller buffer', () => {
    const d = new ZstdDecompressor();
    const scratch = new Uint8Array(400_001);
    for (const n of [0, 1, 100, 65_536, 400_000, 17]) {
      const data = n % 2 === 0 ? text(n, n + 3) : randomBytes(n);
      const frame = compressOne(c, data);
      d.decompressInto(frame, scratch, 0, n, 'blob x');
      expect(Buffer.from(scratch.subarray(0, n)).equals(Buffer.from(data))).toBe(true);
    }
  });

  it('works when the buffer has exactly the content length (no spare byte)', () => {
    const d = new ZstdDecompressor();
    const data = text(5000);
    const out = new Uint8Array(5000);
    d.decompressInto(compressOne(c, data), out, 0, 5000, 'blob x');
    expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
    // too large, with exactly-sized room: caught by the probe
    expect(() => d.decompressInto(compressOne(c, text(5001)), out, 0, 5000, 'blob y')).toThrow(/more than 5000/);
  });

  it('takes frame after frame without a reset, and still decodes a frame after one that owed its checksum', () => {
    const d = new ZstdDecompressor();
    const out = new Uint8Array(3001);
    const first = text(3000, 1);
    const checked = zstdCompressSync(first, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
    // All the content, without the 4-byte checksum that ends the frame (Node reports it as cut short).
    let error: unknown;
    try {
      d.decompressInto(checked.subarray(0, checked.byteLength - 4), out, 0, 3000, 'blob a');
      expect(Buffer.from(out.subarray(0, 3000)).equals(Buffer.from(first))).toBe(true);
    } catch (e) {
      error = e;
    }
    if (error !== undefined) expect(isBackupError(error, 'CORRUPT')).toBe(true);
    for (let i = 0; i < 5; i++) {
      const next = i % 2 === 0 ? text(2000 + i, i) : randomBytes(1000 + i);
      d.decompressInto(compressOne(c, next), out, 0, next.byteLength, `blob ${i}`);
      expect(Buffer.from(out.subarray(0, next.byteLength)).equals(Buffer.from(next))).toBe(true);
    }
  });

  const bad: [string, (f: Uint8Array) => Uint8Array, number, RegExp][] = [
    ['longer content', (f) => f, 999, /more than 999/],
    ['shorter content', (f) => f, 1001, /1000 bytes where the index says 1001/],
    ['trailing bytes', (f) => Buffer.concat([f, Buffer.from('xyz')]), 1000, /followed by other bytes/],
    ['a truncated frame', (f) => f.subarray(0, f.byteLength - 5), 1000, /cannot be decompressed|bytes where the index says/],
    ['garbage', () => Buffer.from('not a zstd frame at all'), 1000, /cannot be decompressed/],
    ['a flipped byte', (f) => { const g = Uint8Array.from(f); g[g.byteLength >> 1]! ^= 0x40; return g; }, 1000, /cannot be decompressed|bytes where the index says|more than/],
  ];
  for (const [name, damage, length, pattern] of bad) {
    it(`reports ${name} as CORRUPT and decodes the next frame correctly`, () => {
      const d = new ZstdDecompressor();
      const data = text(1000, 9);
      const frame = compressOne(c, data);
      const out = new Uint8Array(2000);
      let error: unknown;
      try {
        d.decompressInto(damage(frame), out, 0, length, 'pack 1234 blob 5678');
      } catch (e) {
        error = e;
      }
      expect(isBackupError(error, 'CORRUPT')).toBe(true);
      expect((error as Error).message).toMatch(pattern);
      expect((error as Error).message).toContain('pack 1234 blob 5678');
      const next = text(1500, 4);
      d.decompressInto(compressOne(c, next), out, 0, 1500, 'blob z');
      expect(Buffer.from(out.subarray(0, 1500)).equals(Buffer.from(next))).toBe(true);
    });
  }
});
