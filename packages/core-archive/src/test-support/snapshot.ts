/**
 * Test-only views of a snapshot's trees: the node at a path, every node below a path keyed by relative path, and a
 * field-by-field difference of two such listings. Not exported from the package.
 */
import type { Id, TreeNode } from '../format.ts';
import type { Repository } from '../repository/repository.ts';
import { resolveSnapshotPath, walkSnapshot } from '../restorer/resolve.ts';

/** The node at an absolute path in the tree `root` (a snapshot's `tree`). */
export async function nodeAt(repo: Repository, root: Id, absPath: string): Promise<TreeNode> {
  return (await resolveSnapshotPath(repo, root, absPath)).node;
}

/** Every node strictly below `absPath`, keyed by its path relative to `absPath`. */
export async function entriesBelow(repo: Repository, root: Id, absPath: string): Promise<Map<string, TreeNode>> {
  const start = await resolveSnapshotPath(repo, root, absPath);
  const out = new Map<string, TreeNode>();
  const prefix = start.path === '/' ? '/' : `${start.path}/`;
  for await (const { path, node } of walkSnapshot(repo, start)) {
    if (path === start.path) continue;
    out.set(path.slice(prefix.length), node);
  }
  return out;
}

/** `path: field` for every field that differs between two listings (subtree ids are left out: they follow). */
export function nodeDifferences(a: Map<string, TreeNode>, b: Map<string, TreeNode>): string[] {
  const out: string[] = [];
  for (const [p, x] of a) {
    const y = b.get(p);
    if (!y) {
      out.push(`${p}: only in the first`);
      continue;
    }
    const keys = new Set([...Object.keys(x), ...Object.keys(y)] as (keyof TreeNode)[]);
    for (const k of keys) {
      if (k === 'subtree') continue;
      if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) out.push(`${p}: ${k}`);
    }
  }
  for (const p of b.keys()) if (!a.has(p)) out.push(`${p}: only in the second`);
  return out;
}

/** Unique data blob ids of the given file nodes and the stored bytes (envelope lengths) they take. */
export function storedBytesOf(repo: Repository, nodes: TreeNode[]): { blobs: number; bytes: number } {
  const ids = new Set(nodes.flatMap((n) => n.content ?? []));
  let bytes = 0;
  for (const id of ids) bytes += repo.index.lookup(id)?.length ?? Number.NaN;
  return { blobs: ids.size, bytes };
}
