/**
 * The CPU-heavy half of the data check. A pack is read in pieces of a few megabytes, each holding whole blobs; the
 * thread that reads them authenticates its header (headerMismatches compares it with the index), and the pieces go
 * in order to one worker thread (verify-worker.ts), or with zero workers stay on the caller's thread, which hashes
 * them against the pack's name (PackHashes) and opens every blob in them: decrypt, decompress, re-hash against the
 * blob id.
 */
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import fs from 'node:fs';
import { BlobOpener, idToBytes, readLocalRangeSync } from '@backup-manager/core-archive/pack-reading';
import type { IndexBlobEntry, LocalFile } from '@backup-manager/core-archive/pack-reading';

/**
 * A piece of a pack file: bytes `start` to `start + length`, and the indexed blobs that lie within. Its bytes are
 * in memory, or read by the thread that opens it from the local file where the pack lies (see PieceFile).
 */
export interface PackPiece {
  packId: string;
  start: number;
  bytes: Uint8Array | PieceFile;
  /** the blobs, with their offsets in the pack (not in the piece), and their position in the index's list */
  blobs: { entry: IndexBlobEntry; at: number }[];
  /** the pack's running SHA-256 (see PackHashes) takes this piece's bytes, and with `last` gives its digest */
  hash?: PieceHash;
}

export interface PieceHash {
  stream: number;
  last: boolean;
}

/**
 * A piece whose bytes the thread that opens it reads itself (Backend.localFile): the thread that plans the pieces
 * then reads nothing, and a worker never waits for it to be free before it has bytes to work on.
 */
export interface PieceFile {
  file: LocalFile;
  length: number;
}

/**
 * A piece as it crosses to a worker thread: its blobs as a table instead of an object each. Copying the entry
 * objects (each with its property names) cost the main thread, which feeds the workers, about a quarter of a second
 * on a repository of 55,000 blobs (in postMessage, measured); a typed array and an array of ids cost little.
 */
export interface PieceMessage {
  packId: string;
  start: number;
  bytes: Uint8Array | PieceFile;
  table: BlobTable;
  hash?: PieceHash;
}

/** Blob i: `ids[i]`, and from `fields[i * FIELDS]` its offset, length, rawLength, position in the index's list, type. */
export interface BlobTable {
  ids: string[];
  fields: Float64Array;
}

const FIELDS = 5;
const TYPE_OF: readonly IndexBlobEntry['type'][] = ['data', 'tree'];

/** The table of `blobs`; undefined when one of them has a type the table cannot carry (then the objects are sent). */
export function toBlobTable(blobs: PackPiece['blobs']): BlobTable | undefined {
  const ids = new Array<string>(blobs.length);
  const fields = new Float64Array(blobs.length * FIELDS);
  for (let i = 0; i < blobs.length; i++) {
    const { entry, at } = blobs[i]!;
    const type = entry.type === 'data' ? 0 : entry.type === 'tree' ? 1 : undefined;
    if (type === undefined || typeof entry.id !== 'string') return undefined;
    ids[i] = entry.id;
    const f = i * FIELDS;
    fields[f] = entry.offset;
    fields[f + 1] = entry.length;
    fields[f + 2] = entry.rawLength;
    fields[f + 3] = at;
    fields[f + 4] = type;
  }
  return { ids, fields };
}

/** The piece's blobs back as entries (what `verify` reads, whichever form the piece came in). */
function entriesOf(piece: PackPiece | PieceMessage): PackPiece['blobs'] {
  if ('blobs' in piece) return piece.blobs;
  const { ids, fields } = piece.table;
  const out: PackPiece['blobs'] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const f = i * FIELDS;
    out[i] = { entry: { id: ids[i]!, type: TYPE_OF[fields[f + 4]!]!, offset: fields[f]!, length: fields[f + 1]!, rawLength: fields[f + 2]! }, at: fields[f + 3]! };
  }
  return out;
}

export interface BadBlob {
  id: string;
  type: IndexBlobEntry['type'];
  offset: number;
  length: number;
  reason: 'outside-pack' | 'unreadable' | 'hash-mismatch';
  message: string;
  /** position of the blob in the index's list of the pack */
  at: number;
}

export interface PackVerdict {
  packId: string;
  size: number;
  /** sha256 of the file equals its name */
  hashMatches: boolean;
  /** the header authenticates, and these index entries disagree with it; or why it cannot be read */
  header: { ok: true; mismatches: HeaderMismatch[] } | { ok: false; message: string };
  /** in the order of the index's list */
  bad: BadBlob[];
  blobsChecked: number;
}

/** An index entry that the pack's header does not confirm, and why. */
export interface HeaderMismatch {
  entry: IndexBlobEntry;
  why: string;
}

/** The index entries of a pack that its (authenticated) header does not confirm: missing, of another type, or placed elsewhere. */
export function headerMismatches(indexed: readonly IndexBlobEntry[], header: readonly IndexBlobEntry[]): HeaderMismatch[] {
  const byId = new Map(header.map((h) => [h.id, h]));
  const wrong: HeaderMismatch[] = [];
  for (const e of indexed) {
    const h = byId.get(e.id);
    if (!h) wrong.push({ entry: e, why: 'the pack does not hold it' });
    else if (h.type !== e.type) wrong.push({ entry: e, why: `the header says ${h.type}, the index ${e.type}` });
    else if (h.offset !== e.offset || h.length !== e.length || h.rawLength !== e.rawLength) {
      wrong.push({ entry: e, why: `the header places it at ${h.offset}+${h.length} (raw ${h.rawLength}), the index at ${e.offset}+${e.length} (raw ${e.rawLength})` });
    }
  }
  return wrong;
}

/**
 * The running SHA-256 of packs whose pieces come one after another, in order, to one thread (a stream each): the
 * thread that opens a piece's blobs hashes its bytes first, so that the thread reading the pack does not.
 */
export class PackHashes {
  readonly #running = new Map<number, Hash>();
  /** streams with a piece that could not be read, until their last piece */
  readonly #failed = new Set<number>();

  /** A piece of the stream could not be read: its hash is dropped, and its later pieces are skipped (see skips). */
  fail(hash: PieceHash): void {
    this.#running.delete(hash.stream);
    if (!hash.last) this.#failed.add(hash.stream);
  }

  /**
   * Whether the piece comes after one of its stream that could not be read: the pack's outcome is that failure, so
   * the piece is neither hashed nor opened. The stream's last piece ends this.
   */
  skips(hash: PieceHash): boolean {
    if (!this.#failed.has(hash.stream)) return false;
    if (hash.last) this.#failed.delete(hash.stream);
    return true;
  }

  /** Adds the piece's bytes (before anything changes them) to its stream; returns the digest (hex) after the last. */
  update(hash: PieceHash, bytes: Uint8Array): string | undefined {
    let h = this.#running.get(hash.stream);
    if (h === undefined) this.#running.set(hash.stream, (h = createHash('sha256')));
    h.update(bytes);
    if (!hash.last) return undefined;
    this.#running.delete(hash.stream);
    return h.digest('hex');
  }

  /** Forgets a stream that ends early (a later piece could not be loaded). */
  drop(stream: number): void {
    this.#running.delete(stream);
    this.#failed.delete(stream);
  }
}

/** What became of a piece: its failing blobs, its pack's digest after the last piece, or why it could not be read. */
export interface PieceResult {
  bad: BadBlob[];
  digest?: string;
  /** the piece's bytes could not be read: the outcome of its whole pack is this failure */
  loadError?: { code: string; message: string };
}

/**
 * Runs pieces on one thread (a worker, or the caller's when there are none), one after another: reads those given
 * as a PieceFile into one buffer it keeps, hashes each piece of a stream against its pack, and opens its blobs.
 */
export class PieceRunner {
  readonly #verifier: BlobVerifier;
  readonly #hashes = new PackHashes();
  #buffer = new Uint8Array(0);

  constructor(key: Uint8Array) {
    this.#verifier = new BlobVerifier(key);
  }

  /** Bytes in memory are handed over: they are decrypted in place. */
  run(piece: PackPiece | PieceMessage): PieceResult {
    const { hash } = piece;
    if (hash && this.#hashes.skips(hash)) return { bad: [] };
    let bytes: Uint8Array;
    try {
      bytes = piece.bytes instanceof Uint8Array ? piece.bytes : this.#read(piece.packId, piece.start, piece.bytes);
    } catch (e) {
      if (hash) this.#hashes.fail(hash);
      const code = (e as { code?: unknown }).code;
      return { bad: [], loadError: { code: typeof code === 'string' ? code : 'IO', message: (e as Error).message ?? String(e) } };
    }
    // Hashed before its blobs are decrypted in place.
    const digest = hash ? this.#hashes.update(hash, bytes) : undefined;
    const bad = this.#verifier.verify({ ...piece, bytes }, true);
    return digest === undefined ? { bad } : { bad, digest };
  }

  /** Forgets a stream that ends early (a later piece was never handed over). */
  drop(stream: number): void {
    this.#hashes.drop(stream);
  }

  close(): void {
    this.#verifier.close();
    this.#buffer = new Uint8Array(0);
  }

  #read(packId: string, start: number, from: PieceFile): Uint8Array {
    // Kept from piece to piece (pieces are about PIECE_BYTES, larger by at most a blob): a fresh buffer each time
    // would be memory the kernel maps and zeroes anew for every piece.
    if (this.#buffer.byteLength < from.length) this.#buffer = new Uint8Array(Math.ceil(from.length / BUFFER_STEP) * BUFFER_STEP);
    const bytes = this.#buffer.subarray(0, from.length);
    readLocalRangeSync({ type: 'data', name: packId }, from.file, start, bytes);
    return bytes;
  }
}

const BUFFER_STEP = 1024 * 1024;

/**
 * Opens the blobs of pieces, one piece after another on one thread. It keeps what every blob would otherwise
 * allocate anew: the imported key, a zstd context and the buffer plaintexts are decompressed into (each is hashed,
 * then dropped). `verify` runs without yielding, so calls never share the buffers.
 */
export class BlobVerifier {
  private readonly opener: BlobOpener;

  constructor(key: Uint8Array) {
    this.opener = new BlobOpener(key);
  }

  /**
   * The blobs of the piece that fail, in the piece's order. With `consume`, the caller hands over the piece's bytes
   * (already hashed, needed no more): a blob that shares no byte with another of the piece is decrypted in place,
   * which spares a buffer as large as the largest blob.
   */
  verify(piece: (PackPiece | PieceMessage) & { bytes: Uint8Array }, consume = false): BadBlob[] {
    const { packId, start, bytes } = piece;
    const bad: BadBlob[] = [];
    const blobs = entriesOf(piece);
    // In place only where the blob shares no byte with another: a damaged index may list blobs that overlap, and
    // decrypting one of them in place would spoil the other's bytes. The reader lists a piece's blobs by offset;
    // a list out of that order is not done in place at all.
    const ordered = blobs.every((x, j) => j === 0 || blobs[j - 1]!.entry.offset <= x.entry.offset);
    let reach = 0;
    for (let i = 0; i < blobs.length; i++) {
      const { entry: b, at } = blobs[i]!;
      const next = blobs[i + 1]?.entry;
      const inPlace = consume && ordered && b.offset >= reach && (next === undefined || b.offset + b.length <= next.offset);
      reach = Math.max(reach, b.offset + b.length);
      const where = { id: b.id, type: b.type, offset: b.offset, length: b.length, at };
      const from = b.offset - start;
      if (from < 0 || from + b.length > bytes.byteLength) {
        // The reader cuts pieces between blobs: a blob outside its piece is a bug, never a verdict on the data.
        throw new Error(`blob ${b.id.slice(0, 12)} at ${b.offset}+${b.length} is not within the piece ${start}+${bytes.byteLength} of pack ${packId.slice(0, 12)}`);
      }
      let digest: string;
      try {
        digest = this.opener.digest(b.type, idToBytes(b.id), bytes.subarray(from, from + b.length), b.rawLength, `pack ${packId.slice(0, 12)} blob ${b.id.slice(0, 12)}`, inPlace);
      } catch (e) {
        bad.push({ ...where, reason: 'unreadable', message: (e as Error).message });
        continue;
      }
      if (digest !== b.id) {
        bad.push({ ...where, reason: 'hash-mismatch', message: 'it decrypts, but the SHA-256 of its content differs from its id' });
      }
    }
    return bad;
  }

  close(): void {
    this.opener.close();
  }
}

/** SHA-256 of each file, or the reason it could not be read. */
export function hashFilesSync(paths: readonly string[]): ({ sha256: string } | { error: string })[] {
  return paths.map((p) => {
    try {
      return { sha256: hashFileSync(p) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  });
}

let buffer: Buffer | undefined;

/** SHA-256 of a local file, read in 4 MiB pieces. */
export function hashFileSync(path: string): string {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const h = createHash('sha256');
    const buf = (buffer ??= Buffer.allocUnsafe(4 * 1024 * 1024));
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}
