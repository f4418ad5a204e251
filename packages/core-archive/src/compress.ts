/**
 * The compressed payload inside every envelope except key files (docs/format.md, "Compressed payloads"): one method
 * byte, 0x00 raw or 0x01 zstd, then the bytes. zstd is Node's built-in binding (node:zlib, Node >= 22.15).
 */
import { constants, createZstdCompress, createZstdDecompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import type { ZstdCompress, ZstdDecompress } from 'node:zlib';
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

// ---- reused zstd contexts: what workers use for thousands of blobs a second ----

type ZstdHandle = {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
};
type ZstdStream = (ZstdCompress | ZstdDecompress) & { _handle?: ZstdHandle | null; _writeState?: Uint32Array };

/**
 * The largest frame zstd can make of `n` bytes (ZSTD_COMPRESSBOUND), plus slack: an output buffer of this size lets a
 * frame be written in one call, and the slack keeps zstd from ever seeing the buffer exactly full.
 */
export function zstdFrameBound(n: number): number {
  const small = n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0;
  return n + (n >>> 8) + small + 64;
}

/**
 * One zstd stream of node:zlib driven frame by frame through its native handle, the way zlib's own synchronous
 * functions drive a fresh stream once and then discard it. Reusing the context spares the allocation and set-up of
 * zstd's tables for every blob: measured on system files, 30% of the compression time of small blobs and half the
 * decompression time. The handle is internal to Node: where a Node lacks it, `handle` is undefined and the callers
 * fall back to zlib's one-shot functions. A context that failed once is replaced, never reused.
 */
class ZstdContext<S extends ZstdStream> {
  private stream: S | undefined;
  private readonly create: () => S;
  constructor(create: () => S) {
    this.create = create;
  }

  /**
   * The native handle, or undefined when this Node does not expose it. `reset` brings it to the start of a new
   * frame; Node implements that by making a new native context WITHOUT the stream's parameters (its compression level
   * among them: measured, a level-1 or level-19 stream compresses at level 3 after a reset), so a compressor must not
   * reset: zstd starts a new frame by itself once a frame has ended, keeping the parameters.
   */
  handle(reset: boolean): { handle: ZstdHandle; state: Uint32Array; stream: S } | undefined {
    let s = this.stream;
    if (s === undefined || s.destroyed) {
      s = this.create();
      // A native error destroys the stream and emits 'error' on the next tick: caught here, read through `errored`.
      s.on('error', () => {});
      this.stream = s;
    }
    const handle = s._handle;
    const state = s._writeState;
    if (handle == null || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || !(state instanceof Uint32Array)) return undefined;
    if (reset) handle.reset();
    return { handle, state, stream: s };
  }

  close(): void {
    this.stream?.close();
    this.stream = undefined;
  }
}

/** Compresses blobs one frame each, reusing one zstd context (see ZstdContext). Not for concurrent use. */
export class ZstdCompressor {
  private readonly context: ZstdContext<ZstdCompress & ZstdStream>;
  readonly level: number;
  constructor(level: number) {
    validateCompressionOptions({ compression: 'zstd', level });
    this.level = level;
    this.context = new ZstdContext(() => createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level } }));
  }

  /**
   * Writes `data` as one complete zstd frame into `out` from `at` and returns the frame's length. `out` must have at
   * least zstdFrameBound(data.byteLength) bytes from `at`. The frame records its content size, as a one-shot
   * compression's does (zstd takes the size of an input given whole with ZSTD_e_end as pledged).
   */
  compressInto(data: Uint8Array, out: Uint8Array, at: number): number {
    const room = out.byteLength - at;
    if (room < zstdFrameBound(data.byteLength)) {
      throw new RangeError(`zstd output room ${room} is below the bound ${zstdFrameBound(data.byteLength)} for ${data.byteLength} bytes`);
    }
    // No reset (see ZstdContext.handle): every call ends its frame, or the context is closed and made anew.
    const h = this.context.handle(false);
    if (h === undefined) {
      const frame = zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: this.level }, pledgedSrcSize: data.byteLength });
      out.set(frame, at);
      return frame.byteLength;
    }
    h.handle.writeSync(constants.ZSTD_e_end, data, 0, data.byteLength, out, at, room);
    if (h.stream.destroyed) {
      this.context.close();
      throw h.stream.errored ?? new Error('zstd compression failed');
    }
    const [availOut, availIn] = h.state;
    // With room for the bound, one call consumes everything and ends the frame; anything else is a broken context.
    if (availIn !== 0 || availOut === 0) {
      this.context.close();
      throw new Error(`zstd compression stopped early (${availIn} bytes left of ${data.byteLength})`);
    }
    return room - availOut!;
  }

  close(): void {
    this.context.close();
  }
}

/** Decompresses blobs one frame each, reusing one zstd context (see ZstdContext). Not for concurrent use. */
export class ZstdDecompressor {
  private readonly context = new ZstdContext<ZstdDecompress & ZstdStream>(() => createZstdDecompress());
  /**
   * The last call succeeded: zstd ended that frame and takes the next one without a reset, which Node implements by
   * making a new native context (measured: a fifth of the time of a small blob's decompression).
   */
  private atFrameStart = false;

  /**
   * Decompresses `frame`, which must be exactly one zstd frame of exactly `length` bytes of content, into `out` from
   * `at`. Anything else (a damaged frame, more or fewer bytes, bytes after the frame) is a CORRUPT error naming
   * `what`, and leaves at most `length` bytes written. `out` needs `length` bytes from `at`, plus one when available
   * (it lets zstd show that the frame ends there without another call).
   */
  decompressInto(frame: Uint8Array, out: Uint8Array, at: number, length: number, what: string): void {
    if (out.byteLength - at < length) throw new RangeError(`decompression room ${out.byteLength - at} is below ${length}`);
    if (this.atFrameStart) {
      this.atFrameStart = false;
      try {
        this.#decode(frame, out, at, length, what, false);
        this.atFrameStart = true;
        return;
      } catch {
        // Should the context not have been at a frame's start after all (Node reports a frame that ends short as an
        // error, but zstd's state is not visible from here), this frame is decoded again from a reset context, so
        // that it fails or succeeds on its own alone.
      }
    }
    this.#decode(frame, out, at, length, what, true);
    this.atFrameStart = true;
  }

  #decode(frame: Uint8Array, out: Uint8Array, at: number, length: number, what: string, reset: boolean): void {
    const h = this.context.handle(reset);
    if (h === undefined) {
      out.set(decodePayload(withMethodByte(frame), what, length), at);
      return;
    }
    const room = Math.min(out.byteLength - at, length + 1);
    h.handle.writeSync(constants.ZSTD_e_end, frame, 0, frame.byteLength, out, at, room);
    if (h.stream.destroyed) throw corrupt(what, 'the zstd frame cannot be decompressed', h.stream.errored ?? undefined);
    let written = room - h.state[0]!;
    let left = h.state[1]!;
    if (written === room) {
      // The room is full: one more call with a byte of room tells whether the content goes on or ends here.
      const probe = new Uint8Array(1);
      h.handle.writeSync(constants.ZSTD_e_end, frame, frame.byteLength - left, left, probe, 0, 1);
      if (h.stream.destroyed) throw corrupt(what, 'the zstd frame cannot be decompressed', h.stream.errored ?? undefined);
      written += 1 - h.state[0]!;
      left = h.state[1]!;
    }
    let problem: string | undefined;
    if (written > length) problem = `the zstd frame decompresses to more than ${length} bytes`;
    else if (left !== 0) problem = 'the zstd frame is followed by other bytes';
    else if (written !== length) problem = `its plaintext has ${written} bytes where the index says ${length}`;
    if (problem !== undefined) {
      // The context may be mid-frame: a fresh one decodes the next blob.
      this.context.close();
      throw corrupt(what, problem);
    }
  }

  close(): void {
    this.context.close();
  }
}

function withMethodByte(frame: Uint8Array): Uint8Array {
  const payload = new Uint8Array(frame.byteLength + 1);
  payload[0] = PAYLOAD_ZSTD;
  payload.set(frame, 1);
  return payload;
}
