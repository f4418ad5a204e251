import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import type { Handle } from '../backend/backend.ts';
import { openBlob } from '../crypto/blob.ts';
import { idToBytes } from '../crypto/hash.ts';
import { readPackHeader } from '../pack/pack.ts';
import { initRepo, namesOf, PASSWORD, pseudoRandomBytes, SMALL_PACK } from '../test-support/repo.ts';
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
