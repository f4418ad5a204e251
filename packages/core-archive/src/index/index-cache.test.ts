// The local index cache: a repository opened again starts from it without reading its index files, reads only the
// index files added since, and falls back to reading them all whenever the copy cannot be exact or trusted.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../backend/backend.ts';
import { MemoryBackend } from '../backend/memory.ts';
import type { Id } from '../format.ts';
import { backup, executePrune, planPrune, Repository } from '../index.ts';
import { FaultyBackend } from '../testing/faulty.ts';
import { initRepo, namesOf, PASSWORD, pseudoRandomBytes, tempDir, writeTree } from '../test-support/repo.ts';
import { IndexCache } from './index-cache.ts';
import { MasterIndex } from './master-index.ts';

let scratch: { dir: string; cleanup: () => void };
let backend: MemoryBackend;
let cache: IndexCache;

beforeEach(() => {
  scratch = tempDir('bam-index-cache-');
  backend = new MemoryBackend();
  cache = new IndexCache(path.join(scratch.dir, 'cache'));
});
afterEach(() => scratch.cleanup());

/** Backs up a fresh set of files (generation `g`) into the repository and returns the snapshot id. */
async function backupGeneration(repo: Repository, g: number): Promise<Id> {
  const src = path.join(scratch.dir, `src${g}`);
  writeTree(src, { [`a${g}.bin`]: pseudoRandomBytes(300_000, g + 1), [`b${g}.bin`]: pseudoRandomBytes(200_000, g + 100), 'same.txt': 'same in every generation\n' });
  return (await backup(repo, { paths: [src], workers: 1 })).snapshotId;
}

/** Opens the repository again and loads its index with the cache; returns it and the index files it read. */
async function reopen(cacheToUse: IndexCache = cache): Promise<{ repo: Repository; indexReads: number }> {
  const counting = new FaultyBackend(backend);
  const repo = await Repository.open(counting, PASSWORD);
  await repo.loadIndex({ cache: cacheToUse });
  return { repo, indexReads: counting.calls.filter((c) => c.operation === 'load' && c.type === 'index').length };
}

/** What a load without any cache makes of the repository: every blob and where it is. */
async function reference(b: Backend = backend): Promise<Repository> {
  const repo = await Repository.open(b, PASSWORD);
  await repo.loadIndex();
  return repo;
}

function expectSameIndex(got: Repository, want: Repository): void {
  expect(got.index.blobCount).toBe(want.index.blobCount);
  expect(got.index.packIds().sort()).toEqual(want.index.packIds().sort());
  expect([...got.indexFiles]).toEqual([...want.indexFiles].sort());
  for (const packId of want.index.packIds()) {
    for (const b of want.index.blobsOfPack(packId)) expect(got.index.lookup(b.id)).toEqual(want.index.lookup(b.id));
  }
}

describe('IndexCache', () => {
  it('lets a repository opened again skip its index files, and reads only those added since', async () => {
    const repo = await initRepo(backend);
    await backupGeneration(repo, 1);
    await backupGeneration(repo, 2);
    repo.close();
    expect((await namesOf(backend, 'index')).length).toBeGreaterThanOrEqual(2);

    const first = await reopen();
    expect(first.indexReads).toBe((await namesOf(backend, 'index')).length);
    expect(fs.existsSync(cache.fileOf(first.repo.config.id))).toBe(true);
    expectSameIndex(first.repo, await reference());

    const second = await reopen();
    expect(second.indexReads).toBe(0);
    expectSameIndex(second.repo, await reference());

    // A backup elsewhere (another repository object, without the cache) adds an index file: only that one is read.
    const other = await Repository.open(backend, PASSWORD);
    await backupGeneration(other, 3);
    other.close();
    const third = await reopen();
    expect(third.indexReads).toBe(1);
    expectSameIndex(third.repo, await reference());
    expect((await reopen()).indexReads).toBe(0);
  });

  it('is brought up to date by a backup, so the next command reads no index file', async () => {
    const repo = await initRepo(backend);
    await repo.loadIndex({ cache });
    await backupGeneration(repo, 1);
    expect(repo.saveIndexCache(cache)).toBe(true);
    await backupGeneration(repo, 2);
    expect(repo.saveIndexCache(cache)).toBe(true);
    repo.close();
    const again = await reopen();
    expect(again.indexReads).toBe(0);
    expectSameIndex(again.repo, await reference());
  });

  it('reads every index file again after a prune has superseded them', async () => {
    const repo = await initRepo(backend);
    const first = await backupGeneration(repo, 1);
    await backupGeneration(repo, 2);
    repo.close();
    expect((await reopen()).indexReads).toBeGreaterThan(0);
    expect((await reopen()).indexReads).toBe(0);

    await backend.remove({ type: 'snapshots', name: first });
    const pruning = await Repository.open(backend, PASSWORD);
    await pruning.loadIndex();
    await executePrune(pruning, await planPrune(pruning, { maxUnused: 0 }));
    // `bam prune` does not pass the cache: the copy still accounts for index files that are gone now.
    pruning.close();

    const after = await reopen();
    expect(after.indexReads).toBe((await namesOf(backend, 'index')).length);
    const want = await reference();
    expectSameIndex(after.repo, want);
    // The packs the prune deleted are gone from the index read through the cache too.
    const packs = new Set(await namesOf(backend, 'data'));
    expect(after.repo.index.packIds().every((p) => packs.has(p))).toBe(true);
  });

  it('is not stored while the index may differ from the index files', async () => {
    const repo = await initRepo(backend);
    await backupGeneration(repo, 1);
    repo.close();
    const opened = await Repository.open(backend, PASSWORD);
    // Entries added before the load (here, a pack no index file lists) make an index that is not cached.
    opened.index.addPack('f'.repeat(64), [{ id: 'e'.repeat(64), type: 'data', offset: 0, length: 10, rawLength: 10 }]);
    await opened.loadIndex({ cache });
    expect(fs.existsSync(cache.fileOf(opened.config.id))).toBe(false);
    expect(opened.saveIndexCache(cache)).toBe(false);

    // An index that supersedes others (a rewrite) is not what the master index holds until it is loaded again.
    const fresh = await Repository.open(backend, PASSWORD);
    await fresh.loadIndex({ cache });
    expect(fresh.saveIndexCache(cache)).toBe(true);
    await fresh.saveIndex([], [fresh.indexFiles[0]!]);
    expect(fresh.saveIndexCache(cache)).toBe(false);
  });

  it('leaves out an old index file put back after it was superseded, as a full load does', async () => {
    const repo = await initRepo(backend);
    const first = await backupGeneration(repo, 1);
    await backupGeneration(repo, 2);
    repo.close();
    const before = new Map<string, Uint8Array>();
    for (const name of await namesOf(backend, 'index')) before.set(name, await backend.load({ type: 'index', name }));
    await backend.remove({ type: 'snapshots', name: first });
    const pruning = await Repository.open(backend, PASSWORD);
    await pruning.loadIndex();
    await executePrune(pruning, await planPrune(pruning, { maxUnused: 0 }));
    pruning.close();
    await (await reopen()).repo.close();

    // Someone copies the old index files back (from a copy of the repository made before the prune).
    const now = new Set(await namesOf(backend, 'index'));
    for (const [name, bytes] of before) if (!now.has(name)) await backend.save({ type: 'index', name }, bytes);
    const got = await reopen();
    expectSameIndex(got.repo, await reference());
  });

  it('ignores a damaged copy, or one made for another repository, and replaces it', async () => {
    const repo = await initRepo(backend);
    await backupGeneration(repo, 1);
    repo.close();
    const { repo: opened } = await reopen();
    const file = cache.fileOf(opened.config.id);
    const good = fs.readFileSync(file);

    const damaged = Buffer.from(good);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x01;
    fs.writeFileSync(file, damaged);
    const afterDamage = await reopen();
    expect(afterDamage.indexReads).toBeGreaterThan(0);
    expectSameIndex(afterDamage.repo, await reference());
    expect(fs.readFileSync(file).equals(good)).toBe(true);

    fs.writeFileSync(file, good.subarray(0, good.length - 100));
    expect((await reopen()).indexReads).toBeGreaterThan(0);

    // Another repository's copy under this repository's name: authenticated with another key, so not taken.
    const otherBackend = new MemoryBackend();
    const other = await initRepo(otherBackend);
    await other.loadIndex({ cache });
    const otherFile = cache.fileOf(other.config.id);
    fs.copyFileSync(otherFile, file);
    const afterSwap = await reopen();
    expect(afterSwap.indexReads).toBeGreaterThan(0);
    expectSameIndex(afterSwap.repo, await reference());
  });

  it('never fails a command when the cache cannot be written', async () => {
    const repo = await initRepo(backend);
    await backupGeneration(repo, 1);
    repo.close();
    fs.writeFileSync(path.join(scratch.dir, 'blocked'), 'a file where the cache folder would be');
    const blocked = new IndexCache(path.join(scratch.dir, 'blocked'));
    const { repo: opened, indexReads } = await reopen(blocked);
    expect(indexReads).toBeGreaterThan(0);
    expectSameIndex(opened, await reference());
    expect(opened.saveIndexCache(blocked)).toBe(false);
  });
});

describe('MasterIndex images', () => {
  it('rebuild the same index, and an inconsistent one is refused before anything is added', () => {
    const source = new MasterIndex();
    const ids = (p: number): string[] => Array.from({ length: 40 }, (_, i) => (p * 1000 + i).toString(16).padStart(64, '0'));
    for (let p = 0; p < 30; p++) {
      // Every pack but the first repeats one blob of the previous pack: the first location stays the one found.
      const list = p === 0 ? ids(p) : [ids(p - 1)[0]!, ...ids(p)];
      source.addPack(p.toString(16).padStart(64, 'a'), list.map((id, i) => ({ id, type: i % 5 === 0 ? 'tree' : 'data', offset: i * 100, length: 90, rawLength: 200 })));
    }
    const copy = new MasterIndex();
    copy.addImage(source.image());
    expect(copy.blobCount).toBe(source.blobCount);
    expect(copy.entryCount).toBe(source.entryCount);
    for (const packId of source.packIds()) {
      expect(copy.blobsOfPack(packId)).toEqual(source.blobsOfPack(packId));
      for (const b of source.blobsOfPack(packId)) expect(copy.lookup(b.id)).toEqual(source.lookup(b.id));
    }
    expect(() => copy.addImage(source.image())).toThrow(/empty index/);

    const image = source.image();
    const bad = new MasterIndex();
    expect(() => bad.addImage({ ...image, packLengths: image.packLengths.map((n, i) => (i === 3 ? n + 1 : n)) })).toThrow(/inconsistent/);
    expect(() => bad.addImage({ ...image, packIds: image.packIds.map((id, i) => (i === 1 ? image.packIds[0]! : id)) })).toThrow(/inconsistent/);
    expect(() => bad.addImage({ ...image, types: image.types.map((t, i) => (i === 7 ? 9 : t)) })).toThrow(/inconsistent/);
    expect(bad.packCount).toBe(0);
    expect(bad.blobCount).toBe(0);
  });
});
