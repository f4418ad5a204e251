import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { IndexBlobEntry, IndexPackEntry } from '../format.ts';
import { isId } from '../crypto/hash.ts';
import { MasterIndex } from './master-index.ts';

const idOf = (n: number | string) => createHash('sha256').update(String(n)).digest('hex');

function packOf(seed: string, blobIds: string[]): IndexPackEntry {
  let offset = 0;
  const blobs: IndexBlobEntry[] = blobIds.map((id, i) => {
    const length = 29 + ((i * 7919) % 5000);
    const entry: IndexBlobEntry = { id, type: i % 3 === 0 ? 'tree' : 'data', offset, length, rawLength: length * 2 };
    offset += length;
    return entry;
  });
  return { id: idOf(`pack ${seed}`), blobs };
}

describe('MasterIndex', () => {
  it('finds every blob it was given and nothing else', () => {
    const index = new MasterIndex();
    const packs = Array.from({ length: 50 }, (_, p) => packOf(String(p), Array.from({ length: 100 }, (_, i) => idOf(p * 100 + i))));
    for (const pack of packs) index.addPack(pack.id, pack.blobs);
    expect(index.blobCount).toBe(5000);
    expect(index.entryCount).toBe(5000);
    expect(index.packCount).toBe(50);
    for (const pack of packs) {
      for (const b of pack.blobs) {
        expect(index.has(b.id)).toBe(true);
        expect(index.lookup(b.id)).toEqual({ packId: pack.id, type: b.type, offset: b.offset, length: b.length, rawLength: b.rawLength });
      }
    }
    for (let i = 5000; i < 6000; i++) {
      expect(index.has(idOf(i))).toBe(false);
      expect(index.lookup(idOf(i))).toBeUndefined();
    }
  });

  it('behaves like a Map-based model under random packs, duplicates and repeats', () => {
    const idPool = Array.from({ length: 300 }, (_, i) => idOf(`pool ${i}`));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 40 }), fc.array(fc.nat({ max: 299 }), { maxLength: 30 })), { maxLength: 40 }),
        fc.array(fc.nat({ max: 299 }), { maxLength: 50 }),
        (packSpecs, probes) => {
          const index = new MasterIndex();
          const modelFirst = new Map<string, { packId: string; entry: IndexBlobEntry }>();
          const modelPacks = new Map<string, IndexBlobEntry[]>();
          for (const [seed, picks] of packSpecs) {
            const pack = packOf(String(seed), picks.map((k) => idPool[k]!));
            index.addPack(pack.id, pack.blobs);
            if (modelPacks.has(pack.id)) continue;
            modelPacks.set(pack.id, pack.blobs);
            for (const b of pack.blobs) if (!modelFirst.has(b.id)) modelFirst.set(b.id, { packId: pack.id, entry: b });
          }
          expect(index.blobCount).toBe(modelFirst.size);
          expect(index.packIds()).toEqual([...modelPacks.keys()]);
          expect(index.toPackEntries()).toEqual([...modelPacks].map(([id, blobs]) => ({ id, blobs })));
          for (const [id, blobs] of modelPacks) {
            expect(index.hasPack(id)).toBe(true);
            expect(index.blobsOfPack(id)).toEqual(blobs);
          }
          for (const k of probes) {
            const id = idPool[k]!;
            const expected = modelFirst.get(id);
            expect(index.has(id)).toBe(expected !== undefined);
            expect(index.lookup(id)).toEqual(
              expected && { packId: expected.packId, type: expected.entry.type, offset: expected.entry.offset, length: expected.entry.length, rawLength: expected.entry.rawLength },
            );
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('keeps the first location of a blob stored in two packs, but lists it under both', () => {
    const index = new MasterIndex();
    const shared = idOf('shared');
    const p1 = packOf('1', [idOf('a'), shared]);
    const p2 = packOf('2', [shared]);
    index.addPack(p1.id, p1.blobs);
    index.addPack(p2.id, p2.blobs);
    index.addPack(p1.id, p1.blobs); // listed again by a superseding index: no effect
    expect(index.lookup(shared)?.packId).toBe(p1.id);
    expect(index.blobCount).toBe(2);
    expect(index.entryCount).toBe(3);
    expect(index.blobsOfPack(p2.id)).toEqual(p2.blobs);
    expect(index.blobsOfPack(idOf('unknown'))).toEqual([]);
    expect(index.hasPack(idOf('unknown'))).toBe(false);
  });

  it('adds whole index documents', () => {
    const index = new MasterIndex();
    const p = packOf('x', [idOf(1), idOf(2)]);
    index.addIndexDocument({ version: 1, supersedes: [], packs: [p] });
    expect(index.has(idOf(2))).toBe(true);
  });

  it('stores offsets beyond 4 GiB and lengths up to uint32', () => {
    const index = new MasterIndex();
    const id = idOf('big');
    index.addPack(idOf('p'), [{ id, type: 'data', offset: 2 ** 40 + 3, length: 0xffffffff, rawLength: 0xffffffff }]);
    expect(index.lookup(id)).toMatchObject({ offset: 2 ** 40 + 3, length: 0xffffffff, rawLength: 0xffffffff });
  });

  it('rejects invalid ids and entries without changing its content', () => {
    const index = new MasterIndex();
    const invalid = (fn: () => unknown) =>
      expect(fn).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    invalid(() => index.has('abc'));
    invalid(() => index.lookup('A'.repeat(64)));
    invalid(() => index.addPack('nope', []));
    const good: IndexBlobEntry = { id: idOf(1), type: 'data', offset: 0, length: 40, rawLength: 10 };
    invalid(() => index.addPack(idOf('p'), [good, { ...good, id: idOf(2), offset: -1 }]));
    invalid(() => index.addPack(idOf('p'), [{ ...good, length: 2 ** 32 }]));
    expect(index.hasPack(idOf('p'))).toBe(false);
    expect(index.has(idOf(1))).toBe(false);
  });

  it('takes as an id exactly what the pattern /^[0-9a-f]{64}$/ does', () => {
    const pattern = /^[0-9a-f]{64}$/;
    const near = fc.tuple(fc.nat(63), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.nat()).map(([at, ch, n]) => {
      const id = idOf(n);
      return id.slice(0, at) + ch + id.slice(at + 1);
    });
    const candidates = fc.oneof(near, fc.string({ unit: 'binary' }), fc.string({ minLength: 63, maxLength: 65 }), fc.nat().map(idOf));
    fc.assert(
      fc.property(candidates, (s) => {
        expect(isId(s)).toBe(pattern.test(s));
        const index = new MasterIndex();
        const good: IndexBlobEntry = { id: s, type: 'data', offset: 0, length: 1, rawLength: 1 };
        if (pattern.test(s)) index.addPack(idOf('p'), [good]);
        else expect(() => index.addPack(idOf('p'), [good])).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
        expect(index.hasPack(idOf('p'))).toBe(pattern.test(s));
      }),
      { numRuns: 500 },
    );
    for (const v of [undefined, null, 42, ['a'], '\u0130'.repeat(64)]) expect(isId(v)).toBe(false);
  });

  it('handles ids that collide in their leading bytes', () => {
    const index = new MasterIndex();
    const ids = Array.from({ length: 3000 }, (_, i) => '00000000'.repeat(7) + i.toString(16).padStart(8, '0'));
    index.addPack(idOf('p'), ids.map((id, i) => ({ id, type: 'data' as const, offset: i * 40, length: 40, rawLength: 1 })));
    for (const [i, id] of ids.entries()) expect(index.lookup(id)?.offset).toBe(i * 40);
    expect(index.has('00000000'.repeat(7) + 'ffffffff')).toBe(false);
  });
});
