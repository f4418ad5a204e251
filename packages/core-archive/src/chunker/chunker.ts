/**
 * Content-defined chunking (docs/format.md, "Content-defined chunking"): a FastCDC-style gear hash with normalised
 * chunking (a stricter mask before the average size, a looser one after). A boundary depends only on the bytes from
 * the chunk's start, so the chunker keeps no state between chunks and an edit moves only nearby boundaries.
 */
import { readSync } from 'node:fs';
import { releaseBytes } from '../crypto/bytes.ts';
import { BackupError } from '../errors.ts';
import { gearTable } from './gear.ts';

export interface ChunkSizes {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

export interface ChunkerParams extends ChunkSizes {
  gear: Uint32Array;
}

export const DEFAULT_CHUNK_SIZES: Readonly<ChunkSizes> = {
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
};

/** Bounds on configurable sizes: the masks need 2 < log2(avg) < 30; pack headers store lengths as uint32. */
export const MIN_CHUNK_SIZE_LOWER_BOUND = 64;
export const MIN_AVG_CHUNK_SIZE = 256;
export const MAX_AVG_CHUNK_SIZE = 2 ** 26;
export const MAX_MAX_CHUNK_SIZE = 2 ** 28;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Throws INVALID_ARGUMENT unless the sizes are integers with min < avg < max, avg a power of two, within bounds. */
export function validateChunkSizes(sizes: ChunkSizes): void {
  const { minSize, avgSize, maxSize } = sizes;
  const problem =
    !Number.isInteger(minSize) || minSize < MIN_CHUNK_SIZE_LOWER_BOUND
      ? `minSize must be an integer of at least ${MIN_CHUNK_SIZE_LOWER_BOUND}`
      : !isPowerOfTwo(avgSize) || avgSize < MIN_AVG_CHUNK_SIZE || avgSize > MAX_AVG_CHUNK_SIZE
        ? `avgSize must be a power of two between ${MIN_AVG_CHUNK_SIZE} and ${MAX_AVG_CHUNK_SIZE}`
        : !Number.isInteger(maxSize) || maxSize > MAX_MAX_CHUNK_SIZE
          ? `maxSize must be an integer of at most ${MAX_MAX_CHUNK_SIZE}`
          : !(minSize < avgSize && avgSize < maxSize)
            ? 'the sizes must satisfy minSize < avgSize < maxSize'
            : undefined;
  if (problem !== undefined) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `invalid chunk sizes (min ${String(minSize)}, avg ${String(avgSize)}, max ${String(maxSize)}): ${problem}`,
    );
  }
}

/** Validates the sizes and derives the gear table from the repository's chunker secret. */
export function createChunkerParams(secret: Uint8Array, sizes: ChunkSizes = DEFAULT_CHUNK_SIZES): ChunkerParams {
  validateChunkSizes(sizes);
  return { gear: gearTable(secret), minSize: sizes.minSize, avgSize: sizes.avgSize, maxSize: sizes.maxSize };
}

/** The masks of docs/format.md step 3 as signed 32-bit values (the bit patterns are what matter). */
export function chunkMasks(avgSize: number): { maskS: number; maskL: number } {
  const bits = Math.round(Math.log2(avgSize));
  return { maskS: (0xffffffff << (32 - (bits + 2))) | 0, maskL: (0xffffffff << (32 - (bits - 2))) | 0 };
}

interface PreparedParams {
  gear: Int32Array;
  maskS: number;
  maskL: number;
}

// Signed view of the gear table and the masks, computed once per params object: adding the signed value and
// truncating with `| 0` gives the same low 32 bits as the unsigned sum, and keeps the loop in int32 arithmetic.
const prepared = new WeakMap<ChunkerParams, PreparedParams>();

function prepare(params: ChunkerParams): PreparedParams {
  let p = prepared.get(params);
  if (p === undefined) {
    validateChunkSizes(params);
    if (!(params.gear instanceof Uint32Array) || params.gear.length !== 256) {
      throw new BackupError('INVALID_ARGUMENT', 'the gear table must be a Uint32Array of 256 entries');
    }
    const { maskS, maskL } = chunkMasks(params.avgSize);
    p = { gear: new Int32Array(params.gear.buffer, params.gear.byteOffset, 256), maskS, maskL };
    prepared.set(params, p);
  }
  return p;
}

// The hash at the end of the last scan that found no boundary, so the second scan can continue from it.
let scanHash = 0;

/**
 * The gear-hash loop over data[from..to), starting from hash `h`: the index of the first byte after which
 * (h & mask) === 0, or -1 (leaving the hash in scanHash). It is a separate function of plain parameters, unrolled
 * eight times, because of how V8 treats it: written inline in cutPoint, or small enough to be inlined into it, the
 * same loop ran 2–4x slower once cutPoint was optimised (measured on Node 24).
 */
function scan(gear: Int32Array, data: Uint8Array, from: number, to: number, mask: number, h: number): number {
  let i = from;
  for (const last = to - 8; i <= last; i += 8) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & mask) === 0) return i;
    h = ((h << 1) + gear[data[i + 1]!]!) | 0;
    if ((h & mask) === 0) return i + 1;
    h = ((h << 1) + gear[data[i + 2]!]!) | 0;
    if ((h & mask) === 0) return i + 2;
    h = ((h << 1) + gear[data[i + 3]!]!) | 0;
    if ((h & mask) === 0) return i + 3;
    h = ((h << 1) + gear[data[i + 4]!]!) | 0;
    if ((h & mask) === 0) return i + 4;
    h = ((h << 1) + gear[data[i + 5]!]!) | 0;
    if ((h & mask) === 0) return i + 5;
    h = ((h << 1) + gear[data[i + 6]!]!) | 0;
    if ((h & mask) === 0) return i + 6;
    h = ((h << 1) + gear[data[i + 7]!]!) | 0;
    if ((h & mask) === 0) return i + 7;
  }
  for (; i < to; i++) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & mask) === 0) return i;
  }
  scanHash = h;
  return -1;
}

/**
 * The length of the chunk that begins at data[start], looking at data[start..end). Returns -1 when more data is
 * needed: not at end of input, no boundary found, and fewer than maxSize bytes available. At end of input with
 * nothing left (start === end) it returns 0.
 */
export function cutPoint(params: ChunkerParams, data: Uint8Array, start: number, end: number, eof: boolean): number {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= data.length)) {
    throw new BackupError('INVALID_ARGUMENT', `cutPoint range [${start}, ${end}) is outside the ${data.length}-byte buffer`);
  }
  return resumeCut(params, data, start, end, eof, 0, 0);
}

/**
 * cutPoint, continuing a search that an earlier call for the same chunk start ended with -1: the bytes before
 * start + `scanned` were hashed then, leaving hash `h` (scanHash after that call). A boundary depends only on the
 * bytes from the chunk's start and the first match wins, so resuming gives the cut a single scan would give, while
 * a reader with a small buffer does not hash the unfinished chunk again after each refill. On -1, scanHash holds
 * the hash at the end of the scanned bytes (end - start of them, or fewer than minSize: then none).
 */
function resumeCut(params: ChunkerParams, data: Uint8Array, start: number, end: number, eof: boolean, scanned: number, h: number): number {
  const { gear, maskS, maskL } = prepare(params);
  const { minSize, avgSize, maxSize } = params;
  const available = end - start;
  if (available <= minSize) {
    scanHash = 0;
    return eof ? available : -1;
  }
  const limit = start + (available < maxSize ? available : maxSize);
  const normalEnd = start + (avgSize < limit - start ? avgSize : limit - start);
  let from = start + minSize;
  if (scanned > minSize) from = start + scanned;
  else h = 0;
  let at = -1;
  if (from < normalEnd) {
    at = scan(gear, data, from, normalEnd, maskS, h);
    if (at >= 0) return at + 1 - start;
    h = scanHash;
    from = normalEnd;
  }
  at = scan(gear, data, from, limit, maskL, h);
  if (at >= 0) return at + 1 - start;
  if (available >= maxSize) return maxSize;
  return eof ? available : -1;
}

/** The chunk lengths of a whole buffer, in order (none for an empty buffer). */
export function chunkLengths(params: ChunkerParams, data: Uint8Array): number[] {
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const length = cutPoint(params, data, start, data.length, true);
    lengths.push(length);
    start += length;
  }
  return lengths;
}

export const DEFAULT_READ_SIZE = 4 * 1024 * 1024;

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Cuts what a file descriptor yields (a file, a pipe, stdin) into chunks, synchronously, with one reusable buffer.
 * The buffer is refilled only when the buffered bytes hold no boundary: the unfinished chunk is moved to the front
 * (a copy of less than maxSize bytes, usually about one average chunk) and the rest of the buffer is read behind it;
 * the search for its boundary resumes where it stopped. A buffer of maxSize + readSize bytes cuts a chunk after every
 * refill. A smaller one (a caller short of memory) is swapped, for this reader only, for one twice as large (at
 * most that size) whenever the unfinished chunk fills it. The descriptor is read from its current position and is
 * not closed here.
 */
export class FdChunkReader {
  readonly #fd: number;
  readonly #params: ChunkerParams;
  readonly #readSize: number;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  #bytesRead = 0;
  #grownBuffer: Uint8Array | undefined;
  /** bytes from #start already hashed by a search that found no boundary, and the hash after them */
  #scanned = 0;
  #hash = 0;

  /**
   * `buffer`, when given, is used instead of a new one of maxSize + readSize bytes: a caller reading many files passes
   * the same buffer each time (a fresh 12 MiB buffer per file dominated the cost of medium-sized files and left
   * garbage for the collector). A buffer smaller than that is replaced by a larger one of the reader's own when a
   * chunk does not fit (see `grown`); the caller's buffer is then left as it is.
   */
  constructor(fd: number, params: ChunkerParams, readSize: number = DEFAULT_READ_SIZE, buffer?: Uint8Array) {
    if (!Number.isInteger(readSize) || readSize < 1) {
      throw new BackupError('INVALID_ARGUMENT', `readSize must be a positive integer, got ${String(readSize)}`);
    }
    prepare(params);
    this.#fd = fd;
    this.#params = params;
    this.#readSize = readSize;
    this.#buffer = buffer !== undefined && buffer.length > 0 ? buffer : new Uint8Array(params.maxSize + readSize);
  }

  /** Bytes read from the descriptor so far (the file's size once next() has returned null). */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** The buffer the reader grew into when the caller's was too small for a chunk, or undefined (free it when done). */
  get grown(): Uint8Array | undefined {
    return this.#grownBuffer;
  }

  /**
   * The next chunk, as a view into the reader's buffer that is valid only until the next call (copy what you keep),
   * or null at end of input.
   */
  next(): Uint8Array | null {
    if (this.#start === this.#end && this.#eof) return null;
    let length = this.#start === this.#end ? -1 : this.#cut();
    while (length < 0 && !this.#eof) {
      this.#fill();
      if (this.#start === this.#end) return null;
      length = this.#cut();
    }
    // At end of input cutPoint always cuts what is left.
    if (length <= 0) {
      if (this.#start < this.#end) throw new BackupError('INTERNAL', 'the chunker found no cut at the end of the input');
      return null;
    }
    const chunk = this.#buffer.subarray(this.#start, this.#start + length);
    this.#start += length;
    this.#scanned = 0;
    this.#hash = 0;
    return chunk;
  }

  #cut(): number {
    const length = resumeCut(this.#params, this.#buffer, this.#start, this.#end, this.#eof, this.#scanned, this.#hash);
    if (length < 0) {
      this.#scanned = this.#end - this.#start;
      this.#hash = scanHash;
    }
    return length;
  }

  #fill(): void {
    let buffer = this.#buffer;
    if (this.#start > 0) {
      buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === buffer.length) {
      // The unfinished chunk fills the buffer: grow it by doubling, up to the size that always holds a chunk. Most
      // chunks that outgrow a small buffer are only a little longer than it, and a buffer of maxSize + readSize
      // (9 MiB by default) per worker for the rest of the file was a large part of a backup's peak memory; the
      // copies doubling makes cost far less than hashing the bytes they copy.
      const full = this.#params.maxSize + this.#readSize;
      const bigger = new Uint8Array(Math.min(full, Math.max(2 * buffer.length, this.#end + this.#readSize)));
      bigger.set(buffer.subarray(0, this.#end));
      // An outgrown buffer of the reader's own is freed at once (the chunks it held were valid until this call).
      if (this.#grownBuffer !== undefined) releaseBytes(this.#grownBuffer);
      this.#buffer = this.#grownBuffer = buffer = bigger;
    }
    while (this.#end < buffer.length) {
      let n: number;
      try {
        n = readSync(this.#fd, buffer, this.#end, buffer.length - this.#end, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') {
          // A non-blocking descriptor (stdin in some set-ups) has nothing yet: wait a little, synchronously.
          Atomics.wait(sleepCell, 0, 0, 5);
          continue;
        }
        throw new BackupError('IO', `reading the input failed: ${(e as Error).message}`, { cause: e });
      }
      if (n === 0) {
        this.#eof = true;
        return;
      }
      this.#end += n;
      this.#bytesRead += n;
    }
  }
}
