/**
 * Pack files (docs/format.md, "Blobs and packs"): blob envelopes back to back, then a sealed header listing them,
 * then the header envelope's length as uint32le. Writing builds the whole pack in one buffer (packs are ~16 MiB),
 * which the caller may hand to the next pack once this one is saved, or, when the caller streams the envelopes to
 * storage itself, keeps only the pack's id hash and header; reading the header needs only the file's tail.
 * Also the helpers that seal the blobs of packs without leaving their buffers to the garbage collector.
 */
import { BackupError } from '../errors.ts';
import type { BlobType, IndexBlobEntry } from '../format.ts';
import { createCipheriv, createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { cipherInto, ENVELOPE_OVERHEAD, fillNonce, KEY_BYTES, keyObject, metadataAad, NONCE_BYTES, open, seal, TAG_BYTES } from '../crypto/aead.ts';
import { bytesToId, ID_BYTES, isId } from '../crypto/hash.ts';
import { decodePayload, PAYLOAD_RAW, PAYLOAD_ZSTD, zstdFrameBound } from '../compress.ts';
import type { ZstdCompressor } from '../compress.ts';

export const HEADER_ENTRY_BYTES = 41;
export const TRAILER_BYTES = 4;
export const BLOB_TYPE_CODE: Readonly<Record<BlobType, number>> = { data: 0, tree: 1 };
const BLOB_TYPE_BY_CODE: readonly BlobType[] = ['data', 'tree'];
/** Smallest envelope that can hold a payload: overhead plus the compression byte. */
export const MIN_PAYLOAD_ENVELOPE = ENVELOPE_OVERHEAD + 1;
const UINT32_MAX = 0xffffffff;
/** The first read of a pack's tail; headers of ordinary packs fit, so one ranged read usually suffices. */
export const PACK_TAIL_GUESS = 64 * 1024;
/** Bytes a pack's header envelope and trailer take beyond its blobs, for `count` blobs. */
export function packOverhead(count: number): number {
  return ENVELOPE_OVERHEAD + 1 + HEADER_ENTRY_BYTES * count + TRAILER_BYTES;
}
const DEFAULT_BUFFER_BYTES = 64 * 1024;

// ---- sealing and opening blobs without garbage: workers and the pack saver handle thousands of blobs a second ----

const RAW_BYTE = Uint8Array.of(PAYLOAD_RAW);

/**
 * Seals one blob into `out` at `at` and returns the envelope's length: the envelope of crypto/aead.ts (nonce ‖
 * AES-256-GCM ciphertext ‖ tag) over the payload parts, written in place instead of into a new buffer.
 */
export function sealBlobInto(out: Uint8Array, at: number, key: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[]): number {
  fillNonce(out, at);
  const nonce = out.subarray(at, at + NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyObject(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  let p = at + NONCE_BYTES;
  // In place is allowed: a part may lie in `out` exactly where its ciphertext goes (see cipherInto).
  for (const part of parts) p = cipherInto(cipher, part, out, p);
  const last = cipher.final();
  out.set(last, p);
  p += last.byteLength;
  out.set(cipher.getAuthTag(), p);
  return p + TAG_BYTES - at;
}

/** Room sealChunkInto needs for a chunk of `n` bytes: a zstd frame may be slightly larger than the chunk. */
export function sealedChunkBound(n: number, compressor: ZstdCompressor | undefined): number {
  return ENVELOPE_OVERHEAD + 1 + (compressor !== undefined && n > 0 ? Math.max(n, zstdFrameBound(n)) : n);
}

/**
 * Seals a blob like sealBlobInto(…, encodePayloadParts(data, …)) would, with the zstd frame written by `compressor`
 * (a reused context, none for uncompressed repositories) straight into `out` where the payload goes, then encrypted
 * over itself: no buffer per blob for the frame. `out` needs sealedChunkBound(data.byteLength) bytes from `at`.
 * Returns the envelope's length. As everywhere, the chunk is stored raw unless the frame is strictly smaller.
 */
export function sealChunkInto(out: Uint8Array, at: number, key: Uint8Array, aad: Uint8Array, data: Uint8Array, compressor: ZstdCompressor | undefined): number {
  const room = out.byteLength - at;
  if (room < sealedChunkBound(data.byteLength, compressor)) {
    throw new RangeError(`sealing room ${room} is below the bound ${sealedChunkBound(data.byteLength, compressor)} for ${data.byteLength} bytes`);
  }
  if (compressor !== undefined && data.byteLength > 0) {
    const payloadAt = at + NONCE_BYTES;
    const frame = compressor.compressInto(data, out, payloadAt + 1);
    if (frame < data.byteLength) {
      out[payloadAt] = PAYLOAD_ZSTD;
      // Encrypted where it lies: sealBlobInto reads each piece before it writes that piece's ciphertext over it.
      return sealBlobInto(out, at, key, aad, [out.subarray(payloadAt, payloadAt + 1 + frame)]);
    }
  }
  return sealBlobInto(out, at, key, aad, [RAW_BYTE, data]);
}

/** The end of a pack whose envelopes the caller wrote itself (a PackBuilder without a buffer). */
export interface FinishedPackTail {
  /** The header envelope and trailer, to write after the envelopes. */
  tail: Uint8Array;
  /** Size of the whole pack file, envelopes and tail. */
  size: number;
  /** sha256Hex of the pack file: its name under data/. */
  id: string;
  /** Index entries of the pack's blobs, in pack order. */
  blobs: IndexBlobEntry[];
}

export interface FinishedPack {
  /** The pack file as pieces, in order, for streaming uploads: here the single piece `bytes`. */
  parts: Uint8Array[];
  /** The whole pack file: a view into the builder's `buffer`, valid until that buffer is given to another pack. */
  readonly bytes: Uint8Array;
  /** sha256Hex of the pack file: its name under data/. */
  id: string;
  /** Index entries of the pack's blobs, in pack order. */
  blobs: IndexBlobEntry[];
}

/**
 * Collects sealed blobs of one type into a pack. Data and tree blobs go to separate packs (docs/format.md), so the
 * builder refuses to mix them. A blob id added twice is stored once: add() returns false for the repeat.
 * Envelopes are copied into one buffer as they arrive, and the header and trailer are written behind them, so the
 * finished pack is that buffer's prefix: no list of envelopes to keep alive, and no second copy to join them.
 * Built without a buffer (`buffer` false), it only hashes and lists the envelopes, which the caller writes out in
 * the order it adds them, and `finishTail` gives what goes after them.
 */
export class PackBuilder {
  readonly #key: Uint8Array;
  /** the index entries of the blobs added, handed over as they are when the pack is sealed */
  #blobs: IndexBlobEntry[] = [];
  readonly #ids = new Set<string>();
  /** undefined when the caller writes the envelopes itself */
  #buffer: Uint8Array | undefined;
  #size = 0;
  #finished = false;
  /**
   * SHA-256 of the pack so far, fed as envelopes arrive: hashing a whole pack at once held the main thread for tens
   * of milliseconds at a time, during which the workers' questions waited.
   */
  readonly #hash: Hash = createHash('sha256');

  /**
   * `buffer`, when given, is the memory the pack is built in (a buffer of an earlier pack that has been saved, or
   * one sized for a full pack); a larger one replaces it when it runs out of room. `false`: no buffer at all, the
   * caller writes each envelope out as it adds it (see finishTail).
   */
  constructor(key: Uint8Array, buffer?: Uint8Array | false) {
    if (key.byteLength !== KEY_BYTES) {
      throw new BackupError('INVALID_ARGUMENT', `an encryption key is ${KEY_BYTES} bytes, got ${key.byteLength}`);
    }
    this.#key = key;
    this.#buffer = buffer === false ? undefined : (buffer ?? new Uint8Array(DEFAULT_BUFFER_BYTES));
  }

  /** Blob bytes added so far (the header and trailer come on top). */
  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.#blobs.length;
  }

  /** The type of the blobs in this pack, once one has been added. */
  get type(): BlobType | undefined {
    return this.#blobs[0]?.type;
  }

  /** The memory the pack is built in; once the finished pack is saved, it can be given to the next builder. */
  get buffer(): Uint8Array {
    if (this.#buffer === undefined) throw new BackupError('INTERNAL', 'this pack builder has no buffer');
    return this.#buffer;
  }

  /**
   * Appends a sealed blob (`envelope` from sealBlob; copied, so the caller may reuse its memory at once). Returns
   * false, and stores nothing, when this pack already holds the id.
   */
  add(type: BlobType, id: string, envelope: Uint8Array, rawLength: number): boolean {
    if (this.#finished) throw new BackupError('INTERNAL', 'this pack is already finished; start a new PackBuilder');
    if (type !== 'data' && type !== 'tree') {
      throw new BackupError('INVALID_ARGUMENT', `unknown blob type "${String(type)}"`);
    }
    const current = this.type;
    if (current !== undefined && current !== type) {
      throw new BackupError('INVALID_ARGUMENT', `a ${type} blob cannot go into a pack of ${current} blobs`);
    }
    if (!isId(id)) throw new BackupError('INVALID_ARGUMENT', `"${String(id).slice(0, 80)}" is not a blob id`);
    if (envelope.byteLength < MIN_PAYLOAD_ENVELOPE || envelope.byteLength > UINT32_MAX) {
      throw new BackupError('INVALID_ARGUMENT', `blob ${id} has an envelope of ${envelope.byteLength} bytes`);
    }
    if (!Number.isInteger(rawLength) || rawLength < 0 || rawLength > UINT32_MAX) {
      throw new BackupError('INVALID_ARGUMENT', `blob ${id} has an invalid raw length ${String(rawLength)}`);
    }
    if (this.#ids.has(id)) return false;
    if (this.#buffer !== undefined) {
      this.#reserve(this.#size + envelope.byteLength);
      this.#buffer.set(envelope, this.#size);
    }
    this.#hash.update(envelope);
    this.#ids.add(id);
    this.#blobs.push({ id, type, offset: this.#size, length: envelope.byteLength, rawLength });
    this.#size += envelope.byteLength;
    return true;
  }

  finish(): FinishedPack {
    if (this.#buffer === undefined) throw new BackupError('INTERNAL', 'a pack builder without a buffer is finished with finishTail');
    const { headerEnvelope, blobs } = this.#seal();
    const total = this.#size + headerEnvelope.byteLength + TRAILER_BYTES;
    this.#reserve(total);
    const buffer = this.#buffer;
    buffer.set(headerEnvelope, this.#size);
    new DataView(buffer.buffer, buffer.byteOffset).setUint32(total - TRAILER_BYTES, headerEnvelope.byteLength, true);
    const bytes = buffer.subarray(0, total);
    // The blobs are hashed already (see #hash): the header and trailer complete the pack's id.
    const id = this.#hash.update(bytes.subarray(this.#size)).digest('hex');
    return { parts: [bytes], bytes, id, blobs };
  }

  /** Finishes a pack built without a buffer: the header and trailer to write after the envelopes, and the pack's id. */
  finishTail(): FinishedPackTail {
    if (this.#buffer !== undefined) throw new BackupError('INTERNAL', 'a pack builder with a buffer is finished with finish');
    const { headerEnvelope, blobs } = this.#seal();
    const tail = new Uint8Array(headerEnvelope.byteLength + TRAILER_BYTES);
    tail.set(headerEnvelope, 0);
    new DataView(tail.buffer).setUint32(headerEnvelope.byteLength, headerEnvelope.byteLength, true);
    const id = this.#hash.update(tail).digest('hex');
    return { tail, size: this.#size + tail.byteLength, id, blobs };
  }

  /** Ends the pack: its sealed header and the index entries of its blobs. */
  #seal(): { headerEnvelope: Uint8Array; blobs: IndexBlobEntry[] } {
    if (this.#finished) throw new BackupError('INTERNAL', 'this pack is already finished; start a new PackBuilder');
    if (this.#blobs.length === 0) throw new BackupError('INTERNAL', 'an empty pack cannot be finished');
    this.#finished = true;
    const blobs = this.#blobs;
    const header = Buffer.alloc(1 + HEADER_ENTRY_BYTES * blobs.length);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    header[0] = PAYLOAD_RAW;
    let at = 1;
    for (const b of blobs) {
      header[at] = BLOB_TYPE_CODE[b.type];
      view.setUint32(at + 1, b.length, true);
      view.setUint32(at + 5, b.rawLength, true);
      // Written from its text in place (add checked it is an id): no buffer per blob.
      header.write(b.id, at + 9, ID_BYTES, 'hex');
      at += HEADER_ENTRY_BYTES;
    }
    const headerEnvelope = seal(this.#key, header, metadataAad('pack-header'));
    this.#blobs = [];
    this.#ids.clear();
    return { headerEnvelope, blobs };
  }

  /** Makes the buffer hold at least `bytes`, moving what it holds into a larger one when it is too small. */
  #reserve(bytes: number): void {
    const buffer = this.#buffer!;
    if (bytes <= buffer.byteLength) return;
    const larger = new Uint8Array(Math.max(bytes, 2 * buffer.byteLength));
    larger.set(buffer.subarray(0, this.#size));
    this.#buffer = larger;
  }
}

function packCorrupt(what: string, detail: string, cause?: unknown): BackupError {
  return new BackupError(
    'CORRUPT',
    `${what} is damaged: ${detail}. Run "check", then "repair index" or "repair packs"`,
    cause === undefined ? { subject: what } : { subject: what, cause },
  );
}

/** The length of the header envelope, from a pack's last 4 (or more) bytes. */
export function parsePackTrailer(tail: Uint8Array, what = 'pack'): number {
  if (tail.byteLength < TRAILER_BYTES) throw packCorrupt(what, 'it is shorter than its 4-byte trailer');
  return new DataView(tail.buffer, tail.byteOffset + tail.byteLength - TRAILER_BYTES, TRAILER_BYTES).getUint32(0, true);
}

/** Parses a pack header's plaintext (after decompression) into index entries, checking them against the pack size. */
export function parsePackHeader(header: Uint8Array, blobBytes: number, what: string): IndexBlobEntry[] {
  if (header.byteLength % HEADER_ENTRY_BYTES !== 0) {
    throw packCorrupt(what, `its header has ${header.byteLength} bytes, not a multiple of ${HEADER_ENTRY_BYTES}`);
  }
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const blobs: IndexBlobEntry[] = [];
  let offset = 0;
  for (let at = 0; at < header.byteLength; at += HEADER_ENTRY_BYTES) {
    const type = BLOB_TYPE_BY_CODE[header[at]!];
    if (type === undefined) throw packCorrupt(what, `blob ${blobs.length} has unknown type code ${header[at]!}`);
    const length = view.getUint32(at + 1, true);
    const rawLength = view.getUint32(at + 5, true);
    if (length < MIN_PAYLOAD_ENVELOPE) {
      throw packCorrupt(what, `blob ${blobs.length} has an impossible envelope length ${length}`);
    }
    const id = bytesToId(header.subarray(at + 9, at + HEADER_ENTRY_BYTES));
    blobs.push({ id, type, offset, length, rawLength });
    offset += length;
  }
  if (offset !== blobBytes) {
    throw packCorrupt(what, `its header accounts for ${offset} blob bytes but the pack holds ${blobBytes}`);
  }
  return blobs;
}

/**
 * Reads and authenticates a pack's header through `load` (a ranged read of the pack file), returning its blobs in
 * pack order. Errors from `load` (NOT_FOUND, UNAVAILABLE, …) pass through unchanged; anything wrong with the bytes
 * is CORRUPT naming "pack <id>".
 */
export async function readPackHeader(
  load: (offset: number, length: number) => Promise<Uint8Array>,
  packSize: number,
  key: Uint8Array,
  packId: string,
): Promise<IndexBlobEntry[]> {
  const what = `pack ${packId}`;
  if (!Number.isSafeInteger(packSize) || packSize < MIN_PAYLOAD_ENVELOPE + TRAILER_BYTES) {
    throw packCorrupt(what, `its size ${String(packSize)} is too small for a header`);
  }
  const loadExact = async (offset: number, length: number): Promise<Uint8Array> => {
    const bytes = await load(offset, length);
    if (bytes.byteLength !== length) {
      throw packCorrupt(what, `reading ${length} bytes at offset ${offset} returned ${bytes.byteLength}`);
    }
    return bytes;
  };
  const tailLength = Math.min(packSize, PACK_TAIL_GUESS);
  const tail = await loadExact(packSize - tailLength, tailLength);
  const headerLength = parsePackTrailer(tail, what);
  if (headerLength < MIN_PAYLOAD_ENVELOPE || headerLength > packSize - TRAILER_BYTES) {
    throw packCorrupt(what, `its trailer names a ${headerLength}-byte header in a ${packSize}-byte file`);
  }
  const headerEnvelope =
    headerLength + TRAILER_BYTES <= tailLength
      ? tail.subarray(tailLength - TRAILER_BYTES - headerLength, tailLength - TRAILER_BYTES)
      : await loadExact(packSize - TRAILER_BYTES - headerLength, headerLength);
  const blobBytes = packSize - TRAILER_BYTES - headerLength;
  let header: Uint8Array;
  try {
    const payload = open(key, headerEnvelope, metadataAad('pack-header'), `${what} header`);
    // Every blob envelope has at least MIN_PAYLOAD_ENVELOPE bytes, which bounds how many entries can be genuine.
    const maxHeader = HEADER_ENTRY_BYTES * Math.floor(blobBytes / MIN_PAYLOAD_ENVELOPE);
    header = decodePayload(payload, `${what} header`, undefined, Math.max(1, maxHeader));
  } catch (e) {
    // Keep the message (it names the header) but make the subject the pack file itself.
    if (e instanceof BackupError && e.code === 'CORRUPT') {
      throw new BackupError('CORRUPT', e.message, { subject: what, cause: e });
    }
    throw e;
  }
  return parsePackHeader(header, blobBytes, what);
}
