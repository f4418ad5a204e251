import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { BackupError } from '../errors.ts';
import type { BlobType } from '../format.ts';
import { ENVELOPE_OVERHEAD, metadataAad, open, seal } from '../crypto/aead.ts';
import { openBlob, sealBlob } from '../crypto/blob.ts';
import { bytesToId, idToBytes, sha256, sha256Hex } from '../crypto/hash.ts';
import { ZstdCompressor } from '../compress.ts';
import type { CompressionOptions } from '../compress.ts';
import { blobAad } from '../crypto/aead.ts';
import { HEADER_ENTRY_BYTES, PACK_TAIL_GUESS, PackBuilder, parsePackTrailer, readPackHeader, sealChunkInto, sealedChunkBound } from './pack.ts';

const key = new Uint8Array(randomBytes(32));
const zstd: CompressionOptions = { compression: 'zstd', level: 3 };

function blob(type: BlobType, plaintext: Uint8Array) {
  const id = sha256(plaintext);
  return { type, id: bytesToId(id), plaintext, envelope: sealBlob(key, type, id, plaintext, zstd) };
}

function loader(bytes: Uint8Array, calls: Array<[number, number]> = []) {
  return async (offset: number, length: number): Promise<Uint8Array> => {
    calls.push([offset, length]);
    return bytes.subarray(offset, offset + length);
  };
}

async function corruptMessage(promise: Promise<unknown>, packId: string): Promise<string> {
  try {
    await promise;
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    expect((e as BackupError).subject).toBe(`pack ${packId}`);
    expect((e as BackupError).message).toContain(`pack ${packId}`);
    return (e as BackupError).message;
  }
  return expect.unreachable('expected CORRUPT');
}

function buildPack(plaintexts: Uint8Array[], type: BlobType = 'data') {
  const builder = new PackBuilder(key);
  const blobs = plaintexts.map((p) => blob(type, p));
  for (const b of blobs) builder.add(b.type, b.id, b.envelope, b.plaintext.byteLength);
  return { blobs, pack: builder.finish() };
}

describe('PackBuilder', () => {
  it('lays out envelopes, a sealed header of 41-byte entries and a uint32le trailer, per docs/format.md', () => {
    const { blobs, pack } = buildPack([Uint8Array.of(1, 2, 3), new Uint8Array(5000).fill(9)]);
    const bytes = pack.bytes;
    expect(pack.id).toBe(sha256Hex(bytes));
    expect(Buffer.concat(pack.parts).equals(Buffer.from(bytes))).toBe(true);
    const blobBytes = blobs[0]!.envelope.byteLength + blobs[1]!.envelope.byteLength;
    const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(bytes.byteLength - 4, true);
    expect(headerLength).toBe(ENVELOPE_OVERHEAD + 1 + 2 * HEADER_ENTRY_BYTES);
    expect(bytes.byteLength).toBe(blobBytes + headerLength + 4);
    // Decode the header by hand, independently of readPackHeader.
    const header = open(key, bytes.subarray(blobBytes, blobBytes + headerLength), metadataAad('pack-header'), 'h');
    expect(header[0]).toBe(0);
    const view = new DataView(header.buffer, header.byteOffset);
    for (const [i, b] of blobs.entries()) {
      const at = 1 + i * HEADER_ENTRY_BYTES;
      expect(header[at]).toBe(0);
      expect(view.getUint32(at + 1, true)).toBe(b.envelope.byteLength);
      expect(view.getUint32(at + 5, true)).toBe(b.plaintext.byteLength);
      expect(bytesToId(header.subarray(at + 9, at + 41))).toBe(b.id);
    }
    expect(pack.blobs).toEqual([
      { id: blobs[0]!.id, type: 'data', offset: 0, length: blobs[0]!.envelope.byteLength, rawLength: 3 },
      {
        id: blobs[1]!.id,
        type: 'data',
        offset: blobs[0]!.envelope.byteLength,
        length: blobs[1]!.envelope.byteLength,
        rawLength: 5000,
      },
    ]);
    // Each blob can be read back from its offset.
    for (const [i, e] of pack.blobs.entries()) {
      const envelope = bytes.subarray(e.offset, e.offset + e.length);
      expect(openBlob(key, e.type, idToBytes(e.id), envelope, e.rawLength, 'b')).toEqual(blobs[i]!.plaintext);
    }
  });

  it('counts size and blobs, ignores a repeated id, and refuses to mix types', () => {
    const builder = new PackBuilder(key);
    const a = blob('tree', Uint8Array.of(1));
    expect(builder.add('tree', a.id, a.envelope, 1)).toBe(true);
    expect(builder.add('tree', a.id, a.envelope, 1)).toBe(false);
    expect(builder.count).toBe(1);
    expect(builder.size).toBe(a.envelope.byteLength);
    expect(builder.type).toBe('tree');
    const b = blob('data', Uint8Array.of(2));
    expect(() => builder.add('data', b.id, b.envelope, 1)).toThrow(/cannot go into a pack of tree blobs/);
    expect(builder.finish().blobs[0]!.type).toBe('tree');
  });

  it('rejects invalid input and reuse after finish', () => {
    const builder = new PackBuilder(key);
    const a = blob('data', Uint8Array.of(1));
    const invalid = (fn: () => unknown) =>
      expect(fn).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    invalid(() => builder.add('data', 'nothex', a.envelope, 1));
    invalid(() => builder.add('data', a.id, new Uint8Array(ENVELOPE_OVERHEAD), 1));
    invalid(() => builder.add('data', a.id, a.envelope, -1));
    invalid(() => builder.add('blob' as BlobType, a.id, a.envelope, 1));
    invalid(() => new PackBuilder(new Uint8Array(31)));
    expect(() => builder.finish()).toThrow(/empty pack/);
    builder.add('data', a.id, a.envelope, 1);
    builder.finish();
    expect(() => builder.finish()).toThrow(/already finished/);
    expect(() => builder.add('data', a.id, a.envelope, 1)).toThrow(/already finished/);
  });
});

describe('PackBuilder memory', () => {
  it('copies envelopes into the buffer it is given, so the caller may reuse theirs, and ends the pack in it', () => {
    const buffer = new Uint8Array(64 * 1024);
    const builder = new PackBuilder(key, buffer);
    const blobs = [Uint8Array.of(1, 2, 3), new Uint8Array(5000).fill(9)].map((p) => blob('data', p));
    for (const b of blobs) {
      const envelope = b.envelope.slice();
      builder.add(b.type, b.id, envelope, b.plaintext.byteLength);
      envelope.fill(0);
    }
    const pack = builder.finish();
    expect(builder.buffer).toBe(buffer);
    expect(pack.bytes.buffer).toBe(buffer.buffer);
    expect(pack.id).toBe(sha256Hex(pack.bytes));
    for (const [i, e] of pack.blobs.entries()) {
      expect(openBlob(key, e.type, idToBytes(e.id), pack.bytes.subarray(e.offset, e.offset + e.length), e.rawLength, 'b')).toEqual(blobs[i]!.plaintext);
    }
  });

  it('moves to a larger buffer when the one it was given is too small, for the blobs or for the header', async () => {
    const small = new Uint8Array(100);
    const builder = new PackBuilder(key, small);
    const many = Array.from({ length: 300 }, (_, i) => blob('tree', Uint8Array.of(i & 0xff, i >> 8)));
    for (const b of many) builder.add(b.type, b.id, b.envelope, b.plaintext.byteLength);
    const pack = builder.finish();
    expect(builder.buffer).not.toBe(small);
    expect(pack.bytes.buffer).toBe(builder.buffer.buffer);
    expect(await readPackHeader(loader(pack.bytes), pack.bytes.byteLength, key, pack.id)).toEqual(pack.blobs);
    // Exactly full of blobs: the header and trailer still find room.
    const one = blob('data', new Uint8Array(1000).fill(3));
    const exact = new PackBuilder(key, new Uint8Array(one.envelope.byteLength));
    exact.add('data', one.id, one.envelope, 1000);
    const packed = exact.finish();
    expect(await readPackHeader(loader(packed.bytes), packed.bytes.byteLength, key, packed.id)).toEqual(packed.blobs);
  });
});

describe('PackBuilder without a buffer', () => {
  it('hashes and lists the envelopes the caller writes, and gives the tail that completes the same pack layout', async () => {
    const builder = new PackBuilder(key, false);
    const blobs = [Uint8Array.of(1, 2, 3), new Uint8Array(5000).fill(9), new Uint8Array(randomBytes(70_000))].map((p) => blob('data', p));
    const written: Uint8Array[] = [];
    for (const b of blobs) {
      expect(builder.add(b.type, b.id, b.envelope, b.plaintext.byteLength)).toBe(true);
      written.push(b.envelope);
    }
    // A repeat is refused, so the caller does not write it either.
    expect(builder.add('data', blobs[0]!.id, blobs[0]!.envelope, 3)).toBe(false);
    expect(() => builder.buffer).toThrow(/no buffer/);
    expect(() => builder.finish()).toThrow(/finishTail/);
    const { tail, size, id, blobs: entries } = builder.finishTail();
    const bytes = new Uint8Array(Buffer.concat([...written, tail]));
    expect(size).toBe(bytes.byteLength);
    expect(id).toBe(sha256Hex(bytes));
    expect(await readPackHeader(loader(bytes), bytes.byteLength, key, id)).toEqual(entries);
    for (const [i, e] of entries.entries()) {
      expect(openBlob(key, e.type, idToBytes(e.id), bytes.subarray(e.offset, e.offset + e.length), e.rawLength, 'b')).toEqual(blobs[i]!.plaintext);
    }
    expect(() => builder.finishTail()).toThrow(/already finished/);
    expect(() => new PackBuilder(key).finishTail()).toThrow(/finish/);
  });
});

describe('sealChunkInto', () => {
  const compressor = new ZstdCompressor(3);
  const text = (n: number): Uint8Array => new TextEncoder().encode('#include <stdio.h>\nint main(void) { return 0; }\n'.repeat(Math.ceil(n / 48))).subarray(0, n);

  it('writes envelopes that openBlob reads back, compressed or raw, with or without a compressor, next to each other', () => {
    const inputs = [new Uint8Array(0), text(1), text(1000), text(300_000), new Uint8Array(randomBytes(200_000)), new Uint8Array(randomBytes(70_000))];
    for (const zstdContext of [compressor, undefined]) {
      const room = new Uint8Array(inputs.reduce((n, d) => n + sealedChunkBound(d.byteLength, zstdContext), 5));
      const placed: { data: Uint8Array; at: number; length: number }[] = [];
      let at = 5;
      for (const data of inputs) {
        const length = sealChunkInto(room, at, key, blobAad('data', sha256(data)), data, zstdContext);
        placed.push({ data, at, length });
        at += length;
      }
      for (const { data, at: from, length } of placed) {
        const envelope = room.subarray(from, from + length);
        expect(openBlob(key, 'data', sha256(data), envelope, data.byteLength, 'b')).toEqual(data);
        // The compression byte (in the plaintext) tells raw from zstd: compressible text shrinks, random bytes do not.
        const payload = open(key, envelope, blobAad('data', sha256(data)), 'b');
        const compressed = zstdContext !== undefined && data.byteLength >= 1000 && data[0] === 0x23;
        expect(payload[0]).toBe(compressed ? 1 : 0);
      }
    }
  });

  it('refuses a buffer below the bound instead of writing past it', () => {
    const data = text(10_000);
    expect(() => sealChunkInto(new Uint8Array(sealedChunkBound(data.byteLength, compressor) - 1), 0, key, blobAad('data', sha256(data)), data, compressor)).toThrow(RangeError);
  });
});

describe('readPackHeader', () => {
  it('round-trips any set of blobs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.uint8Array({ maxLength: 3000 }), {
          minLength: 1,
          maxLength: 30,
          selector: (p) => Buffer.from(p).toString('hex'),
        }),
        fc.constantFrom<BlobType>('data', 'tree'),
        async (plaintexts, type) => {
          const { pack } = buildPack(plaintexts, type);
          const bytes = pack.bytes;
          expect(await readPackHeader(loader(bytes), bytes.byteLength, key, pack.id)).toEqual(pack.blobs);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('needs one ranged read for an ordinary pack and two when the header is larger than the first guess', async () => {
    const { pack } = buildPack([new Uint8Array(100_000).fill(1), new Uint8Array(randomBytes(100_000))]);
    const calls: Array<[number, number]> = [];
    await readPackHeader(loader(pack.bytes, calls), pack.bytes.byteLength, key, pack.id);
    expect(calls).toEqual([[pack.bytes.byteLength - PACK_TAIL_GUESS, PACK_TAIL_GUESS]]);

    const many = Array.from({ length: 2000 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
    const big = buildPack(many, 'tree').pack;
    const bigCalls: Array<[number, number]> = [];
    const entries = await readPackHeader(loader(big.bytes, bigCalls), big.bytes.byteLength, key, big.id);
    expect(entries).toHaveLength(2000);
    expect(bigCalls).toHaveLength(2);
  });

  it('reads the trailer', () => {
    expect(parsePackTrailer(Uint8Array.of(9, 9, 0x34, 0x12, 0, 0))).toBe(0x1234);
    expect(() => parsePackTrailer(Uint8Array.of(1, 2, 3), 'pack x')).toThrow(
      expect.toSatisfy((e) => isBackupError(e, 'CORRUPT') && (e as BackupError).subject === 'pack x'),
    );
  });

  it('is CORRUPT for any flipped byte in the header envelope or trailer', async () => {
    const { pack } = buildPack([Uint8Array.of(1, 2, 3), Uint8Array.of(4)]);
    const bytes = pack.bytes;
    const headerStart = pack.blobs[1]!.offset + pack.blobs[1]!.length;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: headerStart, max: bytes.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), async (pos, x) => {
        const tampered = bytes.slice();
        tampered[pos] = tampered[pos]! ^ x;
        await corruptMessage(readPackHeader(loader(tampered), tampered.byteLength, key, pack.id), pack.id);
      }),
      { numRuns: 60 },
    );
  });

  it('is CORRUPT when the pack is truncated, extended, too small, or read with another key', async () => {
    const { pack } = buildPack([Uint8Array.of(1, 2, 3), Uint8Array.of(4)]);
    const bytes = pack.bytes;
    const id = pack.id;
    await corruptMessage(readPackHeader(loader(bytes.subarray(1)), bytes.byteLength - 1, key, id), id);
    await corruptMessage(readPackHeader(loader(bytes.subarray(0, bytes.length - 1)), bytes.byteLength - 1, key, id), id);
    const extended = Buffer.concat([Uint8Array.of(0), bytes]);
    expect(await corruptMessage(readPackHeader(loader(extended), extended.byteLength, key, id), id)).toMatch(/accounts for/);
    await corruptMessage(readPackHeader(loader(bytes.subarray(0, 10)), 10, key, id), id);
    await corruptMessage(readPackHeader(loader(bytes), bytes.byteLength, new Uint8Array(32), id), id);
    // The trailer claims a header bigger than the file.
    const lying = bytes.slice();
    new DataView(lying.buffer).setUint32(lying.byteLength - 4, lying.byteLength, true);
    expect(await corruptMessage(readPackHeader(loader(lying), lying.byteLength, key, id), id)).toMatch(/trailer/);
    // A backend that returns fewer bytes than asked.
    const short = async (offset: number, length: number) => bytes.subarray(offset, offset + length - 1);
    await corruptMessage(readPackHeader(short, bytes.byteLength, key, id), id);
  });

  it('is CORRUPT for an authentic header with bad content', async () => {
    // Forge headers with the right key to reach the checks after authentication.
    const envelopeBytes = 100;
    const withHeader = (header: Uint8Array, blobBytes: number) => {
      const sealed = seal(key, header, metadataAad('pack-header'));
      const out = new Uint8Array(blobBytes + sealed.byteLength + 4);
      out.set(sealed, blobBytes);
      new DataView(out.buffer).setUint32(out.byteLength - 4, sealed.byteLength, true);
      return out;
    };
    const entry = (type: number, length: number) => {
      const e = new Uint8Array(HEADER_ENTRY_BYTES);
      e[0] = type;
      new DataView(e.buffer).setUint32(1, length, true);
      return e;
    };
    const id = 'ab'.repeat(32);
    const cases: Array<[Uint8Array, number, RegExp]> = [
      [Uint8Array.of(0, ...entry(2, envelopeBytes)), envelopeBytes, /unknown type/],
      [Uint8Array.of(0, ...entry(0, envelopeBytes), 7), envelopeBytes, /multiple of 41/],
      [Uint8Array.of(0, ...entry(0, envelopeBytes - 1)), envelopeBytes, /accounts for/],
      [Uint8Array.of(0, ...entry(0, 3), ...entry(0, envelopeBytes - 3)), envelopeBytes, /impossible envelope length/],
      [Uint8Array.of(5, ...entry(0, envelopeBytes)), envelopeBytes, /compression method/],
    ];
    for (const [header, blobBytes, pattern] of cases) {
      const file = withHeader(header, blobBytes);
      expect(await corruptMessage(readPackHeader(loader(file), file.byteLength, key, id), id)).toMatch(pattern);
    }
    // A header with no entries describes an empty pack, which is consistent.
    const empty = withHeader(Uint8Array.of(0), 0);
    expect(await readPackHeader(loader(empty), empty.byteLength, key, id)).toEqual([]);
  });

  it('passes backend errors through unchanged', async () => {
    const failure = new Error('boom');
    await expect(readPackHeader(() => Promise.reject(failure), 1000, key, 'ab'.repeat(32))).rejects.toBe(failure);
  });
});
