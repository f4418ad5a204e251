import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import { FaultyBackend } from '../testing/faulty.ts';
import { TEST_SCRYPT } from '../crypto/keys.ts';
import { BackupError, backup, dump, listLocks, lockRepository, LOCK_STALE_MS, removeLocks, Repository, restore } from '../index.ts';
import type { LockDocument } from '../index.ts';
import { flipByte, initRepo, listAll, looksHumanReadable, namesOf, PASSWORD, pseudoRandomBytes, rejection, tempDir, truncateFile, writeTree } from '../test-support/repo.ts';

describe('init and open', () => {
  it('opens what init created, with the same config and key', async () => {
    const backend = new MemoryBackend();
    const created = await initRepo(backend);
    const opened = await Repository.open(backend, PASSWORD);
    expect(opened.config).toEqual(created.config);
    expect(opened.keyId).toBe(created.keyId);
    expect(opened.config.chunker.minSize).toBe(16 * 1024);
    expect([...(await listAll(backend)).keys()].sort()).toEqual(['config/config', `keys/${created.keyId}`]);
  });

  it('refuses a second init with REPOSITORY_EXISTS and leaves the repository as it was', async () => {
    const backend = new MemoryBackend();
    await initRepo(backend);
    const before = await listAll(backend);
    const e = await rejection(initRepo(backend, {}, 'another password'), 'REPOSITORY_EXISTS');
    expect(e.message).toContain(backend.location);
    expect(await listAll(backend)).toEqual(before);
    await Repository.open(backend, PASSWORD);
  });

  it('reports REPOSITORY_NOT_FOUND for an empty location and writes nothing', async () => {
    const backend = new MemoryBackend({ label: 'empty' });
    const e = await rejection(Repository.open(backend, PASSWORD), 'REPOSITORY_NOT_FOUND');
    expect(e.message).toContain('memory:empty');
    expect((await listAll(backend)).size).toBe(0);
  });

  it('reports WRONG_PASSWORD without writing anything and without echoing the password', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    await repo.addKey('second password', TEST_SCRYPT);
    const dir = tempDir('repo-wrongpw');
    try {
      writeTree(dir.dir, { 'a.txt': 'hello' });
      await backup(repo, { paths: [dir.dir] });
    } finally {
      dir.cleanup();
    }
    const before = await listAll(backend);
    expect([...before.keys()].some((k) => k.startsWith('snapshots/'))).toBe(true);
    const e = await rejection(Repository.open(backend, 'not the password'), 'WRONG_PASSWORD');
    expect(e.message).not.toContain('not the password');
    expect(e.message).toContain('2 key(s)');
    expect(await listAll(backend)).toEqual(before);
  });

  it('opens with a good key when another key file is damaged, and names a damaged sole key', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    // a damaged key file whose name sorts first
    const junk = new TextEncoder().encode('{"version":1,"this is":"not a key"}');
    const junkName = '0'.repeat(64);
    await backend.save({ type: 'keys', name: junkName }, junk);
    expect((await Repository.open(backend, PASSWORD)).keyId).toBe(repo.keyId);
    const wrong = await rejection(Repository.open(backend, 'nope'), 'WRONG_PASSWORD');
    expect(wrong.message).toContain(`key ${junkName.slice(0, 12)}`);
    await backend.remove({ type: 'keys', name: repo.keyId });
    const e = await rejection(Repository.open(backend, PASSWORD), 'CORRUPT');
    expect(e.message).toContain(`key ${junkName.slice(0, 12)}`);
    expect(looksHumanReadable(e.message)).toBe(true);
  });

  it('opens after an init that failed before writing its config was run again with the same password', async () => {
    // The failed init leaves a key wrapping a master key that no config uses. Try until that orphan key sorts first
    // (names are random hashes, so about every second attempt), which is the order that used to break open.
    for (let attempt = 0; attempt < 40; attempt++) {
      const inner = new MemoryBackend();
      const faulty = new FaultyBackend(inner);
      faulty.addRule({ operation: 'save', type: 'config', nth: 1, error: new BackupError('UNAVAILABLE', 'injected') });
      await rejection(initRepo(faulty), 'UNAVAILABLE');
      const [orphan] = await namesOf(inner, 'keys');
      const repo = await initRepo(faulty);
      if (orphan! > repo.keyId) continue;
      const opened = await Repository.open(inner, PASSWORD);
      expect(opened.keyId).toBe(repo.keyId);
      expect(opened.config.id).toBe(repo.config.id);
      return;
    }
    throw new Error('the orphan key never sorted first');
  });

  it('a damaged config is CORRUPT, naming the config', async () => {
    const backend = new MemoryBackend();
    await initRepo(backend);
    await flipByte(backend, { type: 'config', name: 'config' }, 20);
    const e = await rejection(Repository.open(backend, PASSWORD), 'CORRUPT');
    expect(e.message).toMatch(/^config failed authentication/);
    expect(looksHumanReadable(e.message)).toBe(true);
  });

  it('refuses an empty password with NO_PASSWORD', async () => {
    await rejection(initRepo(new MemoryBackend(), {}, ''), 'NO_PASSWORD');
  });
});

describe('keys', () => {
  it('adds a key: both passwords open the repository, and list marks the current key', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const added = await repo.addKey('second', TEST_SCRYPT);
    const keys = await repo.listKeys();
    expect(keys.map((k) => k.id).sort()).toEqual([repo.keyId, added].sort());
    expect(keys.find((k) => k.current)?.id).toBe(repo.keyId);
    const viaSecond = await Repository.open(backend, 'second');
    expect(viaSecond.keyId).toBe(added);
    expect(viaSecond.config.id).toBe(repo.config.id);
    expect((await viaSecond.listKeys()).find((k) => k.current)?.id).toBe(added);
  });

  it('changes the password: the old one stops working, the new one works, the key count stays', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const oldId = repo.keyId;
    const newId = await repo.changePassword('new password', TEST_SCRYPT);
    expect(repo.keyId).toBe(newId);
    expect(await namesOf(backend, 'keys')).toEqual([newId]);
    expect(newId).not.toBe(oldId);
    await rejection(Repository.open(backend, PASSWORD), 'WRONG_PASSWORD');
    expect((await Repository.open(backend, 'new password')).keyId).toBe(newId);
  });

  it('removes another key, after which its password no longer opens the repository', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const other = await repo.addKey('other', TEST_SCRYPT);
    expect(await repo.removeKey(other.slice(0, 10))).toBe(other);
    await rejection(Repository.open(backend, 'other'), 'WRONG_PASSWORD');
    await Repository.open(backend, PASSWORD);
  });

  it('refuses to remove the current key, the last key, and an unknown id', async () => {
    const backend = new MemoryBackend();
    const first = await initRepo(backend);
    const secondId = await first.addKey('second', TEST_SCRYPT);
    const second = await Repository.open(backend, 'second');
    const e = await rejection(first.removeKey(first.keyId), 'INVALID_ARGUMENT');
    expect(e.message).toMatch(/opened the repository with/);
    await rejection(first.removeKey('ffffffffffff'), 'NOT_FOUND');
    // The first session removes the second key; the second session (whose key is now gone) may not remove the last.
    await first.removeKey(secondId);
    const last = await rejection(second.removeKey(first.keyId), 'INVALID_ARGUMENT');
    expect(last.message).toMatch(/last key/);
    expect(await namesOf(backend, 'keys')).toEqual([first.keyId]);
    await Repository.open(backend, PASSWORD);
  });
});

describe('damaged files', () => {
  const src = tempDir('repo-damage');
  let backend: MemoryBackend;
  let snapshotId: string;

  beforeAll(async () => {
    writeTree(src.dir, {
      'small.txt': 'small file\n',
      'big.bin': pseudoRandomBytes(700 * 1024, 7),
      'sub/other.bin': pseudoRandomBytes(300 * 1024, 9),
    });
    backend = new MemoryBackend();
    const repo = await initRepo(backend);
    snapshotId = (await backup(repo, { paths: [src.dir] })).snapshotId;
  });
  afterAll(() => src.cleanup());

  /** A fresh copy of the repository, so that each test damages its own. */
  async function copy(): Promise<MemoryBackend> {
    const out = new MemoryBackend();
    for (const type of ['config', 'keys', 'snapshots', 'index', 'data', 'locks'] as const) {
      for (const name of await namesOf(backend, type)) await out.save({ type, name }, await backend.load({ type, name }));
    }
    return out;
  }

  function expectCorrupt(e: Error & { subject?: string | undefined }, fileWords: RegExp): void {
    expect(e.message).toMatch(fileWords);
    expect(looksHumanReadable(e.message)).toBe(true);
  }

  /** The pack holding the tree root ('tree') or the second chunk of big.bin ('data'). */
  async function packOf(b: MemoryBackend, type: 'data' | 'tree'): Promise<string> {
    const repo = await Repository.open(b, PASSWORD);
    await repo.loadIndex();
    if (type === 'tree') return repo.index.lookup((await repo.loadSnapshot(snapshotId)).tree)!.packId;
    return repo.index.lookup((await findContent(repo, 'big.bin'))[1]!)!.packId;
  }

  it.each([
    ['a flipped byte', (b: MemoryBackend) => flipByte(b, { type: 'snapshots', name: snapshotId }, 40)],
    ['truncation', (b: MemoryBackend) => truncateFile(b, { type: 'snapshots', name: snapshotId }, 20)],
  ])('a snapshot file with %s is CORRUPT, naming the file', async (_what, damage) => {
    const b = await copy();
    await damage(b);
    const repo = await Repository.open(b, PASSWORD);
    const e = await rejection(repo.listSnapshots(), 'CORRUPT');
    expectCorrupt(e, new RegExp(`snapshot ${snapshotId.slice(0, 12)}`));
    const e2 = await rejection(restore(repo, snapshotId, { target: path.join(os.tmpdir(), 'never-created-bam') }), 'CORRUPT');
    expectCorrupt(e2, new RegExp(`snapshot ${snapshotId.slice(0, 12)}`));
  });

  it.each([
    ['a flipped byte', (b: MemoryBackend, id: string) => flipByte(b, { type: 'index', name: id }, 30)],
    ['truncation', (b: MemoryBackend, id: string) => truncateFile(b, { type: 'index', name: id }, 50)],
  ])('an index file with %s is CORRUPT, naming the file', async (_what, damage) => {
    const b = await copy();
    const [indexId] = await namesOf(b, 'index');
    await damage(b, indexId!);
    const repo = await Repository.open(b, PASSWORD);
    const e = await rejection(repo.loadIndex(), 'CORRUPT');
    expectCorrupt(e, new RegExp(`index ${indexId!.slice(0, 12)}`));
  });

  it('a data pack with a flipped byte: dump fails CORRUPT naming the pack, restore reports the file', async () => {
    const b = await copy();
    const packId = await packOf(b, 'data');
    const repo = await Repository.open(b, PASSWORD);
    await repo.loadIndex();
    const loc = repo.index.lookup((await findContent(repo, 'big.bin'))[1]!)!;
    await flipByte(b, { type: 'data', name: packId }, loc.offset + 40);
    const fresh = await Repository.open(b, PASSWORD);
    const e = await rejection(dump(fresh, snapshotId, `${src.dir}/big.bin`, async () => undefined), 'CORRUPT');
    expectCorrupt(e, new RegExp(`pack ${packId.slice(0, 12)}`));
    const target = tempDir('repo-damage-restore');
    try {
      const r = await restore(fresh, snapshotId, { target: target.dir });
      const problem = r.problems.find((p) => p.path.endsWith('/big.bin'));
      expect(problem?.code).toBe('unreadable-data');
      expect(problem?.message).toContain(packId.slice(0, 12));
      // the undamaged files still restore
      expect(r.problems.filter((p) => !p.path.endsWith('/big.bin'))).toEqual([]);
    } finally {
      target.cleanup();
    }
  });

  it('a tree pack with a flipped byte makes restore fail CORRUPT naming the pack', async () => {
    const b = await copy();
    const packId = await packOf(b, 'tree');
    await flipByte(b, { type: 'data', name: packId }, 5);
    const repo = await Repository.open(b, PASSWORD);
    const e = await rejection(restore(repo, snapshotId, { target: path.join(os.tmpdir(), 'never-created-bam') }), 'CORRUPT');
    expectCorrupt(e, new RegExp(`pack ${packId.slice(0, 12)}`));
  });

  it.each([
    ['truncated', async (b: MemoryBackend, id: string) => truncateFile(b, { type: 'data', name: id }, 100)],
    ['missing', async (b: MemoryBackend, id: string) => b.remove({ type: 'data', name: id })],
  ])('a %s data pack: dump fails CORRUPT naming the pack', async (_what, damage) => {
    const b = await copy();
    const packId = await packOf(b, 'data');
    await damage(b, packId);
    const repo = await Repository.open(b, PASSWORD);
    const e = await rejection(dump(repo, snapshotId, `${src.dir}/big.bin`, async () => undefined), 'CORRUPT');
    expectCorrupt(e, new RegExp(`pack ${packId.slice(0, 12)}`));
  });

  async function findContent(repo: Repository, name: string): Promise<string[]> {
    const snap = await repo.loadSnapshot(snapshotId);
    let tree = await repo.loadTree(snap.tree);
    for (const part of src.dir.split('/').filter(Boolean)) tree = await repo.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
    return tree.nodes.find((n) => n.name === name)!.content!;
  }
});

describe('locks', () => {
  it('allows shared locks together and releases them', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const a = await lockRepository(repo, { exclusive: false, operation: 'backup' });
    const b = await lockRepository(repo, { exclusive: false, operation: 'backup' });
    expect((await listLocks(repo)).map((l) => l.id).sort()).toEqual([a.id, b.id].sort());
    await a.release();
    await a.release();
    await b.release();
    expect(await namesOf(backend, 'locks')).toEqual([]);
  });

  it('refuses an exclusive lock next to a live one (and a shared one next to an exclusive one) with LOCKED naming host and pid', async () => {
    const backend = new MemoryBackend();
    const holder = await initRepo(backend, { context: { hostname: 'other-host', pid: 4242, username: 'ann' } });
    const held = await lockRepository(holder, { exclusive: false, operation: 'backup' });
    const me = await Repository.open(backend, PASSWORD, { context: { hostname: 'my-host' } });
    const e = await rejection(lockRepository(me, { exclusive: true, operation: 'prune' }), 'LOCKED');
    expect(e.message).toContain('other-host');
    expect(e.message).toContain('4242');
    expect(e.message).toContain('backup');
    // the refused attempt removed its own lock file
    expect(await namesOf(backend, 'locks')).toEqual([held.id]);
    await held.release();

    const exclusive = await lockRepository(holder, { exclusive: true, operation: 'prune' });
    const e2 = await rejection(lockRepository(me, { exclusive: false, operation: 'backup' }), 'LOCKED');
    expect(e2.message).toMatch(/exclusively locked by prune of ann@other-host \(pid 4242\)/);
    await exclusive.release();
    await (await lockRepository(me, { exclusive: true, operation: 'prune' })).release();
  });

  it('treats a lock of a process of this host that has exited as stale, and cleans it up', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout);
    expect(deadPid).toBeGreaterThan(0);
    const doc: LockDocument = {
      version: 1, time: repo.context.now().toISOString(), exclusive: true, hostname: repo.context.hostname,
      username: 'ghost', pid: deadPid, operation: 'prune',
    };
    const staleId = await repo.saveDocument('lock', doc);
    const [info] = await listLocks(repo);
    expect(info).toMatchObject({ id: staleId, stale: true });
    expect(info!.reason).toContain(String(deadPid));
    const lock = await lockRepository(repo, { exclusive: true, operation: 'prune' });
    expect(await namesOf(backend, 'locks')).toEqual([lock.id]);
    await lock.release();
  });

  it('treats a lock whose PID now belongs to another process (a different start time) as stale', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const doc: LockDocument = {
      version: 1, time: repo.context.now().toISOString(), exclusive: true, hostname: repo.context.hostname,
      username: 'ghost', pid: process.ppid, processStart: '1', operation: 'prune',
    };
    await repo.saveDocument('lock', doc);
    const [info] = await listLocks(repo);
    expect(info?.stale).toBe(true);
    await (await lockRepository(repo, { exclusive: true, operation: 'prune' })).release();
  });

  it('treats a live process on this host as holding its lock', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    // Our parent process is alive and is not us.
    const doc: LockDocument = {
      version: 1, time: repo.context.now().toISOString(), exclusive: true, hostname: repo.context.hostname,
      username: 'someone', pid: process.ppid, operation: 'prune',
    };
    await repo.saveDocument('lock', doc);
    await rejection(lockRepository(repo, { exclusive: false, operation: 'backup' }), 'LOCKED');
  });

  it('treats a lock not refreshed for 31 minutes as stale (time injected), and not one of 29 minutes', async () => {
    const backend = new MemoryBackend();
    const t0 = new Date('2026-03-01T12:00:00Z');
    const holder = await initRepo(backend, { context: { hostname: 'far-away', pid: 99, now: () => t0 } });
    await lockRepository(holder, { exclusive: true, operation: 'prune' });
    expect(LOCK_STALE_MS).toBe(30 * 60 * 1000);

    const at29 = await Repository.open(backend, PASSWORD, { context: { now: () => new Date(t0.getTime() + 29 * 60_000) } });
    expect((await listLocks(at29))[0]?.stale).toBe(false);
    await rejection(lockRepository(at29, { exclusive: false, operation: 'backup' }), 'LOCKED');

    const at31 = await Repository.open(backend, PASSWORD, { context: { now: () => new Date(t0.getTime() + 31 * 60_000) } });
    const [info] = await listLocks(at31);
    expect(info?.stale).toBe(true);
    expect(info?.reason).toContain('31 minutes');
    const mine = await lockRepository(at31, { exclusive: false, operation: 'backup' });
    // A stale lock of another host is ignored, not removed: only `unlock` removes it.
    expect((await namesOf(backend, 'locks')).length).toBe(2);
    await mine.release();
  });

  it('removeLocks removes stale locks only, or every lock with `all`', async () => {
    const backend = new MemoryBackend();
    const t0 = new Date('2026-03-01T12:00:00Z');
    const old = await initRepo(backend, { context: { hostname: 'far-away', now: () => t0 } });
    await lockRepository(old, { exclusive: false, operation: 'backup' });
    const now = await Repository.open(backend, PASSWORD, { context: { hostname: 'also-far', now: () => new Date(t0.getTime() + 40 * 60_000) } });
    const live = await lockRepository(now, { exclusive: false, operation: 'backup' });
    const removed = await removeLocks(now, false);
    expect(removed.map((l) => l.doc?.hostname)).toEqual(['far-away']);
    expect(await namesOf(backend, 'locks')).toEqual([live.id]);
    const all = await removeLocks(now, true);
    expect(all.map((l) => l.id)).toEqual([live.id]);
    expect(await namesOf(backend, 'locks')).toEqual([]);
    await live.release();
  });

  it('treats an unreadable lock file as stale', async () => {
    const backend = new MemoryBackend();
    const repo = await initRepo(backend);
    const lock = await lockRepository(repo, { exclusive: false, operation: 'backup' });
    await lock.release();
    const id = await repo.saveDocument('lock', { version: 1 });
    await flipByte(backend, { type: 'locks', name: id }, 3);
    const infos = await listLocks(repo);
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ stale: true, doc: undefined, reason: 'unreadable lock file' });
  });

  it('refreshes a held lock: a new lock file replaces the old one', async () => {
    const backend = new MemoryBackend();
    let now = new Date('2026-03-01T12:00:00Z');
    const repo = await initRepo(backend, { context: { now: () => now } });
    const lock = await lockRepository(repo, { exclusive: false, operation: 'backup', refreshMs: 20 });
    const first = lock.id;
    now = new Date(now.getTime() + 5 * 60_000);
    for (let waited = 0; lock.id === first && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(lock.id).not.toBe(first);
    expect(lock.doc.time).toBe(now.toISOString());
    await lock.release();
    expect(await namesOf(backend, 'locks')).toEqual([]);
  });
});
