// How files are written and finished: by the worker that writes their one blob (created there, hashed from the
// plaintext), by several tasks (finished once all are done, hashed by reading back), or by a task of their own
// (empty files); and what stays behind when the layout fails after writing has begun (nothing that looks restored).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.ts';
import type { Handle } from '../backend/backend.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { sealBlob } from '../crypto/blob.ts';
import { idToBytes } from '../crypto/hash.ts';
import { cryptoMaterial } from '../repository/repository.ts';
import type { Id, TreeNode } from '../format.ts';
import { backup, Repository, restore } from '../index.ts';
import type { RestoreEvent } from '../index.ts';
import { PackSaver } from '../repository/pack-saver.ts';
import { emptySummary } from '../repository/snapshot.ts';
import { encodeTree } from '../repository/tree.ts';
import { initRepo, namesOf, PASSWORD, rejection, tempDir } from '../test-support/repo.ts';
import { compareTrees } from '../test-support/tree.ts';

/** The fields every file node the tests below write by hand shares. */
const NODE_BASE = { mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', atimeNs: '0', ctimeNs: '0', dev: '1', inode: '1', nlink: 1 };

/** A snapshot of the tree `root`, which the test wrote blob by blob. */
async function saveSnapshotOf(repo: Repository, root: Id): Promise<Id> {
  const now = new Date().toISOString();
  return repo.saveSnapshot({
    version: 1, time: now, tree: root, paths: ['/x'], hostname: 'h', username: 'u', uid: 0, gid: 0, tags: [],
    type: 'full', excludes: [], programVersion: 'test', summary: emptySummary(now),
  });
}

function files(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) visit(r);
      else out.push(r);
    }
  };
  visit('');
  return out.sort();
}

describe('restore: writing and finishing files', () => {
  const tmp = tempDir('restorer-fill');
  afterAll(() => tmp.cleanup());

  it('restores files of one blob, of many blobs over many packs, repeated blobs, zeros, empty files and links exactly', async () => {
    const src = path.join(tmp.dir, 'src');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    // Over many of the test repository's 256 KiB packs: written by several tasks, finished by reading back.
    fs.writeFileSync(path.join(src, 'large-random'), randomBytes(6 * 1024 * 1024));
    // One 64 KiB block, many times: the same blob at several offsets of one file and in another file.
    const block = randomBytes(64 * 1024);
    fs.writeFileSync(path.join(src, 'repeated'), Buffer.concat(Array.from({ length: 12 }, () => block)));
    fs.writeFileSync(path.join(src, 'sub', 'block'), block);
    fs.writeFileSync(path.join(src, 'zeros'), Buffer.alloc(700 * 1024));
    fs.writeFileSync(path.join(src, 'sub', 'few-zeros'), Buffer.alloc(12 * 1024));
    fs.writeFileSync(path.join(src, 'empty'), '');
    fs.writeFileSync(path.join(src, 'sub', 'empty-too'), '');
    fs.writeFileSync(path.join(src, 'small'), 'small file\n');
    fs.linkSync(path.join(src, 'small'), path.join(src, 'sub', 'small-link'));
    fs.writeFileSync(path.join(src, 'read-only'), 'no write permission\n', { mode: 0o444 });
    fs.chmodSync(path.join(src, 'read-only'), 0o444);
    fs.writeFileSync(path.join(src, 'setuid'), 'set-id bits survive ownership\n');
    fs.chmodSync(path.join(src, 'setuid'), 0o4755);
    fs.utimesSync(path.join(src, 'small'), new Date('2001-02-03T04:05:06.789Z'), new Date('2002-03-04T05:06:07.891Z'));
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(src, 'sub', `f${i}`), randomBytes(3000 + i * 500));

    const repo = await initRepo(new MemoryBackend());
    const { snapshotId } = await backup(repo, { paths: [src] });
    for (const target of [path.join(tmp.dir, 'new-target'), path.join(tmp.dir, 'existing-target')]) {
      // A target that exists already takes the careful path (every name checked, every file made by the layout).
      if (target.endsWith('existing-target')) fs.mkdirSync(target);
      const r = await restore(repo, snapshotId, { target });
      expect(r.problems).toEqual([]);
      expect(r.mismatches).toEqual([]);
      expect(r.files).toBe(50);
      expect(compareTrees(src, path.join(target, src))).toEqual([]);
      const restored = path.join(target, src);
      expect(fs.statSync(path.join(restored, 'small')).ino).toBe(fs.statSync(path.join(restored, 'sub', 'small-link')).ino);
      // All-zero blocks are holes: the file has its size but (almost) no blocks.
      const zeros = fs.statSync(path.join(restored, 'zeros'));
      expect(zeros.size).toBe(700 * 1024);
      expect(zeros.blocks * 512).toBeLessThan(700 * 1024);
      const few = fs.statSync(path.join(restored, 'sub', 'few-zeros'));
      expect(few.size).toBe(12 * 1024);
      expect(few.blocks).toBe(0);
    }
  }, 60_000);

  /**
   * Backs up a 9 MiB file, 60 small ones and an empty one into a new local repository, restores them through the
   * backend `reader` makes of the repository folder, and checks that the restored tree is exact.
   */
  async function restoreExactly(name: string, reader: (root: string) => LocalBackend): Promise<void> {
    const src = path.join(tmp.dir, `src-${name}`);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'large-random'), randomBytes(9 * 1024 * 1024));
    for (let i = 0; i < 60; i++) fs.writeFileSync(path.join(src, `f${i}`), randomBytes(20_000 + i * 700));
    fs.writeFileSync(path.join(src, 'empty'), '');
    const repoDir = path.join(tmp.dir, `${name}-repo`);
    await LocalBackend.create(repoDir);
    const { snapshotId } = await backup(await initRepo(new LocalBackend(repoDir)), { paths: [src] });
    const target = path.join(tmp.dir, `${name}-target`);
    const r = await restore(await Repository.open(reader(repoDir), PASSWORD), snapshotId, { target });
    expect(r.problems).toEqual([]);
    expect(r.mismatches).toEqual([]);
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
  }

  it('has the workers read the packs of a local repository themselves, and restores exactly', async () => {
    // The main thread reads trees through the backend; a read of a data pack's range there would be counted.
    let mainReads = 0;
    class WatchedBackend extends LocalBackend {
      override async load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
        if (offset !== undefined && offset > 0) mainReads++;
        return super.load(h, offset, length);
      }
      override async loadInto(h: Handle, offset: number, out: Uint8Array): Promise<void> {
        mainReads++;
        await super.loadInto(h, offset, out);
      }
    }
    await restoreExactly('workers-read', (root) => new WatchedBackend(root));
    // Ranged reads on this thread are the tree blobs' only (a handful here); the data, 10 MB, went to the workers.
    expect(mainReads).toBeLessThan(5);
  }, 60_000);

  it('reads the packs of a backend that reads into given buffers (loadInto) into buffers it reuses, and restores exactly', async () => {
    // Counts the reads that land in a buffer holding an earlier read (random pack bytes): a fresh one is all zeros.
    let reads = 0;
    let reused = 0;
    class CountingBackend extends LocalBackend {
      constructor(root: string) {
        super(root);
        // A backend whose reads do more than read the file (here: count) leaves Backend.localFile out, so that the
        // workers do not read behind its back: the packs are read on the main thread.
        Object.defineProperty(this, 'localFile', { value: undefined });
      }
      override async loadInto(h: Handle, offset: number, out: Uint8Array): Promise<void> {
        reads++;
        if (out.some((b) => b !== 0)) reused++;
        await super.loadInto(h, offset, out);
      }
    }
    await restoreExactly('main-reads', (root) => new CountingBackend(root));
    expect(reads).toBeGreaterThan(10);
    expect(reused).toBeGreaterThan(0);
  }, 60_000);

  it('reports a file whose blob holds other plaintext sealed under its id as not matching the snapshot', async () => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    const saver = new PackSaver(writer);
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    // A faulty writer: the envelope authenticates under the key and the id, but holds other bytes of the same length.
    const content = randomBytes(50_000);
    const other = randomBytes(50_000);
    const id = sha(content);
    const m = cryptoMaterial(writer);
    expect(saver.claim(id)).toBe(true);
    await saver.add('data', id, sealBlob(m.key, 'data', idToBytes(id), other, m.compression), other.length);
    // Beside it, a good file of one blob and one of several blobs (the second blob is the bad one).
    const good = randomBytes(30_000);
    const { id: goodId } = await saver.addPlain('data', good);
    const head = randomBytes(40_000);
    const { id: headId } = await saver.addPlain('data', head);
    const nodes: TreeNode[] = [
      { ...NODE_BASE, name: 'bad', type: 'file', size: content.length, content: [id], sha256: id },
      { ...NODE_BASE, name: 'good', type: 'file', size: good.length, content: [goodId], sha256: sha(good) },
      { ...NODE_BASE, name: 'two', type: 'file', size: head.length + content.length, content: [headId, id], sha256: sha(Buffer.concat([head, content])) },
    ];
    const { id: root } = await saver.addPlain('tree', encodeTree(nodes));
    await saver.finish();
    const snap = await saveSnapshotOf(writer, root);
    const target = path.join(tmp.dir, 'faulty-writer');
    const r = await restore(await Repository.open(backend, PASSWORD), snap, { target });
    expect(r.mismatches.map((p) => path.basename(p)).sort()).toEqual(['bad', 'two']);
    expect(r.problems.map((p) => [path.basename(p.path), p.code]).sort()).toEqual([['bad', 'mismatch'], ['two', 'mismatch']]);
    for (const p of r.problems) expect(p.message).toContain('restored content does not match the snapshot');
    expect(fs.readFileSync(path.join(target, 'good')).equals(good)).toBe(true);
  }, 60_000);

  for (const where of ['memory', 'local'] as const) {
    it(`reports the files of a pack that cannot be read, and still creates them at their size (${where} repository: packs read by ${where === 'local' ? 'the workers' : 'the main thread'})`, async () => {
      const src = path.join(tmp.dir, `src-lost-${where}`);
      fs.mkdirSync(src);
      for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(src, `f${String(i).padStart(2, '0')}`), randomBytes(20_000));
      const backend = where === 'memory' ? new MemoryBackend() : await LocalBackend.create(path.join(tmp.dir, 'lost-repo'));
      const repo = await initRepo(backend);
      const { snapshotId } = await backup(repo, { paths: [src] });
      const packs = await namesOf(backend, 'data');
      // The data packs (tree packs hold no file content): remove the first one that holds file content.
      let lost: string[] = [];
      for (const pack of packs) {
        const bytes = await backend.load({ type: 'data', name: pack });
        await backend.remove({ type: 'data', name: pack });
        const target = path.join(tmp.dir, `lost-${where}-${pack.slice(0, 8)}`);
        const r = await restore(await Repository.open(backend, PASSWORD), snapshotId, { target }).catch(() => undefined);
        await backend.save({ type: 'data', name: pack }, bytes);
        if (!r) continue; // a tree pack: the layout cannot go on
        lost = r.problems.filter((p) => p.code === 'unreadable-data').map((p) => path.basename(p.path));
        expect(lost.length).toBeGreaterThan(0);
        expect(r.problems.every((p) => p.code === 'unreadable-data')).toBe(true);
        for (const p of r.problems) expect(p.message).toContain(`cannot read pack ${pack.slice(0, 12)}: `);
        expect(r.mismatches).toEqual([]);
        for (let i = 0; i < 30; i++) {
          const name = `f${String(i).padStart(2, '0')}`;
          const restored = path.join(target, src, name);
          expect(fs.statSync(restored).size).toBe(20_000);
          if (!lost.includes(name)) expect(fs.readFileSync(restored).equals(fs.readFileSync(path.join(src, name)))).toBe(true);
        }
        break;
      }
      expect(lost.length).toBeGreaterThan(0);
    }, 60_000);
  }

  it('leaves no file behind when a damaged tree stops the layout after writing has begun', async () => {
    const backend = new MemoryBackend();
    const writer = await initRepo(backend);
    const saver = new PackSaver(writer);
    // Many files of 100 KiB, two or three to a pack: their packs are sent to the workers while the layout goes on.
    const nodes: TreeNode[] = [];
    for (let i = 0; i < 40; i++) {
      const content = randomBytes(100 * 1024);
      const { id } = await saver.addPlain('data', content);
      nodes.push({ ...NODE_BASE, name: `a${String(i).padStart(2, '0')}`, type: 'file', size: content.length, content: [id], sha256: createHash('sha256').update(content).digest('hex') });
    }
    const bad: TreeNode = { ...NODE_BASE, name: 'nested', type: 'file', size: 0, content: [], sha256: createHash('sha256').digest('hex') };
    const { id: badTree } = await saver.addPlain('tree', new TextEncoder().encode(JSON.stringify({ nodes: [{ ...bad, name: '../escape' }] })));
    nodes.push({ ...NODE_BASE, name: 'z', type: 'dir', mode: 0o755, subtree: badTree });
    const { id: root } = await saver.addPlain('tree', encodeTree(nodes));
    await saver.finish();
    const id = await saveSnapshotOf(writer, root);
    const target = path.join(tmp.dir, 'stopped');
    let written = 0;
    const onEvent = (ev: RestoreEvent): void => {
      if (ev.type === 'progress') written = ev.bytesDone;
    };
    const e = await rejection(restore(await Repository.open(backend, PASSWORD), id, { target, onEvent }), 'CORRUPT');
    expect(e.message).toContain('unsafe name');
    // Writing had begun (files were created and filled), and all of it was removed.
    expect(written).toBeGreaterThan(0);
    expect(files(target)).toEqual([]);
    expect(fs.existsSync(path.join(tmp.dir, 'escape'))).toBe(false);
  }, 60_000);
});
