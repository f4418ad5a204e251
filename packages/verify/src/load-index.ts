/**
 * Loads the repository's index the way a checker must: file by file, so that one damaged index file is reported
 * and the others still count (Repository.loadIndex stops at the first). It fills the repository's master index,
 * so that tree loading and restore work afterwards, and keeps which pack each index file lists.
 */
import { isBackupError, parseIndexDocument } from '@backup-manager/core-archive';
import type { Id, IndexBlobEntry, IndexDocument, Repository } from '@backup-manager/core-archive';
import { mapLimit } from './util.ts';

export interface LoadedIndex {
  /** every index file in index/ */
  files: Id[];
  /** readable index files whose entries are in use (not superseded) */
  used: Id[];
  superseded: Id[];
  unreadable: { id: Id; code: string; message: string }[];
  /** pack id → how many blobs the (first) index file listing it places there */
  packs: Map<Id, number>;
  /** the blobs the (first) index file listing a pack places there, in that file's order; none for another pack */
  blobsOf(packId: Id): IndexBlobEntry[];
  /**
   * Lets go of the blobs kept for a pack whose check is done (blobsOf gives none for it afterwards): the data check
   * of a large repository would otherwise hold an object and an id string per blob to its end.
   */
  forget(packId: Id): void;
}

/** With `populate: false` the repository's master index is left as it is (to inspect the index without using it). */
export async function loadIndexTolerant(repo: Repository, options: { populate?: boolean; concurrency?: number } = {}): Promise<LoadedIndex> {
  const populate = options.populate ?? true;
  const files = await repo.listIds('index');
  const unreadable: LoadedIndex['unreadable'] = [];
  const docs = await mapLimit(files, options.concurrency ?? 8, async (id): Promise<{ id: Id; doc: IndexDocument } | undefined> => {
    try {
      return { id, doc: parseIndexDocument(await repo.loadDocument('index', id), `index ${id.slice(0, 12)}`) };
    } catch (e) {
      // Only damage is a finding; a dead connection or a missing permission fails the whole check.
      if (!isDamage(e)) throw e;
      unreadable.push({ id, code: (e as { code?: string }).code ?? 'INTERNAL', message: (e as Error).message });
      return undefined;
    }
  });
  const readable = docs.filter((d): d is { id: Id; doc: IndexDocument } => d !== undefined);
  const superseded = new Set(readable.flatMap((d) => d.doc.supersedes));
  const packs = new Map<Id, number>();
  // The parsed entries are kept as they are: rebuilding a pack's list from the master index (which holds no objects)
  // would save their memory, but turning its ids back into strings costs the main thread, which feeds the workers of
  // the data check, more than a second on a repository of a million blobs.
  const kept = new Map<Id, IndexBlobEntry[]>();
  const used: Id[] = [];
  for (const { id, doc } of readable) {
    if (superseded.has(id)) continue;
    used.push(id);
    for (const p of doc.packs) {
      if (packs.has(p.id)) continue;
      packs.set(p.id, p.blobs.length);
      kept.set(p.id, p.blobs);
      if (populate) repo.index.addPack(p.id, p.blobs);
    }
  }
  if (populate) repo.indexFiles = used;
  const blobsOf = (packId: Id): IndexBlobEntry[] => kept.get(packId) ?? [];
  const forget = (packId: Id): void => {
    kept.delete(packId);
  };
  return { files, used, superseded: files.filter((f) => superseded.has(f)), unreadable, packs, blobsOf, forget };
}

const DAMAGE = new Set(['CORRUPT', 'NOT_FOUND', 'INVALID_RANGE', 'UNSUPPORTED_VERSION', 'IO', 'INVALID_ARGUMENT']);

/**
 * Errors that mean the repository's bytes are damaged or gone, as opposed to the way to them being blocked (a dead
 * connection, a refused permission, an interrupt), which fails the whole check instead. Anything that is not a
 * BackupError was thrown by unexpected content, so it counts as damage too.
 */
export function isDamage(e: unknown): boolean {
  return !isBackupError(e) || DAMAGE.has(e.code);
}

/** Loads the index (tolerantly) unless the repository has loaded one already. */
export async function ensureIndex(repo: Repository): Promise<void> {
  if (repo.indexFiles.length === 0) await loadIndexTolerant(repo);
}
