/**
 * `dump`: a file of a snapshot as its bytes, or a directory (or the whole snapshot) as a pax tar stream that GNU tar
 * extracts to the same tree. Content streams blob by blob, so memory does not grow with file size.
 */
import path from 'node:path';
import { BackupError } from '../errors.ts';
import type { Id, TreeNode } from '../format.ts';
import type { Repository } from '../repository/repository.ts';
import { TarWriter } from '../tar/tar.ts';
import type { TarEntryHeader } from '../tar/tar.ts';
import { resolveSnapshotPath, walkSnapshot } from './resolve.ts';

export type Sink = (chunk: Uint8Array) => Promise<void>;

/** Yields a file's content blob by blob. */
export async function* fileContent(repo: Repository, node: TreeNode): AsyncGenerator<Uint8Array> {
  for (const id of node.content ?? []) yield await repo.loadBlob('data', id);
}

/** Writes a file's bytes, or a directory's tar stream, to `sink`. Returns what kind of output it was. */
export async function dump(repo: Repository, snapshotId: Id, subpath: string, sink: Sink, options: { forceTar?: boolean } = {}): Promise<'file' | 'tar'> {
  if (repo.indexFiles.length === 0) await repo.loadIndex();
  const snapshot = await repo.loadSnapshot(snapshotId);
  const start = await resolveSnapshotPath(repo, snapshot.tree, subpath);
  if (start.node.type === 'file' && !options.forceTar) {
    for await (const chunk of fileContent(repo, start.node)) await sink(chunk);
    return 'file';
  }
  if (start.node.type !== 'dir' && start.node.type !== 'file') {
    throw new BackupError('INVALID_ARGUMENT', `${start.path} is a ${start.node.type}: dump prints files and directories`);
  }
  const tar = new TarWriter(sink);
  // Archive names are relative to the dumped directory's parent, so `dump snap /home/ann` yields `ann/...`.
  const base = start.path === '/' ? '/' : path.posix.dirname(start.path);
  const links = new Map<string, string>();
  for await (const { path: p, node } of walkSnapshot(repo, start)) {
    const rel = base === '/' ? p.slice(1) : p.slice(base.length + 1);
    const header: TarEntryHeader = {
      path: rel,
      type: 'file',
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtimeNs: BigInt(node.mtimeNs),
    };
    if (node.type !== 'dir' && node.nlink > 1) {
      const key = `${node.dev}:${node.inode}`;
      const first = links.get(key);
      if (first !== undefined && node.type === 'file') {
        await tar.addEntry({ ...header, type: 'hardlink', linkTarget: first, size: 0 });
        continue;
      }
      links.set(key, rel);
    }
    switch (node.type) {
      case 'file':
        await tar.addEntry({ ...header, size: node.size! }, fileContent(repo, node));
        break;
      case 'dir':
        await tar.addEntry({ ...header, type: 'dir' });
        break;
      case 'symlink':
        await tar.addEntry({ ...header, type: 'symlink', linkTarget: node.linkTarget! });
        break;
      case 'fifo':
        await tar.addEntry({ ...header, type: 'fifo' });
        break;
      case 'chardev':
      case 'blockdev': {
        const rdev = node.rdev ?? 0;
        const devMajor = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
        const devMinor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
        await tar.addEntry({ ...header, type: node.type, devMajor, devMinor });
        break;
      }
      case 'socket':
        // tar has no socket entry; GNU tar skips sockets too.
        break;
    }
  }
  await tar.finish();
  return 'tar';
}
