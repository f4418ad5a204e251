/**
 * `repair index`: rebuilds the index from the pack files themselves. Every pack's header is read and authenticated;
 * the blobs they list become new index files that supersede every old one. The new files are written first and
 * the old ones removed afterwards, so a crash in between leaves both (harmless: readers skip superseded files).
 * A pack whose header cannot be read is left out and reported: its blobs stay unindexed.
 */
import { BackupError, cryptoMaterial, isBackupError, lockRepository, readPackHeader, shortId } from '@backup-manager/core-archive';
import type { HeldLock, Id, IndexPackEntry, Repository } from '@backup-manager/core-archive';
import { loadIndexTolerant } from './load-index.ts';
import { compareIds, mapLimit, throwIfAborted } from './util.ts';

export interface RepairIndexOptions {
  /** plan only: read the headers, write and remove nothing */
  dryRun?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: (e: { type: 'progress'; done: number; total: number }) => void;
}

export interface RepairIndexResult {
  dryRun: boolean;
  /** packs indexed from their headers */
  packs: number;
  blobs: number;
  /** packs left out because their header cannot be read */
  unreadablePacks: { pack: Id; message: string }[];
  /** packs the old index listed that are not in data/ (their entries are dropped) */
  droppedPacks: Id[];
  /** packs that were in data/ but in no index (they are indexed now) */
  addedPacks: Id[];
  /** index files superseded and removed (or to be) */
  oldIndexFiles: Id[];
  /** index files written (empty in a dry run) */
  newIndexFiles: Id[];
  /** old index files that could not be removed (e.g. append-only); superseded, so harmless */
  notRemoved: { id: Id; message: string }[];
}

/** Rebuilds the index. Takes an exclusive lock unless `dryRun`. */
export async function repairIndex(repo: Repository, options: RepairIndexOptions = {}): Promise<RepairIndexResult> {
  const dryRun = options.dryRun === true;
  let lock: HeldLock | undefined;
  if (!dryRun) lock = await lockRepository(repo, { exclusive: true, operation: 'repair index' });
  try {
    const before = await loadIndexTolerant(repo, { populate: false }).catch(() => undefined);
    const oldIndexFiles = await repo.listIds('index');
    const packFiles: { id: Id; size: number }[] = [];
    for await (const f of repo.backend.list('data')) packFiles.push({ id: f.name, size: f.size });
    packFiles.sort((a, b) => compareIds(a.id, b.id));
    const key = cryptoMaterial(repo).key;
    const unreadablePacks: RepairIndexResult['unreadablePacks'] = [];
    let done = 0;
    const entries = await mapLimit(packFiles, options.concurrency ?? 8, async (p): Promise<IndexPackEntry | undefined> => {
      throwIfAborted(options.signal, 'repair index');
      try {
        const blobs = await readPackHeader((o, l) => repo.backend.load({ type: 'data', name: p.id }, o, l), p.size, key, p.id);
        return { id: p.id, blobs };
      } catch (e) {
        if (!isBackupError(e) || ['CORRUPT', 'INVALID_RANGE', 'NOT_FOUND', 'IO'].includes(e.code)) {
          unreadablePacks.push({ pack: p.id, message: (e as Error).message });
          return undefined;
        }
        throw e;
      } finally {
        done++;
        options.onEvent?.({ type: 'progress', done, total: packFiles.length });
      }
    });
    const packs = entries.filter((e): e is IndexPackEntry => e !== undefined);
    const onDisk = new Set(packFiles.map((p) => p.id));
    const indexed = new Set(packs.map((p) => p.id));
    const oldPacks = before ? [...before.packs.keys()] : [];
    const result: RepairIndexResult = {
      dryRun,
      packs: packs.length,
      blobs: packs.reduce((n, p) => n + p.blobs.length, 0),
      unreadablePacks: unreadablePacks.sort((a, b) => compareIds(a.pack, b.pack)),
      droppedPacks: oldPacks.filter((id) => !onDisk.has(id)).sort(),
      addedPacks: [...indexed].filter((id) => !before?.packs.has(id)).sort(),
      oldIndexFiles,
      newIndexFiles: [],
      notRemoved: [],
    };
    if (dryRun) return result;
    throwIfAborted(options.signal, 'repair index');
    result.newIndexFiles = await repo.saveIndex(packs, oldIndexFiles);
    // A repository opened just for this can go on using the new index; one that had loaded the old index should be
    // reopened, since the master index cannot forget entries.
    for (const p of packs) repo.index.addPack(p.id, p.blobs);
    repo.indexFiles = result.newIndexFiles;
    const fresh = new Set(result.newIndexFiles);
    for (const id of oldIndexFiles) {
      if (fresh.has(id)) continue;
      try {
        await repo.backend.remove({ type: 'index', name: id });
      } catch (e) {
        result.notRemoved.push({ id, message: (e as Error).message });
      }
    }
    return result;
  } catch (e) {
    if (isBackupError(e)) throw e;
    throw new BackupError('INTERNAL', `repair index failed: ${(e as Error).message}`, { cause: e });
  } finally {
    await lock?.release().catch(() => undefined);
  }
}

/** One line per thing done, for people. */
export function describeRepairIndex(r: RepairIndexResult): string[] {
  const lines: string[] = [];
  lines.push(`${r.dryRun ? 'would index' : 'indexed'} ${r.packs} pack(s) holding ${r.blobs} blob(s) from their headers`);
  if (r.addedPacks.length > 0) lines.push(`${r.addedPacks.length} of them were in no index before: ${r.addedPacks.map(shortId).join(', ')}`);
  if (r.droppedPacks.length > 0) lines.push(`${r.dryRun ? 'would drop' : 'dropped'} the entries of ${r.droppedPacks.length} pack(s) missing from data/: ${r.droppedPacks.map(shortId).join(', ')}`);
  for (const u of r.unreadablePacks) lines.push(`left out pack ${shortId(u.pack)}: ${u.message}`);
  if (r.dryRun) lines.push(`would write new index file(s) superseding ${r.oldIndexFiles.length} old one(s), then remove the old ones`);
  else lines.push(`wrote ${r.newIndexFiles.length} index file(s) (${r.newIndexFiles.map(shortId).join(', ')}), superseding and removing ${r.oldIndexFiles.length - r.notRemoved.length} old one(s)`);
  for (const n of r.notRemoved) lines.push(`could not remove old index ${shortId(n.id)} (${n.message}); it is superseded, so readers ignore it`);
  return lines;
}
