/**
 * Collects sealed blobs into pack files and uploads them, data and trees in separate packs, with at most a few
 * uploads in flight (back-pressure keeps memory bounded). It also arbitrates deduplication while a backup runs:
 * a blob id is claimed once, so two workers that find the same chunk never both store it.
 * Nothing is indexed until its pack is durably saved, and `finish` writes the index only after every pack.
 * The repository's in-memory index learns of new packs only once an index file lists them: until then the blobs
 * stay claimed here. Otherwise a failed index write would leave the session believing blobs are stored that no
 * index file names, and the next backup of the same session would reference them (lost data for any reader).
 */
import { sealBlob } from '../crypto/blob.ts';
import { idToBytes, sha256Hex } from '../crypto/hash.ts';
import { BackupError } from '../errors.ts';
import type { BlobType, Id, IndexPackEntry } from '../format.ts';
import { PackBuilder } from '../pack/pack.ts';
import { cryptoMaterial } from './repository.ts';
import type { Repository } from './repository.ts';

export interface PackSaverStats {
  packs: number;
  blobs: number;
  /** bytes of pack files written */
  bytes: number;
}

export interface PackSaverOptions {
  maxUploads?: number;
  onPackSaved?: (packId: Id, bytes: number) => void;
}

export class PackSaver {
  private readonly repo: Repository;
  private readonly key: Uint8Array;
  private readonly builders: Record<BlobType, PackBuilder>;
  private readonly pending = new Set<Id>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly maxUploads: number;
  private readonly onPackSaved: ((packId: Id, bytes: number) => void) | undefined;
  private failure: BackupError | undefined;
  /** packs saved in this session, in order; the first `indexedCount` are listed by an index file */
  readonly written: IndexPackEntry[] = [];
  private indexedCount = 0;
  readonly stats: PackSaverStats = { packs: 0, blobs: 0, bytes: 0 };

  constructor(repo: Repository, options: PackSaverOptions = {}) {
    this.repo = repo;
    this.key = cryptoMaterial(repo).key;
    this.builders = { data: new PackBuilder(this.key), tree: new PackBuilder(this.key) };
    this.maxUploads = options.maxUploads ?? 2;
    this.onPackSaved = options.onPackSaved;
  }

  /** True when the blob is in the repository's index, or claimed (being stored or stored, not yet indexed) here. */
  known(id: Id): boolean {
    return this.repo.index.has(id) || this.pending.has(id);
  }

  /** Claims a blob id for storing; false means someone already stored or is storing it. */
  claim(id: Id): boolean {
    if (this.known(id)) return false;
    this.pending.add(id);
    return true;
  }

  /** Adds a sealed blob that was claimed with `claim`. Resolves once the pack it went into may grow further. */
  async add(type: BlobType, id: Id, envelope: Uint8Array, rawLength: number): Promise<void> {
    this.throwIfFailed();
    const builder = this.builders[type];
    builder.add(type, id, envelope, rawLength);
    this.stats.blobs++;
    if (builder.size >= this.repo.config.packSize) {
      this.builders[type] = new PackBuilder(this.key);
      await this.upload(builder);
    }
  }

  /** Seals and adds a blob given in plaintext (trees, stdin data) unless it is already known. */
  async addPlain(type: BlobType, plaintext: Uint8Array): Promise<{ id: Id; added: boolean }> {
    const id = sha256Hex(plaintext);
    if (!this.claim(id)) return { id, added: false };
    const envelope = sealBlob(this.key, type, idToBytes(id), plaintext, this.repo.compression);
    await this.add(type, id, envelope, plaintext.length);
    return { id, added: true };
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private async upload(builder: PackBuilder): Promise<void> {
    while (this.uploads.size >= this.maxUploads) {
      await Promise.race(this.uploads);
      this.throwIfFailed();
    }
    const { bytes, id, blobs } = builder.finish();
    const job = this.repo.backend.save({ type: 'data', name: id }, bytes).then(
      () => {
        // The blobs stay in `pending` until an index file lists this pack (see indexWritten).
        this.written.push({ id, blobs });
        this.stats.packs++;
        this.stats.bytes += bytes.length;
        this.onPackSaved?.(id, bytes.length);
      },
      (e: unknown) => {
        this.failure ??= e instanceof BackupError ? e : new BackupError('IO', `saving a pack failed: ${(e as Error).message}`, { cause: e });
      },
    );
    const tracked = job.finally(() => this.uploads.delete(tracked));
    this.uploads.add(tracked);
  }

  /** Uploads the partly filled packs, waits for every upload, and writes the index for all packs written. */
  async finish(): Promise<Id[]> {
    for (const type of ['data', 'tree'] as const) {
      const builder = this.builders[type];
      if (builder.count > 0) {
        this.builders[type] = new PackBuilder(this.key);
        await this.upload(builder);
      }
    }
    await Promise.all(this.uploads);
    this.throwIfFailed();
    return this.indexWritten();
  }

  /**
   * Writes an index file for the packs saved since the last call and, once it is stored, adds them to the
   * repository's in-memory index. Used by `finish`, and after a failure to keep the packs that did land usable.
   */
  async indexWritten(): Promise<Id[]> {
    const packs = this.written.slice(this.indexedCount);
    if (packs.length === 0) return [];
    const ids = await this.repo.saveIndex(packs);
    this.indexedCount += packs.length;
    for (const p of packs) {
      this.repo.index.addPack(p.id, p.blobs);
      for (const b of p.blobs) this.pending.delete(b.id);
    }
    return ids;
  }

  /**
   * Used when a backup is abandoned: from now on `add` refuses (so blobs still arriving from workers start no new
   * uploads), then waits for the uploads already started, ignoring their outcome.
   */
  async abandon(): Promise<void> {
    this.failure ??= new BackupError('INTERRUPTED', 'the operation was abandoned: nothing more is stored');
    await Promise.allSettled([...this.uploads]);
  }
}
