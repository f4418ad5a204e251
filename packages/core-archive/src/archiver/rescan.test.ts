import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import { backup, dump, Repository } from '../index.ts';
import { Listing } from './archiver.ts';
import type { BackupEvent, BackupOptions, BackupResult, TreeNode } from '../index.ts';
import { flipByte, initRepo, PASSWORD, tempDir, writeTree } from '../test-support/repo.ts';
import { entriesBelow, nodeAt } from '../test-support/snapshot.ts';

/** A re-backup trusts its parent's nodes: these tests pin down when it must not. */

interface Run {
  result: BackupResult;
  bytesRead: number;
  warnings: BackupEvent[];
}

async function run(repo: Repository, options: BackupOptions): Promise<Run> {
  let bytesRead = 0;
  const warnings: BackupEvent[] = [];
  const result = await backup(repo, {
    ...options,
    onEvent: (e) => {
      if (e.type === 'progress') bytesRead = Math.max(bytesRead, e.bytesRead);
      if (e.type === 'warning') warnings.push(e);
    },
  });
  return { result, bytesRead, warnings };
}

const DIRS = 30;
const dirName = (i: number): string => `d${String(i).padStart(2, '0')}`;

/** More subdirectories than a directory loads ahead, each with a file and a subdirectory holding another. */
function makeTree(root: string): void {
  const files: Record<string, string> = { 'top.txt': 'top\n' };
  for (let i = 0; i < DIRS; i++) {
    files[`${dirName(i)}/f.txt`] = `file ${i}\n`;
    files[`${dirName(i)}/sub/g.txt`] = `deeper ${i}\n`;
  }
  writeTree(root, files);
}

async function content(repo: Repository, snapshotId: string, p: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  await dump(repo, snapshotId, p, async (c) => void chunks.push(c));
  return Buffer.concat(chunks).toString();
}

/** Every entry below `root` in the snapshot agrees with the file system: type, mode, size, times and content. */
async function expectMatchesDisk(repo: Repository, r: Run, root: string): Promise<void> {
  const entries = await entriesBelow(repo, r.result.snapshot.tree, root);
  const onDisk: string[] = [];
  const list = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      onDisk.push(p);
      if (fs.lstatSync(path.join(root, p)).isDirectory()) list(p);
    }
  };
  list('');
  expect([...entries.keys()].sort()).toEqual(onDisk.sort());
  for (const [rel, node] of entries) {
    const st = fs.lstatSync(path.join(root, rel), { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
    expect({ rel, type: node.type, mode: node.mode, mtimeNs: node.mtimeNs, ctimeNs: node.ctimeNs, inode: node.inode }).toEqual({
      rel, type, mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(), inode: st.ino.toString(),
    });
    if (type === 'file') {
      expect(node.size).toBe(Number(st.size));
      expect(await content(repo, r.result.snapshotId, path.join(root, rel))).toBe(fs.readFileSync(path.join(root, rel), 'utf8'));
    }
    if (type === 'symlink') expect(node.linkTarget).toBe(fs.readlinkSync(path.join(root, rel)));
  }
}

describe('a re-backup compares every entry with its parent', () => {
  const tmp = tempDir('archiver-rescan');
  let root = '';
  beforeEach(() => {
    fs.rmSync(tmp.dir, { recursive: true, force: true });
    root = path.join(tmp.dir, 'src');
    makeTree(root);
  });
  afterAll(() => tmp.cleanup());

  it('reads again exactly what changed in size, mtime, ctime, inode or type, and records what is there now', async () => {
    const repo = await initRepo(new MemoryBackend());
    // Whole seconds, so that this mtime can be put back exactly after the content changes.
    fs.utimesSync(path.join(root, 'd02/f.txt'), 1_700_000_000, 1_700_000_000);
    const first = await run(repo, { paths: [root] });

    fs.appendFileSync(path.join(root, 'd01/f.txt'), 'more\n'); // size
    fs.writeFileSync(path.join(root, 'd02/f.txt'), 'FILE 2\n'); // same size and mtime: only ctime tells
    fs.utimesSync(path.join(root, 'd02/f.txt'), 1_700_000_000, 1_700_000_000);
    fs.chmodSync(path.join(root, 'd03/f.txt'), 0o600); // ctime, mode; same content
    fs.writeFileSync(path.join(root, 'd04/f.new'), 'file 4\n'); // same content, another inode
    fs.renameSync(path.join(root, 'd04/f.new'), path.join(root, 'd04/f.txt'));
    fs.rmSync(path.join(root, 'd05'), { recursive: true }); // a directory becomes a file
    fs.writeFileSync(path.join(root, 'd05'), 'now a file\n');
    fs.rmSync(path.join(root, 'd06/f.txt')); // a file becomes a directory
    fs.mkdirSync(path.join(root, 'd06/f.txt'));
    fs.writeFileSync(path.join(root, 'd06/f.txt/x.txt'), 'inside\n');
    fs.rmSync(path.join(root, 'd07'), { recursive: true }); // gone, and a new one next to where it was
    writeTree(path.join(root, 'd07b'), { 'n.txt': 'new\n', 'deep/m.txt': 'new too\n' });
    fs.rmSync(path.join(root, 'd08'), { recursive: true }); // a directory becomes a symlink
    fs.symlinkSync('d09', path.join(root, 'd08'));
    fs.rmSync(path.join(root, 'd10/sub'), { recursive: true });

    const second = await run(repo, { paths: [root] });
    expect(second.warnings).toEqual([]);
    expect(second.result.snapshot.parent).toBe(first.result.snapshotId);
    const reread = ['d01/f.txt', 'd02/f.txt', 'd03/f.txt', 'd04/f.txt', 'd05', 'd06/f.txt/x.txt', 'd07b/n.txt', 'd07b/deep/m.txt'];
    expect(second.bytesRead).toBe(reread.reduce((n, f) => n + fs.statSync(path.join(root, f)).size, 0));
    expect(second.result.snapshot.summary).toMatchObject({ filesChanged: 2, filesNew: 4, filesUnchanged: 1 + 2 * DIRS - 8 - 2, filesSkipped: 0 });
    await expectMatchesDisk(repo, second, root);
    expect((await nodeAt(repo, second.result.snapshot.tree, path.join(root, 'd03/f.txt'))).mode).toBe(0o600);

    // And nothing changed since: nothing is read, and the tree below the source is the same blob.
    const third = await run(repo, { paths: [root] });
    expect(third.bytesRead).toBe(0);
    expect(third.result.snapshot.summary.filesUnchanged).toBe(third.result.snapshot.summary.totalFiles);
    const sub = async (r: Run): Promise<TreeNode> => nodeAt(repo, r.result.snapshot.tree, path.join(root, 'd20'));
    expect((await sub(third)).subtree).toBe((await sub(second)).subtree);
  });

  it('costs only speed when a tree of the parent is damaged: what is below it is read again, nothing is lost', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const first = await run(repo, { paths: [root] });
    // Damage the stored listing of d03, and the listing of d12/sub.
    for (const dir of ['d03', 'd12/sub']) {
      const id = (await nodeAt(repo, first.result.snapshot.tree, path.join(root, dir))).subtree!;
      const loc = repo.index.lookup(id)!;
      await flipByte(backend, { type: 'data', name: loc.packId }, loc.offset + 20);
    }
    // A fresh session, as the next backup would be: nothing of the parent is in memory.
    const again = await Repository.open(backend, PASSWORD);
    const second = await run(again, { paths: [root] });
    expect(second.warnings).toEqual([]);
    expect(second.result.snapshot.parent).toBe(first.result.snapshotId);
    const reread = ['d03/f.txt', 'd03/sub/g.txt', 'd12/sub/g.txt'];
    expect(second.bytesRead).toBe(reread.reduce((n, f) => n + fs.statSync(path.join(root, f)).size, 0));
    // Without a parent's node to compare with, they count as new.
    expect(second.result.snapshot.summary).toMatchObject({ filesUnchanged: 1 + 2 * DIRS - 3, filesChanged: 0, filesNew: 3 });
    await expectMatchesDisk(again, second, root);
  });
});

describe('a parent listing', () => {
  const node = (name: string): TreeNode => ({ name, type: 'fifo', mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', atimeNs: '0', ctimeNs: '0', dev: '0', inode: '0', nlink: 1 });
  const names = ['B', 'a', 'b', 'caf\u00e9', 'z', '\u{1f600}'];

  it('finds each name, asked in order, out of order, or from an unsorted listing', () => {
    const sorted = [...names].sort();
    for (const nodes of [sorted.map(node), [...sorted].reverse().map(node)]) {
      const inOrder = new Listing(nodes);
      expect([...sorted, 'zz'].map((n) => inOrder.get(n)?.name)).toEqual([...sorted, undefined]);
      const backwards = new Listing(nodes);
      expect(['y', ...[...sorted].reverse(), 'A'].map((n) => backwards.get(n)?.name)).toEqual([undefined, ...[...sorted].reverse(), undefined]);
    }
  });
});
