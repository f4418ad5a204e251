/**
 * Path lookup inside a snapshot: `/home/ann/docs` → its node, and a depth-first walk of a snapshot's tree. Used by
 * restore (`SNAPSHOT:subpath`), `ls` and `dump`.
 */
import { BackupError } from '../errors.ts';
import type { Id, TreeNode } from '../format.ts';
import type { Repository } from '../repository/repository.ts';

export interface ResolvedPath {
  /** normalised snapshot path, `/` for the root */
  path: string;
  node: TreeNode;
}

/** The root of a snapshot as a directory node (it has no metadata of its own). */
export function rootNode(tree: Id): TreeNode {
  return { name: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: '0', atimeNs: '0', ctimeNs: '0', dev: '0', inode: '0', nlink: 1, subtree: tree };
}

export async function resolveSnapshotPath(repo: Repository, tree: Id, subpath: string): Promise<ResolvedPath> {
  const parts = subpath.split('/').filter((p) => p.length > 0 && p !== '.');
  if (parts.includes('..')) throw new BackupError('INVALID_ARGUMENT', `path ${subpath} inside a snapshot may not contain ".."`);
  let node = rootNode(tree);
  let walked = '';
  for (const part of parts) {
    if (node.type !== 'dir') throw new BackupError('NOT_FOUND', `${walked || '/'} is not a directory in the snapshot`);
    const listing = await repo.loadTree(node.subtree!);
    const next = listing.nodes.find((n) => n.name === part);
    walked += `/${part}`;
    if (!next) throw new BackupError('NOT_FOUND', `${walked} is not in the snapshot: list its content with \`bam ls\``);
    node = next;
  }
  return { path: walked || '/', node };
}

/** Depth-first walk below a node (the node itself first), in name order. */
export async function* walkSnapshot(repo: Repository, start: ResolvedPath, options: { recursive?: boolean } = {}): AsyncGenerator<ResolvedPath> {
  if (start.path !== '/') yield start;
  if (start.node.type !== 'dir') return;
  const listing = await repo.loadTree(start.node.subtree!);
  for (const child of listing.nodes) {
    const p = start.path === '/' ? `/${child.name}` : `${start.path}/${child.name}`;
    if (options.recursive === false) {
      yield { path: p, node: child };
    } else {
      yield* walkSnapshot(repo, { path: p, node: child }, options);
    }
  }
}
