import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyRepository } from './check.ts';
import { describeRepairIndex, repairIndex } from './repair-index.ts';
import { repairSnapshots } from './repair-snapshots.ts';
import { testRecovery } from './recovery.ts';
import { FILES, cloneBackend, firstBlobOf, flipByte, makeFixture, nodeOf, open, tempDir } from './test-support.ts';
import type { Fixture } from './test-support.ts';
import type { Backend } from '@backup-manager/core-archive';

let fx: Fixture;
const tmp = tempDir('repair-tests');
beforeAll(async () => {
  fx = await makeFixture('repair');
}, 60_000);
afterAll(() => {
  fx.cleanup();
  tmp.cleanup();
});
const abs = (rel: string): string => path.join(fx.src, rel);

async function names(b: Backend, type: 'index' | 'snapshots' | 'locks'): Promise<string[]> {
  const out: string[] = [];
  for await (const f of b.list(type)) out.push(f.name);
  return out.sort();
}

async function healthy(b: Backend, readData = false): Promise<boolean> {
  const repo = await open(b);
  const s = await verifyRepository(repo, { workers: 0, ...(readData ? { readData: { kind: 'all' } } : {}) });
  repo.close();
  return s.healthy;
}

describe('repair index', () => {
  it('rebuilds a damaged index from the pack headers: new files first, old ones removed, nothing else touched', async () => {
    const b = await cloneBackend(fx.backend);
    const old = await names(b, 'index');
    await flipByte(b, { type: 'index', name: old[0]! }, 30);
    expect(await healthy(b)).toBe(false);

    const dry = await repairIndex(await open(b), { dryRun: true });
    expect(dry.newIndexFiles).toEqual([]);
    expect(await names(b, 'index')).toEqual(old);
    expect(describeRepairIndex(dry).join('\n')).toMatch(/would write new index/);

    const repo = await open(b);
    const r = await repairIndex(repo);
    repo.close();
    expect(r.packs).toBe(dry.packs);
    expect(r.unreadablePacks).toEqual([]);
    expect(r.addedPacks.length).toBeGreaterThan(0);
    expect(r.oldIndexFiles).toEqual(old);
    expect(await names(b, 'index')).toEqual([...r.newIndexFiles].sort());
    expect(await names(b, 'locks')).toEqual([]);
    expect(await healthy(b, true)).toBe(true);
  });
});

describe('repair snapshots', () => {
  it('writes repaired snapshots without the files whose data is lost, keeping the originals', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[0]!, abs(FILES.deep));
    repo.close();
    await b.remove({ type: 'data', name: where.pack });
    await repairIndex(await open(b));

    const plan = await repairSnapshots(await open(b), { dryRun: true });
    expect(plan.snapshots.map((s) => s.status)).toEqual(['repaired', 'repaired']);
    expect(await names(b, 'snapshots')).toEqual([...fx.snapshots].sort());
    const lost = plan.snapshots[0]!.removed.map((r) => r.path);
    expect(lost).toContain(abs(FILES.deep));

    const r = await repairSnapshots(await open(b));
    expect(r.snapshots.map((s) => s.newTree)).toEqual(plan.snapshots.map((s) => s.newTree));
    const after = await names(b, 'snapshots');
    expect(after).toHaveLength(4);
    const check = await open(b);
    for (const s of r.snapshots) {
      const doc = await check.loadSnapshot(s.newSnapshot!);
      expect(doc.repaired).toBe(true);
      expect(doc.original).toBe(s.snapshot);
      expect(doc.time).toBe(s.time);
    }
    check.close();
    // The originals still reference the lost data; without them, the repository is healthy and restorable.
    for (const id of fx.snapshots) await b.remove({ type: 'snapshots', name: id });
    expect(await healthy(b, true)).toBe(true);
    const rec = await open(b);
    const report = await testRecovery(rec, r.snapshots[1]!.newSnapshot!, { tempRoot: tmp.dir, workers: 0 });
    rec.close();
    expect(report.ok).toBe(true);
    expect(report.expected.files).toBe(7 - plan.snapshots[1]!.removed.filter((x) => x.kind === 'file').length);
  });

  it('leaves out files with blobs a data check found damaged', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[1]!, abs(FILES.big));
    repo.close();
    await flipByte(b, { type: 'data', name: where.pack }, where.offset + 5);
    const damaged = new Set([where.blob]);
    const r = await repairSnapshots(await open(b), { damagedBlobs: damaged, dryRun: true });
    const removed = r.snapshots[1]!.removed;
    expect(removed.map((x) => x.path)).toEqual([abs(FILES.big)]);
    expect(removed[0]!.reason).toMatch(/damaged/);
  });

  it('leaves out a directory whose listing is lost, with everything below it', async () => {
    const repo = await open(fx.backend);
    const summer = await nodeOf(repo, fx.snapshots[1]!, abs('photos/2024'));
    repo.close();
    const r = await repairSnapshots(await open(fx.backend), { damagedBlobs: new Set([summer.subtree!]), dryRun: true });
    expect(r.snapshots[1]!.removed).toEqual([expect.objectContaining({ path: abs('photos/2024'), kind: 'dir' })]);
    expect(r.snapshots[1]!.status).toBe('repaired');
  });
});
