/**
 * The compressed payload inside every envelope except key files (docs/format.md, "Compressed payloads"): one method
 * byte, 0x00 raw or 0x01 zstd, then the bytes. zstd is Node's built-in binding (node:zlib, Node >= 22.15).
 */
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { BackupError } from './errors.ts';
import { ownedBytes } from './crypto/bytes.ts';

export type CompressionOptions = { compression: 'zstd' | 'none'; level: number };

export const PAYLOAD_RAW = 0x00;
export const PAYLOAD_ZSTD = 0x01;

/** Decompressed size allowed when the caller does not know the exact length, so a hostile frame cannot exhaust memory. */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;

/** zstd's own bounds (ZSTD_minCLevel() and ZSTD_maxCLevel()); Node would silently clamp anything outside. */
export const ZSTD_MIN_LEVEL = -131072;
export const ZSTD_MAX_LEVEL = 22;

export function validateCompressionOptions(opts: CompressionOptions): void {
  if (opts.compression !== 'zstd' && opts.compression !== 'none') {
    throw new BackupError('INVALID_ARGUMENT', `unknown compression "${String(opts.compression)}": use "zstd" or "none"`);
  }
  if (
    opts.compression === 'zstd' &&
    !(Number.isInteger(opts.level) && opts.level >= ZSTD_MIN_LEVEL && opts.level <= ZSTD_MAX_LEVEL)
  ) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `zstd compression level ${String(opts.level)} is out of range: use an integer up to ${ZSTD_MAX_LEVEL} (3 is a good default)`,
    );
  }
}

/**
 * The payload as pieces whose concatenation is the encoded payload: [method byte, body]. Sealing the pieces one after
 * the other avoids copying a large raw chunk just to put one byte in front of it. The body may be `data` itself.
 */
export function encodePayloadParts(data: Uint8Array, opts: CompressionOptions): [Uint8Array, Uint8Array] {
  validateCompressionOptions(opts);
  if (opts.compression === 'zstd' && data.byteLength > 0) {
    const frame = zstdCompressSync(data, {
      params: { [constants.ZSTD_c_compressionLevel]: opts.level },
      pledgedSrcSize: data.byteLength,
    });
    // Store the frame only when method byte + frame is strictly smaller than method byte + raw.
    if (frame.byteLength < data.byteLength) return [Uint8Array.of(PAYLOAD_ZSTD), frame];
  }
  return [Uint8Array.of(PAYLOAD_RAW), data];
}

export function encodePayload(data: Uint8Array, opts: CompressionOptions): Uint8Array {
  const [header, body] = encodePayloadParts(data, opts);
  const out = new Uint8Array(1 + body.byteLength);
  out.set(header, 0);
  out.set(body, 1);
  return out;
}

function corrupt(what: string, detail: string, cause?: unknown): BackupError {
  return new BackupError(
    'CORRUPT',
    `${what} is damaged: ${detail}. Run "check" to find what else is affected, then "repair"`,
    cause === undefined ? { subject: what } : { subject: what, cause },
  );
}

/**
 * The raw bytes of an encoded payload. For a raw payload the result is a view into `payload` (no copy).
 * `expectedLength`, when given, must match exactly; otherwise the output is capped at `maxLength`.
 */
export function decodePayload(
  payload: Uint8Array,
  what: string,
  expectedLength?: number,
  maxLength: number = DEFAULT_MAX_PAYLOAD,
): Uint8Array {
  if (expectedLength !== undefined && !(Number.isSafeInteger(expectedLength) && expectedLength >= 0)) {
    throw new BackupError('INVALID_ARGUMENT', `expected length ${String(expectedLength)} for ${what} is not a byte count`);
  }
  if (payload.byteLength === 0) throw corrupt(what, 'the payload is empty');
  const method = payload[0];
  const body = payload.subarray(1);
  let raw: Uint8Array;
  if (method === PAYLOAD_RAW) {
    raw = body;
  } else if (method === PAYLOAD_ZSTD) {
    const limit = expectedLength ?? maxLength;
    try {
      raw = ownedBytes(zstdDecompressSync(body, { maxOutputLength: Math.max(1, limit), rejectGarbageAfterEnd: true }));
    } catch (e) {
      if (e instanceof RangeError) {
        throw corrupt(what, `the zstd frame decompresses to more than ${limit} bytes`, e);
      }
      throw corrupt(what, 'the zstd frame cannot be decompressed', e);
    }
  } else {
    throw corrupt(what, `unknown compression method byte 0x${(method ?? 0).toString(16).padStart(2, '0')}`);
  }
  if (expectedLength !== undefined && raw.byteLength !== expectedLength) {
    throw corrupt(what, `its plaintext has ${raw.byteLength} bytes where the index says ${expectedLength}`);
  } else if (expectedLength === undefined && raw.byteLength > maxLength) {
    throw corrupt(what, `its plaintext has ${raw.byteLength} bytes, more than the ${maxLength} allowed`);
  }
  return raw;
}
