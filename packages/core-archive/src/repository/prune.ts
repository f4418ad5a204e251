/**
 * Prune: removes the data no snapshot references any more. It is split into a read-only `planPrune` (walk every
 * snapshot's trees once to learn which blobs are used, then decide per pack: keep, delete, or repack because too
 * much of it is unused) and `executePrune`, which carries the plan out in an order that survives being killed at
 * any moment (docs/format.md, "Pruning and concurrency"):
 *
 *   1. write the repacked packs (and an index listing them),
 *   2. write new index files covering every remaining pack, the last of which `supersedes` every old index file,
 *   3. delete the old index files,
 *   4. delete the packs nothing references any more.
 *
 * Until step 2 completes the old index files are authoritative and every old pack still exists; after it the new
 * index is, and it names only packs that exist. Whatever a crash leaves behind (unindexed packs, superseded index
 * files, duplicate blobs) is what the next prune cleans up. The caller holds an exclusive lock for plan and
 * execution together, so no backup adds data in between.
 */
import { LocalBackend } from '../backend/local.ts';
import type { Backend } from '../backend/backend.ts';
import { AppendOnlyBackend } from '../backend/append-only.ts';
import { idToBytes, sha256Hex } from '../crypto/hash.ts';
import { BackupError, isBackupError } from '../errors.ts';
import type { Id, IndexBlobEntry, IndexPackEntry } from '../format.ts';
import { MasterIndex } from '../index/master-index.ts';
import { releaseBytes } from '../crypto/bytes.ts';
import { HEADER_ENTRY_BYTES, TRAILER_BYTES } from '../pack/pack.ts';
import { BlobOpener } from '../crypto/blob-opener.ts';
import { ENVELOPE_OVERHEAD } from '../crypto/aead.ts';
import { PackSaver } from './pack-saver.ts';
import { BlobStateMap } from './prune-blob-set.ts';
import { cryptoMaterial, mapLimit } from './repository.ts';
import type { Repository } from './repository.ts';
import { decodeTree } from './tree.ts';

/** Default share of a pack's blob bytes that may be unused before prune repacks it. */
export const DEFAULT_MAX_UNUSED = 0.05;

export type PrunePhase = 'index' | 'snapshots' | 'walk' | 'classify' | 'repack' | 'write-index' | 'delete-index' | 'delete-packs';

export type PruneEvent =
  | { type: 'phase'; phase: PrunePhase }
  | { type: 'progress'; phase: PrunePhase; done: number; total?: number };

export interface PrunePlanOptions {
  /** Largest share (0..1) of a pack's blob bytes that may be unused or duplicated before it is repacked. Default 0.05. */
  maxUnused?: number;
  /** Snapshots to treat as already removed: `forget --prune` plans the prune before it deletes them. */
  ignoreSnapshots?: ReadonlySet<Id>;
  /** Tree blobs loaded in parallel while walking snapshots. Default 8. */
  concurrency?: number;
  /** Stops at the next safe point; a BackupError reason (e.g. LOCKED for a lost lock) is thrown as it is. */
  signal?: AbortSignal;
  onEvent?: (e: PruneEvent) => void;
}

export interface PruneExecuteOptions {
  /** Stops at the next safe point (between packs, deletes and steps); the repository stays valid. */
  signal?: AbortSignal;
  onEvent?: (e: PruneEvent) => void;
  /** Deletes in flight. Default 8. */
  concurrency?: number;
}

export interface PruneFileRef {
  id: Id;
  size: number;
}

/** A pack to repack: its file, and the blobs to copy out of it (the rest of it is unused or kept elsewhere). */
export interface PruneRepackJob extends PruneFileRef {
  blobs: IndexBlobEntry[];
}

export interface PruneStats {
  /** snapshots whose trees were walked */
  snapshots: number;
  trees: number;
  /** distinct blobs some walked snapshot references, and the bytes of one stored copy of each */
  usedBlobs: number;
  usedBytes: number;
  /** pack files present and their bytes (indexed or not) */
  packs: number;
  packBytes: number;
  /** packBytes minus usedBytes: unreferenced blobs, duplicate copies, pack headers */
  unusedBytes: number;
  /** blob bytes that stay unused or duplicated after the prune (in kept packs below the threshold) */
  unusedBytesAfter: number;
}

export interface PrunePlan {
  readonly repositoryId: string;
  readonly maxUnused: number;
  /** indexed packs that stay as they are */
  keep: Id[];
  keepBytes: number;
  /** indexed packs no walked snapshot needs */
  remove: PruneFileRef[];
  /** packs whose needed blobs are copied into new packs before they are removed */
  repack: PruneRepackJob[];
  /** pack files that no index lists (left by an interrupted backup or prune) */
  unreferenced: PruneFileRef[];
  /** packs an index lists that do not exist (or are shorter than their index says), holding no needed blob */
  missing: Id[];
  /** every index file present when planning; all are superseded when the index is rewritten */
  indexFiles: PruneFileRef[];
  /** true when new index files are written (packs removed or repacked, or leftovers of an interrupted prune) */
  rewriteIndex: boolean;
  /** snapshot ids that existed when planning (the ignored ones included) */
  snapshotIds: Id[];
  stats: PruneStats;
  /** bytes the prune should free: removed files minus the repacked copies written (index files not counted) */
  estimatedBytesFreed: number;
  repackBlobs: number;
  repackBytes: number;
  /** nothing to do: a prune right after a complete prune */
  empty: boolean;
  durationMs: number;
}

export interface PruneResult {
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  blobsRepacked: number;
  indexFilesWritten: number;
  indexFilesDeleted: number;
  /** bytes of every repository file deleted (packs and index files) */
  bytesDeleted: number;
  /** bytes of every repository file written (repacked packs and index files) */
  bytesWritten: number;
  /** bytesDeleted − bytesWritten: how much smaller the repository is now */
  bytesFreed: number;
  /** leftover temporary files of killed writers removed (local repositories) */
  tempFilesRemoved: number;
  durationMs: number;
}

// States of a used blob while planning.
const USED = 1; // some snapshot references it; no readable copy found yet
const AVAILABLE = 2; // a copy exists in a pack that is present
const PLACED = 3; // a copy is in a pack the plan keeps, or is scheduled for repacking

const PACK_OVERHEAD = ENVELOPE_OVERHEAD + 1 + TRAILER_BYTES;
/** Blobs per index file when prune rewrites the index. */
const INDEX_DOCUMENT_BLOBS = 16 * 1024;

/**
 * Refuses with APPEND_ONLY when the repository is append-only. Forget and prune call it before they plan anything,
 * so an append-only repository never shows a plan that pretends it could act.
 */
export function assertDeletable(repo: Repository, operation: string): void {
  if (repo.config.appendOnly || repo.backend instanceof AppendOnlyBackend) {
    throw new BackupError(
      'APPEND_ONLY',
      `this repository is append-only (created with \`bam init --append-only\`), so ${operation} is refused and nothing was changed. ` +
        'Append-only means no client can delete or rewrite what is stored, so ransomware or an intruder on a machine that has the ' +
        'password still cannot destroy the existing backups. Snapshots in it are never removed by bam: size the destination for that, ' +
        'or apply retention to a repository that is not append-only',
    );
  }
}

/** Replaces the repository's in-memory index with a fresh one read from the index files. */
export async function reloadIndex(repo: Repository): Promise<void> {
  // The master index only grows; after a prune it would still point at deleted packs, so it is rebuilt instead.
  (repo as { index: MasterIndex }).index = new MasterIndex();
  repo.indexFiles = [];
  await repo.loadIndex();
}

/** Stops at a safe point when asked to: with the signal's reason when it is a BackupError (a lost lock), else INTERRUPTED. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  if (isBackupError(signal.reason)) throw signal.reason;
  throw new BackupError('INTERRUPTED', 'prune was interrupted; the repository is intact, and the next `bam prune` finishes the job');
}

async function listFiles(backend: Backend, type: 'data' | 'index'): Promise<Map<Id, number>> {
  const out = new Map<Id, number>();
  for await (const f of backend.list(type)) out.set(f.name, f.size);
  return out;
}

/**
 * Marks every blob reachable from `roots` in `used`: one pass, each tree loaded once however many snapshots share it.
 * Returns the number of trees and the data blobs referenced but absent from the index.
 */
async function walkTrees(
  repo: Repository,
  roots: Id[],
  used: BlobStateMap,
  concurrency: number,
  signal: AbortSignal | undefined,
  progress: (trees: number) => void,
): Promise<{ trees: number; missing: string[]; missingCount: number }> {
  const queue: Id[] = [];
  for (const r of roots) if (used.add(r, USED)) queue.push(r);
  const missing: string[] = [];
  let missingCount = 0;
  let active = 0;
  let trees = 0;
  let failure: unknown;
  let waiting: (() => void)[] = [];
  const wakeAll = (): void => {
    const w = waiting;
    waiting = [];
    for (const f of w) f();
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failure !== undefined) return;
      if (signal?.aborted) {
        failure = isBackupError(signal.reason) ? signal.reason : new BackupError('INTERRUPTED', 'prune was interrupted while reading snapshots; nothing was changed');
        wakeAll();
        return;
      }
      const id = queue.pop();
      if (id === undefined) {
        if (active === 0) {
          wakeAll();
          return;
        }
        await new Promise<void>((resolve) => waiting.push(resolve));
        continue;
      }
      active++;
      try {
        const bytes = await repo.loadBlob('tree', id);
        const tree = decodeTree(bytes, `tree ${id.slice(0, 12)}`);
        // Decoded: free the bytes now (they are this call's alone), not with the next collection.
        releaseBytes(bytes, true);
        for (const node of tree.nodes) {
          if (node.type === 'file') {
            for (const c of node.content ?? []) {
              if (used.add(c, USED) && !repo.index.has(c)) {
                missingCount++;
                if (missing.length < 5) missing.push(c);
              }
            }
          } else if (node.type === 'dir' && node.subtree !== undefined) {
            if (used.add(node.subtree, USED)) queue.push(node.subtree);
          }
        }
        trees++;
        progress(trees);
      } catch (e) {
        failure ??= e;
      } finally {
        active--;
        wakeAll();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  if (failure !== undefined) throw failure;
  return { trees, missing, missingCount };
}

/** End of the last blob of a pack according to the index. */
function blobsEnd(blobs: readonly IndexBlobEntry[]): number {
  let end = 0;
  for (const b of blobs) end = Math.max(end, b.offset + b.length);
  return end;
}

/**
 * Plans a prune without changing anything. Fails with CORRUPT when a snapshot references data that is not in the
 * repository: pruning a damaged repository could make things worse, so it refuses and points at `bam verify`.
 */
export async function planPrune(repo: Repository, options: PrunePlanOptions = {}): Promise<PrunePlan> {
  const started = performance.now();
  const maxUnused = options.maxUnused ?? DEFAULT_MAX_UNUSED;
  if (!(maxUnused >= 0 && maxUnused <= 1)) {
    throw new BackupError('INVALID_ARGUMENT', `the unused share must be between 0% and 100%, got ${maxUnused * 100}%`);
  }
  const emit = options.onEvent ?? (() => undefined);
  const signal = options.signal;

  emit({ type: 'phase', phase: 'index' });
  const indexFiles = await listFiles(repo.backend, 'index');
  await reloadIndex(repo);
  const supersededPresent = indexFiles.size > repo.indexFiles.length;
  throwIfAborted(signal);

  emit({ type: 'phase', phase: 'snapshots' });
  const snapshots = await repo.listSnapshots();
  const ignore = options.ignoreSnapshots ?? new Set<Id>();
  const walked = snapshots.filter((s) => !ignore.has(s.id));
  throwIfAborted(signal);

  emit({ type: 'phase', phase: 'walk' });
  const used = new BlobStateMap();
  const walk = await walkTrees(repo, walked.map((s) => s.snapshot.tree), used, options.concurrency ?? 8, signal, (trees) => {
    if (trees % 256 === 0) emit({ type: 'progress', phase: 'walk', done: trees });
  });
  emit({ type: 'progress', phase: 'walk', done: walk.trees });
  if (walk.missingCount > 0) {
    throw new BackupError(
      'CORRUPT',
      `${walk.missingCount} data blob(s) that snapshots reference are in no index (e.g. ${walk.missing.map((m) => m.slice(0, 12)).join(', ')}): ` +
        'the repository is damaged, and prune refuses to delete anything until it is repaired. Run `bam verify` to see which snapshots are affected',
      { subject: `blob ${walk.missing[0]}` },
    );
  }
  throwIfAborted(signal);

  emit({ type: 'phase', phase: 'classify' });
  const packFiles = await listFiles(repo.backend, 'data');
  const indexedPacks = repo.index.packIds();
  // Pass 1: which used blobs have a copy in a pack that exists and is as long as its index says, and how much of
  // each such pack no snapshot uses.
  interface Candidate { id: Id; size: number; share: number }
  const candidates: Candidate[] = [];
  const remove: PruneFileRef[] = [];
  const missing: Id[] = [];
  for (const packId of indexedPacks) {
    const size = packFiles.get(packId);
    const blobs = repo.index.blobsOfPack(packId);
    if (size === undefined || size < blobsEnd(blobs) + PACK_OVERHEAD) {
      missing.push(packId);
      continue;
    }
    let total = 0;
    let unused = 0;
    for (const b of blobs) {
      total += b.length;
      const state = used.get(b.id);
      if (state < 0) unused += b.length;
      else if (state === USED) used.set(b.id, AVAILABLE);
    }
    if (unused === total) remove.push({ id: packId, size });
    else candidates.push({ id: packId, size, share: total === 0 ? 1 : unused / total });
  }
  const unavailable = used.countState(USED);
  if (unavailable > 0) {
    const examples = used.idsWithState(USED, 5);
    throw new BackupError(
      'CORRUPT',
      `${unavailable} blob(s) that snapshots reference have no readable pack (e.g. ${examples.map((m) => m.slice(0, 12)).join(', ')}): ` +
        'their pack files are missing or shorter than the index says. Prune refuses to delete anything until the repository is repaired; run `bam verify`',
      { subject: `blob ${examples[0]}` },
    );
  }

  // Pass 2: decide per pack. Packs with the least waste go first, so that of several copies of a blob the one in
  // a pack that is kept anyway wins, and the copies elsewhere count as waste.
  candidates.sort((a, b) => a.share - b.share || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const keep: Id[] = [];
  let keepBytes = 0;
  const repack: PruneRepackJob[] = [];
  let unusedBytesAfter = 0;
  // One stored copy of every used blob, in the pack the plan chose for it.
  let usedBytes = 0;
  for (const c of candidates) {
    const blobs = repo.index.blobsOfPack(c.id);
    let total = 0;
    let waste = 0;
    const needed: IndexBlobEntry[] = [];
    const seen = new Set<Id>();
    for (const b of blobs) {
      total += b.length;
      if (used.get(b.id) === AVAILABLE && !seen.has(b.id)) {
        seen.add(b.id);
        needed.push(b);
      } else {
        waste += b.length;
      }
    }
    if (needed.length === 0) {
      remove.push({ id: c.id, size: c.size });
      continue;
    }
    for (const b of needed) used.set(b.id, PLACED);
    usedBytes += total - waste;
    if (total > 0 && waste / total > maxUnused) {
      repack.push({ id: c.id, size: c.size, blobs: needed });
    } else {
      keep.push(c.id);
      keepBytes += c.size;
      unusedBytesAfter += waste;
    }
  }
  const indexed = new Set(indexedPacks);
  const unreferenced: PruneFileRef[] = [];
  let packBytes = 0;
  for (const [id, size] of packFiles) {
    packBytes += size;
    if (!indexed.has(id)) unreferenced.push({ id, size });
  }
  remove.sort((a, b) => (a.id < b.id ? -1 : 1));
  unreferenced.sort((a, b) => (a.id < b.id ? -1 : 1));

  let repackBlobs = 0;
  let repackBytes = 0;
  for (const j of repack) {
    repackBlobs += j.blobs.length;
    for (const b of j.blobs) repackBytes += b.length;
  }
  const repackPacks = Math.ceil(repackBytes / repo.config.packSize) + (repackBytes > 0 ? 1 : 0);
  const repackOut = repackBytes + repackBlobs * HEADER_ENTRY_BYTES + repackPacks * PACK_OVERHEAD;
  const removedBytes = [...remove, ...repack, ...unreferenced].reduce((n, f) => n + f.size, 0);
  const rewriteIndex = remove.length > 0 || repack.length > 0 || missing.length > 0 || supersededPresent;

  return {
    repositoryId: repo.config.id,
    maxUnused,
    keep,
    keepBytes,
    remove,
    repack,
    unreferenced,
    missing,
    indexFiles: [...indexFiles].map(([id, size]) => ({ id, size })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    rewriteIndex,
    snapshotIds: snapshots.map((s) => s.id),
    stats: {
      snapshots: walked.length,
      trees: walk.trees,
      usedBlobs: used.size,
      usedBytes,
      packs: packFiles.size,
      packBytes,
      unusedBytes: Math.max(0, packBytes - usedBytes),
      unusedBytesAfter,
    },
    estimatedBytesFreed: Math.max(0, removedBytes - (repack.length > 0 ? repackOut : 0)),
    repackBlobs,
    repackBytes,
    empty: !rewriteIndex && unreferenced.length === 0,
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Carries out a plan from `planPrune` on the same repository, in the crash-safe order described at the top of this
 * file. The caller must still hold the exclusive lock it planned under. Refuses (LOCKED) when index or snapshot
 * files appeared since planning, since that means someone wrote without honouring the lock.
 */
export async function executePrune(repo: Repository, plan: PrunePlan, options: PruneExecuteOptions = {}): Promise<PruneResult> {
  const started = performance.now();
  assertDeletable(repo, 'prune');
  if (plan.repositoryId !== repo.config.id) throw new BackupError('INVALID_ARGUMENT', 'this prune plan was made for another repository');
  const emit = options.onEvent ?? (() => undefined);
  const signal = options.signal;
  const concurrency = options.concurrency ?? 8;
  const result: PruneResult = {
    packsDeleted: 0, packsRepacked: 0, packsWritten: 0, blobsRepacked: 0, indexFilesWritten: 0, indexFilesDeleted: 0,
    bytesDeleted: 0, bytesWritten: 0, bytesFreed: 0, tempFilesRemoved: 0, durationMs: 0,
  };
  const finish = (): PruneResult => {
    result.bytesFreed = result.bytesDeleted - result.bytesWritten;
    result.durationMs = Math.round(performance.now() - started);
    return result;
  };
  if (plan.empty) {
    result.tempFilesRemoved = await cleanupTemp(repo);
    return finish();
  }

  // Nobody may have added index or snapshot files since the plan: their packs would be unknown to it.
  const planned = new Set(plan.indexFiles.map((f) => f.id));
  const nowIndex = await listFiles(repo.backend, 'index');
  const newIndex = [...nowIndex.keys()].filter((id) => !planned.has(id));
  const plannedSnapshots = new Set(plan.snapshotIds);
  const newSnapshots = (await repo.listIds('snapshots')).filter((id) => !plannedSnapshots.has(id));
  if (newIndex.length > 0 || newSnapshots.length > 0) {
    throw new BackupError('LOCKED', `the repository changed since the prune was planned (${newIndex.length} new index file(s), ${newSnapshots.length} new snapshot(s)): another process wrote to it without a lock. Nothing was deleted; run prune again`);
  }
  throwIfAborted(signal);

  // (1) Repacked packs, and an index listing them (PackSaver writes one when it finishes).
  const supersedes = plan.indexFiles.map((f) => f.id);
  const indexSizes = new Map(plan.indexFiles.map((f) => [f.id, f.size]));
  const written: IndexPackEntry[] = [];
  if (plan.repack.length > 0) {
    emit({ type: 'phase', phase: 'repack' });
    const opener = new BlobOpener(cryptoMaterial(repo).key);
    const saver = new PackSaver(repo, {
      onPackSaved: (_id, bytes) => {
        result.packsWritten++;
        result.bytesWritten += bytes;
      },
    });
    const load = (job: PruneRepackJob): Promise<{ job: PruneRepackJob; start: number; bytes: Uint8Array }> => {
      const start = Math.min(...job.blobs.map((b) => b.offset));
      return repo.backend.load({ type: 'data', name: job.id }, start, blobsEnd(job.blobs) - start).then((bytes) => ({ job, start, bytes }));
    };
    try {
      let next = load(plan.repack[0]!);
      for (let i = 0; i < plan.repack.length; i++) {
        const { job, start, bytes } = await next;
        // Read the next pack while this one is verified and copied.
        if (i + 1 < plan.repack.length) {
          next = load(plan.repack[i + 1]!);
          next.catch(() => undefined);
        }
        for (const b of job.blobs) {
          // A view, not a copy: the pack being built copies the envelope in.
          const envelope = bytes.subarray(b.offset - start, b.offset - start + b.length);
          const what = `pack ${job.id.slice(0, 12)} blob ${b.id.slice(0, 12)}`;
          // Only hashed, never kept: the opener's reused buffer serves every blob.
          const matches = sha256Hex(opener.open(b.type, idToBytes(b.id), envelope, b.rawLength, what)) === b.id;
          if (!matches) {
            throw new BackupError('CORRUPT', `${what} does not match its id: it was stored damaged. Prune stopped before deleting anything; run \`bam verify\``, { subject: `data/${job.id}` });
          }
          await saver.add(b.type, b.id, envelope, b.rawLength);
          result.blobsRepacked++;
        }
        // Every blob of this range is copied out: free the range (only when the backend gave us a buffer of its own).
        releaseBytes(bytes);
        result.packsRepacked++;
        emit({ type: 'progress', phase: 'repack', done: i + 1, total: plan.repack.length });
        throwIfAborted(signal);
      }
      const ids = await saver.finish();
      for (const id of ids) {
        const size = (await repo.backend.stat({ type: 'index', name: id })).size;
        supersedes.push(id);
        indexSizes.set(id, size);
        result.indexFilesWritten++;
        result.bytesWritten += size;
      }
      written.push(...saver.written);
    } catch (e) {
      await saver.abandon();
      throw e;
    } finally {
      opener.close();
    }
    throwIfAborted(signal);
  }

  // (2) The new index: every pack that stays, superseding every index file there was.
  if (plan.rewriteIndex) {
    emit({ type: 'phase', phase: 'write-index' });
    // In documents of a bounded size, made one at a time: the entries of a whole repository at once would be
    // hundreds of bytes per blob of objects, JSON text and buffers. Only the last document supersedes the old files.
    const ids: Id[] = [];
    let packs: IndexPackEntry[] = [];
    let blobs = 0;
    for (const id of plan.keep) {
      const entries = repo.index.blobsOfPack(id);
      if (blobs + entries.length > INDEX_DOCUMENT_BLOBS && packs.length > 0) {
        ids.push(...(await repo.saveIndex(packs)));
        packs = [];
        blobs = 0;
      }
      packs.push({ id, blobs: entries });
      blobs += entries.length;
    }
    packs.push(...written);
    ids.push(...(await repo.saveIndex(packs, supersedes)));
    for (const id of ids) {
      result.indexFilesWritten++;
      result.bytesWritten += (await repo.backend.stat({ type: 'index', name: id })).size;
    }
    throwIfAborted(signal);

    // (3) The old index files, now superseded.
    emit({ type: 'phase', phase: 'delete-index' });
    const fresh = new Set(ids);
    const old = supersedes.filter((id) => !fresh.has(id));
    let done = 0;
    await mapLimit(old, concurrency, async (id) => {
      await repo.backend.remove({ type: 'index', name: id });
      result.indexFilesDeleted++;
      result.bytesDeleted += indexSizes.get(id) ?? 0;
      emit({ type: 'progress', phase: 'delete-index', done: ++done, total: old.length });
    });
    throwIfAborted(signal);
  }

  // (4) Packs nothing references any more.
  emit({ type: 'phase', phase: 'delete-packs' });
  const obsolete: PruneFileRef[] = [...plan.remove, ...plan.repack.map((j) => ({ id: j.id, size: j.size })), ...plan.unreferenced];
  let done = 0;
  await mapLimit(obsolete, concurrency, async (f) => {
    throwIfAborted(signal);
    await repo.backend.remove({ type: 'data', name: f.id });
    result.packsDeleted++;
    result.bytesDeleted += f.size;
    done++;
    if (done % 16 === 0 || done === obsolete.length) emit({ type: 'progress', phase: 'delete-packs', done, total: obsolete.length });
  });
  result.tempFilesRemoved = await cleanupTemp(repo);
  await reloadIndex(repo);
  return finish();
}

/** Temporary files of writers killed mid-save (local repositories; an hour old at least, so no live save is hit). */
async function cleanupTemp(repo: Repository): Promise<number> {
  const backend = repo.backend;
  if (!(backend instanceof LocalBackend)) return 0;
  try {
    return await backend.cleanupStaleTemp(60 * 60 * 1000, repo.context.now);
  } catch (e) {
    if (isBackupError(e)) return 0;
    throw e;
  }
}
