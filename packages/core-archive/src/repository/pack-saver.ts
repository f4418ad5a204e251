/**
 * Collects sealed blobs into pack files and uploads them, data and trees in separate packs, with at most a few
 * uploads in flight (back-pressure keeps memory bounded). It also arbitrates deduplication while a backup runs:
 * a blob id is claimed once, so two workers that find the same chunk never both store it.
 * Nothing is indexed until its pack is durably saved: a long session writes an index file for the packs saved so far
 * every INDEX_EVERY_BLOBS blobs, and `finish` writes one for the rest after every pack.
 * The repository's in-memory index learns of new packs only once an index file lists them: until then the blobs
 * stay claimed here. Otherwise a failed index write would leave the session believing blobs are stored that no
 * index file names, and the next backup of the same session would reference them (lost data for any reader).
 *
 * Memory: where the backend can stage a file (local disk, dry run), a pack is written out blob by blob as it is
 * filled and never held in memory; its header and trailer are appended at the end and the file committed under the
 * pack's id. Otherwise each pack is built in one buffer, and a bounded number of them exist per blob type (the pack
 * being filled plus those waiting for or in an upload). Where the backend is done with a buffer once its save
 * resolves (memory), the buffer is reused for a later pack, so a backup allocates its pack memory once.
 */
import { AppendOnlyBackend } from '../backend/append-only.ts';
import type { Backend, StagedFile } from '../backend/backend.ts';
import { DryRunBackend } from '../backend/dry-run.ts';
import { LocalBackend } from '../backend/local.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { blobAad } from '../crypto/aead.ts';
import { idToBytes, sha256Hex } from '../crypto/hash.ts';
import { BackupError, toBackupError } from '../errors.ts';
import type { BlobType, Id, IndexBlobEntry, IndexPackEntry } from '../format.ts';
import { releaseBytes } from '../crypto/bytes.ts';
import { PackBuilder, packOverhead, sealChunkInto, sealedChunkBound } from '../pack/pack.ts';
import { ZstdCompressor } from '../compress.ts';
import { BlobStateMap } from './prune-blob-set.ts';
import { cryptoMaterial } from './repository.ts';
import type { Repository } from './repository.ts';

export interface PackSaverStats {
  packs: number;
  blobs: number;
  /** bytes of pack files written */
  bytes: number;
}

export interface PackSaverOptions {
  /** Pack uploads in flight at most (default: 1 on local disk, where a save is a write and an fsync; 2 elsewhere). */
  maxUploads?: number;
  onPackSaved?: (packId: Id, bytes: number) => void;
}

const CLAIMED = 1;
/** What `place` answers when every pack buffer of the type is taken. */
const WAIT = Symbol('wait');
/**
 * Saved blobs not yet in an index file, at which an index file is written before the session ends. Building one
 * holds a few hundred bytes per blob on the heap (entries, their ids, the document) on top of everything else: at
 * 16384 blobs that was up to 10 MB of a first backup's peak.
 */
const INDEX_EVERY_BLOBS = 4096;
/** Room beyond packSize in a pack's buffer, for the header of a pack of small blobs (41 bytes per blob). */
const HEADER_ALLOWANCE = 64 * 1024;
/** The first buffer of a tree pack: trees are small, and most backups write far less than a pack of them. */
const TREE_BUFFER_BYTES = 256 * 1024;

/** A pack being filled or waiting for its upload: in a buffer of the builder's, or streamed into a staged file. */
interface OpenPack {
  builder: PackBuilder;
  /** where the envelopes go as they are added, for a streamed pack */
  file?: StagedFile;
}

/**
 * True when the backend no longer touches `data` once `save` resolves (it has written it, copied it, or ignored it),
 * so the buffer may be filled again. Network backends may hand the bytes to a client library that keeps them (a
 * request still draining after a timeout), so their buffers are never reused.
 */
function releasesSavedBuffers(backend: Backend): boolean {
  let b = backend;
  while (b instanceof AppendOnlyBackend) b = b.inner;
  return b instanceof LocalBackend || b instanceof MemoryBackend || b instanceof DryRunBackend;
}

function isLocal(backend: Backend): boolean {
  let b = backend;
  while (b instanceof AppendOnlyBackend) b = b.inner;
  return b instanceof LocalBackend;
}

export class PackSaver {
  private readonly repo: Repository;
  private readonly key: Uint8Array;
  private readonly builders: Partial<Record<BlobType, OpenPack>> = {};
  /** Buffers per type in use: the pack being filled, finished packs waiting for an upload, uploads in flight. */
  private readonly live: Record<BlobType, number> = { data: 0, tree: 0 };
  /** Buffers of saved packs, ready for the next pack of their type (only when the backend releases them). */
  private readonly spare: Record<BlobType, Uint8Array[]> = { data: [], tree: [] };
  private readonly ready: ({ type: BlobType } & OpenPack)[] = [];
  private readonly reuse: boolean;
  /** staged files of packs dropped after a failure, being removed */
  private readonly discards = new Set<Promise<void>>();
  /** set by finish and abandon: buffers of packs saved afterwards are let go instead of kept for reuse */
  private closed = false;
  /**
   * Blob ids claimed in this session (being stored, or stored and maybe not yet indexed): it grows with every new
   * blob of a backup, so it is kept in typed arrays (~90 bytes per blob) rather than as strings and objects (~270),
   * which would also make V8 let the heap grow far beyond them.
   */
  private readonly pending = new BlobStateMap();
  private readonly uploads = new Set<Promise<void>>();
  private readonly maxUploads: number;
  private readonly onPackSaved: ((packId: Id, bytes: number) => void) | undefined;
  private failure: BackupError | undefined;
  /** Packs saved and not yet listed by an index file, with the entries their builders made. */
  private unindexed: IndexPackEntry[] = [];
  /** Packs of this session that an index file lists: the repository's index holds their entries. */
  private readonly indexedPackIds: Id[] = [];
  /** blobs of the packs in `unindexed` */
  private unindexedBlobs = 0;
  /** index files written in this session, and the last index write (they run one after another) */
  private readonly indexIds: Id[] = [];
  private indexing: Promise<unknown> = Promise.resolve();
  readonly stats: PackSaverStats = { packs: 0, blobs: 0, bytes: 0 };
  /** for addPlain (trees): one zstd context for the session instead of one per tree */
  private compressor: ZstdCompressor | undefined;

  constructor(repo: Repository, options: PackSaverOptions = {}) {
    this.repo = repo;
    this.key = cryptoMaterial(repo).key;
    this.reuse = releasesSavedBuffers(repo.backend);
    this.maxUploads = Math.max(1, options.maxUploads ?? (isLocal(repo.backend) ? 1 : 2));
    this.onPackSaved = options.onPackSaved;
  }

  /**
   * Packs saved in this session with their blobs: those an index file lists first, in order, then the others. Read
   * it once no index write runs (after `finish`): the packs of a write in progress are in neither list.
   */
  get written(): IndexPackEntry[] {
    return [...this.indexedPackIds.map((id) => ({ id, blobs: this.repo.index.blobsOfPack(id) })), ...this.unindexed];
  }

  /** True when the blob is in the repository's index, or claimed (being stored or stored) here. */
  known(id: Id): boolean {
    return this.repo.index.has(id) || this.pending.get(id) >= 0;
  }

  /** Claims a blob id for storing; false means someone already stored or is storing it. */
  claim(id: Id): boolean {
    if (this.repo.index.has(id)) return false;
    return this.pending.add(id, CLAIMED);
  }

  /**
   * Adds a sealed blob that was claimed with `claim`; the envelope is copied before the promise settles, so the
   * caller may reuse its memory afterwards. Resolves once the blob is in a pack, which may wait until an upload
   * finishes (back-pressure).
   */
  add(type: BlobType, id: Id, envelope: Uint8Array, rawLength: number): Promise<void> {
    return this.addAll(type, [{ id, envelope, rawLength }]);
  }

  /**
   * Adds sealed blobs, in order, like `add`: a worker's outbox at once. Nothing awaits between two blobs unless
   * every pack buffer is taken, so a batch costs one promise rather than one per blob.
   */
  async addAll(type: BlobType, blobs: readonly { id: Id; envelope: Uint8Array; rawLength: number }[]): Promise<void> {
    let appends: Promise<void>[] | undefined;
    for (const b of blobs) {
      for (;;) {
        const placed = this.place(type, b.id, b.envelope, b.rawLength);
        if (placed === WAIT) {
          // Every buffer of this type is taken by packs waiting for or in an upload: wait for one to finish.
          if (this.uploads.size === 0) throw new BackupError('INTERNAL', 'pack buffers are all taken but no upload is running');
          await Promise.race(this.uploads);
          continue;
        }
        // A failed append is recorded at once: the loop may wait or throw before it awaits the appends. The pack's
        // commit fails too, which ends the session; these blobs are not stored.
        if (placed !== undefined) {
          (appends ??= []).push(
            placed.catch((e: unknown) => {
              this.failure ??= toBackupError(e, 'IO', `writing a pack failed: ${(e as Error).message}`);
            }),
          );
        }
        break;
      }
    }
    if (appends !== undefined) await Promise.all(appends);
    this.throwIfFailed();
  }

  /**
   * Puts a blob into the open pack of its type (opening or sealing packs as needed), synchronously: WAIT when no
   * buffer is free, else the append of its envelope to a staged file, if any.
   */
  private place(type: BlobType, id: Id, envelope: Uint8Array, rawLength: number): Promise<void> | typeof WAIT | undefined {
    for (;;) {
      this.throwIfFailed();
      let pack = this.builders[type];
      if (!pack && this.live[type] <= this.maxUploads) {
        this.live[type]++;
        pack = this.openPack(type);
        this.builders[type] = pack;
      }
      if (!pack) return WAIT;
      const builder = pack.builder;
      // A pack closes before the blob that would take it (header included) past its buffer, rather than after:
      // the buffer then never grows (one blob larger than a pack alone excepted), where a pack used to reach
      // packSize plus a chunk, and the header of a pack of small blobs made it move to a buffer twice as large.
      if (builder.count > 0 && builder.size + envelope.byteLength + packOverhead(builder.count + 1) > this.packCapacity) {
        this.seal(type);
        continue;
      }
      // The envelope goes to the staged file in the order it joins the builder.
      const appending = builder.add(type, id, envelope, rawLength) ? pack.file?.append(envelope) : undefined;
      this.stats.blobs++;
      if (builder.size >= this.repo.config.packSize) this.seal(type);
      return appending;
    }
  }

  /** Seals and adds a blob given in plaintext (trees, stdin data) unless it is already known. */
  async addPlain(type: BlobType, plaintext: Uint8Array): Promise<{ id: Id; added: boolean }> {
    const id = sha256Hex(plaintext);
    if (!this.claim(id)) return { id, added: false };
    // Sealed like crypto/blob.ts sealBlob, into a buffer freed once copied into the pack.
    const opts = this.repo.compression;
    const zstd = opts.compression === 'zstd' ? (this.compressor ??= new ZstdCompressor(opts.level)) : undefined;
    const room = new Uint8Array(sealedChunkBound(plaintext.byteLength, zstd));
    const length = sealChunkInto(room, 0, this.key, blobAad(type, idToBytes(id)), plaintext, zstd);
    try {
      await this.add(type, id, room.subarray(0, length), plaintext.length);
    } finally {
      releaseBytes(room);
    }
    return { id, added: true };
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /** The bytes a pack may take, header and trailer included (see add). */
  private get packCapacity(): number {
    return this.repo.config.packSize + HEADER_ALLOWANCE;
  }

  /** A new pack of `type`: streamed into a staged file when the backend offers them, else built in a buffer. */
  private openPack(type: BlobType): OpenPack {
    const stage = this.repo.backend.stage;
    if (stage !== undefined) {
      return { builder: new PackBuilder(this.key, false), file: stage.call(this.repo.backend, 'data') };
    }
    return { builder: new PackBuilder(this.key, this.spare[type].pop() ?? this.newBuffer(type)) };
  }

  private newBuffer(type: BlobType): Uint8Array {
    // Trees are small, and most backups write far less than a pack of them: that buffer grows when it must.
    if (type === 'tree') return new Uint8Array(TREE_BUFFER_BYTES);
    return new Uint8Array(this.packCapacity);
  }

  /** Closes the pack being filled and queues it for upload. */
  private seal(type: BlobType): void {
    const pack = this.builders[type];
    if (!pack) return;
    delete this.builders[type];
    this.ready.push({ type, ...pack });
    this.startUploads();
  }

  private startUploads(): void {
    // After a failure nothing new is stored: packs still waiting are dropped (their blobs are not indexed).
    if (this.failure) {
      for (const { type, file } of this.ready.splice(0)) {
        this.live[type]--;
        if (file) this.discard(file);
      }
    }
    while (this.uploads.size < this.maxUploads && this.ready.length > 0) {
      const { type, builder, file } = this.ready.shift()!;
      let id: Id;
      let blobs: IndexBlobEntry[];
      let size: number;
      let saving: Promise<void>;
      let buffer: Uint8Array | undefined;
      if (file) {
        const tail = builder.finishTail();
        ({ id, blobs, size } = tail);
        // A failed commit removes what it staged; a failed append leaves that to discard.
        saving = file.append(tail.tail).then(
          () => file.commit({ type: 'data', name: id }),
          (e: unknown) => file.discard().then(() => Promise.reject(e)),
        );
      } else {
        const finished = builder.finish();
        ({ id, blobs } = finished);
        size = finished.bytes.length;
        buffer = builder.buffer;
        saving = this.repo.backend.save({ type: 'data', name: id }, finished.bytes);
      }
      const job = saving.then(
        () => {
          // The blobs stay claimed here until an index file lists this pack (see indexWritten).
          this.unindexed.push({ id, blobs });
          this.unindexedBlobs += blobs.length;
          this.stats.packs++;
          this.stats.bytes += size;
          this.onPackSaved?.(id, size);
          if (this.reuse && buffer !== undefined) {
            if (this.closed) releaseBytes(buffer);
            else this.spare[type].push(buffer);
          }
          // A long backup lists its packs as it goes: the index entries then never pile up into one large document
          // at the end (hundreds of bytes of transient objects, text and buffers per blob), and an interrupted
          // backup leaves packs that the next one can use.
          if (this.unindexedBlobs >= INDEX_EVERY_BLOBS && !this.closed) {
            this.indexWritten().catch((e: unknown) => {
              this.failure ??= toBackupError(e, 'IO', `saving an index failed: ${(e as Error).message}`);
            });
          }
        },
        (e: unknown) => {
          // A buffer whose save failed is not reused: the backend may not be done with it.
          this.failure ??= toBackupError(e, 'IO', `saving a pack failed: ${(e as Error).message}`);
        },
      );
      const tracked = job.finally(() => {
        this.uploads.delete(tracked);
        this.live[type]--;
        this.startUploads();
      });
      this.uploads.add(tracked);
    }
  }

  /** Removes the staged file of a pack that will not be saved; finish and abandon wait for it. */
  private discard(file: StagedFile): void {
    const run = file.discard().catch(() => undefined);
    const tracked = run.finally(() => this.discards.delete(tracked));
    this.discards.add(tracked);
  }

  /** No more packs: the buffers kept for reuse are freed, and so are those of packs saved from now on. */
  private close(): void {
    this.closed = true;
    this.compressor?.close();
    this.compressor = undefined;
    for (const buffer of this.spare.data.splice(0)) releaseBytes(buffer);
    for (const buffer of this.spare.tree.splice(0)) releaseBytes(buffer);
  }

  /** Uploads the partly filled packs, waits for every upload, and writes the index for all packs written. */
  async finish(): Promise<Id[]> {
    this.seal('data');
    this.seal('tree');
    this.close();
    while (this.uploads.size > 0) await Promise.all(this.uploads);
    while (this.discards.size > 0) await Promise.all(this.discards);
    await this.indexing;
    this.throwIfFailed();
    await this.indexWritten();
    return [...this.indexIds];
  }

  /**
   * Writes an index file for the packs saved and not yet indexed and, once it is stored, adds them to the
   * repository's in-memory index. Used during a long session, by `finish` (which returns every index file of the
   * session), and after a failure to keep the packs that did land usable.
   */
  indexWritten(): Promise<Id[]> {
    const run = this.indexing.then(() => this.writeIndex());
    this.indexing = run.catch(() => undefined);
    return run;
  }

  private async writeIndex(): Promise<Id[]> {
    const packs = this.unindexed;
    if (packs.length === 0) return [];
    const blobs = packs.reduce((n, p) => n + p.blobs.length, 0);
    // Counted as indexed while the write runs, so that packs saved meanwhile do not ask for another index file at
    // once; a failed write gives them back to the next one, ahead of those saved since.
    this.unindexed = [];
    this.unindexedBlobs -= blobs;
    let ids: Id[];
    try {
      ids = await this.repo.saveIndex(packs);
    } catch (e) {
      this.unindexed = [...packs, ...this.unindexed];
      this.unindexedBlobs += blobs;
      throw e;
    }
    // Their blobs stay claimed here too, which changes nothing: `known` finds them in the repository's index now.
    this.repo.addWrittenIndex(ids, packs);
    for (const p of packs) this.indexedPackIds.push(p.id);
    this.indexIds.push(...ids);
    return ids;
  }

  /**
   * Used when a backup is abandoned: from now on `add` refuses (so blobs still arriving from workers start no new
   * uploads), then waits for the uploads already started, ignoring their outcome.
   */
  async abandon(): Promise<void> {
    this.failure ??= new BackupError('INTERRUPTED', 'the operation was abandoned: nothing more is stored');
    // Packs being filled or queued are dropped (their staged files removed); those in flight finish.
    this.seal('data');
    this.seal('tree');
    this.close();
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
    while (this.discards.size > 0) await Promise.all(this.discards);
  }
}
