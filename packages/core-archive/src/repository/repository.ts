/**
 * The repository: opens a Backend with a password, and reads and writes the encrypted documents, blobs and
 * indexes that docs/format.md describes. Everything above this layer (archiver, restorer, checker) works with ids
 * and plaintext; everything below it (backends) works with named opaque files.
 */
import { randomBytes } from 'node:crypto';
import { AppendOnlyBackend } from '../backend/append-only.ts';
import type { Backend, FileType } from '../backend/backend.ts';
import { DEFAULT_CHUNK_SIZES, validateChunkSizes } from '../chunker/chunker.ts';
import { blobAad, open } from '../crypto/aead.ts';
import { openDocument, sealDocument } from '../crypto/document.ts';
import { bytesToId, idToBytes, isId, randomId, sha256Hex } from '../crypto/hash.ts';
import { DEFAULT_SCRYPT, createKeyFile, generateMasterKey, openKeyFile, parseKeyFile } from '../crypto/keys.ts';
import type { ScryptParams } from '../crypto/kdf.ts';
import { DEFAULT_MAX_PAYLOAD, PAYLOAD_ZSTD, ZstdDecompressor, decodePayload } from '../compress.ts';
import type { CompressionOptions } from '../compress.ts';
import { BackupError, isBackupError } from '../errors.ts';
import { FORMAT_VERSION } from '../format.ts';
import type { BlobType, Id, IndexDocument, KeyFile, RepoConfigDocument, SnapshotDocument, TreeDocument } from '../format.ts';
import { buildIndexDocument, parseIndexDocument } from '../index/index-file.ts';
import { indexCacheKey } from '../index/index-cache.ts';
import type { IndexCache } from '../index/index-cache.ts';
import { MasterIndex } from '../index/master-index.ts';
import type { BlobLocation } from '../index/master-index.ts';
import { defaultContext } from './context.ts';
import type { RunContext } from './context.ts';
import { parseSnapshotDocument } from './snapshot.ts';
import { decodeTree } from './tree.ts';

export type DocumentKind = 'config' | 'lock' | 'snapshot' | 'index';

const KIND_TO_TYPE: Record<Exclude<DocumentKind, 'config'>, FileType> = { lock: 'locks', snapshot: 'snapshots', index: 'index' };

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

/**
 * Tree blobs are read from their pack in windows of this many bytes, kept for the next reads. A walk of a snapshot
 * (a backup comparing with its parent, a restore, a check) reads thousands of trees of about a kilobyte, each one a
 * round trip to the backend (four system calls on a local disk, a request to a cloud); trees are stored in packs of
 * their own, written together in the order of the walk, so one window serves hundreds of the next reads.
 */
const TREE_WINDOW_BYTES = 1024 * 1024;
/** Windows kept (the most recently used): a walk moves back and forth between the packs of several backups. */
const TREE_WINDOWS = 4;

interface TreeWindow {
  packId: Id;
  start: number;
  end: number;
  bytes: Promise<Uint8Array>;
}

export interface InitOptions {
  scrypt?: ScryptParams;
  packSize?: number;
  compression?: 'zstd' | 'none';
  compressionLevel?: number;
  chunkSizes?: { minSize: number; avgSize: number; maxSize: number };
  appendOnly?: boolean;
  context?: Partial<RunContext>;
}

export interface OpenOptions {
  context?: Partial<RunContext>;
}

export interface KeyInfo {
  id: Id;
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

export interface ListSnapshotsOptions {
  /**
   * Called for each snapshot file that cannot be read, which is then left out. Without it a damaged snapshot
   * fails the call: what deletes data (prune, forget) must not proceed while a snapshot's references are unknown.
   */
  onDamaged?: (id: Id, error: BackupError) => void;
}

export interface SnapshotEntry {
  id: Id;
  snapshot: SnapshotDocument;
}

/** What the worker threads need to chunk, hash, compress and seal blobs. Never leaves the process. */
export interface CryptoMaterial {
  key: Uint8Array;
  chunkerSecret: Uint8Array;
  chunkSizes: { minSize: number; avgSize: number; maxSize: number };
  compression: CompressionOptions;
}

const secrets = new WeakMap<Repository, CryptoMaterial>();

/** Internal accessor for the engine's own modules (worker pool); deliberately not exported from the package. */
export function cryptoMaterial(repo: Repository): CryptoMaterial {
  const m = secrets.get(repo);
  if (!m) throw new BackupError('INTERNAL', 'repository is closed');
  return m;
}

function describe(type: FileType, name: string): string {
  return type === 'config' ? 'config' : `${type === 'snapshots' ? 'snapshot' : type === 'keys' ? 'key' : type === 'locks' ? 'lock' : type} ${name.slice(0, 12)}`;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfigDocument;
  readonly keyId: Id;
  readonly context: RunContext;
  readonly index = new MasterIndex();
  /** ids of the index files the master index was loaded from (superseded ones excluded) */
  indexFiles: Id[] = [];
  /**
   * For saveIndexCache: every index file the master index accounts for (superseded ones included) and the ids they
   * supersede, when the index is exactly what those files hold; undefined when it may not be (not loaded yet, loaded
   * on top of other entries, or rewritten by an index that supersedes others).
   */
  #indexListing: { listing: Set<Id>; superseded: Set<Id> } | undefined;
  private readonly treeCache = new Map<Id, TreeDocument>();
  private treeCacheWeight = 0;
  /** Recently read ranges of tree packs, most recently used last (see TREE_WINDOW_BYTES). */
  private treeWindows: TreeWindow[] = [];
  /** Reused for every blob this thread opens: a fresh zstd context per tree costs more than the tree's decoding. */
  private readonly decompressor = new ZstdDecompressor();

  private constructor(backend: Backend, config: RepoConfigDocument, keyId: Id, material: CryptoMaterial, context: RunContext) {
    this.backend = config.appendOnly ? new AppendOnlyBackend(backend) : backend;
    this.config = config;
    this.keyId = keyId;
    this.context = context;
    secrets.set(this, material);
  }

  get location(): string {
    return this.backend.location;
  }

  get compression(): CompressionOptions {
    return cryptoMaterial(this).compression;
  }

  /** Creates a new repository in an empty location. Fails with REPOSITORY_EXISTS when one is there. */
  static async init(backend: Backend, password: string, options: InitOptions = {}): Promise<Repository> {
    assertPassword(password);
    const context = defaultContext(options.context);
    if (await exists(backend, { type: 'config', name: 'config' })) {
      throw new BackupError('REPOSITORY_EXISTS', `a repository already exists at ${backend.location}; use it, or choose another location with --repo`);
    }
    const sizes = options.chunkSizes ?? DEFAULT_CHUNK_SIZES;
    validateChunkSizes(sizes);
    const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
    if (!Number.isSafeInteger(packSize) || packSize < 64 * 1024 || packSize > 1024 * 1024 * 1024) {
      throw new BackupError('INVALID_ARGUMENT', `pack size ${packSize} is out of range: choose between 64 KiB and 1 GiB`);
    }
    const masterKey = generateMasterKey();
    const config: RepoConfigDocument = {
      version: FORMAT_VERSION,
      id: randomId(),
      created: context.now().toISOString(),
      chunker: { secret: bytesToId(randomBytes(32)), ...sizes },
      packSize,
      compression: options.compression ?? 'zstd',
      // Level 2: within 3% of level 3's size for a third less CPU (docs/format.md, "Compression choice").
      compressionLevel: options.compressionLevel ?? 2,
      appendOnly: options.appendOnly ?? false,
    };
    const { bytes } = await createKeyFile(password, masterKey, options.scrypt ?? DEFAULT_SCRYPT, {
      hostname: context.hostname,
      username: context.username,
      now: context.now(),
    });
    const keyId = sha256Hex(bytes);
    await backend.save({ type: 'keys', name: keyId }, bytes);
    const material = materialFor(masterKey, config);
    // The config is written last: a location holds a repository exactly when it holds a config.
    await backend.save({ type: 'config', name: 'config' }, sealDocument(masterKey, 'config', config, material.compression));
    return new Repository(backend, config, keyId, material, context);
  }

  /** Opens an existing repository. WRONG_PASSWORD when no key file opens with the password. */
  static async open(backend: Backend, password: string, options: OpenOptions = {}): Promise<Repository> {
    const context = defaultContext(options.context);
    let configBytes: Uint8Array;
    try {
      configBytes = await backend.load({ type: 'config', name: 'config' });
    } catch (e) {
      if (isBackupError(e, 'NOT_FOUND')) {
        throw new BackupError('REPOSITORY_NOT_FOUND', `there is no repository at ${backend.location}: create one with \`bam init\`, or point --repo at an existing one`, { cause: e });
      }
      throw e;
    }
    const keyNames: string[] = [];
    for await (const f of backend.list('keys')) keyNames.push(f.name);
    if (keyNames.length === 0) {
      throw new BackupError('CORRUPT', `the repository at ${backend.location} has no key files: it cannot be opened with any password`);
    }
    keyNames.sort();
    // Every key file is tried. One that cannot be read (damaged, or from a newer version) must not lock the others
    // out; and one that opens with the password but whose master key does not authenticate the config belongs to
    // another repository (an `init` that failed before writing its config and was then run again): skip it too.
    const unreadable: BackupError[] = [];
    let configError: BackupError | undefined;
    for (const name of keyNames) {
      const what = `key ${name.slice(0, 12)}`;
      let key: Uint8Array | null;
      try {
        key = await openKeyFile(parseKeyFile(await backend.load({ type: 'keys', name }), what), password, what);
      } catch (e) {
        if (isBackupError(e, 'CORRUPT') || isBackupError(e, 'UNSUPPORTED_VERSION')) {
          unreadable.push(e);
          continue;
        }
        throw e;
      }
      if (!key) continue;
      let configDoc: unknown;
      try {
        configDoc = openDocument(key, 'config', configBytes, 'config');
      } catch (e) {
        if (!isBackupError(e, 'CORRUPT')) throw e;
        configError ??= e;
        continue;
      }
      const config = parseConfigDocument(configDoc);
      return new Repository(backend, config, name, materialFor(key, config), context);
    }
    if (configError) throw configError;
    if (unreadable.length === keyNames.length) throw unreadable[0]!;
    const skipped = unreadable.length > 0 ? ` (${unreadable.length} damaged key file(s) skipped: ${unreadable.map((e) => e.subject).join(', ')})` : '';
    throw new BackupError('WRONG_PASSWORD', `wrong password for the repository at ${backend.location}: none of its ${keyNames.length} key(s) opens with it${skipped}. Check BACKUP_MANAGER_PASSWORD, --password-file or --password-command`);
  }

  /**
   * Lets go of the trees and tree windows kept for reading trees, for a caller done with trees for a while (the data
   * check after its tree walk); they fill again on demand.
   */
  dropTreeCaches(): void {
    this.treeCache.clear();
    this.treeCacheWeight = 0;
    this.treeWindows = [];
  }

  /** Forgets the key material. The backend is closed by whoever opened it. */
  close(): void {
    secrets.delete(this);
    this.treeCache.clear();
    this.treeWindows = [];
    this.decompressor.close();
  }

  // ---- documents ------------------------------------------------------------------------------------------

  async saveDocument(kind: Exclude<DocumentKind, 'config'>, doc: unknown): Promise<Id> {
    const m = cryptoMaterial(this);
    const bytes = sealDocument(m.key, kind, doc, m.compression);
    const id = sha256Hex(bytes);
    await this.backend.save({ type: KIND_TO_TYPE[kind], name: id }, bytes);
    return id;
  }

  async loadDocument(kind: Exclude<DocumentKind, 'config'>, id: Id): Promise<unknown> {
    const type = KIND_TO_TYPE[kind];
    const what = describe(type, id);
    const bytes = await this.backend.load({ type, name: id });
    if (sha256Hex(bytes) !== id) {
      throw new BackupError('CORRUPT', `${what} does not match its name (its content hash differs): the file is damaged`, { subject: `${type}/${id}` });
    }
    return openDocument(cryptoMaterial(this).key, kind, bytes, what);
  }

  async listIds(type: FileType): Promise<Id[]> {
    const ids: Id[] = [];
    for await (const f of this.backend.list(type)) ids.push(f.name);
    return ids.sort();
  }

  // ---- snapshots ------------------------------------------------------------------------------------------

  async loadSnapshot(id: Id): Promise<SnapshotDocument> {
    return parseSnapshotDocument(await this.loadDocument('snapshot', id), describe('snapshots', id));
  }

  async saveSnapshot(doc: SnapshotDocument): Promise<Id> {
    return this.saveDocument('snapshot', doc);
  }

  /** All snapshots, oldest first. A snapshot file that cannot be read fails the call with its name. */
  async listSnapshots(options: ListSnapshotsOptions = {}): Promise<SnapshotEntry[]> {
    const ids = await this.listIds('snapshots');
    const loaded = await mapLimit(ids, 8, async (id) => {
      try {
        return { id, snapshot: await this.loadSnapshot(id) };
      } catch (e) {
        // Strict callers (prune, forget) must stop: a snapshot they cannot read still needs its data.
        if (!options.onDamaged || !isBackupError(e, 'CORRUPT')) throw e;
        options.onDamaged(id, e);
        return undefined;
      }
    });
    const out = loaded.filter((s): s is SnapshotEntry => s !== undefined);
    return out.sort((a, b) => compareTime(a.snapshot.time, b.snapshot.time) || (a.id < b.id ? -1 : 1));
  }

  /**
   * Resolves `latest`, a full id or a unique id prefix (at least 4 hex characters) to a snapshot, optionally
   * restricted by host, paths and tags for `latest`.
   */
  async findSnapshot(ref: string, filter: { hostname?: string; paths?: string[]; tags?: string[] } = {}, options: ListSnapshotsOptions = {}): Promise<SnapshotEntry> {
    if (ref === 'latest') {
      const all = (await this.listSnapshots(options)).filter((s) => matchesFilter(s.snapshot, filter));
      const last = all.at(-1);
      if (!last) throw new BackupError('NOT_FOUND', 'there is no snapshot yet' + (Object.keys(filter).length ? ' matching the given host, path or tag filters' : '') + ': run `bam backup` first');
      return last;
    }
    if (!/^[0-9a-f]{4,64}$/.test(ref)) {
      throw new BackupError('INVALID_ARGUMENT', `"${ref}" is not a snapshot id: give \`latest\` or at least 4 hex characters of an id from \`bam snapshots\``);
    }
    const matches = (await this.listIds('snapshots')).filter((id) => id.startsWith(ref));
    if (matches.length === 0) throw new BackupError('NOT_FOUND', `no snapshot id starts with ${ref}: list them with \`bam snapshots\``);
    if (matches.length > 1) throw new BackupError('INVALID_ARGUMENT', `${ref} matches ${matches.length} snapshots: give more characters of the id`);
    const id = matches[0]!;
    return { id, snapshot: await this.loadSnapshot(id) };
  }

  // ---- index and blobs ------------------------------------------------------------------------------------

  /**
   * Loads every index file into the master index; superseded index files are skipped. With `cache`, from its copy
   * of them as far as it goes (see IndexCache): only index files added since are read, and the copy is brought up to
   * date.
   */
  async loadIndex(options: { cache?: IndexCache | undefined } = {}): Promise<void> {
    const ids = await this.listIds('index');
    const cache = options.cache;
    const empty = this.index.packCount === 0;
    if (cache !== undefined && empty && (await this.#loadIndexFromCache(cache, ids))) return;
    const docs = await this.#readIndexFiles(ids);
    const superseded = new Set(docs.flatMap((d) => d.doc.supersedes));
    this.indexFiles = [];
    for (const { id, doc } of docs) {
      if (superseded.has(id)) continue;
      this.indexFiles.push(id);
      for (const pack of doc.packs) this.index.addPack(pack.id, pack.blobs);
    }
    // Entries added before this load may come from packs no index file lists: such an index is not cached.
    this.#indexListing = empty ? { listing: new Set(ids), superseded } : undefined;
    if (cache !== undefined) this.saveIndexCache(cache);
  }

  async #readIndexFiles(ids: Id[]): Promise<{ id: Id; doc: IndexDocument }[]> {
    return mapLimit(ids, 8, async (id) => ({ id, doc: parseIndexDocument(await this.loadDocument('index', id), describe('index', id)) }));
  }

  /**
   * The master index from the cache's copy plus the index files listed since; false (nothing loaded) when there is
   * no usable copy, when an index file it accounts for is gone, or when a newer one supersedes others.
   */
  async #loadIndexFromCache(cache: IndexCache, ids: Id[]): Promise<boolean> {
    const cached = cache.read(this.config.id, this.#indexCacheKey());
    if (cached === undefined) return false;
    const listed = new Set(ids);
    if (!cached.listing.every((id) => listed.has(id)) || !cached.indexFiles.every((id) => isId(id) && listed.has(id)) || !cached.superseded.every(isId)) return false;
    const known = new Set(cached.listing);
    const superseded = new Set(cached.superseded);
    // A file superseded by one the copy accounts for (an old index file put back) stays out, as a full load leaves it.
    const fresh = (await this.#readIndexFiles(ids.filter((id) => !known.has(id)))).filter((f) => !superseded.has(f.id));
    if (fresh.some((f) => f.doc.supersedes.length > 0)) return false;
    try {
      this.index.addImage(cached.image);
    } catch {
      return false;
    }
    for (const { doc } of fresh) for (const pack of doc.packs) this.index.addPack(pack.id, pack.blobs);
    this.indexFiles = [...cached.indexFiles, ...fresh.map((f) => f.id)].sort();
    this.#indexListing = { listing: listed, superseded };
    if (fresh.length > 0) this.saveIndexCache(cache);
    return true;
  }

  #indexCacheKey(): Buffer {
    return indexCacheKey(cryptoMaterial(this).key, this.config.id);
  }

  /**
   * Stores the master index in `cache` as it stands, for the next command to start from: after loadIndex, and after
   * a backup has indexed its packs. Nothing is stored (false) when the index may differ from what the index files
   * hold (see #indexListing), or when the cache cannot be written.
   */
  saveIndexCache(cache: IndexCache): boolean {
    const state = this.#indexListing;
    if (state === undefined) return false;
    const content = { listing: [...state.listing].sort(), superseded: [...state.superseded].sort(), indexFiles: [...this.indexFiles].sort(), image: this.index.image() };
    return cache.write(this.config.id, this.#indexCacheKey(), content);
  }

  /**
   * Adds to the master index the packs of index files this process wrote with saveIndex (`ids`, which list exactly
   * `packs`): PackSaver calls it once the write is done. The index then still holds what the index files hold, so
   * it may be cached.
   */
  addWrittenIndex(ids: Id[], packs: IndexDocument['packs']): void {
    for (const p of packs) this.index.addPack(p.id, p.blobs);
    this.indexFiles.push(...ids);
    for (const id of ids) this.#indexListing?.listing.add(id);
  }

  /** Writes index documents for the given packs (split so no document grows huge); returns their ids. */
  async saveIndex(packs: IndexDocument['packs'], supersedes: Id[] = []): Promise<Id[]> {
    // A rewrite (prune, repair): the master index is not what the index files hold until it is loaded again.
    if (supersedes.length > 0) this.#indexListing = undefined;
    const ids: Id[] = [];
    const maxBlobs = 50_000;
    let batch: IndexDocument['packs'] = [];
    let count = 0;
    const flush = async (last: boolean): Promise<void> => {
      if (batch.length === 0 && !(last && supersedes.length > 0)) return;
      // Only the final document carries `supersedes`, so the old files stay authoritative until all are written.
      ids.push(await this.saveDocument('index', buildIndexDocument(batch, last ? supersedes : [])));
      batch = [];
      count = 0;
    };
    for (const p of packs) {
      if (count + p.blobs.length > maxBlobs && batch.length > 0) await flush(false);
      batch.push(p);
      count += p.blobs.length;
    }
    await flush(true);
    return ids;
  }

  /** Reads, decrypts and decompresses one blob. */
  async loadBlob(type: BlobType, id: Id): Promise<Uint8Array> {
    const loc = this.index.lookup(id);
    if (!loc) {
      throw new BackupError('CORRUPT', `${type} blob ${id.slice(0, 12)} is not in any index: data is missing from the repository. Run \`bam verify\``, { subject: `blob ${id}` });
    }
    if (loc.type !== type) throw new BackupError('CORRUPT', `blob ${id.slice(0, 12)} is indexed as ${loc.type}, expected ${type}`);
    let envelope: Uint8Array;
    try {
      envelope = type === 'tree' ? await this.treeEnvelope(loc) : await this.backend.load({ type: 'data', name: loc.packId }, loc.offset, loc.length);
    } catch (e) {
      // The index names this pack and range, so a missing or short pack is repository damage, not a caller error.
      if (isBackupError(e, 'NOT_FOUND') || isBackupError(e, 'INVALID_RANGE')) {
        const detail = e.code === 'NOT_FOUND' ? 'is missing' : `is shorter than the index says (blob ${id.slice(0, 12)} at bytes ${loc.offset}..${loc.offset + loc.length})`;
        throw new BackupError('CORRUPT', `pack ${loc.packId.slice(0, 12)} ${detail}: ${type} blob ${id.slice(0, 12)} cannot be read. Run \`bam verify\` to see what is affected`, { cause: e, subject: `data/${loc.packId}` });
      }
      throw e;
    }
    // As crypto/blob.ts openBlob, with this repository's reused zstd context.
    const what = `pack ${loc.packId.slice(0, 12)} blob ${id.slice(0, 12)}`;
    const payload = open(cryptoMaterial(this).key, envelope, blobAad(type, idToBytes(id)), what);
    // A plaintext larger than any blob the archiver makes is decoded the ordinary way, whose output grows with what
    // the frame really holds: a damaged index entry must not make this thread reserve gigabytes up front.
    if (payload[0] !== PAYLOAD_ZSTD || payload.byteLength < 2 || loc.rawLength > DEFAULT_MAX_PAYLOAD) return decodePayload(payload, what, loc.rawLength);
    // One byte of room beyond the expected length lets zstd show in one call that the content ends there.
    const out = new Uint8Array(loc.rawLength + 1);
    this.decompressor.decompressInto(payload.subarray(1), out, 0, loc.rawLength, what);
    return out.subarray(0, loc.rawLength);
  }

  /**
   * The envelope of a tree blob, from a window of its pack read before or read now (see TREE_WINDOW_BYTES). Any
   * failure to read a window falls back to reading the blob's own range, so errors name that range as before.
   */
  private async treeEnvelope(loc: BlobLocation): Promise<Uint8Array> {
    const end = loc.offset + loc.length;
    const windows = this.treeWindows;
    for (let i = windows.length - 1; i >= 0; i--) {
      const w = windows[i]!;
      if (w.packId !== loc.packId || w.start > loc.offset || end > w.end) continue;
      if (i !== windows.length - 1) windows.push(...windows.splice(i, 1));
      try {
        return (await w.bytes).subarray(loc.offset - w.start, end - w.start);
      } catch {
        this.treeWindows = this.treeWindows.filter((x) => x !== w);
        return this.backend.load({ type: 'data', name: loc.packId }, loc.offset, loc.length);
      }
    }
    const extent = this.index.extentOf(loc.packId, 'tree');
    if (!extent || loc.length >= TREE_WINDOW_BYTES / 2) return this.backend.load({ type: 'data', name: loc.packId }, loc.offset, loc.length);
    // Trees are written children first, so a walk from the top reads next what lies before this tree: the window
    // reaches mostly backwards.
    const start = Math.max(extent.start, Math.min(loc.offset, end - (TREE_WINDOW_BYTES * 3) / 4));
    const w: TreeWindow = { packId: loc.packId, start, end: Math.max(end, Math.min(extent.end, start + TREE_WINDOW_BYTES)), bytes: Promise.resolve(new Uint8Array(0)) };
    w.bytes = this.backend.load({ type: 'data', name: loc.packId }, w.start, w.end - w.start);
    w.bytes.catch(() => undefined);
    windows.push(w);
    if (windows.length > TREE_WINDOWS) windows.shift();
    try {
      return (await w.bytes).subarray(loc.offset - w.start, end - w.start);
    } catch {
      this.treeWindows = this.treeWindows.filter((x) => x !== w);
      return this.backend.load({ type: 'data', name: loc.packId }, loc.offset, loc.length);
    }
  }

  /** Loads a tree, with a small cache: restores and incremental backups read the same trees repeatedly. */
  async loadTree(id: Id): Promise<TreeDocument> {
    const hit = this.treeCache.get(id);
    if (hit) {
      this.treeCache.delete(id);
      this.treeCache.set(id, hit);
      return hit;
    }
    const bytes = await this.loadBlob('tree', id);
    const tree = decodeTree(bytes, `tree ${id.slice(0, 12)}`);
    this.treeCache.set(id, tree);
    this.treeCacheWeight += tree.nodes.length + 1;
    while (this.treeCacheWeight > 200_000 && this.treeCache.size > 1) {
      const [oldId, old] = this.treeCache.entries().next().value as [Id, TreeDocument];
      this.treeCache.delete(oldId);
      this.treeCacheWeight -= old.nodes.length + 1;
    }
    return tree;
  }

  // ---- keys -----------------------------------------------------------------------------------------------

  async listKeys(): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    for (const id of await this.listIds('keys')) {
      const doc: KeyFile = parseKeyFile(await this.backend.load({ type: 'keys', name: id }), `key ${id.slice(0, 12)}`);
      out.push({ id, created: doc.created, hostname: doc.hostname, username: doc.username, current: id === this.keyId });
    }
    return out.sort((a, b) => compareTime(a.created, b.created));
  }

  /** Adds a key file wrapping the same master key under another password. */
  async addKey(password: string, scrypt: ScryptParams = DEFAULT_SCRYPT): Promise<Id> {
    assertPassword(password);
    const { bytes } = await createKeyFile(password, cryptoMaterial(this).key, scrypt, {
      hostname: this.context.hostname,
      username: this.context.username,
      now: this.context.now(),
    });
    const id = sha256Hex(bytes);
    await this.backend.save({ type: 'keys', name: id }, bytes);
    return id;
  }

  /** Removes a key. The key this session opened with cannot be removed (use `key passwd` to replace it). */
  async removeKey(idOrPrefix: string): Promise<Id> {
    const keys = await this.listIds('keys');
    const matches = keys.filter((k) => k.startsWith(idOrPrefix));
    if (matches.length !== 1) {
      throw new BackupError(matches.length === 0 ? 'NOT_FOUND' : 'INVALID_ARGUMENT', matches.length === 0 ? `no key id starts with ${idOrPrefix}: see \`bam key list\`` : `${idOrPrefix} matches ${matches.length} keys: give more characters`);
    }
    const id = matches[0]!;
    if (id === this.keyId) {
      throw new BackupError('INVALID_ARGUMENT', 'refusing to remove the key this command opened the repository with: use `bam key passwd` to change its password, or open with another key first');
    }
    if (keys.length === 1) throw new BackupError('INVALID_ARGUMENT', 'refusing to remove the last key: the repository would become unreadable');
    // Key files live outside the append-only protection: removing one never deletes backup data.
    await rawBackend(this.backend).remove({ type: 'keys', name: id });
    return id;
  }

  /** Replaces the current key's password: writes the new key first, then removes the old one. */
  async changePassword(newPassword: string, scrypt: ScryptParams = DEFAULT_SCRYPT): Promise<Id> {
    const newId = await this.addKey(newPassword, scrypt);
    await rawBackend(this.backend).remove({ type: 'keys', name: this.keyId });
    (this as { keyId: Id }).keyId = newId;
    return newId;
  }
}

function rawBackend(b: Backend): Backend {
  return b instanceof AppendOnlyBackend ? b.inner : b;
}

function materialFor(key: Uint8Array, config: RepoConfigDocument): CryptoMaterial {
  return {
    key,
    chunkerSecret: idToBytes(config.chunker.secret),
    chunkSizes: { minSize: config.chunker.minSize, avgSize: config.chunker.avgSize, maxSize: config.chunker.maxSize },
    compression: { compression: config.compression, level: config.compressionLevel },
  };
}

function parseConfigDocument(v: unknown): RepoConfigDocument {
  const c = v as Partial<RepoConfigDocument> | null;
  if (!c || typeof c !== 'object') throw new BackupError('CORRUPT', 'the repository config is damaged: it is not an object');
  if (c.version !== FORMAT_VERSION) {
    throw new BackupError('UNSUPPORTED_VERSION', `the repository has format version ${String(c.version)}, this program reads version ${FORMAT_VERSION}: upgrade bam`);
  }
  const ch = c.chunker;
  const ok = typeof c.id === 'string' && /^[0-9a-f]{64}$/.test(c.id) && ch && typeof ch.secret === 'string' && /^[0-9a-f]{64}$/.test(ch.secret)
    && Number.isSafeInteger(ch.minSize) && Number.isSafeInteger(ch.avgSize) && Number.isSafeInteger(ch.maxSize)
    && Number.isSafeInteger(c.packSize) && (c.compression === 'zstd' || c.compression === 'none')
    && Number.isSafeInteger(c.compressionLevel) && typeof c.appendOnly === 'boolean';
  if (!ok) throw new BackupError('CORRUPT', 'the repository config is damaged: a field is missing or malformed');
  validateChunkSizes({ minSize: ch.minSize, avgSize: ch.avgSize, maxSize: ch.maxSize });
  return c as RepoConfigDocument;
}

function assertPassword(password: string): void {
  if (password.length === 0) throw new BackupError('NO_PASSWORD', 'an empty password is not allowed: set BACKUP_MANAGER_PASSWORD, --password-file or --password-command');
}

async function exists(backend: Backend, h: { type: FileType; name: string }): Promise<boolean> {
  try {
    await backend.stat(h);
    return true;
  } catch (e) {
    if (isBackupError(e, 'NOT_FOUND')) return false;
    throw e;
  }
}

export function compareTime(a: string, b: string): number {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (ta !== tb) return ta - tb;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function matchesFilter(s: SnapshotDocument, f: { hostname?: string; paths?: string[]; tags?: string[] }): boolean {
  if (f.hostname !== undefined && s.hostname !== f.hostname) return false;
  if (f.paths !== undefined && f.paths.length > 0) {
    const a = [...s.paths].sort().join('\0');
    const b = [...f.paths].sort().join('\0');
    if (a !== b) return false;
  }
  if (f.tags !== undefined && f.tags.length > 0 && !f.tags.every((t) => s.tags.includes(t))) return false;
  return true;
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
