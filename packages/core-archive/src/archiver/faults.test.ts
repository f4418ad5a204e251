import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../backend/backend.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { BackupError, backup, isBackupError, Repository, restore } from '../index.ts';
import type { BackupEvent, Id } from '../index.ts';
import { FaultyBackend } from '../testing/faulty.ts';
import type { FaultRule } from '../testing/faulty.ts';
import { initRepo, namesOf, PASSWORD, pseudoRandomBytes, rejection, tempDir, writeTree } from '../test-support/repo.ts';
import { compareTrees } from '../test-support/tree.ts';

const unavailable = (): BackupError => new BackupError('UNAVAILABLE', 'injected: the service is unavailable');

/** A tree of `files` pseudo-random files (distinct content per seed), a few hundred KiB each: many chunks and packs. */
function makeSource(dir: string, seed: number, files = 6): void {
  const spec: Record<string, Uint8Array> = {};
  for (let i = 0; i < files; i++) spec[`d${i % 2}/f${i}.bin`] = pseudoRandomBytes(150 * 1024 + i * 37_000, seed * 1000 + i);
  writeTree(dir, spec);
}

/**
 * The repository as a fresh reader sees it: every snapshot loads, every index entry names a pack that exists with at
 * least the bytes the index claims, and every blob a snapshot's trees reference is indexed.
 */
async function checkConsistent(inner: MemoryBackend): Promise<{ snapshots: Id[] }> {
  const repo = await Repository.open(inner, PASSWORD);
  await repo.loadIndex();
  const packs = new Set(await namesOf(inner, 'data'));
  for (const packId of repo.index.packIds()) {
    expect(packs.has(packId), `index names pack ${packId.slice(0, 12)}, which does not exist`).toBe(true);
  }
  const snapshots = await repo.listSnapshots();
  for (const { snapshot } of snapshots) {
    const stack = [snapshot.tree];
    while (stack.length > 0) {
      const tree = await repo.loadTree(stack.pop()!);
      for (const n of tree.nodes) {
        if (n.subtree) stack.push(n.subtree);
        for (const id of n.content ?? []) expect(repo.index.has(id), `blob ${id.slice(0, 12)} of ${n.name} is not indexed`).toBe(true);
      }
    }
  }
  for (const packId of repo.index.packIds()) {
    const { size } = await inner.stat({ type: 'data', name: packId });
    expect(size).toBeGreaterThan(0);
  }
  return { snapshots: snapshots.map((s) => s.id) };
}

/** Restores `snapshotId` through a fresh reader and compares every source path with what came back. */
async function restoresIdentically(inner: MemoryBackend, snapshotId: Id, sources: string[], target: string): Promise<void> {
  const repo = await Repository.open(inner, PASSWORD);
  const r = await restore(repo, snapshotId, { target, workers: 1 });
  expect(r.problems).toEqual([]);
  expect(r.mismatches).toEqual([]);
  for (const source of sources) expect(compareTrees(source, path.join(target, source))).toEqual([]);
  fs.rmSync(target, { recursive: true, force: true });
}

describe('backend faults during backup', () => {
  const tmp = tempDir('faults');
  let stable = '';
  beforeAll(() => {
    stable = path.join(tmp.dir, 'stable');
    makeSource(stable, 1);
  });
  afterAll(() => tmp.cleanup());

  const scenarios: { name: string; rules: FaultRule[] }[] = [
    { name: 'random data-pack saves fail (seed 1)', rules: [{ operation: 'save', type: 'data', probability: 0.4, error: unavailable }] },
    { name: 'random data-pack saves fail (seed 2)', rules: [{ operation: 'save', type: 'data', probability: 0.3, error: unavailable }] },
    { name: 'data-pack saves land but report failure (unknown outcome)', rules: [{ operation: 'save', type: 'data', probability: 0.4, applyFirst: true, error: unavailable }] },
    { name: 'the third data-pack save fails, and so does every index save', rules: [{ operation: 'save', type: 'data', nth: 3, error: unavailable }, { operation: 'save', type: 'index', error: unavailable }] },
    { name: 'index saves land but report failure', rules: [{ operation: 'save', type: 'index', applyFirst: true, error: unavailable }] },
    { name: 'the snapshot save fails', rules: [{ operation: 'save', type: 'snapshots', error: unavailable }] },
  ];

  it.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s: the backup fails cleanly and the next one succeeds', async (_name, scenario, i) => {
    const inner = new MemoryBackend();
    const faulty = new FaultyBackend(inner, { seed: i + 1 });
    const repo = await initRepo(faulty);
    const first = await backup(repo, { paths: [stable], workers: 1 });

    const fresh = path.join(tmp.dir, `fresh-${i}`);
    makeSource(fresh, 100 + i);
    for (const rule of scenario.rules) faulty.addRule(rule);
    const e = await rejection(backup(repo, { paths: [stable, fresh], workers: 1 }), 'UNAVAILABLE');
    expect(e.message).toContain('injected');
    expect(faulty.firedCounts.some((n) => n > 0)).toBe(true);
    // no snapshot, nothing dangling in the index
    faulty.clearRules();
    expect((await checkConsistent(inner)).snapshots).toEqual([first.snapshotId]);
    // the earlier snapshot still restores exactly
    await restoresIdentically(inner, first.snapshotId, [stable], path.join(tmp.dir, `restore-first-${i}`));

    // the same session (same in-memory index) backs up again without faults; a fresh reader restores it
    const again = await backup(repo, { paths: [stable, fresh], workers: 1 });
    expect(again.warnings).toEqual([]);
    const { snapshots } = await checkConsistent(inner);
    expect(snapshots).toContain(again.snapshotId);
    await restoresIdentically(inner, again.snapshotId, [stable, fresh], path.join(tmp.dir, `restore-again-${i}`));
  }, 60_000);

  it('a failing save of the tree pack fails the backup the same way', async () => {
    const inner = new MemoryBackend();
    const faulty = new FaultyBackend(inner, { seed: 9 });
    const repo = await initRepo(faulty);
    const fresh = path.join(tmp.dir, 'tree-fault');
    writeTree(fresh, { 'a.txt': 'tiny' });
    // One small file: the data pack is uploaded first, then the tree pack (PackSaver.finish order).
    faulty.addRule({ operation: 'save', type: 'data', nth: 2, error: unavailable });
    await rejection(backup(repo, { paths: [fresh], workers: 1 }), 'UNAVAILABLE');
    expect(faulty.calls.filter((c) => c.operation === 'save' && c.type === 'data').map((c) => c.injected)).toEqual([undefined, 'UNAVAILABLE']);
    faulty.clearRules();
    expect((await checkConsistent(inner)).snapshots).toEqual([]);
    const ok = await backup(repo, { paths: [fresh], workers: 1 });
    await restoresIdentically(inner, ok.snapshotId, [fresh], path.join(tmp.dir, 'tree-fault-restore'));
  });
});

/** A backend that calls `hook` once, right after the first data pack is stored. */
function afterFirstDataSave(inner: Backend, hook: () => void): Backend {
  let fired = false;
  return {
    location: inner.location,
    async save(h, data) {
      await inner.save(h, data);
      if (h.type === 'data' && !fired) {
        fired = true;
        hook();
      }
    },
    load: (h, offset, length) => inner.load(h, offset, length),
    stat: (h) => inner.stat(h),
    list: (type) => inner.list(type),
    remove: (h) => inner.remove(h),
    close: () => inner.close(),
  };
}

describe('interruption', () => {
  const tmp = tempDir('interrupt');
  afterAll(() => tmp.cleanup());

  it('an AbortSignal during the walk gives INTERRUPTED, no snapshot, a consistent repository, and a working next backup', async () => {
    const src = path.join(tmp.dir, 'many');
    const spec: Record<string, Uint8Array> = {};
    for (let i = 0; i < 400; i++) spec[`dir${i % 20}/file${i}.bin`] = pseudoRandomBytes(8 * 1024, i + 1);
    writeTree(src, spec);
    const inner = new MemoryBackend();
    const repo = await initRepo(inner);
    const controller = new AbortController();
    const onEvent = (e: BackupEvent): void => {
      if (e.type === 'progress') controller.abort();
    };
    const e = await rejection(backup(repo, { paths: [src], signal: controller.signal, onEvent }), 'INTERRUPTED');
    expect(controller.signal.aborted).toBe(true);
    expect(e.message).toMatch(/no snapshot was written/);
    expect(await namesOf(inner, 'snapshots')).toEqual([]);
    await checkConsistent(inner);

    const ok = await backup(repo, { paths: [src], workers: 1 });
    expect(ok.partial).toBe(false);
    await restoresIdentically(inner, ok.snapshotId, [src], path.join(tmp.dir, 'restored-many'));
  }, 60_000);

  it('an AbortSignal while a large file is being read stops the backup at once, not after the whole file', async () => {
    const src = path.join(tmp.dir, 'large');
    fs.mkdirSync(src);
    const size = 40 * 1024 * 1024;
    fs.writeFileSync(path.join(src, 'large.bin'), randomBytes(size));
    const inner = new MemoryBackend();
    const controller = new AbortController();
    const repo = await initRepo(afterFirstDataSave(inner, () => controller.abort()));
    const e = await rejection(backup(repo, { paths: [src], signal: controller.signal, workers: 1 }), 'INTERRUPTED');
    expect(e.message).toMatch(/no snapshot was written/);
    expect(await namesOf(inner, 'snapshots')).toEqual([]);
    // The whole file would make ~160 packs of 256 KiB; stopping at once leaves the few that were in flight.
    const packs = (await namesOf(inner, 'data')).length;
    expect(packs).toBeGreaterThanOrEqual(1);
    expect(packs).toBeLessThan(40);
    await checkConsistent(inner);
    // what did land is indexed, so the next backup reuses it
    const again = await backup(await Repository.open(inner, PASSWORD), { paths: [src], workers: 1 });
    expect(again.snapshot.summary.dataAdded).toBeLessThan(size);
    await restoresIdentically(inner, again.snapshotId, [src], path.join(tmp.dir, 'restored-large'));
  }, 60_000);

  it('an already aborted signal writes nothing at all', async () => {
    const src = path.join(tmp.dir, 'pre');
    writeTree(src, { 'a.txt': 'a' });
    const inner = new MemoryBackend();
    const repo = await initRepo(inner);
    const before = [...(await namesOf(inner, 'data')), ...(await namesOf(inner, 'index'))];
    const e = await backup(repo, { paths: [src], signal: AbortSignal.abort() }).catch((x: unknown) => x);
    expect(isBackupError(e, 'INTERRUPTED')).toBe(true);
    expect([...(await namesOf(inner, 'data')), ...(await namesOf(inner, 'index'))]).toEqual(before);
    expect(await namesOf(inner, 'snapshots')).toEqual([]);
  });
});
