/**
 * The reading half of the data check: loads each selected pack in pieces of a few megabytes cut between blobs (or,
 * from a local repository, lets the workers read the pieces themselves), authenticates the pack's header, and hands
 * the pieces in order to one worker of the verify pool, which hashes them against the pack's name and opens their
 * blobs. Memory is bounded by the bytes of the pieces in flight, not by the size of packs. It runs beside the
 * structure check, and may start before the index is loaded (packs are then cut by their own headers), so that the
 * worker threads decrypt while the main thread loads the index and walks the trees; each pack's outcome (its
 * verdict, or why it could not be loaded) is reported as it comes, and the checker decides when to judge it.
 */
import { createHash } from 'node:crypto';
import { BackupError, isBackupError, readPackHeader } from '@backup-manager/core-archive';
import type { IndexBlobEntry, Repository } from '@backup-manager/core-archive';
import { headerMismatches } from './pack-verify.ts';
import type { BadBlob, PackPiece, PackVerdict, PieceResult } from './pack-verify.ts';
import { loadFailure } from './pool.ts';
import type { VerifyPool } from './pool.ts';
import type { PackRef } from './subset.ts';
import { throwIfAborted } from './util.ts';

export type PackOutcome = { pack: PackRef; verdict: PackVerdict } | { pack: PackRef; error: unknown };

export interface ReadPacksOptions {
  /** packs loaded at once */
  concurrency: number;
  /** the blobs the index places in a pack; called only once `indexReady` has settled */
  blobsOf: (packId: string) => IndexBlobEntry[];
  /**
   * Given while the index is still loading: settles when blobsOf may be called. A pack started before then is cut
   * into pieces by its own authenticated header, so that the workers need not wait for the index, and its outcome is
   * reconciled with the index once it is loaded (see reconcile). Rejecting ends the reading with that error.
   */
  indexReady?: Promise<void>;
  /** more packs come through PackReading.add, until PackReading.seal */
  open?: boolean;
  /** packs that turned out not to be wanted after all, asked before each pack starts */
  skip?: (packId: string) => boolean;
  signal?: AbortSignal;
  /** bytes a piece aims at (default PIECE_BYTES) */
  pieceBytes?: number;
}

export interface PackReading {
  /** Settles when every pack is done (or, after stop(), when those under way are); rejects on the first failure. */
  readonly done: Promise<void>;
  /** Queues more packs (a reading started with `open`). */
  add(packs: readonly PackRef[]): void;
  /** No more packs come: the reading ends once the queued ones are done. */
  seal(): void;
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
  let sealed = !options.open;
  const queue = [...packs];
  const wake: (() => void)[] = [];
  const wakeAll = (): void => {
    for (const w of wake.splice(0)) w();
  };
  let indexLoaded = options.indexReady === undefined;
  /** packs cut by their headers whose judging waits for the index */
  let awaitingIndex = 0;
  const later: Promise<void>[] = [];
  options.indexReady?.then(
    () => {
      indexLoaded = true;
    },
    () => {},
  );
  const target = options.pieceBytes ?? PIECE_BYTES;
  // A local repository's packs are read by the threads that open them (Backend.localFile): this thread then only
  // plans pieces, and a worker has its next pieces queued whatever this thread is busy with (a large tree, a
  // collection), instead of waiting for it to read them.
  const localFile = repo.backend.localFile?.bind(repo.backend);

  // Per worker, the piece it opens and two loaded ahead: enough to keep it busy while the next piece loads. (Each
  // worker has its own, as a pack's pieces all go to one worker: the packs of a slower one must not hold it all.)
  const budgets = Array.from({ length: Math.max(1, pool.size) }, () => new ByteBudget(3 * target));
  /** for the blobs opened alone (see reconcile), which go to any worker */
  const alone = new ByteBudget(3 * target);
  /** Exactly `length` bytes of the pack from `offset`: a shorter answer means the file changed while being read. */
  const load = async (p: PackRef, offset: number, length: number): Promise<Uint8Array> => {
    const bytes = await repo.backend.load({ type: 'data', name: p.id }, offset, length);
    if (bytes.byteLength !== length) throw new BackupError('INVALID_RANGE', `reading ${length} bytes at offset ${offset} of pack ${p.id.slice(0, 12)} returned ${bytes.byteLength}: the file changed while being read`);
    return bytes;
  };

  /**
   * The pack's authenticated header, when the index is not loaded yet and the header reads: then the pack is cut by
   * it. Any failure (a damaged header, a failed load) leaves the pack to the ordinary reading planned by the index,
   * which reports it exactly as it always does.
   */
  const earlyHeader = async (p: PackRef): Promise<IndexBlobEntry[] | undefined> => {
    // The packs waiting for the index hold their header's entries: a few, not a whole repository's worth.
    if (indexLoaded || awaitingIndex >= 2 * options.concurrency) return undefined;
    try {
      return await readPackHeader((offset, length) => load(p, offset, length), p.size, key, p.id);
    } catch {
      throwIfAborted(options.signal, 'verify');
      return undefined;
    }
  };

  /** Reads and verifies a pack; a pack cut by its header is judged `later`, once the index is loaded. */
  const onePack = async (p: PackRef): Promise<{ later: Promise<void> } | undefined> => {
    const headerEntries = await earlyHeader(p);
    if (!headerEntries) await options.indexReady;
    const blobs = headerEntries ?? options.blobsOf(p.id);
    const plan = planPieces(blobs, p.size, target, Math.min(TAIL_BYTES, target));
    const verifying: Promise<PieceResult>[] = [];
    let header: PackVerdict['header'] = { ok: false, message: 'it was not read' };
    let failure: { error: unknown } | undefined;
    let digest: Promise<string | { error: string }> | string | undefined = plan.pieces.length === 0 ? createHash('sha256').digest('hex') : undefined;
    if (localFile) {
      // Every piece is handed over at once (their bytes are read there, so they cost no memory here); the header is
      // read here meanwhile.
      const file = localFile({ type: 'data', name: p.id });
      const pieceOf = (piece: PiecePlan['pieces'][number]): PackPiece => ({ packId: p.id, start: piece.start, bytes: { file, length: piece.end - piece.start }, blobs: piece.blobs });
      if (pool.size > 1 && plan.pieces.length > 1 && sealed && queue.length < options.concurrency) {
        // One of the last packs: its pieces go to whichever worker is free, and one of them hashes the whole file,
        // so that no worker is left with a pack of its own to finish while the others have nothing to do.
        for (const piece of plan.pieces) verifying.push(pool.verifyInStream(pieceOf(piece)));
        digest = pool.hashFiles([file.path]).then((d) => ('sha256' in d[0]! ? d[0].sha256 : d[0]!));
      } else {
        // The pack's pieces go in order to one worker, which hashes them against the pack's name.
        const stream = pool.openStream();
        plan.pieces.forEach((piece, k) => verifying.push(pool.verifyInStream({ ...pieceOf(piece), hash: { stream: stream.id, last: k === plan.pieces.length - 1 } })));
        await pool.closeStream(stream, true);
      }
      // Awaited below; until then a worker's failure must not count as unhandled.
      for (const v of [...verifying, digest]) if (v instanceof Promise) v.catch(() => {});
      if (!headerEntries && plan.pieces.length > 0) {
        try {
          header = await readHeader(p, blobs, new Uint8Array(0), p.size, load, key);
        } catch (e) {
          failure = { error: e };
        }
      }
    } else {
      // The pack's pieces go in order to one worker, which hashes them against the pack's name.
      const stream = pool.openStream();
      const budget = budgets[stream.slot]!;
      try {
        for (const [k, piece] of plan.pieces.entries()) {
          const length = piece.end - piece.start;
          await budget.take(length);
          let bytes: Uint8Array;
          try {
            bytes = await load(p, piece.start, length);
            if (piece.end === p.size && !headerEntries) header = await readHeader(p, blobs, bytes, piece.start, load, key);
          } catch (e) {
            budget.give(length);
            failure = { error: e };
            break;
          }
          // The pool takes the buffer (it is transferred to a worker, which hashes it first): the header is read before.
          const task: PackPiece = { packId: p.id, start: piece.start, bytes, blobs: piece.blobs, hash: { stream: stream.id, last: k === plan.pieces.length - 1 } };
          const v = pool.verifyInStream(task);
          v.then(
            () => budget.give(length),
            () => budget.give(length),
          );
          verifying.push(v);
        }
      } finally {
        await pool.closeStream(stream, verifying.length === plan.pieces.length);
      }
    }
    // Every piece handed over is waited for, also when a later one failed to load: a worker's failure ends the check.
    const replies = await Promise.all(verifying);
    // A piece its worker could not read comes before the header, as it would have been read first.
    const unread = replies.find((r) => r.loadError !== undefined)?.loadError;
    if (unread) failure = { error: loadFailure(unread) };
    const results = replies.map((r) => r.bad);
    const hashed = (await digest) ?? replies[replies.length - 1]?.digest;
    if (typeof hashed === 'object') failure ??= { error: new BackupError('IO', hashed.error) };
    if (failure) {
      throwIfAborted(options.signal, 'verify');
      if (isBackupError(failure.error) && failure.error.code === 'INTERRUPTED') throw failure.error;
      onOutcome({ pack: p, error: failure.error });
      return;
    }
    const hashMatches = hashed === p.id;
    if (headerEntries) {
      // Judged once the index is loaded; meanwhile the lane goes on with the next pack, so that the workers do not
      // wait for the index either.
      const finish = async (): Promise<void> => {
        await options.indexReady;
        const indexed = options.blobsOf(p.id);
        const checked = await reconcile(p, indexed, headerEntries, plan, results.flat(), async (entry, at) => {
          // An index entry the header does not confirm: its bytes are opened the way an index-planned piece would be.
          await alone.take(entry.length);
          let bytes: Uint8Array;
          try {
            bytes = await load(p, entry.offset, entry.length);
          } catch (e) {
            alone.give(entry.length);
            return { error: e };
          }
          try {
            return await pool.verifyPiece({ packId: p.id, start: entry.offset, bytes, blobs: [{ entry, at }] });
          } finally {
            alone.give(entry.length);
          }
        });
        if (!Array.isArray(checked)) {
          throwIfAborted(options.signal, 'verify');
          if (isBackupError(checked.error) && checked.error.code === 'INTERRUPTED') throw checked.error;
          onOutcome({ pack: p, error: checked.error });
          return;
        }
        const verdictHeader: PackVerdict['header'] = { ok: true, mismatches: headerMismatches(indexed, headerEntries) };
        onOutcome({ pack: p, verdict: { packId: p.id, size: p.size, hashMatches, header: verdictHeader, bad: checked, blobsChecked: indexed.length } });
      };
      awaitingIndex++;
      return { later: finish().finally(() => awaitingIndex--) };
    }
    if (plan.pieces.length === 0) header = await readHeader(p, blobs, new Uint8Array(0), 0, load, key);
    const bad = results.flat();
    for (const at of plan.outside) bad.push(outsidePack(p, blobs[at]!, at));
    bad.sort((a, b) => a.at - b.at);
    onOutcome({ pack: p, verdict: { packId: p.id, size: p.size, hashMatches, header, bad, blobsChecked: blobs.length } });
  };

  const nextPack = async (): Promise<PackRef | undefined> => {
    for (;;) {
      if (stopped) return undefined;
      const p = queue.shift();
      if (p !== undefined && options.skip?.(p.id)) continue;
      if (p !== undefined || sealed) return p;
      await new Promise<void>((resolve) => wake.push(resolve));
    }
  };
  const lane = async (): Promise<void> => {
    for (let p = await nextPack(); p !== undefined; p = await nextPack()) {
      throwIfAborted(options.signal, 'verify');
      const pending = await onePack(p);
      if (pending) {
        later.push(pending.later);
        // A failure there ends the reading as a lane's does (and is thrown from `done`).
        pending.later.catch(() => {
          stopped = true;
          wakeAll();
        });
      }
    }
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(options.concurrency, options.open ? Infinity : packs.length)) }, async () => {
    try {
      await lane();
    } catch (e) {
      // One failure ends the reading: the other lanes finish the pack they hold and start no other.
      stopped = true;
      wakeAll();
      throw e;
    }
  });
  const done = Promise.allSettled(lanes).then(async (results) => {
    results.push(...(await Promise.allSettled(later)));
    await pool.close();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
  // The checker awaits `done` only once its structure check is over: until then a failure must not count as
  // unhandled (it is kept, and thrown when awaited).
  done.catch(() => {});
  return {
    done,
    add: (more) => {
      queue.push(...more);
      wakeAll();
    },
    seal: () => {
      sealed = true;
      wakeAll();
    },
    stop: () => {
      stopped = true;
      wakeAll();
    },
  };
}

function outsidePack(p: PackRef, b: IndexBlobEntry, at: number): BadBlob {
  return { id: b.id, type: b.type, offset: b.offset, length: b.length, at, reason: 'outside-pack', message: `bytes ${b.offset}–${b.offset + b.length} lie beyond the end of the ${p.size}-byte pack` };
}

function entryKey(e: IndexBlobEntry): string {
  return `${e.id}/${e.type}/${e.offset}/${e.length}/${e.rawLength}`;
}

/**
 * The failing blobs of a pack that was cut by its header, as the index's entries (in the index's order, `at` its
 * positions): an entry equal to one of the header's has that blob's result; one beyond the end of the pack lies
 * outside it, as with an index-planned reading; any other (the header places the blob elsewhere or lacks it) is
 * opened from its own bytes by `openAlone` (whose failure to load them is returned). A blob that only the header
 * lists is not judged, as it never is.
 */
async function reconcile(
  p: PackRef,
  indexed: readonly IndexBlobEntry[],
  headerEntries: readonly IndexBlobEntry[],
  plan: PiecePlan,
  failed: readonly BadBlob[],
  openAlone: (entry: IndexBlobEntry, at: number) => Promise<BadBlob[] | { error: unknown }>,
): Promise<BadBlob[] | { error: unknown }> {
  const verified = new Map<string, BadBlob | undefined>();
  const outside = new Set(plan.outside);
  headerEntries.forEach((h, at) => {
    if (!outside.has(at)) verified.set(entryKey(h), undefined);
  });
  for (const b of failed) verified.set(entryKey(headerEntries[b.at]!), b);
  const bad: BadBlob[] = [];
  for (let at = 0; at < indexed.length; at++) {
    const e = indexed[at]!;
    if (e.offset + e.length > p.size) {
      bad.push(outsidePack(p, e, at));
      continue;
    }
    const key = entryKey(e);
    if (verified.has(key)) {
      const b = verified.get(key);
      if (b) bad.push({ ...b, at });
      continue;
    }
    const alone = await openAlone(e, at);
    if (!Array.isArray(alone)) return alone;
    bad.push(...alone);
  }
  return bad;
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
