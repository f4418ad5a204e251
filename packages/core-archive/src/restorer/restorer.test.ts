import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import type { Id, TreeNode } from '../format.ts';
import { backup, dump, Repository, restore } from '../index.ts';
import { utimeSeconds } from './restorer.ts';
import { PackSaver } from '../repository/pack-saver.ts';
import { emptySummary } from '../repository/snapshot.ts';
import { encodeTree } from '../repository/tree.ts';
import { initRepo, PASSWORD, rejection, tempDir, writeTree } from '../test-support/repo.ts';
import { compareTrees, makeAdversarialTree } from '../test-support/tree.ts';
import type { AdversarialTree } from '../test-support/tree.ts';

/** Every path below `dir` (relative, sorted), to prove that nothing else appeared. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      out.push(r);
      if (fs.lstatSync(path.join(dir, r)).isDirectory()) visit(r);
    }
  };
  visit('');
  return out.sort();
}

describe('restore of the adversarial tree (without the big files)', () => {
  const tmp = tempDir('restorer');
  let tree: AdversarialTree;
  let repo: Repository;
  let snapshotId: Id;

  beforeAll(async () => {
    tree = await makeAdversarialTree(path.join(tmp.dir, 'src'), { big: false });
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    const r = await backup(writer, { paths: [tree.root] });
    expect(r.warnings).toEqual([]);
    snapshotId = r.snapshotId;
    // Restores read through a separately opened repository, as a later `bam restore` would.
    repo = await Repository.open(backend, PASSWORD);
  }, 60_000);
  afterAll(() => tmp.cleanup());

  it('recreates the tree exactly, sockets excepted', async () => {
    const target = path.join(tmp.dir, 'full');
    const r = await restore(repo, snapshotId, { target });
    expect(r.mismatches).toEqual([]);
    expect(r.problems.map((p) => p.code)).toEqual(['unsupported']);
    expect(r.problems[0]!.path).toBe(path.join(target, tree.root, tree.rel.socket));
    expect(compareTrees(tree.root, path.join(target, tree.root))).toEqual([]);
    // the three names are one inode again
    const inodes = tree.rel.hardlinks.map((p) => fs.statSync(path.join(target, tree.root, p)).ino);
    expect(new Set(inodes).size).toBe(1);
  });

  it('restores a subpath (a directory) into the target, and a single file', async () => {
    const target = path.join(tmp.dir, 'sub');
    const r = await restore(repo, snapshotId, { target, subpath: path.join(tree.root, 'light/hard') });
    expect(r.problems).toEqual([]);
    expect(listing(target)).toEqual(['a', 'a/one', 'a/two', 'b', 'b/three']);
    expect(compareTrees(path.join(tree.root, 'light/hard'), target, { root: false })).toEqual([]);

    const one = path.join(tmp.dir, 'one-file');
    await restore(repo, snapshotId, { target: one, subpath: path.join(tree.root, tree.rel.old) });
    expect(listing(one)).toEqual(['old-1971']);
    expect(fs.readFileSync(path.join(one, 'old-1971'), 'utf8')).toBe('from 1971\n');
    expect(fs.statSync(path.join(one, 'old-1971'), { bigint: true }).mtimeNs / 1000n).toBe(
      fs.statSync(path.join(tree.root, tree.rel.old), { bigint: true }).mtimeNs / 1000n,
    );
    await rejection(restore(repo, snapshotId, { target: one, subpath: path.join(tree.root, 'no/such') }), 'NOT_FOUND');
    await rejection(restore(repo, snapshotId, { target: one, subpath: `${tree.root}/../x` }), 'INVALID_ARGUMENT');
  });

  it('restores only what include patterns select, and leaves out what exclude patterns name', async () => {
    const inc = path.join(tmp.dir, 'include');
    await restore(repo, snapshotId, { target: inc, subpath: tree.light, include: ['*.txt', 'hard/b'] });
    expect(listing(inc)).toEqual([
      'deep', ...Array.from({ length: 60 }, (_, i) => ['deep', ...Array.from({ length: i + 1 }, (_, j) => `d${String(j).padStart(2, '0')}`)].join('/')),
      `deep/${tree.rel.deepLeaf.split('/').slice(2).join('/')}`,
      'hard', 'hard/b', 'hard/b/three',
      'names', 'names/日本語のファイル名.txt', 'names/\u{1F600} smile.txt',
    ].sort());
    expect(fs.readFileSync(path.join(inc, 'hard/b/three'), 'utf8')).toBe('one inode, three names\n');

    const exc = path.join(tmp.dir, 'exclude');
    const r = await restore(repo, snapshotId, { target: exc, subpath: tree.light, exclude: ['names', 'deep', 'special', `${tree.light}/modes/*`, 'times/old-*'] });
    expect(r.problems).toEqual([]);
    const got = listing(exc);
    expect(got.filter((p) => /^(names|deep|special)(\/|$)/.test(p))).toEqual([]);
    expect(got.filter((p) => p.startsWith('modes/'))).toEqual([]);
    expect(got).toContain('modes');
    expect(got).toContain('times/future-2099');
    expect(got).not.toContain('times/old-1971');
    expect(compareTrees(tree.light, exc, { root: false, ignore: ['names', 'deep', 'special', 'modes/setuid', 'modes/setgid-dir', 'modes/sticky-dir', 'modes/no-permissions', 'modes/group-exec', 'times/old-1971'] })).toEqual([]);
  });

  it('does not overwrite existing files without `overwrite`, and replaces them with it', async () => {
    const target = path.join(tmp.dir, 'again');
    await restore(repo, snapshotId, { target, subpath: tree.light });
    const victim = path.join(target, 'times/future-2099');
    fs.writeFileSync(victim, 'edited locally');
    fs.unlinkSync(path.join(target, 'hard/b/three'));
    fs.writeFileSync(path.join(target, 'hard/b/three'), 'no longer a link');

    const r = await restore(repo, snapshotId, { target, subpath: tree.light });
    expect(fs.readFileSync(victim, 'utf8')).toBe('edited locally');
    const exists = r.problems.filter((p) => p.code === 'exists').map((p) => path.relative(target, p.path));
    expect(exists).toContain('times/future-2099');
    expect(exists).toContain('hard/b/three');
    expect(exists).toContain('special/fifo');
    expect(r.problems.every((p) => p.code === 'exists' || p.code === 'unsupported')).toBe(true);

    const r2 = await restore(repo, snapshotId, { target, subpath: tree.light, overwrite: true });
    expect(r2.problems.filter((p) => p.code !== 'unsupported')).toEqual([]);
    expect(r2.mismatches).toEqual([]);
    expect(compareTrees(tree.light, target, { root: false })).toEqual([]);
  });

  it('never writes through a symlink that already stands in the target', async () => {
    const outside = path.join(tmp.dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious'), 'keep me');
    const target = path.join(tmp.dir, 'planted');
    fs.mkdirSync(path.join(target, 'empty'), { recursive: true });
    // a directory of the snapshot is a symlink to the outside; a file of the snapshot is a symlink to an outside file
    fs.symlinkSync(outside, path.join(target, 'names'));
    fs.symlinkSync(path.join(outside, 'precious'), path.join(target, 'empty', 'empty-file'));

    const r = await restore(repo, snapshotId, { target, subpath: tree.light });
    const refused = r.problems.filter((p) => p.code === 'exists');
    expect(refused.map((p) => path.relative(target, p.path))).toEqual(['empty/empty-file', 'names']);
    expect(refused[1]!.message).toMatch(/not a directory: refusing to write through it/);
    expect(listing(outside)).toEqual(['precious']);
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('keep me');
    expect(fs.readlinkSync(path.join(target, 'names'))).toBe(outside);
    // everything else was restored
    expect(compareTrees(tree.light, target, { root: false, ignore: ['names', 'empty/empty-file'] })).toEqual([]);

    // with overwrite, both links are replaced by what the snapshot holds, and the outside is untouched
    const r2 = await restore(repo, snapshotId, { target, subpath: tree.light, overwrite: true });
    expect(r2.problems.filter((p) => p.code !== 'unsupported')).toEqual([]);
    expect(fs.lstatSync(path.join(target, 'names')).isDirectory()).toBe(true);
    expect(fs.lstatSync(path.join(target, 'empty', 'empty-file')).isFile()).toBe(true);
    expect(listing(outside)).toEqual(['precious']);
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('keep me');
    expect(compareTrees(tree.light, target, { root: false })).toEqual([]);
  });

  it('dumps a file as its exact bytes', async () => {
    const chunks: Uint8Array[] = [];
    const kind = await dump(repo, snapshotId, path.join(tree.root, 'light/names/new\nline'), async (c) => void chunks.push(c));
    expect(kind).toBe('file');
    expect(Buffer.concat(chunks).toString()).toBe('newline\n');
    const fifo = await rejection(dump(repo, snapshotId, path.join(tree.root, tree.rel.fifo), async () => undefined), 'INVALID_ARGUMENT');
    expect(fifo.message).toMatch(/fifo/);
  });

  it('dumps a directory as a tar archive that GNU tar extracts to the same tree', async () => {
    const archive = path.join(tmp.dir, 'light.tar');
    const fd = fs.openSync(archive, 'w');
    try {
      const kind = await dump(repo, snapshotId, tree.light, async (c) => void fs.writeSync(fd, c));
      expect(kind).toBe('tar');
    } finally {
      fs.closeSync(fd);
    }
    const out = path.join(tmp.dir, 'untarred');
    fs.mkdirSync(out);
    execFileSync('tar', ['-x', '--same-owner', '-p', '--numeric-owner', '--warning=no-timestamp', '-f', archive, '-C', out]);
    expect(listing(out)).toEqual(['light', ...listing(tree.light).filter((p) => p !== 'special/socket').map((p) => `light/${p}`)]);
    expect(compareTrees(tree.light, path.join(out, 'light'))).toEqual([]);
  });
});

describe('hostile snapshots', () => {
  const tmp = tempDir('restorer-hostile');
  afterAll(() => tmp.cleanup());

  const base = { mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', atimeNs: '0', ctimeNs: '0', dev: '1', inode: '1', nlink: 1 };

  /** Writes blobs, index and a snapshot whose root tree holds `nodes` (each a file with content "pwned"). */
  async function hostileSnapshot(repo: Repository, build: (file: (name: string) => TreeNode, dir: (name: string, nodes: TreeNode[]) => Promise<TreeNode>) => Promise<TreeNode[]>): Promise<Id> {
    const saver = new PackSaver(repo);
    const content = new TextEncoder().encode('pwned\n');
    const { id: blob } = await saver.addPlain('data', content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const file = (name: string): TreeNode => ({ ...base, name, type: 'file', size: content.length, content: [blob], sha256 });
    const dir = async (name: string, nodes: TreeNode[]): Promise<TreeNode> => {
      const { id } = await saver.addPlain('tree', encodeTree(nodes));
      return { ...base, name, type: 'dir', mode: 0o755, subtree: id };
    };
    const nodes = await build(file, dir);
    const { id: root } = await saver.addPlain('tree', encodeTree(nodes));
    await saver.finish();
    const now = new Date().toISOString();
    return repo.saveSnapshot({
      version: 1, time: now, tree: root, paths: ['/x'], hostname: 'evil', username: 'evil', uid: 0, gid: 0, tags: [],
      type: 'full', excludes: [], programVersion: 'evil', summary: emptySummary(now),
    });
  }

  it.each(['..', '.', '', 'a/b', '/etc', '../../escape', 'nul\0byte'])('rejects a node named %j as CORRUPT and writes nothing outside the target', async (name) => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    // the hostile name sits below a harmless directory that is restored first
    const id = await hostileSnapshot(writer, async (file, dir) => [file('aaa-harmless'), await dir('x', [await dir('y', [file(name)])])]);
    const repo = await Repository.open(backend, PASSWORD);
    const sandbox = path.join(tmp.dir, `case-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`);
    const target = path.join(sandbox, 'deep', 'target');
    fs.mkdirSync(target, { recursive: true });
    const e = await rejection(restore(repo, id, { target }), 'CORRUPT');
    expect(e.message).toContain('unsafe name');
    expect(e.message).toContain(JSON.stringify(name));
    expect(e.message).toMatch(/^tree [0-9a-f]{12} is damaged/);
    // nothing outside the target, and below it at most the harmless part
    expect(listing(sandbox).filter((p) => !p.startsWith('deep/target'))).toEqual(['deep']);
    // the harmless file was created before the bad tree was read; it must not stay behind empty
    expect(listing(target).every((p) => ['x', 'x/y'].includes(p))).toBe(true);
    expect(fs.existsSync('/etc/pwned') || fs.existsSync(path.join(sandbox, 'deep', 'escape'))).toBe(false);
    // dump refuses the same tree
    await rejection(dump(repo, id, '/x', async () => undefined), 'CORRUPT');
  });

  it('rejects a tree that names the same entry twice (a symlink and a directory "x")', async () => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    const outside = path.join(tmp.dir, 'twice-outside');
    fs.mkdirSync(outside);
    const id = await hostileSnapshot(writer, async (file, dir) => [
      { ...base, name: 'x', type: 'symlink', linkTarget: outside },
      await dir('x', [file('through-the-link')]),
    ]);
    const target = path.join(tmp.dir, 'twice-target');
    const e = await rejection(restore(await Repository.open(backend, PASSWORD), id, { target }), 'CORRUPT');
    expect(e.message).toMatch(/appears twice/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('reports a file whose content does not match its recorded SHA-256, or whose content names a tree blob', async () => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    let treeBlob = '';
    const id = await hostileSnapshot(writer, async (file, dir) => {
      const sub = await dir('sub', [file('inner')]);
      treeBlob = sub.subtree!;
      return [{ ...file('lies'), sha256: 'f'.repeat(64) }, { ...file('points-at-a-tree'), content: [treeBlob] }, sub];
    });
    const target = path.join(tmp.dir, 'lies-target');
    const r = await restore(await Repository.open(backend, PASSWORD), id, { target });
    expect(r.mismatches).toEqual([path.join(target, 'lies')]);
    const byName = new Map(r.problems.map((p) => [path.basename(p.path), p.code]));
    expect(byName.get('lies')).toBe('mismatch');
    expect(byName.get('points-at-a-tree')).toBe('unreadable-data');
    expect(fs.readFileSync(path.join(target, 'sub', 'inner'), 'utf8')).toBe('pwned\n');
  });

  it('restores a hard link to a hostile symlink as a link to the symlink itself, never to its target', async () => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    const outside = path.join(tmp.dir, 'hl-outside');
    fs.writeFileSync(outside, 'outside file');
    const id = await hostileSnapshot(writer, async (file) => [
      { ...base, name: 'a-link', type: 'symlink', linkTarget: outside, nlink: 2, inode: '77' },
      { ...file('b-file'), nlink: 2, inode: '77' },
    ]);
    const target = path.join(tmp.dir, 'hl-target');
    await restore(await Repository.open(backend, PASSWORD), id, { target });
    expect(fs.readFileSync(outside, 'utf8')).toBe('outside file');
    expect(fs.lstatSync(path.join(target, 'b-file')).isSymbolicLink()).toBe(true);
  });
});

describe('utimeSeconds', () => {
  it('gives float seconds that libuv turns back into the same microsecond, up to year 2106', () => {
    // libuv: tv_sec = (long) t; tv_nsec = (t - tv_sec) * 1e9 (some versions then drop the sub-microsecond part)
    const libuv = (t: number): bigint => {
      const sec = Math.trunc(t);
      const nsec = Math.trunc((t - sec) * 1e9);
      return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
    };
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 32n * 1_000_000_000n - 1n }), (ns) => {
        expect(libuv(utimeSeconds(ns.toString())) / 1000n).toBe(ns / 1000n);
      }),
      { numRuns: 5000 },
    );
    for (const ns of [1_700_000_000_250_000_000n, 4_000_000_000_999_999_999n, 1_795_306_566_086_370_049n]) {
      expect(libuv(utimeSeconds(ns.toString())) / 1000n).toBe(ns / 1000n);
    }
  });
});

describe('restore problems', () => {
  const tmp = tempDir('restorer-problems');
  afterAll(() => tmp.cleanup());

  it('leaves a directory that stands where the snapshot has a file, and reports it', async () => {
    const src = path.join(tmp.dir, 'src');
    writeTree(src, { 'f.txt': 'file', 'g.txt': 'other' });
    const repo = await initRepo(new MemoryBackend());
    const { snapshotId } = await backup(repo, { paths: [src] });
    const target = path.join(tmp.dir, 'target');
    fs.mkdirSync(path.join(target, 'f.txt'), { recursive: true });
    const r = await restore(repo, snapshotId, { target, subpath: src, overwrite: true });
    expect(r.problems.map((p) => [p.code, path.basename(p.path)])).toEqual([['exists', 'f.txt']]);
    expect(fs.readFileSync(path.join(target, 'g.txt'), 'utf8')).toBe('other');
  });
});
