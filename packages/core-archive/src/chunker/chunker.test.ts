import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import {
  DEFAULT_CHUNK_SIZES,
  FdChunkReader,
  chunkLengths,
  chunkMasks,
  createChunkerParams,
  cutPoint,
  validateChunkSizes,
} from './chunker.ts';
import type { ChunkerParams, ChunkSizes } from './chunker.ts';

const SMALL: ChunkSizes = { minSize: 2048, avgSize: 8192, maxSize: 65536 };
const countingSecret = Uint8Array.from({ length: 32 }, (_, i) => i);
const small = createChunkerParams(countingSecret, SMALL);

/** sha256(uint32be(0)) ‖ sha256(uint32be(1)) ‖ …, cut to n bytes: reproducible in any language. */
function counterStream(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const counter = new Uint8Array(4);
  for (let c = 0, at = 0; at < n; c++, at += 32) {
    new DataView(counter.buffer).setUint32(0, c);
    out.set(createHash('sha256').update(counter).digest().subarray(0, Math.min(32, n - at)), at);
  }
  return out;
}

/** docs/format.md step 2 transcribed literally, in plain double arithmetic, as an independent reference. */
function referenceLengths(p: ChunkerParams, data: Uint8Array): number[] {
  const bits = Math.log2(p.avgSize);
  const topBits = (k: number) => (2 ** 32 - 1) - (2 ** (32 - k) - 1);
  const maskS = topBits(bits + 2);
  const maskL = topBits(bits - 2);
  const lengths: number[] = [];
  for (let s = 0; s < data.length; ) {
    const n = data.length - s;
    let length = n <= p.minSize ? n : Math.min(n, p.maxSize);
    if (n > p.minSize) {
      let h = 0;
      for (let i = s + p.minSize; i <= s + Math.min(n, p.maxSize) - 1; i++) {
        h = (h * 2 + p.gear[data[i]!]!) % 2 ** 32;
        const mask = i - s < p.avgSize ? maskS : maskL;
        if ((h & mask) === 0) {
          length = i - s + 1;
          break;
        }
      }
    }
    lengths.push(length);
    s += length;
  }
  return lengths;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

describe('chunkMasks', () => {
  it('puts bits+2 and bits-2 one-bits at the top of the word', () => {
    const { maskS, maskL } = chunkMasks(1 << 20);
    expect(maskS >>> 0).toBe(0xfffffc00); // 22 one-bits
    expect(maskL >>> 0).toBe(0xffffc000); // 18 one-bits
  });
});

describe('validateChunkSizes', () => {
  it('accepts the defaults and the test sizes', () => {
    expect(() => validateChunkSizes(DEFAULT_CHUNK_SIZES)).not.toThrow();
    expect(() => validateChunkSizes(SMALL)).not.toThrow();
  });

  it.each<ChunkSizes>([
    { minSize: 2048, avgSize: 10000, maxSize: 65536 },
    { minSize: 8192, avgSize: 8192, maxSize: 65536 },
    { minSize: 2048, avgSize: 8192, maxSize: 8192 },
    { minSize: 0, avgSize: 8192, maxSize: 65536 },
    { minSize: 2048.5, avgSize: 8192, maxSize: 65536 },
    { minSize: 2048, avgSize: 2 ** 27, maxSize: 2 ** 28 },
    { minSize: 2048, avgSize: 8192, maxSize: 2 ** 29 },
  ])('rejects %o', (sizes) => {
    expect(() => validateChunkSizes(sizes)).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
  });
});

describe('cutPoint', () => {
  it('matches lengths computed by an independent Python transcription of docs/format.md', () => {
    // Reference: gear from HMAC(bytes(range(32))), data = counterStream(1 MiB), sizes 2 KiB / 8 KiB / 64 KiB.
    const expected = [
      10210, 6454, 11495, 5947, 10488, 11463, 9873, 8312, 4763, 10912, 9753, 21626,
      10641, 9503, 10397, 7077, 4162, 4140, 10375, 8697, 10089, 8986, 12264, 13170,
      9629, 14271, 8313, 11695, 8205, 11934, 9270, 5780, 9625, 3622, 8982, 8003,
      7489, 8507, 13089, 8552, 8935, 5801, 8967, 13231, 10569, 10096, 10433, 8867,
      11289, 8480, 8930, 6018, 8945, 7357, 5701, 12857, 9185, 15082, 2690, 8323,
      8548, 9438, 8212, 11756, 8343, 3016, 7102, 10384, 8290, 11732, 9789, 8556,
      9264, 10833, 9746, 9417, 9483, 7378, 8441, 9677, 8407, 8600, 9196, 9946,
      7946, 13115, 11325, 9341, 12284, 2567, 9590, 10129, 2116, 3740, 9361, 10403,
      2408, 5303, 10727, 8706, 8564, 10408, 9683, 9956, 8284, 7246, 8149, 9307,
      12202, 16164, 4253, 14284, 3065, 3302, 10765, 4373, 4437,
    ];
    const data = counterStream(1 << 20);
    expect(chunkLengths(small, data)).toEqual(expected);
  });

  it('cuts at maxSize when no boundary exists (zeros), leaving the rest as the last chunk', () => {
    expect(chunkLengths(small, new Uint8Array(200_000))).toEqual([65536, 65536, 65536, 3392]);
  });

  it('agrees with the literal reference on random data and sizes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 8, max: 12 }),
        fc.integer({ min: 64, max: 255 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer(),
        (secret, bits, minSize, maxFactor, length, seed) => {
          const avgSize = 2 ** bits;
          const params = createChunkerParams(secret, { minSize, avgSize, maxSize: avgSize * maxFactor + 1 });
          const data = new Uint8Array(length);
          let x = seed | 1;
          for (let i = 0; i < length; i++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            data[i] = x & 0xff;
          }
          expect(chunkLengths(params, data)).toEqual(referenceLengths(params, data));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('asks for more data only when it may need it, and never disagrees with the full view', () => {
    const data = new Uint8Array(randomBytes(300_000));
    fc.assert(
      fc.property(fc.nat({ max: 200_000 }), fc.nat({ max: 100_000 }), (start, available) => {
        const end = Math.min(data.length, start + available);
        const partial = cutPoint(small, data, start, end, false);
        const full = cutPoint(small, data, start, data.length, data.length === end);
        if (partial === -1) {
          expect(end - start).toBeLessThan(SMALL.maxSize);
        } else {
          expect(partial).toBe(full);
          expect(partial).toBeLessThanOrEqual(end - start);
        }
      }),
    );
  });

  it('handles the edges around minSize and the end of input', () => {
    const data = new Uint8Array(randomBytes(100_000));
    expect(cutPoint(small, data, 0, 0, true)).toBe(0);
    expect(cutPoint(small, data, 0, 0, false)).toBe(-1);
    expect(cutPoint(small, data, 10, 10 + SMALL.minSize, true)).toBe(SMALL.minSize);
    expect(cutPoint(small, data, 10, 10 + SMALL.minSize, false)).toBe(-1);
    expect(cutPoint(small, data, 10, 11, true)).toBe(1);
    const zeros = new Uint8Array(SMALL.maxSize + 5);
    expect(cutPoint(small, zeros, 0, SMALL.maxSize - 1, false)).toBe(-1);
    expect(cutPoint(small, zeros, 0, SMALL.maxSize, false)).toBe(SMALL.maxSize);
    expect(cutPoint(small, zeros, 0, SMALL.maxSize - 1, true)).toBe(SMALL.maxSize - 1);
    expect(cutPoint(small, zeros, 5, zeros.length, false)).toBe(SMALL.maxSize);
  });

  it('rejects a range outside the buffer', () => {
    const data = new Uint8Array(10);
    for (const [s, e] of [[-1, 5], [5, 4], [0, 11], [0.5, 5]] as const) {
      expect(() => cutPoint(small, data, s, e, true)).toThrow(expect.toSatisfy((x) => isBackupError(x, 'INVALID_ARGUMENT')));
    }
  });
});

describe('chunkLengths properties', () => {
  const buffers = fc.oneof(
    fc.uint8Array({ maxLength: 300_000 }),
    fc.integer({ min: 0, max: 400_000 }).map((n) => new Uint8Array(randomBytes(n))),
    fc.integer({ min: 0, max: 200_000 }).map((n) => new Uint8Array(n).fill(0x61)),
  );

  it('is deterministic, covers the input exactly, and keeps every chunk but the last within [min, max]', () => {
    fc.assert(
      fc.property(buffers, (data) => {
        const lengths = chunkLengths(small, data);
        expect(chunkLengths(small, data.slice())).toEqual(lengths);
        expect(sum(lengths)).toBe(data.length);
        lengths.forEach((length, i) => {
          expect(length).toBeLessThanOrEqual(SMALL.maxSize);
          if (i < lengths.length - 1) expect(length).toBeGreaterThanOrEqual(SMALL.minSize);
          else expect(length).toBeGreaterThan(0);
        });
      }),
      { numRuns: 40 },
    );
  });

  it('averages near the configured size on random data', () => {
    const lengths = chunkLengths(small, new Uint8Array(randomBytes(4 << 20)));
    const mean = sum(lengths) / lengths.length;
    expect(mean).toBeGreaterThan(6 * 1024);
    expect(mean).toBeLessThan(14 * 1024);
  });

  it('changes only a few chunks when a few bytes are inserted', () => {
    const contents = (data: Uint8Array, lengths: number[]): string[] => {
      const out: string[] = [];
      let at = 0;
      for (const l of lengths) {
        out.push(createHash('sha256').update(data.subarray(at, at + l)).digest('hex'));
        at += l;
      }
      return out;
    };
    // Usually exactly one chunk changes; a boundary that fails to resynchronise at once makes a short cascade
    // (measured: >1 in ~1% of edits, up to 6). So bound each edit loosely and the total tightly.
    const edits = fc.sample(
      fc.record({
        size: fc.integer({ min: 256 * 1024, max: 1024 * 1024 }),
        where: fc.double({ min: 0, max: 1, noNaN: true }),
        inserted: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
      25,
    );
    let total = 0;
    for (const { size, where, inserted } of edits) {
      const data = new Uint8Array(randomBytes(size));
      const at = Math.floor(where * size);
      const edited = new Uint8Array(size + inserted.length);
      edited.set(data.subarray(0, at), 0);
      edited.set(inserted, at);
      edited.set(data.subarray(at), at + inserted.length);
      const before = new Set(contents(data, chunkLengths(small, data)));
      const after = contents(edited, chunkLengths(small, edited));
      expect(after.length).toBeGreaterThan(20);
      const fresh = after.filter((h) => !before.has(h)).length;
      expect(fresh).toBeGreaterThanOrEqual(1);
      expect(fresh).toBeLessThanOrEqual(16);
      total += fresh;
    }
    expect(total).toBeLessThanOrEqual(2 * edits.length);
  });
});

describe('FdChunkReader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bam-chunker-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function readAll(fd: number, params: ChunkerParams, readSize?: number): { lengths: number[]; joined: Uint8Array; reader: FdChunkReader } {
    const reader = readSize === undefined ? new FdChunkReader(fd, params) : new FdChunkReader(fd, params, readSize);
    const lengths: number[] = [];
    const copies: Uint8Array[] = [];
    for (let chunk = reader.next(); chunk !== null; chunk = reader.next()) {
      lengths.push(chunk.length);
      copies.push(chunk.slice());
    }
    expect(reader.next()).toBeNull();
    return { lengths, joined: Buffer.concat(copies), reader };
  }

  it('yields the same chunks as chunkLengths for several read sizes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 0, max: 500_000 }).map((n) => new Uint8Array(randomBytes(n))),
          fc.integer({ min: 0, max: 300_000 }).map((n) => new Uint8Array(n)),
        ),
        fc.constantFrom(1, 7, 4096, 65536, 1 << 20, undefined),
        (data, readSize) => {
          const path = join(dir, 'input');
          writeFileSync(path, data);
          const fd = openSync(path, 'r');
          try {
            const { lengths, joined, reader } = readAll(fd, small, readSize);
            expect(lengths).toEqual(chunkLengths(small, data));
            expect(Buffer.compare(joined, data)).toBe(0);
            expect(reader.bytesRead).toBe(data.length);
          } finally {
            closeSync(fd);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  /** Reads through a caller's buffer of `size` bytes, as the backup workers do. */
  function readThrough(path: string, params: ChunkerParams, readSize: number, size: number): { lengths: number[]; joined: Uint8Array; grown: boolean } {
    const fd = openSync(path, 'r');
    try {
      const buffer = new Uint8Array(size);
      const reader = new FdChunkReader(fd, params, readSize, buffer);
      const lengths: number[] = [];
      const copies: Uint8Array[] = [];
      for (let chunk = reader.next(); chunk !== null; chunk = reader.next()) {
        // Until a chunk does not fit, the chunks are views into the caller's buffer.
        expect(chunk.buffer === buffer.buffer).toBe(reader.grown === undefined);
        lengths.push(chunk.length);
        copies.push(chunk.slice());
      }
      expect(reader.bytesRead).toBe(copies.reduce((n, c) => n + c.length, 0));
      return { lengths, joined: Buffer.concat(copies), grown: reader.grown !== undefined };
    } finally {
      closeSync(fd);
    }
  }

  it('cuts the same chunks through a small buffer that grows only for a chunk that does not fit', () => {
    const segment = fc.oneof(
      fc.integer({ min: 1, max: 150_000 }).map((n) => new Uint8Array(randomBytes(n))),
      // runs of zeros cut at exactly maxSize, once or several times, with or without a remainder
      fc.constantFrom(SMALL.maxSize, 2 * SMALL.maxSize, SMALL.maxSize - 1, SMALL.maxSize + 1, 3 * SMALL.maxSize + 5000).map((n) => new Uint8Array(n)),
    );
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 5 }),
        fc.constantFrom(SMALL.minSize + 1, 3 * SMALL.minSize, SMALL.avgSize + 1000, SMALL.maxSize, SMALL.maxSize + 4096),
        fc.constantFrom(1, 4096, 65536),
        (segments, size, readSize) => {
          const data = Buffer.concat(segments);
          const path = join(dir, 'growing');
          writeFileSync(path, data);
          const { lengths, joined, grown } = readThrough(path, small, readSize, size);
          expect(lengths).toEqual(referenceLengths(small, data));
          expect(Buffer.compare(joined, data)).toBe(0);
          if (lengths.every((n) => n < size)) expect(grown).toBe(false);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('cuts a sparse file with the default sizes through a 2 MiB buffer as through a full one', () => {
    const { maxSize } = DEFAULT_CHUNK_SIZES;
    const path = join(dir, 'sparse');
    const fd = openSync(path, 'w');
    try {
      // random data, a hole of 2.5 maxSize (zeros cut at exactly maxSize), data again, a hole to the end
      writeSync(fd, counterStream(3 * 1024 * 1024), 0, undefined, 0);
      writeSync(fd, counterStream(5 * 1024 * 1024 + 17), 0, undefined, 3 * 1024 * 1024 + 2.5 * maxSize);
      ftruncateSync(fd, 3 * 1024 * 1024 + 2.5 * maxSize + 5 * 1024 * 1024 + 17 + maxSize + 3);
    } finally {
      closeSync(fd);
    }
    const params = createChunkerParams(countingSecret);
    const data = new Uint8Array(readFileSync(path));
    const expected = chunkLengths(params, data);
    expect(expected.filter((n) => n === maxSize).length).toBeGreaterThanOrEqual(3);
    const { lengths, joined, grown } = readThrough(path, params, 1024 * 1024, 2 * 1024 * 1024);
    expect(lengths).toEqual(expected);
    expect(grown).toBe(true);
    expect(Buffer.compare(joined, data)).toBe(0);
    expect(readThrough(path, params, 1024 * 1024, maxSize + 1024 * 1024).lengths).toEqual(expected);
  });

  it('grows a small buffer by doubling, to maxSize + readSize only for a chunk that needs it', () => {
    const { minSize, maxSize } = DEFAULT_CHUNK_SIZES;
    const params = createChunkerParams(countingSecret);
    const readSize = 1024 * 1024;
    const grownTo = (data: Uint8Array): number | undefined => {
      const path = join(dir, 'doubling');
      writeFileSync(path, data);
      const fd = openSync(path, 'r');
      try {
        const reader = new FdChunkReader(fd, params, readSize, new Uint8Array(minSize + readSize));
        const lengths: number[] = [];
        for (let chunk = reader.next(); chunk !== null; chunk = reader.next()) lengths.push(chunk.length);
        expect(lengths).toEqual(chunkLengths(params, data));
        return reader.grown?.length;
      } finally {
        closeSync(fd);
      }
    };
    // A file of one chunk a little longer than the buffer: twice the buffer, not 9 MiB.
    expect(grownTo(new Uint8Array(minSize + readSize + 1000))).toBe(2 * (minSize + readSize));
    // Zeros cut at maxSize: doubled up to the size that holds any chunk.
    expect(grownTo(new Uint8Array(2 * maxSize + 5))).toBe(maxSize + readSize);
  });

  it('returns views into one reused buffer', () => {
    const data = new Uint8Array(randomBytes(200_000));
    const path = join(dir, 'views');
    writeFileSync(path, data);
    const fd = openSync(path, 'r');
    try {
      const reader = new FdChunkReader(fd, small, 4096);
      const first = reader.next()!;
      const second = reader.next()!;
      expect(first.buffer).toBe(second.buffer);
      expect(first.buffer.byteLength).toBe(SMALL.maxSize + 4096);
    } finally {
      closeSync(fd);
    }
  });

  it('handles the short reads of a pipe', async () => {
    const data = new Uint8Array(randomBytes(400_000));
    const source = join(dir, 'pipe-source');
    const fifo = join(dir, 'fifo');
    writeFileSync(source, data);
    execFileSync('mkfifo', [fifo]);
    // A separate process writes the data in small, delayed pieces so reads come back short.
    const writer = spawn(process.execPath, [
      '-e',
      `const fs = require('node:fs'); const d = fs.readFileSync(process.argv[1]); const fd = fs.openSync(process.argv[2], 'w');
       let at = 0; const step = () => { if (at >= d.length) { fs.closeSync(fd); return; }
       const n = Math.min(d.length - at, 1000 + Math.floor(Math.random() * 30000)); fs.writeSync(fd, d, at, n); at += n; setTimeout(step, 1); }; step();`,
      source,
      fifo,
    ]);
    const exited = new Promise<number | null>((resolve) => writer.on('exit', resolve));
    const fd = openSync(fifo, 'r');
    try {
      const { lengths, joined, reader } = readAll(fd, small, 4096);
      expect(lengths).toEqual(chunkLengths(small, data));
      expect(Buffer.compare(joined, data)).toBe(0);
      expect(reader.bytesRead).toBe(data.length);
    } finally {
      closeSync(fd);
    }
    expect(await exited).toBe(0);
  });

  it('rejects an invalid read size and reports read errors as IO', () => {
    expect(() => new FdChunkReader(0, small, 0)).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    const fd = openSync(dir, 'r'); // reading a directory fails with EISDIR
    try {
      const reader = new FdChunkReader(fd, small);
      expect(() => reader.next()).toThrow(expect.toSatisfy((e) => isBackupError(e, 'IO')));
    } finally {
      closeSync(fd);
    }
  });
});
