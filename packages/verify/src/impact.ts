/**
 * Which snapshots and file paths a set of damaged blobs affects, found in one walk over every snapshot's trees.
 * Each distinct tree is read once: its result (the damaged blobs below it, as paths relative to it) is remembered
 * and reused wherever the same tree appears again, in this snapshot or another, so the walk costs about as much
 * as reading each tree once, however many snapshots share them.
 */
import type { Id, Repository, SnapshotDocument, TreeNode } from '@backup-manager/core-archive';
import { throwIfAborted } from './util.ts';

/** A damaged blob met at a path below some tree; `rel` is '' for the tree itself. */
interface Hit {
  rel: string;
  blob: Id;
}

const NO_HITS: readonly Hit[] = Object.freeze([]);

export interface SnapshotRef {
  id: Id;
  snapshot: SnapshotDocument;
}

/** For each damaged blob, the (snapshot, path) pairs that use it. Paths of a directory mean everything below it. */
export type ImpactMap = Map<Id, { snapshot: Id; path: string }[]>;

export async function mapImpact(
  repo: Repository,
  snapshots: readonly SnapshotRef[],
  damaged: ReadonlySet<Id>,
  options: { signal?: AbortSignal; onTree?: () => void; loadTree?: (id: Id) => Promise<{ nodes: TreeNode[] }> } = {},
): Promise<ImpactMap> {
  const loadTree = options.loadTree ?? ((id: Id) => repo.loadTree(id));
  const out: ImpactMap = new Map();
  if (damaged.size === 0) return out;
  const memo = new Map<Id, readonly Hit[]>();

  const below = async (treeId: Id): Promise<readonly Hit[]> => {
    const known = memo.get(treeId);
    if (known) return known;
    throwIfAborted(options.signal, 'verify');
    options.onTree?.();
    const hits: Hit[] = [];
    if (damaged.has(treeId)) hits.push({ rel: '', blob: treeId });
    let nodes: TreeNode[];
    try {
      nodes = (await loadTree(treeId)).nodes;
    } catch {
      // An unreadable tree is a finding of its own (and in `damaged` when it was found); nothing below it is known.
      nodes = [];
    }
    for (const node of nodes) {
      if (node.type === 'file') {
        const seen = new Set<Id>();
        for (const c of node.content ?? []) {
          if (damaged.has(c) && !seen.has(c)) {
            seen.add(c);
            hits.push({ rel: `/${node.name}`, blob: c });
          }
        }
      } else if (node.type === 'dir' && node.subtree) {
        for (const h of await below(node.subtree)) hits.push({ rel: `/${node.name}${h.rel}`, blob: h.blob });
      }
    }
    const result = hits.length === 0 ? NO_HITS : hits;
    memo.set(treeId, result);
    return result;
  };

  for (const { id, snapshot } of snapshots) {
    for (const h of await below(snapshot.tree)) {
      const p = h.rel === '' ? '/' : h.rel;
      let list = out.get(h.blob);
      if (!list) {
        list = [];
        out.set(h.blob, list);
      }
      list.push({ snapshot: id, path: p });
    }
  }
  return out;
}
