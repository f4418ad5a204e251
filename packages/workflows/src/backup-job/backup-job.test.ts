import fs from 'node:fs';
import { BackupError, MemoryBackend, Repository, backup } from '@backup-manager/core-archive';
import { FaultyBackend } from '@backup-manager/core-archive/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { runBackupJob, syncDestinations } from './backup-job.ts';
import { PASSWORD, listing, repositoryWithSnapshots, restoredDiffers, snapshotIds, sourceTree, tempDir } from '../test-support.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function source(variant: number): string {
  const d = tempDir('src');
  dirs.push(d);
  return sourceTree(d, variant);
}

describe('runBackupJob', () => {
  it('backs up, then syncs to every destination in parallel; a failing destination fails alone and catches up later', async () => {
    const primary = new FaultyBackend(new MemoryBackend({ label: 'local' }));
    await repositoryWithSnapshots(primary, []);
    const good = new MemoryBackend({ label: 'dropbox' });
    const flaky = new FaultyBackend(new MemoryBackend({ label: 'onedrive' }));
    flaky.addRule({ operation: 'save', type: 'data', nth: 2, times: Infinity, error: new BackupError('UNAVAILABLE', 'the service is down') });
    const destinations = [
      { name: 'dropbox', open: async () => good },
      { name: 'onedrive', open: async () => flaky },
      { name: 'gdrive', open: () => Promise.reject(new BackupError('UNAUTHORIZED', 'not signed in to google_drive: run `bam auth google_drive` first')) },
    ];
    const src = source(1);

    const job = await runBackupJob({
      primary,
      destinations,
      backup: async () => {
        const repo = await Repository.open(primary, PASSWORD);
        try {
          return await backup(repo, { paths: [src] });
        } finally {
          repo.close();
        }
      },
    });
    expect(job.synced).toBe(true);
    const id = job.backup.snapshotId;
    expect(job.sync.map((r) => [r.destination, r.outcome, r.error?.code])).toEqual([
      ['dropbox', 'success', undefined],
      ['onedrive', 'failure', 'UNAVAILABLE'],
      ['gdrive', 'failure', 'UNAUTHORIZED'],
    ]);
    expect(job.sync[2]?.error?.message).toContain('bam auth google_drive');
    expect(await snapshotIds(primary)).toEqual([id]);
    expect(await snapshotIds(good)).toEqual([id]);
    expect(await restoredDiffers(good, id, src)).toEqual([]);

    // The destinations shared one reader: every primary file was loaded once, though two mirrors asked for it.
    const loads = primary.calls.filter((c) => c.operation === 'load' && c.type === 'data').map((c) => c.name);
    expect(new Set(loads).size).toBe(loads.length);

    flaky.clearRules();
    const [caughtUp] = await syncDestinations(primary, [{ name: 'onedrive', open: async () => flaky }]);
    expect(caughtUp?.outcome).toBe('success');
    expect(await listing(flaky)).toEqual(await listing(primary));
  });

  it('does not sync when the backup fails, or when syncWhen says no', async () => {
    const primary = new MemoryBackend();
    await repositoryWithSnapshots(primary, []);
    const mirror = new FaultyBackend(new MemoryBackend());
    const destinations = [{ name: 'mirror', open: async () => mirror }];
    await expect(
      runBackupJob({ primary, destinations, backup: () => Promise.reject(new BackupError('SOURCE_NOT_FOUND', 'gone')) }),
    ).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
    const skipped = await runBackupJob({ primary, destinations, backup: async () => 'interrupted', syncWhen: (r) => r !== 'interrupted' });
    expect(skipped).toEqual({ backup: 'interrupted', sync: [], synced: false });
    expect(mirror.calls).toEqual([]);
  });

  it('keeps files at an append-only destination while syncing deletions to the others', async () => {
    const primary = new MemoryBackend();
    const [first] = await repositoryWithSnapshots(primary, [[source(1)]]);
    const plain = new MemoryBackend();
    const locked = new MemoryBackend();
    const destinations = [
      { name: 'plain', open: async () => plain },
      { name: 'locked', open: async () => locked, appendOnly: true },
    ];
    await syncDestinations(primary, destinations);
    await primary.remove({ type: 'snapshots', name: first! });
    const reports = await syncDestinations(primary, destinations);
    expect(reports.map((r) => [r.destination, r.deleted.files, r.plan?.keep.files])).toEqual([
      ['plain', 1, 0],
      ['locked', 0, 1],
    ]);
    expect(await snapshotIds(plain)).toEqual([]);
    expect(await snapshotIds(locked)).toEqual([first]);
  });
});
