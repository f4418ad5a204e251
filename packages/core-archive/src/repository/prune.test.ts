import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, FileInfo, FileType, Handle } from '../backend/backend.ts';
import { LocalBackend } from '../backend/local.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { BackupError } from '../errors.ts';
import type { Id, IndexDocument } from '../format.ts';
import { backup, Repository, restore } from '../index.ts';
import { parseIndexDocument } from '../index/index-file.ts';
import { initRepo, listAll, namesOf, PASSWORD, pseudoRandomBytes, rejection, tempDir, writeTree } from '../test-support/repo.ts';
import { assertDeletable, executePrune, planPrune } from './prune.ts';
import { BlobStateMap } from './prune-blob-set.ts';

const DAY = 24 * 60 * 60 * 1000;
const T0 = Date.parse('2026-10-01T12:00:00Z');

/** path (absolute, as in the snapshot) → sha256 of its content */
type Manifest = Map<string, string>;

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Writes generation `g` of a changing source tree: a third of the files change, one goes, one comes. */
function writeGeneration(dir: string, g: number): void {
  fs.rmSync(dir, { recursive: true, force: true });
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 10; i++) {
    if (i === g % 10) continue;
    const version = (i + g) % 3 === 0 ? g : 0;
    files[`d${i % 3}/f${i}.bin`] = pseudoRandomBytes(20_000 + i * 17_000, 1000 * i + version + 1);
  }
  files[`new/g${g}.bin`] = pseudoRandomBytes(90_000, 77_777 + g);
  files['same.txt'] = new TextEncoder().encode('unchanged in every generation\n'.repeat(50));
  writeTree(dir, files);
}

function manifestOf(dir: string): Manifest {
  const out: Manifest = new Map();
  const visit = (p: string): void => {
    for (const name of fs.readdirSync(p)) {
      const full = path.join(p, name);
      if (fs.statSync(full).isDirectory()) visit(full);
      else out.set(full, sha(fs.readFileSync(full)));
    }
  };
  visit(dir);
  return out;
}

/**
 * Reads every file of a snapshot through the index (trees walked, every data blob loaded and decrypted) and returns
 * path → sha256 of the content read; throws if a recorded SHA-256 does not match what the repository returns.
 */
async function readSnapshot(repo: Repository, id: Id): Promise<Manifest> {
  const out: Manifest = new Map();
  const snap = await repo.loadSnapshot(id);
  const visit = async (treeId: Id, prefix: string): Promise<void> => {
    const tree = await repo.loadTree(treeId);
    for (const n of tree.nodes) {
      const p = `${prefix}/${n.name}`;
      if (n.type === 'dir') await visit(n.subtree!, p);
      else if (n.type === 'file') {
        const h = createHash('sha256');
        for (const c of n.content!) h.update(await repo.loadBlob('data', c));
        const got = h.digest('hex');
        if (got !== n.sha256) throw new Error(`${p} in ${id.slice(0, 8)} reads back wrong`);
        out.set(p, got);
      }
    }
  };
  await visit(snap.tree, '');
  return out;
}

async function cloneBackend(from: Backend): Promise<MemoryBackend> {
  const to = new MemoryBackend();
  for (const type of ['config', 'keys', 'snapshots', 'index', 'data'] as const) {
    for await (const f of from.list(type)) {
      const h = { type, name: f.name };
      await to.save(h, await from.load(h));
    }
  }
  return to;
}

async function repoBytes(backend: Backend): Promise<number> {
  let n = 0;
  for (const [name, size] of await listAll(backend)) if (!name.startsWith('locks/')) n += size;
  return n;
}

/** A backend that "dies" after `budget` mutating calls: that call and every later save or remove fail. */
class CrashingBackend implements Backend {
  readonly location = 'memory:crashing';
  readonly inner: Backend;
  budget: number;
  mutations = 0;
  crashed = false;

  constructor(inner: Backend, budget: number) {
    this.inner = inner;
    this.budget = budget;
  }

  private mutate(): void {
    if (this.crashed || this.mutations >= this.budget) {
      this.crashed = true;
      throw new BackupError('UNAVAILABLE', 'simulated crash');
    }
    this.mutations++;
  }

  async save(h: Handle, data: Uint8Array): Promise<void> {
    this.mutate();
    await this.inner.save(h, data);
  }

  load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    return this.inner.load(h, offset, length);
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.inner.stat(h);
  }

  list(type: FileType): AsyncIterable<FileInfo> {
    return this.inner.list(type);
  }

  async remove(h: Handle): Promise<void> {
    this.mutate();
    await this.inner.remove(h);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Fixture {
  backend: MemoryBackend;
  /** snapshot id → manifest of the source when it was backed up, oldest first */
  snapshots: [Id, Manifest][];
}

/** Six snapshots of a changing tree, a day apart. */
async function makeFixture(src: string): Promise<Fixture> {
  const backend = new MemoryBackend();
  const repo = await initRepo(backend);
  const snapshots: [Id, Manifest][] = [];
  for (let g = 0; g < 6; g++) {
    writeGeneration(src, g);
    const r = await backup(repo, { paths: [src], time: new Date(T0 + g * DAY), workers: 2 });
    snapshots.push([r.snapshotId, manifestOf(src)]);
  }
  repo.close();
  return { backend, snapshots };
}

async function forgetSnapshots(backend: Backend, ids: Id[]): Promise<void> {
  for (const id of ids) await backend.remove({ type: 'snapshots', name: id });
}

async function expectSnapshotsIntact(backend: Backend, expected: [Id, Manifest][]): Promise<void> {
  const repo = await Repository.open(backend, PASSWORD);
  try {
    await repo.loadIndex();
    expect(await namesOf(backend, 'snapshots')).toEqual(expected.map(([id]) => id).sort());
    for (const [id, manifest] of expected) expect(await readSnapshot(repo, id)).toEqual(manifest);
  } finally {
    repo.close();
  }
}

describe('BlobStateMap', () => {
  it('adds, finds and updates ids across growth', () => {
    const m = new BlobStateMap();
    const ids = Array.from({ length: 5000 }, (_, i) => sha(new TextEncoder().encode(String(i))));
    for (const id of ids) expect(m.add(id, 1)).toBe(true);
    for (const id of ids) expect(m.add(id, 2)).toBe(false);
    expect(m.size).toBe(5000);
    for (let i = 0; i < ids.length; i += 2) m.set(ids[i]!, 3);
    expect(m.countState(3)).toBe(2500);
    expect(m.get(ids[1]!)).toBe(1);
    expect(m.get('0'.repeat(64))).toBe(-1);
    expect(m.set('0'.repeat(64), 1)).toBe(false);
    expect(new Set(m.idsWithState(1))).toEqual(new Set(ids.filter((_, i) => i % 2 === 1)));
    expect(() => m.add('nope', 1)).toThrow(BackupError);
  });
});

describe('prune on a memory repository', () => {
  const tmp = tempDir('prune');
  let fixture: Fixture;

  beforeAll(async () => {
    fixture = await makeFixture(path.join(tmp.dir, 'src'));
  }, 120_000);
  afterAll(() => tmp.cleanup());

  it('finds nothing to do while every snapshot is kept', async () => {
    const backend = await cloneBackend(fixture.backend);
    const repo = await Repository.open(backend, PASSWORD);
    const plan = await planPrune(repo);
    expect(plan.empty).toBe(true);
    expect(plan.remove).toEqual([]);
    expect(plan.repack).toEqual([]);
    expect(plan.stats.snapshots).toBe(6);
    expect(plan.stats.usedBlobs).toBeGreaterThan(10);
    const before = await listAll(backend);
    const result = await executePrune(repo, plan);
    expect(result.bytesFreed).toBe(0);
    expect(await listAll(backend)).toEqual(before);
    repo.close();
  });

  it('after forgetting snapshots, frees their data, repacks, and every kept snapshot reads back identically', async () => {
    const backend = await cloneBackend(fixture.backend);
    await forgetSnapshots(backend, fixture.snapshots.slice(0, 3).map(([id]) => id));
    const kept = fixture.snapshots.slice(3);
    const repo = await Repository.open(backend, PASSWORD);
    const plan = await planPrune(repo, { maxUnused: 0 });
    expect(plan.empty).toBe(false);
    expect(plan.stats.snapshots).toBe(3);
    expect(plan.remove.length + plan.repack.length).toBeGreaterThan(0);
    expect(plan.repack.length).toBeGreaterThan(0);
    const sizeBefore = await repoBytes(backend);
    const oldIndex = await namesOf(backend, 'index');
    const result = await executePrune(repo, plan);
    const sizeAfter = await repoBytes(backend);
    expect(result.bytesFreed).toBe(sizeBefore - sizeAfter);
    expect(result.bytesFreed).toBeGreaterThan(0);
    // the estimate leaves index files out and guesses the repacked size: close, not exact
    expect(Math.abs(plan.estimatedBytesFreed - result.bytesFreed)).toBeLessThan(0.1 * result.bytesFreed + 20_000);
    expect(result.packsRepacked).toBe(plan.repack.length);
    expect(result.packsDeleted).toBe(plan.remove.length + plan.repack.length + plan.unreferenced.length);
    // no old index file survives, and no pack outside the index remains
    const newIndex = await namesOf(backend, 'index');
    expect(newIndex.some((id) => oldIndex.includes(id))).toBe(false);
    expect(repo.index.packCount).toBe((await namesOf(backend, 'data')).length);
    // the same Repository object reads correctly afterwards (its index was reloaded)
    for (const [id, manifest] of kept) expect(await readSnapshot(repo, id)).toEqual(manifest);
    repo.close();
    await expectSnapshotsIntact(backend, kept);
    // and a real restore through the worker pool gives the same bytes
    const reopened = await Repository.open(backend, PASSWORD);
    const [lastId, lastManifest] = kept.at(-1)!;
    const target = path.join(tmp.dir, 'restore-after-prune');
    const r = await restore(reopened, lastId, { target });
    expect(r.mismatches).toEqual([]);
    expect(r.problems).toEqual([]);
    const restored = manifestOf(path.join(target, path.join(tmp.dir, 'src')));
    expect(new Map([...restored].map(([p, h]) => [p.slice(target.length), h]))).toEqual(lastManifest);

    // idempotent: a second prune finds nothing, and running it changes nothing
    const again = await planPrune(reopened, { maxUnused: 0 });
    expect(again.empty).toBe(true);
    const files = await listAll(backend);
    const second = await executePrune(reopened, again);
    expect(second.bytesFreed).toBe(0);
    expect(await listAll(backend)).toEqual(files);
    reopened.close();
  });

  it('with 100% allowed unused, only deletes packs that are wholly unused; with 0% nothing unused remains', async () => {
    const lax = await cloneBackend(fixture.backend);
    await forgetSnapshots(lax, fixture.snapshots.slice(0, 4).map(([id]) => id));
    const repoLax = await Repository.open(lax, PASSWORD);
    const planLax = await planPrune(repoLax, { maxUnused: 1 });
    expect(planLax.repack).toEqual([]);
    expect(planLax.stats.unusedBytesAfter).toBeGreaterThan(0);
    await executePrune(repoLax, planLax);
    await expectSnapshotsIntact(lax, fixture.snapshots.slice(4));
    // stricter afterwards: the partly used packs are repacked now
    const strict = await planPrune(repoLax, { maxUnused: 0 });
    expect(strict.repack.length).toBeGreaterThan(0);
    expect(strict.remove).toEqual([]);
    await executePrune(repoLax, strict);
    const final = await planPrune(repoLax, { maxUnused: 0 });
    expect(final.empty).toBe(true);
    expect(final.stats.unusedBytesAfter).toBe(0);
    await expectSnapshotsIntact(lax, fixture.snapshots.slice(4));
    repoLax.close();
  });

  it('writes one index that supersedes every old index file, and finishes a prune that stopped after it', async () => {
    const backend = await cloneBackend(fixture.backend);
    await forgetSnapshots(backend, fixture.snapshots.slice(0, 2).map(([id]) => id));
    const oldIndex = await namesOf(backend, 'index');
    expect(oldIndex.length).toBeGreaterThan(1);
    // Index files may be deleted only once the new index is complete: make the first such delete fail.
    const crashing = new CrashingBackend(backend, Number.POSITIVE_INFINITY);
    const origRemove = crashing.remove.bind(crashing);
    crashing.remove = async (h: Handle): Promise<void> => {
      if (h.type === 'index') throw new BackupError('UNAVAILABLE', 'simulated crash before deleting old index files');
      return origRemove(h);
    };
    const repo = await Repository.open(crashing, PASSWORD);
    const plan = await planPrune(repo, { maxUnused: 0 });
    expect(plan.rewriteIndex).toBe(true);
    await rejection(executePrune(repo, plan), 'UNAVAILABLE');
    repo.close();

    const all = await namesOf(backend, 'index');
    const fresh = all.filter((id) => !oldIndex.includes(id));
    expect(fresh.length).toBeGreaterThan(0);
    const docs = new Map<Id, IndexDocument>();
    const reader = await Repository.open(backend, PASSWORD);
    for (const id of fresh) docs.set(id, parseIndexDocument(await reader.loadDocument('index', id), id));
    const superseding = [...docs.values()].filter((d) => d.supersedes.length > 0);
    expect(superseding).toHaveLength(1);
    // it supersedes every index file there was before, plus the one listing the repacked packs
    expect(oldIndex.every((id) => superseding[0]!.supersedes.includes(id))).toBe(true);
    await reader.loadIndex();
    expect(reader.indexFiles.sort()).toEqual(fresh.filter((id) => docs.get(id)!.supersedes.length > 0 || !superseding[0]!.supersedes.includes(id)).sort());
    reader.close();
    await expectSnapshotsIntact(backend, fixture.snapshots.slice(2));

    // A later prune sees the superseded leftovers and removes them.
    const repo2 = await Repository.open(backend, PASSWORD);
    const plan2 = await planPrune(repo2, { maxUnused: 0 });
    expect(plan2.empty).toBe(false);
    expect(plan2.rewriteIndex).toBe(true);
    await executePrune(repo2, plan2);
    const left = await namesOf(backend, 'index');
    expect(left.some((id) => oldIndex.includes(id))).toBe(false);
    expect((await planPrune(repo2, { maxUnused: 0 })).empty).toBe(true);
    repo2.close();
    await expectSnapshotsIntact(backend, fixture.snapshots.slice(2));
  });

  it('survives a crash at every single write or delete, and the next prune finishes the job', async () => {
    // How many mutations a complete run makes.
    const probe = await cloneBackend(fixture.backend);
    await forgetSnapshots(probe, fixture.snapshots.slice(0, 3).map(([id]) => id));
    const counting = new CrashingBackend(probe, Number.POSITIVE_INFINITY);
    const probeRepo = await Repository.open(counting, PASSWORD);
    await executePrune(probeRepo, await planPrune(probeRepo, { maxUnused: 0 }));
    probeRepo.close();
    const total = counting.mutations;
    expect(total).toBeGreaterThan(5);

    const kept = fixture.snapshots.slice(3);
    const finalSizes: number[] = [];
    for (let budget = 0; budget < total; budget++) {
      const backend = await cloneBackend(fixture.backend);
      await forgetSnapshots(backend, fixture.snapshots.slice(0, 3).map(([id]) => id));
      const crashing = new CrashingBackend(backend, budget);
      const repo = await Repository.open(crashing, PASSWORD);
      const plan = await planPrune(repo, { maxUnused: 0 });
      await expect(executePrune(repo, plan)).rejects.toThrow('simulated crash');
      repo.close();
      await expectSnapshotsIntact(backend, kept);
      const later = await Repository.open(backend, PASSWORD);
      await executePrune(later, await planPrune(later, { maxUnused: 0 }));
      expect((await planPrune(later, { maxUnused: 0 })).empty).toBe(true);
      later.close();
      await expectSnapshotsIntact(backend, kept);
      finalSizes.push(await repoBytes(backend));
    }
    // Whatever the crash point, the repository ends up no bigger than a little above a clean prune's result.
    const clean = await repoBytes(probe);
    for (const s of finalSizes) expect(s).toBeLessThanOrEqual(clean * 1.05 + 4096);
  }, 120_000);

  it('plans without the snapshots it is told to ignore (forget --prune) and changes nothing while planning', async () => {
    const backend = await cloneBackend(fixture.backend);
    const before = await listAll(backend);
    const repo = await Repository.open(backend, PASSWORD);
    const ignore = new Set(fixture.snapshots.slice(0, 3).map(([id]) => id));
    const plan = await planPrune(repo, { ignoreSnapshots: ignore });
    expect(plan.stats.snapshots).toBe(3);
    expect(plan.empty).toBe(false);
    expect(await listAll(backend)).toEqual(before);
    // Executing it while the ignored snapshots still exist is refused only if new ones appeared; these are known.
    await forgetSnapshots(backend, [...ignore]);
    await executePrune(repo, plan);
    repo.close();
    await expectSnapshotsIntact(backend, fixture.snapshots.slice(3));
  });

  it('refuses to run when a snapshot or index file appeared after planning', async () => {
    const backend = await cloneBackend(fixture.backend);
    await forgetSnapshots(backend, [fixture.snapshots[0]![0]]);
    const repo = await Repository.open(backend, PASSWORD);
    const plan = await planPrune(repo);
    const snap = await repo.loadSnapshot(fixture.snapshots[1]![0]);
    await repo.saveSnapshot({ ...snap, tags: ['late'] });
    const before = await listAll(backend);
    await rejection(executePrune(repo, plan), 'LOCKED');
    expect(await listAll(backend)).toEqual(before);
    repo.close();
  });

  it('refuses, changing nothing, when snapshots reference data that is missing', async () => {
    const backend = await cloneBackend(fixture.backend);
    await forgetSnapshots(backend, [fixture.snapshots[0]![0]]);
    const repo = await Repository.open(backend, PASSWORD);
    await repo.loadIndex();
    // Delete a pack that holds data of the newest snapshot.
    const snap = await repo.loadSnapshot(fixture.snapshots[5]![0]);
    const rootTree = await repo.loadTree(snap.tree);
    let dataBlob: Id | undefined;
    const find = async (treeId: Id): Promise<void> => {
      for (const n of (await repo.loadTree(treeId)).nodes) {
        if (dataBlob) return;
        if (n.type === 'file' && n.content!.length > 0) dataBlob = n.content![0];
        else if (n.type === 'dir') await find(n.subtree!);
      }
    };
    expect(rootTree.nodes.length).toBeGreaterThan(0);
    await find(snap.tree);
    const packId = repo.index.lookup(dataBlob!)!.packId;
    await backend.remove({ type: 'data', name: packId });
    const before = await listAll(backend);
    const e = await rejection(planPrune(repo), 'CORRUPT');
    expect(e.message).toMatch(/refuses to delete anything/);
    expect(await listAll(backend)).toEqual(before);
    repo.close();
  });

  it('deletes pack files no index lists (left by an interrupted backup)', async () => {
    const backend = await cloneBackend(fixture.backend);
    const repo = await Repository.open(backend, PASSWORD);
    const orphan = sha(new TextEncoder().encode('orphan'));
    await backend.save({ type: 'data', name: orphan }, pseudoRandomBytes(5000, 3));
    const plan = await planPrune(repo);
    expect(plan.unreferenced).toEqual([{ id: orphan, size: 5000 }]);
    expect(plan.rewriteIndex).toBe(false);
    const r = await executePrune(repo, plan);
    expect(r.bytesFreed).toBe(5000);
    expect((await namesOf(backend, 'data')).includes(orphan)).toBe(false);
    expect((await planPrune(repo)).empty).toBe(true);
    repo.close();
  });
});

describe('prune on a local repository', () => {
  const tmp = tempDir('prune-local');
  afterAll(() => tmp.cleanup());

  it('prunes, keeps the kept snapshots restorable, and refuses on an append-only repository', async () => {
    const src = path.join(tmp.dir, 'src');
    const backend = await LocalBackend.create(path.join(tmp.dir, 'repo'));
    const repo = await initRepo(backend);
    const snaps: [Id, Manifest][] = [];
    for (let g = 0; g < 3; g++) {
      writeGeneration(src, g);
      snaps.push([(await backup(repo, { paths: [src], time: new Date(T0 + g * DAY), workers: 2 })).snapshotId, manifestOf(src)]);
    }
    await backend.remove({ type: 'snapshots', name: snaps[0]![0] });
    const before = await repoBytes(backend);
    const result = await executePrune(repo, await planPrune(repo));
    expect(result.bytesFreed).toBe(before - (await repoBytes(backend)));
    expect(result.bytesFreed).toBeGreaterThan(0);
    repo.close();
    await expectSnapshotsIntact(backend, snaps.slice(1));

    const aoBackend = await LocalBackend.create(path.join(tmp.dir, 'ao'));
    const ao = await initRepo(aoBackend, { appendOnly: true });
    writeGeneration(src, 0);
    await backup(ao, { paths: [src], workers: 2 });
    const e = await rejection(Promise.resolve().then(() => assertDeletable(ao, 'prune')), 'APPEND_ONLY');
    expect(e.message).toMatch(/ransomware/);
    const plan = await planPrune(ao);
    await rejection(executePrune(ao, plan), 'APPEND_ONLY');
    ao.close();
  });
});
