import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import { chunkLengths, createChunkerParams } from '../chunker/chunker.ts';
import { idToBytes, sha256Hex } from '../crypto/hash.ts';
import { backup, dump, restore, Repository } from '../index.ts';
import type { BackupEvent, BackupOptions, BackupResult, TreeNode } from '../index.ts';
import { initRepo, PASSWORD, pseudoRandomBytes, rejection, SMALL_CHUNKS, tempDir, writeTree } from '../test-support/repo.ts';
import { entriesBelow, nodeAt, nodeDifferences, storedBytesOf } from '../test-support/snapshot.ts';
import { allocatedBytes, compareTrees, DUP_SIZE, makeAdversarialTree, MiB, SPARSE_SIZE } from '../test-support/tree.ts';
import type { AdversarialTree } from '../test-support/tree.ts';

interface Run {
  result: BackupResult;
  /** bytes the workers read from files (last progress event) */
  bytesRead: number;
  events: BackupEvent[];
}

async function run(repo: Repository, options: BackupOptions): Promise<Run> {
  const events: BackupEvent[] = [];
  let bytesRead = 0;
  const result = await backup(repo, {
    ...options,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'progress') bytesRead = Math.max(bytesRead, e.bytesRead);
    },
  });
  return { result, bytesRead, events };
}

describe('the adversarial tree', () => {
  const tmp = tempDir('archiver-adv');
  let tree: AdversarialTree;
  let backend: MemoryBackend;
  let repo: Repository;
  let first: Run;

  beforeAll(async () => {
    tree = await makeAdversarialTree(path.join(tmp.dir, 'src'));
    backend = new MemoryBackend();
    repo = await initRepo(backend);
    // The tree holds a FIFO: a backup that opened it would hang here until the hook timeout.
    first = await run(repo, { paths: [tree.root] });
  }, 120_000);
  afterAll(() => tmp.cleanup());

  it('is backed up without warnings, recording every kind of entry as what it is', async () => {
    expect(first.result.warnings).toEqual([]);
    expect(first.result.partial).toBe(false);
    const s = first.result.snapshot.summary;
    expect(s.filesSkipped).toBe(0);
    const nodes = await entriesBelow(repo, first.result.snapshot.tree, tree.root);
    expect(nodes.get(tree.rel.fifo)?.type).toBe('fifo');
    expect(nodes.get(tree.rel.socket)?.type).toBe('socket');
    const dev = nodes.get(tree.rel.chardev);
    expect(dev?.type).toBe('chardev');
    expect(dev?.rdev).toBe(Number(fs.lstatSync(path.join(tree.root, tree.rel.chardev), { bigint: true }).rdev));
    // a symlink to a directory is a symlink: nothing below it is in the snapshot
    const toDir = nodes.get('light/links/to-dir');
    expect(toDir).toMatchObject({ type: 'symlink', linkTarget: '../deep' });
    expect([...nodes.keys()].some((k) => k.startsWith('light/links/to-dir/'))).toBe(false);
    expect(nodes.get('light/links/dangling')?.linkTarget).toBe('no/such/target');
    expect(nodes.get('light/names/new\nline')?.type).toBe('file');
    expect(nodes.has('light/names/caf\u00e9') && nodes.has('light/names/cafe\u0301')).toBe(true);
    expect(nodes.get(tree.rel.deepLeaf)?.size).toBe('bottom of the tree\n'.length);
    // nanosecond times are kept exactly in the snapshot
    const old = nodes.get(tree.rel.old)!;
    expect(old.mtimeNs).toBe(fs.lstatSync(path.join(tree.root, tree.rel.old), { bigint: true }).mtimeNs.toString());
    expect(old.mtimeNs.endsWith('123456789')).toBe(true);
    expect(nodes.get(tree.rel.setuid)?.mode).toBe(0o4755);
    expect(nodes.get(tree.rel.noperm)?.mode).toBe(0o000);
    expect(nodes.get('light/modes/sticky-dir')?.mode).toBe(0o1777);
    expect(nodes.get(tree.rel.foreign)).toMatchObject({ uid: 12345, gid: 54321 });
    // three names of one inode share one content
    const links = tree.rel.hardlinks.map((p) => nodes.get(p)!);
    expect(new Set(links.map((n) => `${n.dev}:${n.inode}`)).size).toBe(1);
    expect(links.every((n) => n.nlink === 3 && n.sha256 === links[0]!.sha256)).toBe(true);
  });

  it('stores three identical copies and a shifted copy of 24 MiB in little more than one copy', async () => {
    const nodes = await entriesBelow(repo, first.result.snapshot.tree, tree.root);
    const copies = [...tree.rel.dups, tree.rel.shifted].map((p) => nodes.get(p)!);
    expect(copies.every((n) => n.size! >= DUP_SIZE)).toBe(true);
    const stored = storedBytesOf(repo, copies);
    expect(stored.bytes).toBeLessThan(DUP_SIZE * 1.3);
    expect(first.result.snapshot.summary.dataAdded).toBeLessThan(DUP_SIZE * 1.3);
    expect(first.result.snapshot.summary.totalBytes).toBeGreaterThan(4 * DUP_SIZE + SPARSE_SIZE);
  });

  it('stores the sparse 1 GiB file in under 1 MiB', async () => {
    const sparse = await nodeAt(repo, first.result.snapshot.tree, path.join(tree.root, tree.rel.sparse));
    expect(sparse.size).toBe(SPARSE_SIZE);
    expect(storedBytesOf(repo, [sparse]).bytes).toBeLessThan(MiB);
  });

  it('restores identically (sockets excepted), with the sparse file sparse again', async () => {
    const target = path.join(tmp.dir, 'restore-full');
    const r = await restore(repo, first.result.snapshotId, { target });
    expect(r.mismatches).toEqual([]);
    expect(r.problems.map((p) => [p.code, path.relative(path.join(target, tree.root), p.path)])).toEqual([['unsupported', tree.rel.socket]]);
    const restored = path.join(target, tree.root);
    expect(compareTrees(tree.root, restored)).toEqual([]);
    expect(allocatedBytes(path.join(restored, tree.rel.sparse))).toBeLessThan(16 * MiB);
    fs.rmSync(target, { recursive: true, force: true });
  }, 60_000);

  it('re-backs up an unchanged tree without reading a byte; only atimes (changed by the first read) differ', async () => {
    const second = await run(repo, { paths: [tree.root] });
    const s = second.result.snapshot.summary;
    expect(second.result.snapshot.parent).toBe(first.result.snapshotId);
    expect(second.bytesRead).toBe(0);
    expect(s.filesUnchanged).toBe(s.totalFiles);
    expect(s.totalFiles).toBe(first.result.snapshot.summary.totalFiles);
    expect(s.filesNew + s.filesChanged + s.filesSkipped).toBe(0);
    expect(s.dataAdded).toBeLessThan(256 * 1024);
    const a = await entriesBelow(repo, first.result.snapshot.tree, tree.root);
    const b = await entriesBelow(repo, second.result.snapshot.tree, tree.root);
    // The first backup read every file, listed every directory and read every link, which (relatime, the Linux
    // default) moved their atimes once: the trees below the source differ, in atimes only. (Under noatime they
    // would be equal.)
    const diffs = nodeDifferences(a, b);
    expect(diffs.filter((d) => !d.endsWith(': atimeNs'))).toEqual([]);
    const sub = async (r: Run): Promise<string | undefined> => (await nodeAt(repo, r.result.snapshot.tree, tree.root)).subtree;
    expect((await sub(second)) === (await sub(first))).toBe(diffs.length === 0);
    // Nothing reads them now, so a third backup records the very same tree below the source. Only the trees of the
    // directories above it (/, /tmp, the test directory), whose times other processes move, may be new.
    const third = await run(repo, { paths: [tree.root] });
    expect(third.bytesRead).toBe(0);
    expect(await sub(third)).toBe(await sub(second));
    expect(third.result.snapshot.summary.blobsAdded).toBeLessThanOrEqual(3);
  });
});

describe('incremental, full and differential', () => {
  const tmp = tempDir('archiver-types');
  let root = '';
  let repo: Repository;

  beforeAll(async () => {
    root = path.join(tmp.dir, 'src');
    writeTree(root, {
      'a.txt': 'alpha\n',
      'b.txt': 'bravo\n',
      'multi.bin': pseudoRandomBytes(1024 * 1024, 1),
      'dir/c.bin': pseudoRandomBytes(200 * 1024, 2),
      'dir/d.txt': 'delta\n',
    });
    repo = await initRepo(new MemoryBackend());
  });
  afterAll(() => tmp.cleanup());

  const total = (): number => ['a.txt', 'b.txt', 'multi.bin', 'dir/c.bin', 'dir/d.txt'].reduce((n, f) => n + fs.statSync(path.join(root, f)).size, 0);

  it('runs a full backup, an incremental that changes one file, a differential against the full, and a full', async () => {
    const full = await run(repo, { paths: [root], type: 'full' });
    expect(full.result.snapshot.type).toBe('full');
    expect(full.result.snapshot.parent).toBeUndefined();
    expect(full.bytesRead).toBe(total());
    expect(full.result.snapshot.summary.filesNew).toBe(5);

    // change one file, keeping its size: mtime and ctime tell
    fs.writeFileSync(path.join(root, 'a.txt'), 'ALPHA\n');
    const inc1 = await run(repo, { paths: [root] });
    expect(inc1.result.snapshot).toMatchObject({ type: 'incremental', parent: full.result.snapshotId });
    expect(inc1.result.snapshot.summary).toMatchObject({ filesChanged: 1, filesUnchanged: 4, filesNew: 0, bytesChanged: 6 });
    expect(inc1.bytesRead).toBe(6);

    // change another file in a multi-chunk way: only the changed chunk is new
    const multi = fs.readFileSync(path.join(root, 'multi.bin'));
    multi[500 * 1024] = multi[500 * 1024]! ^ 1;
    fs.writeFileSync(path.join(root, 'multi.bin'), multi);
    const inc2 = await run(repo, { paths: [root] });
    expect(inc2.result.snapshot.parent).toBe(inc1.result.snapshotId);
    expect(inc2.result.snapshot.summary).toMatchObject({ filesChanged: 1, filesUnchanged: 4 });
    expect(inc2.result.snapshot.summary.dataAdded).toBeLessThan(300 * 1024);

    // differential: the parent is the latest full; both changed files are changed relative to it
    const diff = await run(repo, { paths: [root], type: 'differential' });
    expect(diff.result.snapshot).toMatchObject({ type: 'differential', parent: full.result.snapshotId });
    expect(diff.events[0]).toMatchObject({ type: 'start', backupType: 'differential', parent: full.result.snapshotId });
    expect(diff.result.snapshot.summary).toMatchObject({ filesChanged: 2, filesUnchanged: 3 });
    expect(diff.bytesRead).toBe(6 + multi.length);
    expect(diff.result.snapshot.summary.dataAdded).toBeLessThan(64 * 1024);

    // full: reads everything again but stores (almost) nothing
    const full2 = await run(repo, { paths: [root], type: 'full' });
    expect(full2.bytesRead).toBe(total());
    expect(full2.result.snapshot.parent).toBeUndefined();
    expect(full2.result.snapshot.summary).toMatchObject({ filesUnchanged: 5, filesChanged: 0, filesNew: 0 });
    expect(full2.result.snapshot.summary.dataAdded).toBeLessThan(16 * 1024);
    // a differential now uses the newer full
    const diff2 = await run(repo, { paths: [root], type: 'differential' });
    expect(diff2.result.snapshot.parent).toBe(full2.result.snapshotId);
    expect(diff2.bytesRead).toBe(0);

    // every snapshot restores its own content (a snapshot never depends on its parent)
    for (const [r, a] of [[full, 'alpha\n'], [inc1, 'ALPHA\n'], [diff, 'ALPHA\n']] as const) {
      const chunks: Uint8Array[] = [];
      await dump(repo, r.result.snapshotId, path.join(root, 'a.txt'), async (c) => void chunks.push(c));
      expect(Buffer.concat(chunks).toString()).toBe(a);
    }
    const chunks: Uint8Array[] = [];
    await dump(repo, diff.result.snapshotId, path.join(root, 'multi.bin'), async (c) => void chunks.push(c));
    expect(Buffer.concat(chunks).equals(multi)).toBe(true);
  });

  it('a differential without any full snapshot reads everything and has no parent', async () => {
    const fresh = await initRepo(new MemoryBackend());
    await run(fresh, { paths: [root], type: 'incremental' });
    const d = await run(fresh, { paths: [root], type: 'differential' });
    expect(d.result.snapshot.parent).toBeUndefined();
    expect(d.bytesRead).toBe(total());
  });

  it('notices a file replaced by another of the same size and mtime (new inode)', async () => {
    const fresh = await initRepo(new MemoryBackend());
    await run(fresh, { paths: [root] });
    const p = path.join(root, 'b.txt');
    const st = fs.statSync(p);
    fs.writeFileSync(`${p}.new`, 'BRAVO\n');
    fs.utimesSync(`${p}.new`, st.atime, st.mtime);
    fs.renameSync(`${p}.new`, p);
    const r = await run(fresh, { paths: [root] });
    expect(r.result.snapshot.summary.filesChanged).toBe(1);
    expect(r.bytesRead).toBe(6);
  });
});

describe('excludes', () => {
  const tmp = tempDir('archiver-excl');
  afterAll(() => tmp.cleanup());

  it('excludes exactly what the patterns, markers and size limit name', async () => {
    const root = path.join(tmp.dir, 'src');
    writeTree(root, {
      'a.log': 'x',
      'keep.txt': 'x',
      'logs.txt': 'x',
      'sub/b.log': 'x',
      'sub/cache/x': 'x',
      'sub/keep/x.tmp': 'x',
      'sub/keep/x.txt': 'x',
      'other/cache/y': 'x',
      'other/cache.txt': 'x',
      'deep/1/2/node_modules/z': 'x',
      'deep/node_modules.txt': 'x',
      'tagged/CACHEDIR.TAG': 'Signature: 8a477f597d28d172789f06886806bc55',
      'tagged/data': 'x',
      'tagged-not/data': 'x',
      'big.bin': new Uint8Array(100 * 1024 + 1),
      'exact.bin': new Uint8Array(100 * 1024),
      'q1.dat': 'x',
      'q12.dat': 'x',
    });
    fs.symlinkSync('a.log', path.join(root, 'link.log'));
    const repo = await initRepo(new MemoryBackend());
    const patterns = ['*.log', 'sub/cache', `${root}/sub/keep/*.tmp`, '**/node_modules', 'q?.dat'];
    const r = await run(repo, { paths: [root], excludes: { patterns, ifPresent: ['CACHEDIR.TAG'], largerThan: 100 * 1024 } });
    expect(r.result.snapshot.excludes).toEqual(patterns);
    expect(r.result.warnings).toEqual([]);
    const names = [...(await entriesBelow(repo, r.result.snapshot.tree, root)).keys()].sort();
    expect(names).toEqual([
      'deep', 'deep/1', 'deep/1/2', 'deep/node_modules.txt',
      'exact.bin', 'keep.txt', 'logs.txt',
      'other', 'other/cache', 'other/cache.txt', 'other/cache/y',
      'q12.dat',
      'sub', 'sub/keep', 'sub/keep/x.txt',
      'tagged-not', 'tagged-not/data',
    ]);
    // excluded and skipped are different things: nothing was skipped
    expect(r.result.partial).toBe(false);
  });
});

describe('files that cannot be read', () => {
  const tmp = tempDir('archiver-unreadable');
  afterAll(() => tmp.cleanup());
  afterEach(() => vi.restoreAllMocks());

  it('skips a file that vanishes between listing and reading, with a warning, and marks the snapshot partial', async () => {
    const root = path.join(tmp.dir, 'vanish');
    writeTree(root, { 'a.txt': 'a', 'gone.txt': 'soon gone', 'z.txt': 'z' });
    const victim = path.join(root, 'gone.txt');
    const realLstat = fs.lstatSync;
    // The walker lstats the file (a regular file), then it disappears before a worker opens it.
    let removed = false;
    vi.spyOn(fs, 'lstatSync').mockImplementation(((p: fs.PathLike, o?: fs.StatSyncOptions) => {
      const st = realLstat(p, o as never);
      if (p === victim && !removed) {
        removed = true;
        fs.unlinkSync(victim);
      }
      return st;
    }) as typeof fs.lstatSync);
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [root] });
    expect(r.result.warnings).toEqual([expect.objectContaining({ path: victim, code: 'vanished' })]);
    expect(r.result.warnings[0]!.message).toContain(victim);
    expect(r.result.partial).toBe(true);
    expect(r.result.snapshot.summary.filesSkipped).toBe(1);
    expect(r.events.some((e) => e.type === 'warning' && e.warning.path === victim)).toBe(true);
    expect(removed).toBe(true);
    const names = [...(await entriesBelow(repo, r.result.snapshot.tree, root)).keys()].sort();
    expect(names).toEqual(['a.txt', 'z.txt']);
  });

  it('does not open a FIFO that was swapped in after listing (no hang), and skips it with a warning', async () => {
    const root = path.join(tmp.dir, 'swap');
    writeTree(root, { 'file.txt': 'regular' });
    const fifo = path.join(root, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const realLstat = fs.lstatSync;
    // The walker is told `pipe` is a regular file, as if it were replaced by a FIFO right after lstat.
    vi.spyOn(fs, 'lstatSync').mockImplementation(((p: fs.PathLike, o?: fs.StatSyncOptions) => {
      return realLstat(p === fifo ? path.join(root, 'file.txt') : p, o as never);
    }) as typeof fs.lstatSync);
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [root] });
    expect(r.result.warnings).toEqual([expect.objectContaining({ path: fifo, code: 'unreadable' })]);
    expect(r.result.partial).toBe(true);
  }, 20_000);

  it('reports names and link targets that are not UTF-8 as unsupported-name, and keeps a BOM-prefixed name and one holding U+FFFD exactly', async () => {
    const root = path.join(tmp.dir, 'bytes');
    writeTree(root, { 'ok.txt': 'ok', '\uFEFFbom.txt': 'bom', 'real-\uFFFD.txt': 'replacement character' });
    fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), 'latin-1 name');
    fs.symlinkSync(Buffer.from([0x2e, 0x2f, 0xe9]), path.join(root, 'link'));
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [root] });
    expect(r.result.warnings.map((w) => [path.basename(w.path), w.code]).sort()).toEqual([['bad-\uFFFD\uFFFD.txt', 'unsupported-name'], ['link', 'unsupported-name']]);
    expect(r.result.partial).toBe(true);
    const names = [...(await entriesBelow(repo, r.result.snapshot.tree, root)).keys()].sort();
    expect(names).toEqual(['ok.txt', 'real-\uFFFD.txt', '\uFEFFbom.txt']);
    const target = path.join(tmp.dir, 'bytes-restored');
    await restore(repo, r.result.snapshotId, { target, subpath: root });
    expect(fs.readFileSync(path.join(target, '\uFEFFbom.txt'), 'utf8')).toBe('bom');
  });

  it('backs up a tree with a FIFO in it without opening the FIFO', async () => {
    const root = path.join(tmp.dir, 'fifo');
    writeTree(root, { 'file.txt': 'x' });
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [root] });
    expect(r.result.warnings).toEqual([]);
    expect((await nodeAt(repo, r.result.snapshot.tree, path.join(root, 'pipe'))).type).toBe('fifo');
  }, 20_000);

  it('without the power to bypass permissions: a file and a directory it may not read are warnings, and the snapshot is partial', () => {
    const root = path.join(tmp.dir, 'perm');
    writeTree(root, { 'ok.txt': 'fine', 'secret.txt': 'no', 'closed/inside.txt': 'no' });
    fs.chmodSync(path.join(root, 'secret.txt'), 0o000);
    fs.chmodSync(path.join(root, 'closed'), 0o000);
    // Root reads anything, so the backup runs in a child that cannot: root without CAP_DAC_OVERRIDE and
    // CAP_DAC_READ_SEARCH (setpriv, util-linux), or else the unprivileged user nobody.
    const script = fileURLToPath(new URL('../test-support/unprivileged-backup.ts', import.meta.url));
    const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
    const options = { encoding: 'utf8' as const, cwd: tmp.dir, timeout: 30_000 };
    const child = setpriv
      ? spawnSync(setpriv, ['--bounding-set=-dac_override,-dac_read_search', '--', process.execPath, script, root], options)
      : spawnSync(process.execPath, [script, root], { ...options, uid: 65534, gid: 65534 });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    const out = JSON.parse(child.stdout) as { warnings: { path: string; code: string; message: string }[]; partial: boolean; summary: { filesSkipped: number }; names: string[] };
    expect(out.partial).toBe(true);
    expect(out.warnings.map((w) => [path.relative(root, w.path), w.code]).sort()).toEqual([['closed', 'unreadable'], ['secret.txt', 'unreadable']]);
    expect(out.warnings.every((w) => w.message.includes('EACCES'))).toBe(true);
    expect(out.summary.filesSkipped).toBe(2);
    expect(out.names).toEqual(['ok.txt']);
  }, 40_000);

  it('reports a file appended to while it is read as changed-while-reading', async () => {
    const root = path.join(tmp.dir, 'growing');
    fs.mkdirSync(root, { recursive: true });
    const p = path.join(root, 'log.bin');
    fs.writeFileSync(p, randomBytes(32 * MiB));
    const repo = await initRepo(new MemoryBackend());
    // Appends every few milliseconds from the moment the backup starts (the walker has already lstat'ed the file
    // when the worker threads are still starting), until it ends.
    let appends = 0;
    const timer = setInterval(() => {
      fs.appendFileSync(p, 'more\n');
      appends++;
    }, 2);
    let r: Run;
    try {
      r = await run(repo, { paths: [root], workers: 1 });
    } finally {
      clearInterval(timer);
    }
    expect(appends).toBeGreaterThan(0);
    expect(r.result.warnings).toEqual([expect.objectContaining({ path: p, code: 'changed-while-reading' })]);
    // the file is in the snapshot with what was read, and the snapshot is not partial
    expect(r.result.partial).toBe(false);
    const node = await nodeAt(repo, r.result.snapshot.tree, p);
    expect(node.size).toBeGreaterThanOrEqual(32 * MiB);
    const chunks: Uint8Array[] = [];
    await dump(repo, r.result.snapshotId, p, async (c) => void chunks.push(c));
    expect(Buffer.concat(chunks).length).toBe(node.size);
  }, 30_000);
});

describe('chunking', () => {
  const tmp = tempDir('archiver-chunks');
  afterAll(() => tmp.cleanup());

  it('cuts files exactly where the format says (sizes around minSize and maxSize), and like a stream of the same bytes', async () => {
    const { minSize, maxSize } = SMALL_CHUNKS;
    const edge = fc.constantFrom(0, 1, minSize - 1, minSize, minSize + 1, maxSize - 1, maxSize, maxSize + 1, 2 * maxSize + minSize);
    const size = fc.oneof(edge, fc.integer({ min: 0, max: 3 * maxSize }));
    let round = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(size, fc.integer({ min: 1, max: 2 ** 31 - 1 })), { minLength: 1, maxLength: 6 }), async (files) => {
        const root = path.join(tmp.dir, `round-${round++}`);
        const contents = files.map(([n, seed]) => pseudoRandomBytes(n, seed));
        writeTree(root, Object.fromEntries(contents.map((c, i) => [`f${i}`, c])));
        const repo = await initRepo(new MemoryBackend());
        const r = await backup(repo, { paths: [root], workers: 1 });
        const params = createChunkerParams(idToBytes(repo.config.chunker.secret), SMALL_CHUNKS);
        for (const [i, data] of contents.entries()) {
          const expected: string[] = [];
          let at = 0;
          for (const len of chunkLengths(params, data)) {
            expected.push(sha256Hex(data.subarray(at, at + len)));
            at += len;
          }
          const node = await nodeAt(repo, r.snapshot.tree, path.join(root, `f${i}`));
          expect(node.content).toEqual(expected);
          expect(node.sha256).toBe(sha256Hex(data));
        }
        // the stdin path chunks the same bytes the same way, so it deduplicates against the file
        const last = contents.at(-1)!;
        async function* stream(): AsyncGenerator<Uint8Array> {
          for (let i = 0; i < last.length; i += 70_001) yield last.subarray(i, i + 70_001);
        }
        const s = await backup(repo, { paths: [], stdin: { stream: stream(), filename: 'same' } });
        const viaStdin = await nodeAt(repo, s.snapshot.tree, '/same');
        expect(viaStdin.content).toEqual((await nodeAt(repo, r.snapshot.tree, path.join(root, `f${contents.length - 1}`))).content);
        expect(s.snapshot.summary.blobsAdded).toBe(1); // only the root tree
      }),
      { numRuns: 4, seed: 20261122 },
    );
  }, 60_000);

  it('stores chunks larger than the buffers a worker batches them in, compressible or not, and restores them', async () => {
    // Every chunk is at least 5 MiB, more than a worker's 4 MiB batch buffers: the random file's chunks are sealed
    // into buffers of their own and sent alone, the zeros compress to almost nothing, the small file is batched.
    const sizes = { minSize: 5 * MiB, avgSize: 8 * MiB, maxSize: 10 * MiB };
    const root = path.join(tmp.dir, 'large-chunks');
    writeTree(root, { random: pseudoRandomBytes(23 * MiB, 7), zeros: new Uint8Array(12 * MiB), small: pseudoRandomBytes(3000, 8) });
    const repo = await initRepo(new MemoryBackend(), { chunkSizes: sizes, packSize: 16 * MiB });
    const r = await backup(repo, { paths: [root], workers: 1 });
    const random = await nodeAt(repo, r.snapshot.tree, path.join(root, 'random'));
    expect(random.content!.length).toBeGreaterThan(2);
    expect(r.snapshot.summary.dataAdded).toBeGreaterThan(23 * MiB);
    expect(r.snapshot.summary.dataAdded).toBeLessThan(24 * MiB);
    const target = path.join(tmp.dir, 'large-chunks-restored');
    const restored = await restore(await Repository.open(repo.backend, PASSWORD), r.snapshotId, { target });
    expect(restored.problems).toEqual([]);
    expect(restored.mismatches).toEqual([]);
    expect(compareTrees(root, path.join(target, root))).toEqual([]);
    // The same chunks again are known: nothing but the trees is added.
    const again = await backup(repo, { paths: [root], type: 'full' });
    expect(again.snapshot.summary.dataAdded).toBeLessThan(64 * 1024);
  }, 60_000);
});

describe('source paths', () => {
  const tmp = tempDir('archiver-sources');
  afterAll(() => tmp.cleanup());

  it('mirrors absolute paths in the root tree and backs up several sources into one snapshot', async () => {
    const a = path.join(tmp.dir, 'one');
    const b = path.join(tmp.dir, 'two', 'deeper');
    writeTree(a, { 'x.txt': 'x' });
    writeTree(b, { 'y.txt': 'y' });
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [b, a, a + '/'] });
    expect(r.result.snapshot.paths).toEqual([a, b]);
    const root = await repo.loadTree(r.result.snapshot.tree);
    expect(root.nodes.map((n) => n.name)).toEqual([tmp.dir.split('/')[1]]);
    expect((await nodeAt(repo, r.result.snapshot.tree, path.join(a, 'x.txt'))).size).toBe(1);
    expect((await nodeAt(repo, r.result.snapshot.tree, path.join(b, 'y.txt'))).size).toBe(1);
    // the intermediate directory carries the real directory's metadata
    const two: TreeNode = await nodeAt(repo, r.result.snapshot.tree, path.join(tmp.dir, 'two'));
    expect(two.type).toBe('dir');
    expect(two.inode).toBe(fs.statSync(path.join(tmp.dir, 'two'), { bigint: true }).ino.toString());
  });

  it('backs up a path below a symlinked directory, recording the directory the link leads to', async () => {
    const real = path.join(tmp.dir, 'real');
    writeTree(real, { 'sub/file.txt': 'through a link' });
    const link = path.join(tmp.dir, 'link');
    fs.symlinkSync('real', link);
    const repo = await initRepo(new MemoryBackend());
    const r = await run(repo, { paths: [path.join(link, 'sub')] });
    expect(r.result.warnings).toEqual([]);
    const linkNode = await nodeAt(repo, r.result.snapshot.tree, link);
    expect(linkNode.type).toBe('dir');
    const target = path.join(tmp.dir, 'restored');
    const restored = await restore(repo, r.result.snapshotId, { target });
    expect(restored.problems).toEqual([]);
    expect(fs.readFileSync(path.join(target, link, 'sub', 'file.txt'), 'utf8')).toBe('through a link');
  });

  it('refuses a missing source with SOURCE_NOT_FOUND and writes nothing', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const e = await rejection(backup(repo, { paths: [path.join(tmp.dir, 'nope')] }), 'SOURCE_NOT_FOUND');
    expect(e.message).toContain('nope');
    const names: string[] = [];
    for await (const f of backend.list('snapshots')) names.push(f.name);
    expect(names).toEqual([]);
  });

  it('backs up a stream as a single file', async () => {
    const repo = await initRepo(new MemoryBackend());
    const data = pseudoRandomBytes(700 * 1024, 5);
    async function* stream(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < data.length; i += 50_000) yield data.subarray(i, i + 50_000);
    }
    const r = await run(repo, { paths: [], stdin: { stream: stream(), filename: 'db.sql' } });
    const node = await nodeAt(repo, r.result.snapshot.tree, '/db.sql');
    expect(node.size).toBe(data.length);
    expect(node.content!.length).toBeGreaterThan(1);
    const chunks: Uint8Array[] = [];
    await dump(await Repository.open(repo.backend, PASSWORD), r.result.snapshotId, '/db.sql', async (c) => void chunks.push(c));
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    await rejection(backup(repo, { paths: [], stdin: { stream: stream(), filename: '../x' } }), 'INVALID_ARGUMENT');
  });
});
