import fs from 'node:fs';
import path from 'node:path';
import { BackupError, LocalBackend, MemoryBackend, Repository, TEST_SCRYPT } from '@backup-manager/core-archive';
import { FaultyBackend } from '@backup-manager/core-archive/testing';
import { repairIndex } from '@backup-manager/verify';
import { afterEach, describe, expect, it } from 'vitest';
import { DELETE_ORDER, PrimaryReader, UPLOAD_ORDER, syncRepository } from './sync.ts';
import type { SyncEvent } from './sync.ts';
import {
  PASSWORD, forgetAndPrune, listing, repositoryWithSnapshots, restoredDiffers, snapshotIds, sourceTree, tempDir,
} from '../test-support.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function dir(prefix: string): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
}

/** A primary with two snapshots of two versions of a tree. */
async function primaryWithTwoSnapshots(primary = new MemoryBackend({ label: 'primary' })) {
  const v1 = sourceTree(dir('v1'), 1);
  const v2 = sourceTree(dir('v2'), 2);
  const [first, second] = await repositoryWithSnapshots(primary, [[v1], [v2]]);
  return { primary, v1, v2, first: first!, second: second! };
}

/** The file types of the mirror's saves (or removes), in call order, with repeats collapsed. */
function typeSequence(mirror: FaultyBackend, operation: 'save' | 'remove'): string[] {
  const out: string[] = [];
  for (const c of mirror.calls) if (c.operation === operation && out.at(-1) !== c.type) out.push(c.type);
  return out;
}

describe('syncRepository', () => {
  it('copies a repository to an empty mirror that then restores every snapshot', async () => {
    const { primary, v1, v2, first, second } = await primaryWithTwoSnapshots();
    const mirror = new MemoryBackend({ label: 'mirror' });
    const events: SyncEvent[] = [];
    const report = await syncRepository(primary, mirror, { onEvent: (e) => events.push(e) });

    expect(report.outcome).toBe('success');
    expect(report.error).toBeUndefined();
    expect(await listing(mirror)).toEqual(await listing(primary));
    expect(report.uploaded.files).toBe((await listing(primary)).length);
    expect(report.plan?.upload).toEqual(report.uploaded);
    expect(events[0]).toMatchObject({ type: 'plan', destination: 'memory:mirror', dryRun: false });
    expect(events.filter((e) => e.type === 'uploaded')).toHaveLength(report.uploaded.files);

    expect(await snapshotIds(mirror)).toEqual([first, second].sort());
    expect(await restoredDiffers(mirror, first, v1)).toEqual([]);
    expect(await restoredDiffers(mirror, second, v2)).toEqual([]);

    // A second sync finds nothing to do.
    const again = await syncRepository(primary, mirror);
    expect(again.uploaded.files).toBe(0);
    expect(again.plan?.unchanged.files).toBe(report.uploaded.files);
  });

  it('uploads data, then index, then keys, then config, then snapshots, and checks each upload\'s size', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const mirror = new FaultyBackend(new MemoryBackend());
    await syncRepository(primary, mirror, { concurrency: 3 });
    expect(typeSequence(mirror, 'save')).toEqual([...UPLOAD_ORDER]);
    const saves = mirror.calls.filter((c) => c.operation === 'save').length;
    expect(mirror.calls.filter((c) => c.operation === 'stat')).toHaveLength(saves);
  });

  it('reports a destination that fails mid-sync, leaves the primary intact, and completes on the next sync', async () => {
    const { primary, v2, second } = await primaryWithTwoSnapshots();
    const before = await listing(primary);
    const store = new MemoryBackend();
    const mirror = new FaultyBackend(store);
    mirror.addRule({ operation: 'save', type: 'data', nth: 3, error: new BackupError('QUOTA_EXCEEDED', 'the mirror is full') });

    const failed = await syncRepository(primary, mirror, { concurrency: 1 });
    expect(failed.outcome).toBe('failure');
    expect(failed.error).toMatchObject({ code: 'QUOTA_EXCEEDED', side: 'mirror', message: 'the mirror is full' });
    expect(failed.uploaded.files).toBe(2);
    // Nothing that refers to data went up: the mirror holds no index, key, config or snapshot yet.
    expect((await listing(store)).filter((f) => !f.startsWith('data/'))).toEqual([]);
    expect(await listing(primary)).toEqual(before);

    mirror.clearRules();
    const next = await syncRepository(primary, mirror);
    expect(next.outcome).toBe('success');
    expect(next.plan?.unchanged.files).toBe(2);
    expect(await listing(store)).toEqual(before);
    expect(await restoredDiffers(store, second, v2)).toEqual([]);
  });

  it('stops before the snapshots when an index upload fails, so the mirror never lists a snapshot it cannot restore', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const store = new MemoryBackend();
    const mirror = new FaultyBackend(store);
    mirror.addRule({ operation: 'save', type: 'index', error: new BackupError('UNAVAILABLE', 'service down') });
    const report = await syncRepository(primary, mirror);
    expect(report.error).toMatchObject({ code: 'UNAVAILABLE', side: 'mirror' });
    expect((await listing(store)).some((f) => f.startsWith('snapshots/') || f.startsWith('config'))).toBe(false);
  });

  it('deletes what prune removed, snapshots first, then index, then packs', async () => {
    const { primary, v2, first, second } = await primaryWithTwoSnapshots();
    const store = new MemoryBackend();
    const mirror = new FaultyBackend(store);
    expect((await syncRepository(primary, mirror)).outcome).toBe('success');
    await forgetAndPrune(primary, first);
    mirror.clearCalls();

    const report = await syncRepository(primary, mirror, { concurrency: 2 });
    expect(report.outcome).toBe('success');
    expect(report.deleted.files).toBeGreaterThan(2);
    expect(typeSequence(mirror, 'remove')).toEqual(DELETE_ORDER.filter((t) => t !== 'keys'));
    // Uploads (the new index) all happened before the first delete.
    const firstRemove = mirror.calls.findIndex((c) => c.operation === 'remove');
    const lastSave = mirror.calls.findLastIndex((c) => c.operation === 'save');
    expect(lastSave).toBeLessThan(firstRemove);
    expect(await listing(store)).toEqual(await listing(primary));
    expect(await snapshotIds(store)).toEqual([second]);
    expect(await restoredDiffers(store, second, v2)).toEqual([]);
  });

  it('keeps everything at an append-only mirror, which still restores every snapshot it ever had', async () => {
    const { primary, v1, v2, first, second } = await primaryWithTwoSnapshots();
    const mirror = new FaultyBackend(new MemoryBackend());
    await syncRepository(primary, mirror);
    const copied = await listing(mirror);
    await forgetAndPrune(primary, first);

    const report = await syncRepository(primary, mirror, { appendOnly: true });
    expect(report.outcome).toBe('success');
    expect(report.appendOnly).toBe(true);
    expect(report.deleted.files).toBe(0);
    expect(report.plan?.keep.files).toBeGreaterThan(0);
    expect(mirror.calls.some((c) => c.operation === 'remove')).toBe(false);
    const now = await listing(mirror);
    for (const f of copied) expect(now).toContain(f);
    expect(await snapshotIds(mirror)).toEqual([first, second].sort());
    // The primary's new index supersedes the old ones and no longer lists the forgotten snapshot's packs; the packs
    // are all still there, so rebuilding the mirror's index from them makes that snapshot restorable again.
    const repo = await Repository.open(mirror, PASSWORD);
    await repairIndex(repo).finally(() => repo.close());
    expect(await restoredDiffers(mirror, first, v1)).toEqual([]);
    expect(await restoredDiffers(mirror, second, v2)).toEqual([]);
  });

  it('changes nothing in a dry run and says what it would do', async () => {
    const { primary, first } = await primaryWithTwoSnapshots();
    const store = new MemoryBackend();
    await syncRepository(primary, store);
    await forgetAndPrune(primary, first);
    const before = await listing(store);
    const mirror = new FaultyBackend(store);

    const report = await syncRepository(primary, mirror, { dryRun: true });
    expect(report).toMatchObject({ outcome: 'success', dryRun: true, uploaded: { files: 0 }, deleted: { files: 0 } });
    expect(report.plan?.upload.files).toBeGreaterThan(0); // the new index
    expect(report.plan?.delete.files).toBeGreaterThan(0);
    expect(mirror.calls.filter((c) => c.operation === 'save' || c.operation === 'remove')).toEqual([]);
    expect(await listing(store)).toEqual(before);
  });

  it('re-uploads a file the mirror holds with the wrong size', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const mirror = new MemoryBackend();
    await syncRepository(primary, mirror);
    let victim: string | undefined;
    for await (const f of mirror.list('index')) victim ??= f.name;
    await mirror.save({ type: 'index', name: victim! }, new Uint8Array([1, 2, 3]));

    const report = await syncRepository(primary, mirror);
    expect(report.plan?.replace.files).toBe(1);
    expect(report.uploaded.files).toBe(1);
    expect(await listing(mirror)).toEqual(await listing(primary));
  });

  it('never copies a damaged primary file, and names it', async () => {
    const root = dir('primary');
    const primary = await LocalBackend.create(root);
    const src = sourceTree(dir('src'), 1);
    await repositoryWithSnapshots(primary, [[src]]);
    const packs: string[] = [];
    for await (const f of primary.list('data')) packs.push(f.name);
    const victim = packs.sort()[0]!;
    const file = path.join(root, 'data', victim.slice(0, 2), victim);
    const bytes = fs.readFileSync(file);
    bytes[10] = bytes[10]! ^ 0xff;
    fs.writeFileSync(file, bytes);

    const mirror = new MemoryBackend();
    const report = await syncRepository(primary, mirror);
    expect(report.outcome).toBe('failure');
    expect(report.error).toMatchObject({ code: 'CORRUPT', side: 'primary', subject: `data/${victim.slice(0, 2)}/${victim}` });
    expect(report.error?.message).toContain('bam verify');
    expect((await listing(mirror)).filter((f) => f.startsWith(`data/${victim}`) || f.startsWith('snapshots/'))).toEqual([]);
  });

  it('leaves a mirror that holds another repository alone', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const other = new MemoryBackend();
    await Repository.init(other, PASSWORD, { scrypt: TEST_SCRYPT }).then((r) => r.close());
    const before = await listing(other);
    const report = await syncRepository(primary, other);
    expect(report.error).toMatchObject({ code: 'REPOSITORY_EXISTS', side: 'mirror' });
    expect(await listing(other)).toEqual(before);
  });

  it('refuses to copy deletions from a primary that lists snapshots but lost its packs', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const mirror = new MemoryBackend();
    await syncRepository(primary, mirror);
    for await (const f of primary.list('data')) await primary.remove({ type: 'data', name: f.name });
    const before = await listing(mirror);
    const report = await syncRepository(primary, mirror);
    expect(report.error).toMatchObject({ code: 'CORRUPT', side: 'primary' });
    expect(await listing(mirror)).toEqual(before);
  });

  it('fails with REPOSITORY_NOT_FOUND when the primary holds no repository', async () => {
    const report = await syncRepository(new MemoryBackend(), new MemoryBackend());
    expect(report.error).toMatchObject({ code: 'REPOSITORY_NOT_FOUND', side: 'primary' });
  });

  it('stops when interrupted and catches up afterwards', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const mirror = new MemoryBackend();
    const abort = new AbortController();
    const report = await syncRepository(primary, mirror, {
      signal: abort.signal,
      concurrency: 1,
      onEvent: (e) => {
        if (e.type === 'uploaded') abort.abort();
      },
    });
    expect(report.outcome).toBe('interrupted');
    expect(report.uploaded.files).toBe(1);
    expect((await syncRepository(primary, mirror)).outcome).toBe('success');
    expect(await listing(mirror)).toEqual(await listing(primary));
  });
});

describe('PrimaryReader', () => {
  it('reads each file once for several readers and refuses a file whose content is not its name', async () => {
    const { primary } = await primaryWithTwoSnapshots();
    const faulty = new FaultyBackend(primary);
    const reader = new PrimaryReader(faulty);
    const packs: { name: string; size: number }[] = [];
    for await (const f of primary.list('data')) packs.push(f);
    const h = { type: 'data' as const, name: packs[0]!.name };
    const [a, b] = await Promise.all([reader.read(h, packs[0]!.size), reader.read(h, packs[0]!.size)]);
    expect(a).toBe(b);
    await reader.read(h, packs[0]!.size);
    expect(faulty.calls.filter((c) => c.operation === 'load')).toHaveLength(1);

    const wrongName = 'f'.repeat(64);
    await primary.save({ type: 'data', name: wrongName }, new Uint8Array([1, 2, 3]));
    await expect(reader.read({ type: 'data', name: wrongName }, 3)).rejects.toMatchObject({ code: 'CORRUPT' });
  });
});
