import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.ts';
import { MemoryBackend } from '../backend/memory.ts';
import type { Backend, FileType, Handle, StagedFile } from '../backend/backend.ts';
import { BackupError } from '../errors.ts';
import { openBlob } from '../crypto/blob.ts';
import { idToBytes } from '../crypto/hash.ts';
import { readPackHeader } from '../pack/pack.ts';
import { initRepo, namesOf, PASSWORD, pseudoRandomBytes, SMALL_PACK, tempDir } from '../test-support/repo.ts';
import { PackSaver } from './pack-saver.ts';
import { cryptoMaterial, Repository } from './repository.ts';

/** A memory backend whose saves of packs can be held back, recording which buffers they were given. */
class WatchedBackend extends MemoryBackend {
  readonly packBuffers: ArrayBufferLike[] = [];
  inFlight = 0;
  maxInFlight = 0;
  hold: Promise<void> | undefined;

  override async save(h: Handle, data: Uint8Array): Promise<void> {
    if (h.type !== 'data') return super.save(h, data);
    this.packBuffers.push(data.buffer);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.hold;
      await new Promise((r) => setTimeout(r, 1));
      await super.save(h, data);
    } finally {
      this.inFlight--;
    }
  }
}

describe('PackSaver', () => {
  it('builds packs in a few buffers that it reuses, with at most maxUploads saves in flight', async () => {
    const backend = new WatchedBackend();
    const repo = await initRepo(backend);
    const saver = new PackSaver(repo, { maxUploads: 2 });
    const plaintexts = Array.from({ length: 40 }, (_, i) => pseudoRandomBytes(40 * 1024, i + 1));
    // Several callers at once, as the workers are.
    await Promise.all([0, 1, 2].map(async (k) => {
      for (let i = k; i < plaintexts.length; i += 3) await saver.addPlain('data', plaintexts[i]!);
    }));
    await saver.finish();
    const packs = await namesOf(backend, 'data');
    expect(packs.length).toBeGreaterThan(5);
    expect(backend.maxInFlight).toBeLessThanOrEqual(2);
    // One buffer filling and two saving: every pack went through one of three buffers.
    expect(new Set(backend.packBuffers).size).toBeLessThanOrEqual(3);
    // Reused buffers never let one pack's bytes into another: every blob reads back from a fresh repository.
    const key = cryptoMaterial(repo).key;
    let blobs = 0;
    for (const packId of packs) {
      const bytes = await backend.load({ type: 'data', name: packId });
      for (const b of await readPackHeader(async (o, l) => bytes.subarray(o, o + l), bytes.byteLength, key, packId)) {
        openBlob(key, b.type, idToBytes(b.id), bytes.subarray(b.offset, b.offset + b.length), b.rawLength, b.id);
        blobs++;
      }
    }
    expect(blobs).toBe(plaintexts.length);
  });

  it('waits for an upload to finish when every pack buffer is taken', async () => {
    const backend = new WatchedBackend();
    const repo = await initRepo(backend);
    let release!: () => void;
    backend.hold = new Promise((r) => (release = r));
    const saver = new PackSaver(repo, { maxUploads: 1 });
    let added = 0;
    const adding = (async () => {
      for (let i = 0; i < 12; i++) {
        await saver.addPlain('data', pseudoRandomBytes(100 * 1024, 100 + i));
        added++;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    // One pack is being saved and a second one is full: no third buffer is taken while the save is held.
    expect(backend.inFlight).toBe(1);
    expect(added).toBeLessThan(12);
    expect(added * 100 * 1024).toBeLessThanOrEqual(2 * SMALL_PACK + 2 * 100 * 1024);
    release();
    await adding;
    await saver.finish();
    expect(new Set(backend.packBuffers).size).toBeLessThanOrEqual(2);
  });

  it('writes index files during a long session and returns every index file of the session from finish', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const saver = new PackSaver(repo);
    const ids: string[] = [];
    // ~7,000 of these tiny blobs fill a test pack: more than 16,384 are saved in full packs before finish.
    for (let i = 0; i < 24 * 1024; i++) {
      const plain = new Uint8Array(8);
      new DataView(plain.buffer).setUint32(0, i);
      ids.push((await saver.addPlain('tree', plain)).id);
    }
    const written = await saver.finish();
    const indexFiles = await namesOf(backend, 'index');
    expect(indexFiles.length).toBeGreaterThanOrEqual(2);
    expect([...written].sort()).toEqual(indexFiles);
    const reader = await Repository.open(backend, PASSWORD);
    await reader.loadIndex();
    for (const id of ids) expect(reader.index.has(id)).toBe(true);
    expect(saver.written.reduce((n, p) => n + p.blobs.length, 0)).toBe(ids.length);
  }, 60_000);
});

/**
 * A memory backend that offers staged files: their bytes are kept aside and saved on commit. Appends or commits
 * can be made to fail, and the files neither committed nor discarded are counted.
 */
class StagingBackend extends MemoryBackend {
  /** fail the append with this number (1 = the first of the backend), or the commit with this number */
  failAppend = 0;
  failCommit = 0;
  appends = 0;
  commits = 0;
  /** staged files neither committed nor discarded */
  readonly open = new Set<StagedFile>();
  /** `save` calls for data/ files (tree packs, or data packs when staging is not used) */
  dataSaves = 0;

  override async save(h: Handle, data: Uint8Array): Promise<void> {
    if (h.type === 'data') this.dataSaves++;
    return super.save(h, data);
  }

  stage(type: FileType): StagedFile {
    const parts: Uint8Array[] = [];
    let failed: BackupError | undefined;
    let size = 0;
    const backend = this;
    const file: StagedFile = {
      get size() {
        return size;
      },
      async append(data) {
        if (!backend.open.has(file)) throw new BackupError('INTERNAL', 'staged file ended');
        if (failed) throw failed;
        if (++backend.appends === backend.failAppend) throw (failed = new BackupError('QUOTA_EXCEEDED', 'injected: disk full'));
        parts.push(data.slice());
        size += data.byteLength;
      },
      async commit(h) {
        if (!backend.open.delete(file)) throw new BackupError('INTERNAL', 'staged file ended');
        if (failed) throw failed;
        if (h.type !== type) throw new BackupError('INVALID_ARGUMENT', 'wrong type');
        if (++backend.commits === backend.failCommit) throw new BackupError('IO', 'injected: commit failed');
        const whole = new Uint8Array(size);
        let at = 0;
        for (const p of parts) {
          whole.set(p, at);
          at += p.byteLength;
        }
        await MemoryBackend.prototype.save.call(backend, h, whole);
      },
      async discard() {
        backend.open.delete(file);
      },
    };
    this.open.add(file);
    return file;
  }
}

/** Opens every blob of every pack that an index file of a fresh reader names: all must be there and whole. */
async function expectIndexedPacksWhole(backend: Backend): Promise<number> {
  const reader = await Repository.open(backend, PASSWORD);
  await reader.loadIndex();
  const key = cryptoMaterial(reader).key;
  let blobs = 0;
  for (const packId of reader.index.packIds()) {
    const bytes = await backend.load({ type: 'data', name: packId });
    for (const b of await readPackHeader(async (o, l) => bytes.subarray(o, o + l), bytes.byteLength, key, packId)) {
      openBlob(key, b.type, idToBytes(b.id), bytes.subarray(b.offset, b.offset + b.length), b.rawLength, b.id);
      expect(reader.index.has(b.id)).toBe(true);
      blobs++;
    }
  }
  return blobs;
}

describe('PackSaver with a backend that stages files', () => {
  const blobsOf = (n: number, seed: number) => Array.from({ length: n }, (_, i) => pseudoRandomBytes(40 * 1024 + i, seed + i));

  it('streams packs into staged files, data and trees apart', async () => {
    const backend = new StagingBackend();
    const repo = await initRepo(backend);
    const saver = new PackSaver(repo, { maxUploads: 2 });
    const plaintexts = blobsOf(40, 1_000);
    await Promise.all([0, 1, 2].map(async (k) => {
      for (let i = k; i < plaintexts.length; i += 3) await saver.addPlain('data', plaintexts[i]!);
    }));
    await saver.addPlain('tree', new TextEncoder().encode('{"nodes":[]}'));
    await saver.finish();
    expect(backend.commits).toBeGreaterThan(5);
    // Every pack, the tree pack too, was streamed: none was saved whole.
    expect(backend.dataSaves).toBe(0);
    expect(backend.open.size).toBe(0);
    expect(saver.stats.packs).toBe(backend.commits);
    expect(await expectIndexedPacksWhole(backend)).toBe(41);
    let bytes = 0;
    for await (const f of backend.list('data')) bytes += f.size;
    expect(saver.stats.bytes).toBe(bytes);
  });

  for (const where of ['append', 'commit'] as const) {
    it(`fails the session when a staged ${where} fails, indexing no missing pack and leaving nothing staged`, async () => {
      const backend = new StagingBackend();
      const repo = await initRepo(backend);
      // An earlier session, intact whatever happens next.
      const first = new PackSaver(repo);
      for (const p of blobsOf(10, 2_000)) await first.addPlain('data', p);
      await first.finish();
      const before = await namesOf(backend, 'data');
      if (where === 'append') backend.failAppend = backend.appends + 30;
      else backend.failCommit = backend.commits + 2;
      const saver = new PackSaver(repo);
      let error: unknown;
      try {
        for (const p of blobsOf(60, 3_000)) await saver.addPlain('data', p);
        await saver.finish();
      } catch (e) {
        error = e;
        await saver.abandon();
        await saver.indexWritten();
      }
      expect(error).toBeInstanceOf(BackupError);
      expect((error as BackupError).code).toBe(where === 'append' ? 'QUOTA_EXCEEDED' : 'IO');
      expect(backend.open.size).toBe(0);
      // Every pack named by an index is whole; the first session's ten blobs are among them.
      expect(await expectIndexedPacksWhole(backend)).toBeGreaterThanOrEqual(10);
      for (const id of before) expect(await backend.stat({ type: 'data', name: id })).toBeDefined();
      // Packs that landed before the failure are indexed, and nothing else is in data/.
      const reader = await Repository.open(backend, PASSWORD);
      await reader.loadIndex();
      expect([...(await namesOf(backend, 'data'))].sort()).toEqual(reader.index.packIds().sort());
    });
  }

  it('abandons a pack being filled: no pack file, no staged file left', async () => {
    const backend = new StagingBackend();
    const repo = await initRepo(backend);
    const saver = new PackSaver(repo);
    for (const p of blobsOf(3, 4_000)) await saver.addPlain('data', p);
    expect(backend.open.size).toBe(1);
    await saver.abandon();
    expect(backend.open.size).toBe(0);
    expect(await namesOf(backend, 'data')).toEqual([]);
    await expect(saver.addPlain('data', pseudoRandomBytes(100, 5))).rejects.toMatchObject({ code: 'INTERRUPTED' });
  });
});

describe('PackSaver on a LocalBackend', () => {
  it('writes readable packs and leaves tmp/ empty after finish and after abandon', async () => {
    const t = tempDir('pack-saver');
    try {
      const root = path.join(t.dir, 'repo');
      const backend = await LocalBackend.create(root);
      const repo = await initRepo(backend);
      const saver = new PackSaver(repo);
      const plaintexts = Array.from({ length: 30 }, (_, i) => pseudoRandomBytes(i % 3 === 0 ? 200 * 1024 : 5_000 + i, 6_000 + i));
      for (const p of plaintexts) await saver.addPlain('data', p);
      await saver.finish();
      expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
      expect(await expectIndexedPacksWhole(new LocalBackend(root))).toBe(plaintexts.length);
      const packs = await namesOf(backend, 'data');

      const dropped = new PackSaver(repo);
      await dropped.addPlain('data', pseudoRandomBytes(200 * 1024, 7_000));
      expect(await readdir(path.join(root, 'tmp'))).toHaveLength(1);
      await dropped.abandon();
      expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
      expect(await namesOf(backend, 'data')).toEqual(packs);
    } finally {
      t.cleanup();
    }
  });
});
