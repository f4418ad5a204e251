import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { zstdCompressSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { isBackupError } from './errors.ts';
import type { BackupError } from './errors.ts';
import {
  DEFAULT_MAX_PAYLOAD,
  PAYLOAD_RAW,
  PAYLOAD_ZSTD,
  decodePayload,
  encodePayload,
  encodePayloadParts,
  validateCompressionOptions,
} from './compress.ts';
import type { CompressionOptions } from './compress.ts';

const zstd3: CompressionOptions = { compression: 'zstd', level: 3 };
const none: CompressionOptions = { compression: 'none', level: 0 };

function expectCorrupt(fn: () => unknown, what: string, pattern?: RegExp): void {
  try {
    fn();
    expect.unreachable('expected CORRUPT');
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    expect((e as BackupError).subject).toBe(what);
    expect((e as BackupError).message).toContain(what);
    if (pattern) expect((e as BackupError).message).toMatch(pattern);
  }
}

describe('encodePayload', () => {
  it('compresses compressible data with zstd', () => {
    const data = new Uint8Array(100_000).fill(42);
    const payload = encodePayload(data, zstd3);
    expect(payload[0]).toBe(PAYLOAD_ZSTD);
    expect(payload.byteLength).toBeLessThan(1000);
    expect(decodePayload(payload, 'x', data.byteLength)).toEqual(data);
  });

  it('stores incompressible data raw', () => {
    const data = new Uint8Array(randomBytes(10_000));
    const payload = encodePayload(data, zstd3);
    expect(payload[0]).toBe(PAYLOAD_RAW);
    expect(payload.subarray(1)).toEqual(data);
  });

  it('stores raw when compression is off, and for the empty payload', () => {
    const data = new Uint8Array(1000).fill(1);
    expect(encodePayload(data, none)).toEqual(Uint8Array.of(0, ...data));
    expect(encodePayload(new Uint8Array(0), zstd3)).toEqual(Uint8Array.of(0));
  });

  it('picks zstd only when it is strictly smaller, and always round-trips', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 3000 }),
          fc.string({ maxLength: 3000 }).map((s) => new TextEncoder().encode(s.repeat(3))),
        ),
        fc.constantFrom<CompressionOptions>(zstd3, none, { compression: 'zstd', level: 19 }, { compression: 'zstd', level: -5 }),
        (data, opts) => {
          const payload = encodePayload(data, opts);
          expect(payload.byteLength).toBeLessThanOrEqual(data.byteLength + 1);
          if (payload[0] === PAYLOAD_ZSTD) expect(payload.byteLength).toBeLessThan(data.byteLength + 1);
          const [head, body] = encodePayloadParts(data, opts);
          expect(head.byteLength).toBe(1);
          expect(Uint8Array.of(...head, ...body)).toEqual(payload);
          expect(decodePayload(payload, 'x', data.byteLength)).toEqual(data);
          expect(decodePayload(payload, 'x')).toEqual(data);
        },
      ),
    );
  });

  it('rejects invalid options', () => {
    expect(() => validateCompressionOptions({ compression: 'gzip' as 'zstd', level: 3 })).toThrowError(/gzip/);
    expect(() => encodePayload(Uint8Array.of(1), { compression: 'zstd', level: 23 })).toThrowError(/level/);
    expect(() => encodePayload(Uint8Array.of(1), { compression: 'zstd', level: 2.5 })).toThrowError(/level/);
  });
});

describe('decodePayload', () => {
  const data = new Uint8Array(50_000).fill(7);
  const payload = encodePayload(data, zstd3);

  it('is CORRUPT for an empty payload or an unknown method byte', () => {
    expectCorrupt(() => decodePayload(new Uint8Array(0), 'blob 1'), 'blob 1', /empty/);
    expectCorrupt(() => decodePayload(Uint8Array.of(2, 1, 2), 'blob 2'), 'blob 2', /0x02/);
  });

  it('is CORRUPT for a truncated or damaged zstd frame', () => {
    expectCorrupt(() => decodePayload(payload.subarray(0, payload.byteLength - 3), 'blob 3', data.byteLength), 'blob 3');
    const bad = payload.slice();
    bad[2] = bad[2]! ^ 0xff; // inside the frame's magic number
    expectCorrupt(() => decodePayload(bad, 'blob 4'), 'blob 4');
    expectCorrupt(() => decodePayload(Uint8Array.of(PAYLOAD_ZSTD), 'blob 5'), 'blob 5');
  });

  it('is CORRUPT for trailing bytes after the frame', () => {
    expectCorrupt(() => decodePayload(Uint8Array.of(...payload, 0, 0, 0, 0), 'blob 6'), 'blob 6');
  });

  it('is CORRUPT when the length differs from the expected one, raw or compressed', () => {
    expectCorrupt(() => decodePayload(payload, 'blob 7', data.byteLength + 1), 'blob 7', /50000 bytes/);
    expectCorrupt(() => decodePayload(payload, 'blob 8', data.byteLength - 1), 'blob 8');
    expectCorrupt(() => decodePayload(Uint8Array.of(0, 1, 2), 'blob 9', 3), 'blob 9', /2 bytes/);
  });

  it('bounds the output of a decompression bomb', () => {
    const bomb = zstdCompressSync(new Uint8Array(DEFAULT_MAX_PAYLOAD + 1));
    expect(bomb.byteLength).toBeLessThan(10_000);
    const framed = Uint8Array.of(PAYLOAD_ZSTD, ...bomb);
    expectCorrupt(() => decodePayload(framed, 'index 1'), 'index 1', /more than/);
    expectCorrupt(() => decodePayload(framed, 'index 2', 1000), 'index 2', /more than 1000/);
    expectCorrupt(() => decodePayload(encodePayload(new Uint8Array(5000), zstd3), 'index 3', undefined, 4999), 'index 3');
    expectCorrupt(() => decodePayload(Uint8Array.of(0, 1, 2, 3), 'index 4', undefined, 2), 'index 4');
  });

  it('rejects an expected length that is not a byte count', () => {
    for (const bad of [-1, 1.5, Number.NaN]) {
      expect(() => decodePayload(payload, 'x', bad)).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    }
  });

  it('returns a raw payload as a view without copying', () => {
    const raw = Uint8Array.of(0, 9, 8);
    const out = decodePayload(raw, 'x');
    expect(out).toEqual(Uint8Array.of(9, 8));
    expect(out.buffer).toBe(raw.buffer);
  });
});
