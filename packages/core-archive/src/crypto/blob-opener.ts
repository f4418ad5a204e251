/**
 * Opening many blobs one after another when their plaintext is only looked at, never kept (the data check hashes
 * each blob and drops it): the same checks as openBlob (crypto/blob.ts), with the plaintext decompressed into one
 * reused buffer by one reused zstd context, and the key imported once, so that a blob costs no allocation beyond the
 * cipher's own output, which is freed as soon as the blob is done.
 */
import { createDecipheriv, createSecretKey, hash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { BackupError } from '../errors.ts';
import type { BlobType } from '../format.ts';
import { decodePayload, DEFAULT_MAX_PAYLOAD, PAYLOAD_RAW, PAYLOAD_ZSTD, ZstdDecompressor } from '../compress.ts';
import { releaseBytes } from './bytes.ts';
import { authenticationError, blobAad, CIPHER_PIECE, cipherInto, ENVELOPE_OVERHEAD, KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aead.ts';

/**
 * Opens blobs into a buffer it owns. Not for concurrent use; one per thread. The plaintext `open` returns is a view
 * that is valid only until the next call to `open` (or `close`): hash or copy it before asking for the next blob.
 */
export class BlobOpener {
  readonly #key: KeyObject;
  readonly #zstd = new ZstdDecompressor();
  #scratch = new Uint8Array(0);
  /** where the payloads of large envelopes are decrypted, slice by slice (see #decrypt) */
  #payloadBuffer = new Uint8Array(0);
  /** the cipher output behind the last plaintext, freed at the next call */
  #payload: Uint8Array | undefined;

  constructor(key: Uint8Array) {
    if (key.byteLength !== KEY_BYTES) {
      throw new BackupError('INVALID_ARGUMENT', `an encryption key is ${KEY_BYTES} bytes, got ${key.byteLength}`);
    }
    this.#key = createSecretKey(key);
  }

  /**
   * The blob's plaintext, exactly `rawLength` bytes, after authenticating `envelope` under the key with the blob's
   * type and id bound in, as openBlob does. Errors are openBlob's: CORRUPT naming `what`.
   */
  open(type: BlobType, id: Uint8Array, envelope: Uint8Array, rawLength: number, what: string): Uint8Array {
    this.#release();
    const payload = this.#decrypt(envelope, blobAad(type, id), what);
    if (payload.buffer !== this.#payloadBuffer.buffer) this.#payload = payload;
    return this.#plaintext(payload, rawLength, what);
  }

  #plaintext(payload: Uint8Array, rawLength: number, what: string): Uint8Array {
    const method = payload[0];
    if (method === PAYLOAD_RAW && payload.byteLength - 1 === rawLength) return payload.subarray(1);
    // A plaintext larger than any blob the archiver makes is decoded the ordinary way, whose output grows with what
    // the frame really holds, so that a damaged index entry cannot make this thread reserve gigabytes up front.
    if (method === PAYLOAD_ZSTD && Number.isSafeInteger(rawLength) && rawLength >= 0 && rawLength <= DEFAULT_MAX_PAYLOAD) {
      // Grown by doubling, but to no more than the next multiple of GROWTH_STEP (doubling alone would hold up to twice
      // the largest blob); the outgrown buffer is freed at once, as nothing may use a plaintext after the next call.
      if (this.#scratch.byteLength < rawLength + 1) {
        const size = Math.min(Math.max(rawLength + 1, 2 * this.#scratch.byteLength), Math.ceil((rawLength + 1) / GROWTH_STEP) * GROWTH_STEP);
        releaseBytes(this.#scratch);
        this.#scratch = new Uint8Array(size);
      }
      this.#zstd.decompressInto(payload.subarray(1), this.#scratch, 0, rawLength, what);
      return this.#scratch.subarray(0, rawLength);
    }
    // Anything else (raw of the wrong length, an unknown method, an empty payload) fails there, saying why.
    return decodePayload(payload, what, rawLength);
  }

  /**
   * The SHA-256 (hex) of the blob's plaintext, with the checks of `open`, for callers that only compare it with the
   * id. With `inPlace` the envelope, which the caller owns and no longer needs, is decrypted into itself (its bytes
   * are overwritten) rather than into a buffer of this opener's as large as the largest blob.
   */
  digest(type: BlobType, id: Uint8Array, envelope: Uint8Array, rawLength: number, what: string, inPlace = false): string {
    this.#release();
    const payload = this.#decrypt(envelope, blobAad(type, id), what, inPlace);
    if (payload.buffer !== this.#payloadBuffer.buffer && payload.buffer !== envelope.buffer) this.#payload = payload;
    return hash('sha256', this.#plaintext(payload, rawLength, what));
  }

  close(): void {
    this.#release();
    this.#zstd.close();
    this.#scratch = new Uint8Array(0);
    this.#payloadBuffer = new Uint8Array(0);
  }

  /** With `inPlace`, a large payload is decrypted into the envelope's own bytes (see digest). */
  #decrypt(envelope: Uint8Array, aad: Uint8Array, what: string, inPlace = false): Uint8Array {
    if (envelope.byteLength < ENVELOPE_OVERHEAD) throw authenticationError(what);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, envelope.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(envelope.subarray(envelope.byteLength - TAG_BYTES));
    const ciphertext = envelope.subarray(NONCE_BYTES, envelope.byteLength - TAG_BYTES);
    try {
      if (ciphertext.byteLength <= CIPHER_PIECE) {
        const plaintext = decipher.update(ciphertext);
        const rest = decipher.final();
        return rest.byteLength === 0 ? plaintext : Buffer.concat([plaintext, rest]);
      }
      // A large payload is decrypted in slices into a buffer kept from blob to blob: the cipher's output for the
      // whole would be a fresh allocation above malloc's mmap threshold, whose pages the kernel maps and zeroes
      // anew for every blob (measured: twice the CPU of the decryption itself, most of it in the kernel).
      if (!inPlace && this.#payloadBuffer.byteLength < ciphertext.byteLength) {
        this.#payloadBuffer = new Uint8Array(Math.max(ciphertext.byteLength, 2 * this.#payloadBuffer.byteLength));
      }
      // In place, each slice's output (a copy, as long as its input) lands on the ciphertext already consumed.
      const out = inPlace ? ciphertext : this.#payloadBuffer;
      let at = cipherInto(decipher, ciphertext, out, 0);
      const rest = decipher.final();
      out.set(rest, at);
      at += rest.byteLength;
      return out.subarray(0, at);
    } catch (e) {
      throw authenticationError(what, e);
    }
  }

  /**
   * Frees the last cipher output now rather than at V8's next collection, which lets dead buffers of a fast loop
   * pile up by the tens of megabytes. Only an output that is a whole buffer of its own is freed: a slice of Node's
   * shared pool is left to the collector.
   */
  #release(): void {
    const p = this.#payload;
    this.#payload = undefined;
    if (p !== undefined) releaseBytes(p);
  }
}

/** The granularity of the decompression buffer's size beyond its doubling. */
const GROWTH_STEP = 256 * 1024;
