/**
 * `bam ls SNAPSHOT [PATH]`: the files of a snapshot, recursively by default, with --long details.
 */
import { resolveSnapshotPath, walkSnapshot } from '@backup-manager/core-archive';
import type { TreeNode } from '@backup-manager/core-archive';
import { formatTime, printable } from '../format.ts';
import type { Runtime } from '../runtime.ts';

export interface LsFlags {
  long?: boolean;
  recursive?: boolean;
}

const TYPE_CHAR: Record<TreeNode['type'], string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' };

function modeString(n: TreeNode): string {
  const m = n.mode;
  const rwx = (bits: number, special: boolean, ch: string): string =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return TYPE_CHAR[n.type] + rwx((m >> 6) & 7, (m & 0o4000) !== 0, 's') + rwx((m >> 3) & 7, (m & 0o2000) !== 0, 's') + rwx(m & 7, (m & 0o1000) !== 0, 't');
}

export async function lsCommand(rt: Runtime, snapshotRef: string, subpath: string | undefined, flags: LsFlags): Promise<number> {
  const repo = await rt.openRepository();
  try {
    await repo.loadIndex({ cache: rt.indexCache });
    const { id, snapshot } = await repo.findSnapshot(snapshotRef);
    const start = await resolveSnapshotPath(repo, snapshot.tree, subpath ?? '/');
    if (rt.json) rt.printJson({ struct_type: 'snapshot', id, ...snapshot });
    for await (const { path: p, node } of walkSnapshot(repo, start, { recursive: flags.recursive !== false })) {
      if (rt.json) {
        const { content: _content, ...rest } = node;
        rt.printJson({ struct_type: 'node', path: p, ...rest, mtime: new Date(Number(BigInt(node.mtimeNs) / 1_000_000n)).toISOString() });
      } else if (flags.long) {
        const size = node.type === 'file' ? String(node.size) : '0';
        const target = node.type === 'symlink' ? ` -> ${printable(node.linkTarget!)}` : '';
        rt.print(`${modeString(node)} ${String(node.uid).padStart(5)} ${String(node.gid).padStart(5)} ${size.padStart(12)} ${formatTime(new Date(Number(BigInt(node.mtimeNs) / 1_000_000n)).toISOString())} ${printable(p)}${target}`);
      } else {
        rt.print(printable(p));
      }
    }
    return 0;
  } finally {
    repo.close();
  }
}
