/**
 * The reading half of the data check: loads each selected pack in pieces of a few megabytes cut between blobs,
 * hashes the pieces in order against the pack's name and authenticates the pack's header from the last one, and
 * hands each piece to the verify pool, which opens its blobs. Memory is bounded by the bytes of the pieces in
 * flight, not by the size of packs. It runs beside the structure check, so that the worker threads decrypt while
 * the main thread walks the trees; each pack's outcome (its verdict, or why it could not be loaded) is reported as
 * it comes, and the checker decides when to judge it.
 */
import { createHash } from 'node:crypto';
import { BackupError, isBackupError, readPackHeader } from '@backup-manager/core-archive';
import type { IndexBlobEntry, Repository } from '@backup-manager/core-archive';
import { headerMismatches } from './pack-verify.ts';
import type { BadBlob, PackPiece, PackVerdict } from './pack-verify.ts';
import type { VerifyPool } from './pool.ts';
import type { PackRef } from './subset.ts';
import { throwIfAborted } from './util.ts';

export type PackOutcome = { pack: PackRef; verdict: PackVerdict } | { pack: PackRef; error: unknown };

export interface ReadPacksOptions {
  /** packs loaded at once */
  concurrency: number;
  /** the blobs the index places in a pack */
  blobsOf: (packId: string) => IndexBlobEntry[];
  signal?: AbortSignal;
  /** bytes a piece aims at (default PIECE_BYTES) */
  pieceBytes?: number;
}

export interface PackReading {
  /** Settles when every pack is done (or, after stop(), when those under way are); rejects on the first failure. */
  readonly done: Promise<void>;
  /** Starts no further pack. */
  stop(): void;
}

/**
 * Bytes a piece aims at: large enough that a piece costs one read and one message among thousands of blobs, small
 * enough that a few per worker stay within the memory of one pack. A piece only ends between blobs, so it may be
 * longer by up to one blob (8 MiB at most as the archiver cuts them).
 */
export const PIECE_BYTES = 2 * 1024 * 1024;
/** The end of a pack that its last piece always covers: there lie the header and the trailer, read from that piece. */
export const TAIL_BYTES = 256 * 1024;

export interface PiecePlan {
  /** byte ranges that tile the pack from 0 to its size, each with the blobs that lie within it */
  pieces: { start: number; end: number; blobs: { entry: IndexBlobEntry; at: number }[] }[];
  /** blobs (positions in the index's list) that reach beyond the end of the pack */
  outside: number[];
}

/**
 * Cuts a pack of `size` bytes into pieces of about `target` bytes, only where no indexed blob spans the cut and
 * never within the last `tail` bytes. The pieces cover every byte, so that their hashes in order are the file's.
 */
export function planPieces(blobs: readonly IndexBlobEntry[], size: number, target = PIECE_BYTES, tail = TAIL_BYTES): PiecePlan {
  const inside: number[] = [];
  const outside: number[] = [];
  blobs.forEach((b, i) => (b.offset + b.length > size ? outside : inside).push(i));
  inside.sort((a, b) => blobs[a]!.offset - blobs[b]!.offset);
  const pieces: PiecePlan['pieces'] = [];
  let start = 0;
  let reach = 0;
  let current: PiecePlan['pieces'][number]['blobs'] = [];
  for (const i of inside) {
    const b = blobs[i]!;
    if (b.offset >= reach && b.offset - start >= target && b.offset <= size - tail) {
      pieces.push({ start, end: b.offset, blobs: current });
      start = b.offset;
      current = [];
    }
    current.push({ entry: b, at: i });
    reach = Math.max(reach, b.offset + b.length);
  }
  if (size > start) pieces.push({ start, end: size, blobs: current });
  return { pieces, outside };
}

/**
 * Starts loading and verifying `packs` with `pool`, which it closes when done. A pack that cannot be loaded is an
 * outcome like any other (the checker names the reason); an interrupt, or a worker that dies, ends the reading with
 * that error.
 */
export function readPacks(
  repo: Repository,
  key: Uint8Array,
  pool: VerifyPool,
  packs: readonly PackRef[],
  options: ReadPacksOptions,
  onOutcome: (o: PackOutcome) => void,
): PackReading {
  let stopped = false;
  const target = options.pieceBytes ?? PIECE_BYTES;
  // A piece in each worker, and two loaded ahead: enough to keep every worker busy while the next piece loads.
  const budget = new ByteBudget((pool.size + 2) * target);
  const load = (p: PackRef, offset: number, length: number): Promise<Uint8Array> => repo.backend.load({ type: 'data', name: p.id }, offset, length);

  const onePack = async (p: PackRef): Promise<void> => {
    const blobs = options.blobsOf(p.id);
    const plan = planPieces(blobs, p.size, target, Math.min(TAIL_BYTES, target));
    const hash = createHash('sha256');
    const verifying: Promise<BadBlob[]>[] = [];
    let header: PackVerdict['header'] = { ok: false, message: 'it was not read' };
    let failure: { error: unknown } | undefined;
    for (const piece of plan.pieces) {
      const length = piece.end - piece.start;
      await budget.take(length);
      let bytes: Uint8Array;
      try {
        bytes = await load(p, piece.start, length);
        if (bytes.byteLength !== length) throw new BackupError('INVALID_RANGE', `reading ${length} bytes at offset ${piece.start} of pack ${p.id.slice(0, 12)} returned ${bytes.byteLength}: the file changed while being read`);
        hash.update(bytes);
        if (piece.end === p.size) header = await readHeader(p, blobs, bytes, piece.start, load, key);
      } catch (e) {
        budget.give(length);
        failure = { error: e };
        break;
      }
      // The pool takes the buffer (it is transferred to a worker): hashed and header read before.
      const task: PackPiece = { packId: p.id, start: piece.start, bytes, blobs: piece.blobs };
      const v = pool.verifyPiece(task);
      v.then(
        () => budget.give(length),
        () => budget.give(length),
      );
      verifying.push(v);
    }
    // Every piece handed over is waited for, also when a later one failed to load: a worker's failure ends the check.
    const results = await Promise.all(verifying);
    if (failure) {
      throwIfAborted(options.signal, 'verify');
      if (isBackupError(failure.error) && failure.error.code === 'INTERRUPTED') throw failure.error;
      onOutcome({ pack: p, error: failure.error });
      return;
    }
    if (plan.pieces.length === 0) header = await readHeader(p, blobs, new Uint8Array(0), 0, load, key);
    const bad = results.flat();
    for (const at of plan.outside) {
      const b = blobs[at]!;
      bad.push({ id: b.id, type: b.type, offset: b.offset, length: b.length, at, reason: 'outside-pack', message: `bytes ${b.offset}–${b.offset + b.length} lie beyond the end of the ${p.size}-byte pack` });
    }
    bad.sort((a, b) => a.at - b.at);
    onOutcome({ pack: p, verdict: { packId: p.id, size: p.size, hashMatches: hash.digest('hex') === p.id, header, bad, blobsChecked: blobs.length } });
  };

  let next = 0;
  const lane = async (): Promise<void> => {
    while (!stopped && next < packs.length) {
      throwIfAborted(options.signal, 'verify');
      await onePack(packs[next++]!);
    }
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(options.concurrency, packs.length)) }, async () => {
    try {
      await lane();
    } catch (e) {
      // One failure ends the reading: the other lanes finish the pack they hold and start no other.
      stopped = true;
      throw e;
    }
  });
  const done = Promise.allSettled(lanes).then(async (results) => {
    await pool.close();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
  // The checker awaits `done` only once its structure check is over: until then a failure must not count as
  // unhandled (it is kept, and thrown when awaited).
  done.catch(() => {});
  return {
    done,
    stop: () => {
      stopped = true;
    },
  };
}

/**
 * Authenticates the pack's header from its last piece (`tail`, which starts at byte `start`), reading from the
 * backend only what lies before that piece (a header larger than TAIL_BYTES), and compares it with the index.
 * Damage is the verdict's; a failure to load is thrown, as for any piece.
 */
async function readHeader(
  p: PackRef,
  blobs: readonly IndexBlobEntry[],
  tail: Uint8Array,
  start: number,
  load: (p: PackRef, offset: number, length: number) => Promise<Uint8Array>,
  key: Uint8Array,
): Promise<PackVerdict['header']> {
  let loadFailed = false;
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    if (offset >= start && offset + length <= start + tail.byteLength) return tail.subarray(offset - start, offset - start + length);
    try {
      return await load(p, offset, length);
    } catch (e) {
      loadFailed = true;
      throw e;
    }
  };
  try {
    return { ok: true, mismatches: headerMismatches(blobs, await readPackHeader(read, p.size, key, p.id)) };
  } catch (e) {
    if (loadFailed) throw e;
    return { ok: false, message: (e as Error).message };
  }
}

/**
 * A counting semaphore over bytes, served in order. A request larger than the whole budget (a piece that no cut
 * could shorten, in a pack with a damaged index) waits until everything is free and then runs alone.
 */
export class ByteBudget {
  private readonly capacity: number;
  private free: number;
  private readonly waiting: { bytes: number; go: () => void }[] = [];

  constructor(bytes: number) {
    this.capacity = bytes;
    this.free = bytes;
  }

  async take(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.free -= bytes;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ bytes, go }));
  }

  give(bytes: number): void {
    this.free += bytes;
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const next = this.waiting.shift()!;
      this.free -= next.bytes;
      next.go();
    }
  }

  private fits(bytes: number): boolean {
    return bytes <= this.free || this.free === this.capacity;
  }
}
