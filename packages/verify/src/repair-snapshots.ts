/**
 * `repair snapshots`: for every snapshot that references lost data, writes a new snapshot without the files whose
 * data is lost and without the directories whose listings are lost, marked `repaired: true` with `original` naming
 * the damaged one. The originals are kept (remove them with `forget` once the repaired ones are checked); nothing
 * is ever deleted here. Rewritten trees are stored like a backup stores them: packs, then index, then snapshots.
 *
 * A blob counts as lost when no index lists it, when its pack is gone, or when the caller names it as damaged
 * (from a data check: `bam repair snapshots --read-data`).
 */
import { PackSaver, compareTime, encodeTree, lockRepository, sha256Hex, shortId } from '@backup-manager/core-archive';
import type { HeldLock, Id, Repository, SnapshotDocument, TreeNode } from '@backup-manager/core-archive';
import { ensureIndex } from './load-index.ts';
import { throwIfAborted } from './util.ts';

export interface RepairSnapshotsOptions {
  dryRun?: boolean;
  /** blobs known to be damaged (e.g. the corrupt-blob findings of a data check) */
  damagedBlobs?: ReadonlySet<Id>;
  signal?: AbortSignal;
}

export interface RemovedEntry {
  path: string;
  kind: 'file' | 'dir';
  reason: string;
  /** bytes of a removed file */
  size?: number;
}

export interface SnapshotRepair {
  snapshot: Id;
  time: string;
  hostname: string;
  sources: string[];
  /** intact: nothing lost; repaired: a new snapshot is (or would be) written; unrepairable: its whole tree is lost */
  status: 'intact' | 'repaired' | 'unrepairable';
  removed: RemovedEntry[];
  /** the new root tree (also computed in a dry run) */
  newTree?: Id;
  /** the new snapshot's id (not in a dry run) */
  newSnapshot?: Id;
}

export interface RepairSnapshotsResult {
  dryRun: boolean;
  /** oldest first */
  snapshots: SnapshotRepair[];
  /** snapshot files that cannot be read at all: nothing can be saved from them */
  unreadable: { snapshot: Id; message: string }[];
  treesWritten: number;
  indexFiles: Id[];
}

interface Rebuilt {
  /** the tree's new id; null when the listing itself is lost */
  id: Id | null;
  /** entries left out, relative to this tree ('/name/…') */
  removed: RemovedEntry[];
}

export async function repairSnapshots(repo: Repository, options: RepairSnapshotsOptions = {}): Promise<RepairSnapshotsResult> {
  const dryRun = options.dryRun === true;
  let lock: HeldLock | undefined;
  if (!dryRun) lock = await lockRepository(repo, { exclusive: true, operation: 'repair snapshots' });
  try {
    await ensureIndex(repo);
    const packs = new Set<Id>();
    for await (const f of repo.backend.list('data')) packs.add(f.name);
    const damaged = options.damagedBlobs ?? new Set<Id>();
    const lostReason = (id: Id): string | undefined => {
      if (damaged.has(id)) return 'is damaged';
      const loc = repo.index.lookup(id);
      if (!loc) return 'is in no index';
      if (!packs.has(loc.packId)) return `is in pack ${shortId(loc.packId)}, which is missing`;
      return undefined;
    };
    const saver = dryRun ? undefined : new PackSaver(repo);
    let treesWritten = 0;
    const memo = new Map<Id, Rebuilt>();

    const rebuild = async (treeId: Id): Promise<Rebuilt> => {
      const known = memo.get(treeId);
      if (known) return known;
      throwIfAborted(options.signal, 'repair snapshots');
      let nodes: TreeNode[] | undefined;
      if (lostReason(treeId) === undefined) {
        try {
          nodes = (await repo.loadTree(treeId)).nodes;
        } catch {
          nodes = undefined;
        }
      }
      if (!nodes) {
        const r: Rebuilt = { id: null, removed: [] };
        memo.set(treeId, r);
        return r;
      }
      const kept: TreeNode[] = [];
      const removed: RemovedEntry[] = [];
      let changed = false;
      for (const n of nodes) {
        if (n.type === 'file') {
          const lost = (n.content ?? []).find((c) => lostReason(c) !== undefined);
          if (lost) {
            removed.push({ path: `/${n.name}`, kind: 'file', reason: `data blob ${shortId(lost)} ${lostReason(lost)!}`, size: n.size ?? 0 });
            changed = true;
            continue;
          }
          kept.push(n);
        } else if (n.type === 'dir' && n.subtree) {
          const sub = await rebuild(n.subtree);
          if (sub.id === null) {
            removed.push({ path: `/${n.name}`, kind: 'dir', reason: `its directory listing (tree ${shortId(n.subtree)}) ${lostReason(n.subtree) ?? 'cannot be read'}` });
            changed = true;
            continue;
          }
          for (const r of sub.removed) removed.push({ ...r, path: `/${n.name}${r.path}` });
          if (sub.id !== n.subtree) {
            changed = true;
            kept.push({ ...n, subtree: sub.id });
          } else kept.push(n);
        } else kept.push(n);
      }
      let id = treeId;
      if (changed) {
        const bytes = encodeTree(kept);
        id = sha256Hex(bytes);
        if (saver) {
          const { added } = await saver.addPlain('tree', bytes);
          if (added) treesWritten++;
        }
      }
      const r: Rebuilt = { id, removed };
      memo.set(treeId, r);
      return r;
    };

    const results: SnapshotRepair[] = [];
    const unreadable: RepairSnapshotsResult['unreadable'] = [];
    const toWrite: { repair: SnapshotRepair; doc: SnapshotDocument }[] = [];
    for (const id of await repo.listIds('snapshots')) {
      let snap: SnapshotDocument;
      try {
        snap = await repo.loadSnapshot(id);
      } catch (e) {
        unreadable.push({ snapshot: id, message: (e as Error).message });
        continue;
      }
      const r = await rebuild(snap.tree);
      const repair: SnapshotRepair = {
        snapshot: id, time: snap.time, hostname: snap.hostname, sources: snap.paths,
        status: r.id === null ? 'unrepairable' : r.id === snap.tree ? 'intact' : 'repaired',
        removed: r.id === null ? [{ path: '/', kind: 'dir', reason: `its root directory listing (tree ${shortId(snap.tree)}) ${lostReason(snap.tree) ?? 'cannot be read'}` }] : r.removed,
      };
      if (r.id !== null) repair.newTree = r.id;
      results.push(repair);
      if (repair.status === 'repaired') {
        const files = r.removed.filter((x) => x.kind === 'file');
        const bytes = files.reduce((n, x) => n + (x.size ?? 0), 0);
        const summary = { ...snap.summary, totalFiles: Math.max(0, snap.summary.totalFiles - files.length), totalBytes: Math.max(0, snap.summary.totalBytes - bytes) };
        toWrite.push({ repair, doc: { ...snap, tree: r.id!, summary, repaired: true, original: id } });
      }
    }
    results.sort((a, b) => compareTime(a.time, b.time) || (a.snapshot < b.snapshot ? -1 : 1));
    let indexFiles: Id[] = [];
    if (saver) {
      throwIfAborted(options.signal, 'repair snapshots');
      // Trees, then their index, then the snapshots that point at them: a crash leaves only unreferenced data.
      indexFiles = await saver.finish();
      for (const w of toWrite) w.repair.newSnapshot = await repo.saveSnapshot(w.doc);
    }
    return { dryRun, snapshots: results, unreadable, treesWritten, indexFiles };
  } finally {
    await lock?.release().catch(() => undefined);
  }
}
