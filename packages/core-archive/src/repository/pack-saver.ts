/**
 * Collects sealed blobs into pack files and uploads them, data and trees in separate packs, with at most a few
 * uploads in flight (back-pressure keeps memory bounded). It also arbitrates deduplication while a backup runs:
 * a blob id is claimed once, so two workers that find the same chunk never both store it.
 * Nothing is indexed until its pack is durably saved, and `finish` writes the index only after every pack.
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
  readonly written: IndexPackEntry[] = [];
  readonly stats: PackSaverStats = { packs: 0, blobs: 0, bytes: 0 };

  constructor(repo: Repository, options: PackSaverOptions = {}) {
    this.repo = repo;
    this.key = cryptoMaterial(repo).key;
    this.builders = { data: new PackBuilder(this.key), tree: new PackBuilder(this.key) };
    this.maxUploads = options.maxUploads ?? 2;
    this.onPackSaved = options.onPackSaved;
  }

  /** True when the blob is in the repository or already claimed in this session. */
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
        this.repo.index.addPack(id, blobs);
        for (const b of blobs) this.pending.delete(b.id);
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
    if (this.written.length === 0) return [];
    return this.repo.saveIndex(this.written);
  }

  /** Waits for uploads already started, ignoring their outcome: used when a backup is abandoned. */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.uploads]);
  }
}
