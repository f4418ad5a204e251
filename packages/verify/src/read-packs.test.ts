import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BackupError, cryptoMaterial } from '@backup-manager/core-archive';
import type { Backend, IndexBlobEntry } from '@backup-manager/core-archive';
import { loadIndexTolerant } from './load-index.ts';
import { BlobVerifier } from './pack-verify.ts';
import type { PackPiece } from './pack-verify.ts';
import { VerifyPool, startVerifyPool } from './pool.ts';
import { ByteBudget, planPieces, readPacks } from './read-packs.ts';
import type { PackOutcome } from './read-packs.ts';
import fs from 'node:fs';
import path from 'node:path';
import { FILES, cloneBackend, cloneToLocal, firstBlobOf, flipByte, makeFixture, open, tempDir } from './test-support.ts';
import type { Fixture } from './test-support.ts';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture('read-packs');
}, 60_000);
afterAll(() => fx.cleanup());

/** Blobs back to back from offset 0 with the given lengths, in a random order of the list. */
function layout(lengths: number[], order: number[]): IndexBlobEntry[] {
  let at = 0;
  const blobs = lengths.map((length, i) => {
    const b: IndexBlobEntry = { id: i.toString(16).padStart(64, '0'), type: 'data', offset: at, length, rawLength: length };
    at += length;
    return b;
  });
  if (blobs.length === 0) return [];
  return order.map((i) => blobs[i % blobs.length]!).filter((b, i, all) => all.indexOf(b) === i);
}

describe('planPieces', () => {
  it('tiles the pack, cuts only between blobs, at least `target` apart, never in the tail', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 29, max: 5000 }), { minLength: 0, maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 80 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 0, max: 4000 }),
        (lengths, order, headerBytes, target, tail) => {
          const blobs = layout(lengths, [...order, ...lengths.keys()]);
          const blobBytes = lengths.reduce((a, b) => a + b, 0);
          // Sometimes the file is cut short, so that some blobs lie beyond its end.
          const size = Math.max(0, blobBytes + headerBytes - (headerBytes % 7 === 0 ? (headerBytes * 3) % (blobBytes + 1) : 0));
          const plan = planPieces(blobs, size, target, tail);
          let at = 0;
          const seen = new Set<number>();
          plan.pieces.forEach((piece, k) => {
            expect(piece.start).toBe(at);
            expect(piece.end).toBeGreaterThan(piece.start);
            if (k < plan.pieces.length - 1) {
              expect(piece.end - piece.start).toBeGreaterThanOrEqual(target);
              expect(piece.end).toBeLessThanOrEqual(size - tail);
            }
            for (const { entry, at: i } of piece.blobs) {
              expect(blobs[i]).toBe(entry);
              expect(entry.offset).toBeGreaterThanOrEqual(piece.start);
              expect(entry.offset + entry.length).toBeLessThanOrEqual(piece.end);
              seen.add(i);
            }
            at = piece.end;
          });
          expect(at).toBe(size);
          for (const i of plan.outside) {
            expect(blobs[i]!.offset + blobs[i]!.length).toBeGreaterThan(size);
            seen.add(i);
          }
          expect(seen.size).toBe(blobs.length);
          expect(plan.outside.length + plan.pieces.reduce((n, p) => n + p.blobs.length, 0)).toBe(blobs.length);
        },
      ),
    );
  });

  it('never cuts through overlapping blobs (a damaged index)', () => {
    const blob = (i: number, offset: number, length: number): IndexBlobEntry => ({ id: String(i).padStart(64, '0'), type: 'data', offset, length, rawLength: length });
    const blobs = [blob(0, 0, 100), blob(1, 50, 300), blob(2, 100, 10), blob(3, 400, 100), blob(4, 500, 100)];
    const plan = planPieces(blobs, 700, 10, 0);
    expect(plan.pieces.map((p) => [p.start, p.end])).toEqual([
      [0, 400],
      [400, 500],
      [500, 700],
    ]);
  });
});

describe('ByteBudget', () => {
  it('serves in order, and lets a request larger than the budget run alone once everything is free', async () => {
    const budget = new ByteBudget(10);
    const order: string[] = [];
    await budget.take(6);
    const big = budget.take(25).then(() => order.push('big'));
    const small = budget.take(1).then(() => order.push('small'));
    await new Promise((r) => setTimeout(r, 5));
    expect(order).toEqual([]);
    budget.give(6);
    await big;
    await new Promise((r) => setTimeout(r, 5));
    expect(order).toEqual(['big']);
    budget.give(25);
    await small;
    expect(order).toEqual(['big', 'small']);
  });
});

async function readAll(backend: Backend, workers: number, pieceBytes: number): Promise<{ outcomes: PackOutcome[]; pieces: number }> {
  const repo = await open(backend);
  try {
    const index = await loadIndexTolerant(repo);
    const packs: { id: string; size: number }[] = [];
    for await (const f of backend.list('data')) packs.push({ id: f.name, size: f.size });
    // In the order of their names, whatever the backend lists first: the last packs are read differently (see readPacks).
    packs.sort((x, y) => (x.id < y.id ? -1 : 1));
    const blobsOf = (id: string): IndexBlobEntry[] => index.blobsOf(id);
    const outcomes: PackOutcome[] = [];
    const key = cryptoMaterial(repo).key;
    const reading = readPacks(repo, key, new VerifyPool(key, workers), packs, { concurrency: 2, blobsOf, pieceBytes }, (o) => outcomes.push(o));
    await reading.done;
    const pieces = packs.reduce((n, p) => n + planPieces(blobsOf(p.id), p.size, pieceBytes, pieceBytes).pieces.length, 0);
    return { outcomes, pieces };
  } finally {
    repo.close();
  }
}

describe('readPacks', () => {
  for (const workers of [0, 1, 2]) {
    it(`reads packs in pieces and verifies every blob (${workers} workers)`, async () => {
      const { outcomes, pieces } = await readAll(fx.backend, workers, 16 * 1024);
      expect(pieces).toBeGreaterThan(outcomes.length);
      for (const o of outcomes) {
        expect('verdict' in o).toBe(true);
        if (!('verdict' in o)) continue;
        expect(o.verdict).toMatchObject({ packId: o.pack.id, hashMatches: true, header: { ok: true, mismatches: [] }, bad: [] });
        expect(o.verdict.blobsChecked).toBeGreaterThan(0);
      }
    });
  }

  it('names the damaged blob of a pack read in pieces, and the pack whose content no longer matches its name', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[0]!, `${fx.src}/${FILES.photo}`);
    repo.close();
    await flipByte(b, { type: 'data', name: where.pack }, where.offset + 100);
    const { outcomes } = await readAll(b, 1, 16 * 1024);
    const damaged = outcomes.filter((o) => 'verdict' in o && (o.verdict.bad.length > 0 || !o.verdict.hashMatches));
    expect(damaged).toHaveLength(1);
    const v = (damaged[0] as Extract<PackOutcome, { verdict: unknown }>).verdict;
    expect(v.packId).toBe(where.pack);
    expect(v.hashMatches).toBe(false);
    expect(v.header.ok).toBe(true);
    expect(v.bad.map((x) => [x.id, x.reason])).toEqual([[where.blob, 'unreadable']]);
    expect(v.bad[0]!.message).toMatch(/failed authentication/);
  });
});

describe('readPacks, a pack that fails to load half-way', () => {
  it('is an outcome of its own, and the hashes of the packs read after it on the same worker are right', async () => {
    const b = await cloneBackend(fx.backend);
    // A pack read in several pieces, so that one load at an offset past 0 comes whichever way it is read: a pack
    // planned as one piece would be read whole from offset 0 once the index is loaded, and never fail.
    const repo = await open(b);
    const index = await loadIndexTolerant(repo);
    repo.close();
    const packs: string[] = [];
    for await (const f of b.list('data')) if (planPieces(index.blobsOf(f.name), f.size, 16 * 1024, 16 * 1024).pieces.length > 1) packs.push(f.name);
    const victim = packs.sort()[0]!;
    expect(victim).toBeDefined();
    const load = b.load.bind(b);
    b.load = async (h, offset, length) => {
      if (h.name === victim && (offset ?? 0) > 0) throw new BackupError('IO', 'the disk went away');
      return load(h, offset, length);
    };
    const { outcomes } = await readAll(b, 1, 16 * 1024);
    for (const o of outcomes) {
      if (o.pack.id === victim) expect('error' in o && (o.error as Error).message).toBe('the disk went away');
      else expect('verdict' in o && o.verdict.hashMatches && o.verdict.bad.length === 0).toBe(true);
    }
    expect(outcomes.length).toBeGreaterThan(1);
  });
});

describe('readPacks from a local repository, whose packs the workers read themselves', () => {
  const tmp = tempDir('read-packs-local');
  afterAll(() => tmp.cleanup());
  const sorted = (outcomes: PackOutcome[]): PackOutcome[] => [...outcomes].sort((x, y) => (x.pack.id < y.pack.id ? -1 : 1));

  for (const workers of [0, 1, 2]) {
    it(`gives the outcomes a reading through load gives, for intact and damaged packs (${workers} workers)`, async () => {
      const memory = await cloneBackend(fx.backend);
      const repo = await open(memory);
      const where = await firstBlobOf(repo, fx.snapshots[0]!, `${fx.src}/${FILES.photo}`);
      repo.close();
      await flipByte(memory, { type: 'data', name: where.pack }, where.offset + 100);
      // The last pack by name, which two workers read piece by piece (any worker, and one hashes the whole file).
      const names: string[] = [];
      for await (const f of memory.list('data')) names.push(f.name);
      const last = names.sort().at(-1)!;
      await flipByte(memory, { type: 'data', name: last }, 40);
      const local = await cloneToLocal(memory, path.join(tmp.dir, `workers-${workers}`));
      const direct = sorted((await readAll(local, workers, 16 * 1024)).outcomes);
      expect(direct).toEqual(sorted((await readAll(memory, workers, 16 * 1024)).outcomes));
      const verdicts = new Map(direct.map((o) => [o.pack.id, (o as Extract<PackOutcome, { verdict: unknown }>).verdict]));
      expect(verdicts.size).toBe(names.length);
      expect(verdicts.get(where.pack)!.bad.map((x) => x.id)).toContain(where.blob);
      expect(verdicts.get(last)!.hashMatches).toBe(false);
      for (const [id, v] of verdicts) if (id !== where.pack && id !== last) expect(v).toMatchObject({ hashMatches: true, header: { ok: true, mismatches: [] }, bad: [] });
    });
  }

  for (const workers of [1, 2]) {
    it(`makes a pack cut short or removed after the listing an outcome of its own, and reads the others intact (${workers} workers)`, async () => {
      const local = await cloneToLocal(fx.backend, path.join(tmp.dir, `failing-${workers}`));
      const repo = await open(local);
      try {
        const index = await loadIndexTolerant(repo);
        const packs: { id: string; size: number }[] = [];
        for await (const f of local.list('data')) if (f.size > 64 * 1024) packs.push({ id: f.name, size: f.size });
        packs.sort((x, y) => (x.id < y.id ? -1 : 1));
        // Cut short: the first pack (its pieces in one worker, in order) and the last (shared out, with two workers).
        const cut = [packs[0]!.id, packs.at(-1)!.id];
        const removed = packs[1]!.id;
        for (const id of cut) fs.truncateSync(local.localFile({ type: 'data', name: id }).path, 30 * 1024);
        fs.rmSync(local.localFile({ type: 'data', name: removed }).path);
        const outcomes: PackOutcome[] = [];
        const key = cryptoMaterial(repo).key;
        await readPacks(repo, key, new VerifyPool(key, workers), packs, { concurrency: 2, blobsOf: (id) => index.blobsOf(id), pieceBytes: 16 * 1024 }, (o) => outcomes.push(o)).done;
        expect(outcomes).toHaveLength(packs.length);
        for (const o of outcomes) {
          if (cut.includes(o.pack.id)) expect('error' in o && (o.error as BackupError).code).toBe('INVALID_RANGE');
          else if (o.pack.id === removed) expect('error' in o && (o.error as BackupError).code).toBe('NOT_FOUND');
          else expect('verdict' in o && o.verdict.hashMatches && o.verdict.bad.length === 0).toBe(true);
        }
      } finally {
        repo.close();
      }
    });
  }
});

describe('a verify pool started before its key', () => {
  it('takes no task until it has the key, serves one repository, and takes none once closed', async () => {
    const pool = startVerifyPool(1);
    try {
      await expect(pool.hashFiles([])).rejects.toThrow(/before its key/);
      const key = new Uint8Array(32).fill(7);
      pool.start(key);
      pool.start(key.slice());
      expect(() => pool.start(new Uint8Array(32))).toThrow(/one repository/);
      expect(await pool.hashFiles([])).toEqual([]);
    } finally {
      await pool.close();
    }
    await expect(pool.hashFiles([])).rejects.toThrow(/closed/);
  });
});

describe('readPacks before the index is loaded', () => {
  for (const [workers, lanes] of [[0, 'all'], [1, 'all'], [2, 1]] as const) {
    it(`cuts packs by their own headers, with the same outcomes as a reading planned by the index, also where the index disagrees with a header (${workers} workers, ${lanes} lanes)`, async () => {
      const b = await cloneBackend(fx.backend);
      const repo = await open(b);
      try {
        const where = await firstBlobOf(repo, fx.snapshots[0]!, `${fx.src}/${FILES.photo}`);
        await flipByte(b, { type: 'data', name: where.pack }, where.offset + 100);
        const index = await loadIndexTolerant(repo, { populate: false });
        const packs: { id: string; size: number }[] = [];
        for await (const f of b.list('data')) packs.push({ id: f.name, size: f.size });
        packs.sort((x, y) => (x.id < y.id ? -1 : 1));
        // A damaged index for one pack (not the one with the flipped byte): an entry placed one byte off, one with
        // the wrong plaintext length, one beyond the end of the pack, one listed twice, and one missing.
        const victim = packs.find((p) => p.id !== where.pack && index.blobsOf(p.id).length >= 5)!;
        const blobsOf = (id: string): IndexBlobEntry[] => {
          const list = index.blobsOf(id);
          if (id !== victim.id) return list;
          const [e0, e1, e2, e3, ...rest] = list;
          return [e0!, { ...e1!, offset: e1!.offset + 1 }, { ...e2!, rawLength: e2!.rawLength + 1 }, { ...e3!, offset: victim.size + 10 }, e0!, ...rest.slice(1)];
        };
        const key = cryptoMaterial(repo).key;
        const readWith = async (indexReady?: Promise<void>): Promise<PackOutcome[]> => {
          const outcomes: PackOutcome[] = [];
          // With one lane per pack, every pack starts (and reads its header) while the index is still "loading"; with
          // one lane, a few packs do, and the others wait for the index.
          const reading = readPacks(repo, key, new VerifyPool(key, workers), packs, { concurrency: lanes === 'all' ? packs.length : lanes, blobsOf, pieceBytes: 16 * 1024, ...(indexReady ? { indexReady } : {}) }, (o) => outcomes.push(o));
          await reading.done;
          return outcomes.sort((x, y) => (x.pack.id < y.pack.id ? -1 : 1));
        };
        const planned = await readWith();
        let loaded = false;
        const early = await readWith(
          new Promise((resolve) =>
            setTimeout(() => {
              loaded = true;
              resolve();
            }, 20),
          ),
        );
        expect(loaded).toBe(true);
        expect(early).toEqual(planned);
        const verdict = (id: string) => (early.find((o) => o.pack.id === id) as Extract<PackOutcome, { verdict: unknown }>).verdict;
        const v = verdict(victim.id);
        expect(v.header.ok && v.header.mismatches.length).toBe(3);
        expect(v.bad.map((x) => [x.at, x.reason])).toEqual([[1, 'unreadable'], [2, 'unreadable'], [3, 'outside-pack']]);
        expect(verdict(where.pack).bad.map((x) => x.id)).toEqual([where.blob]);
      } finally {
        repo.close();
      }
    });
  }
});

describe('BlobVerifier', () => {
  it('decrypts a handed-over piece in place, except blobs that share bytes with another (a damaged index)', async () => {
    const repo = await open(fx.backend);
    const index = await loadIndexTolerant(repo, { populate: false });
    const verifier = new BlobVerifier(cryptoMaterial(repo).key);
    let changed = 0;
    for (const packId of index.packs.keys()) {
      const blobs = [...index.blobsOf(packId)].sort((a, b) => a.offset - b.offset);
      const bytes = await fx.backend.load({ type: 'data', name: packId });
      const piece = (list: IndexBlobEntry[]): PackPiece & { bytes: Uint8Array } => ({ packId, start: 0, bytes: bytes.slice(), blobs: list.map((entry, at) => ({ entry, at })) });
      // Each blob listed twice, and the first also as part of a longer, bogus entry that contains the others.
      const first = blobs[0]!;
      const last = blobs[blobs.length - 1]!;
      const bogus: IndexBlobEntry = { ...first, length: last.offset + last.length - first.offset };
      const doubled = piece([bogus, ...blobs.flatMap((b) => [b, b])]);
      // (In a pack of one blob the "bogus" entry is that blob's own, and right.)
      expect(verifier.verify(doubled, true).map((b) => b.at)).toEqual(blobs.length > 1 ? [0] : []);
      const plain = piece(blobs);
      expect(verifier.verify(plain, true)).toEqual([]);
      if (!Buffer.from(plain.bytes).equals(Buffer.from(bytes))) changed++;
      // Not handed over: the bytes stay as they were.
      const kept = piece(blobs);
      expect(verifier.verify(kept)).toEqual([]);
      expect(Buffer.from(kept.bytes).equals(Buffer.from(bytes))).toBe(true);
    }
    // The fixture's larger blobs (above the 64 KiB decrypted in one go) are decrypted in place.
    expect(changed).toBeGreaterThan(0);
    verifier.close();
    repo.close();
  });
});
