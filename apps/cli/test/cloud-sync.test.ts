/**
 * Issue 6, the 3-2-1 rule end to end: config.json enables the local repository, Dropbox and OneDrive (on their
 * fakes); `bam backup` writes locally and syncs to both; each mirror is a complete repository that `bam --repo …`
 * lists and restores with the same password. A full Dropbox and an unreachable OneDrive do not fail the backup:
 * they are reported and logged, and `bam sync` catches them up once they are back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startDropboxFake, startOnedriveFake } from '@backup-manager/cloud-fakes';
import type { DropboxFake, OnedriveFake } from '@backup-manager/cloud-fakes';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FAST_RETRIES, authThroughBrowser, collectTokens, deadPort, endpointEnv, expectNoTokens, lines, logLines } from './cloud-support.ts';
import { Scratch, bam, bamOk, describeRun, hasStackTrace, pseudoRandomBytes, repoFiles } from './support.ts';
import type { RunResult } from './support.ts';

const PASSWORD = 'cloud-sync-pw-3e9a';
const DROPBOX = 'dropbox:/backups/repo1';
const ONEDRIVE = 'onedrive:backups/repo1';

interface Snapshot {
  id: string;
}

describe('backup to local, Dropbox and OneDrive', () => {
  const s = new Scratch('cloud-sync');
  const home = s.path('home');
  const local = s.path('local-repo');
  const src = s.path('src');
  let dropbox: DropboxFake;
  let onedrive: OnedriveFake;
  let env: Record<string, string>;
  const runs: RunResult[] = [];
  const seen = new Set<string>();
  const run = (args: string[], extraEnv: Record<string, string> = {}) => bam(args, { home, password: PASSWORD, env: { ...env, ...extraEnv } }).then((r) => {
    runs.push(r);
    return r;
  });
  const ok = async (args: string[], extraEnv: Record<string, string> = {}, code = 0) => {
    const r = await run(args, extraEnv);
    if (r.code !== code) throw new Error(`expected exit ${code}\n${describeRun(args, r)}`);
    return r;
  };
  const snapshotIds = async (repo: string): Promise<string[]> =>
    (JSON.parse((await ok(['snapshots', '--json', '--repo', repo])).stdout) as Snapshot[]).map((x) => x.id).sort();
  // Snapshot files are named by their ids: what is on disk and on the Dropbox fake, without starting bam.
  const localSnapshots = (): string[] => repoFiles(local, 'snapshots').map((p) => path.basename(p)).sort();
  const dropboxFiles = (folder: 'snapshots' | 'data'): string[] =>
    [...dropbox.files.keys()].filter((p) => p.startsWith(`/backups/repo1/${folder}/`)).map((p) => path.basename(p)).sort();

  beforeAll(async () => {
    [dropbox, onedrive] = await Promise.all([startDropboxFake(), startOnedriveFake()]);
    env = { ...endpointEnv('dropbox', dropbox.url), ...endpointEnv('onedrive', onedrive.url), ...FAST_RETRIES };
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(
      path.join(home, 'config.json'),
      JSON.stringify({
        destinations: {
          local: { enabled: true, path: local },
          dropbox: { enabled: true, path: '/backups/repo1', app_key: 'dropbox-app-key', app_secret: 'dropbox-app-secret' },
          onedrive: { enabled: true, path: 'backups/repo1', client_id: 'onedrive-client-id' },
        },
      }),
    );
    fs.mkdirSync(path.join(src, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(src, 'docs', 'letter.txt'), 'three copies, two media, one off site\n');
    fs.writeFileSync(path.join(src, 'photo.raw'), pseudoRandomBytes(900_000, 11));
  });
  afterAll(async () => {
    await Promise.all([dropbox.close(), onedrive.close()]);
    s.cleanup();
  });

  test('sign in to both; a backup writes locally and syncs to both clouds, which list and restore the same snapshot', async () => {
    for (const provider of ['dropbox', 'onedrive'] as const) {
      const { run: auth } = await authThroughBrowser(provider, { home, password: PASSWORD, env });
      runs.push(auth);
      expect(auth.code, describeRun(['auth', provider], auth)).toBe(0);
      collectTokens(seen, home, provider);
    }
    await ok(['init', '--pack-size', '256KiB']);

    const backup = await ok(['backup', src]);
    expect(backup.stdout).toMatch(/^synced to dropbox \(dropbox:\/backups\/repo1\): \d+ file\(s\)/m);
    expect(backup.stdout).toMatch(/^synced to onedrive \(onedrive:backups\/repo1\): \d+ file\(s\)/m);
    const [id] = localSnapshots();
    expect(await snapshotIds(DROPBOX)).toEqual([id]);
    expect(await snapshotIds(ONEDRIVE)).toEqual([id]);
    // (OneDrive's copy is restored in the next test.)
    const target = s.path('restore-dropbox');
    await ok(['--repo', DROPBOX, 'restore', 'latest', '--target', target]);
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
    // Every repository file, and no lock, is on Dropbox (laid out as on disk).
    expect(dropboxFiles('data')).toEqual(repoFiles(local, 'data').map((p) => path.basename(p)).sort());

    const synced = logLines(home).filter((l) => l.operation === 'sync');
    expect(synced.map((l) => [l.destination, l.outcome])).toEqual([
      [DROPBOX, 'success'],
      [ONEDRIVE, 'success'],
    ]);
    expect(synced[0]).toMatchObject({ repository: local, counts: { filesUploaded: expect.any(Number), filesDeleted: 0 } });
    expectNoTokens(seen, home, runs);
  });

  test('a full Dropbox and an unreachable OneDrive do not fail the backup; `bam sync` catches both up', async () => {
    fs.writeFileSync(path.join(src, 'docs', 'new.bin'), pseudoRandomBytes(400_000, 12));
    dropbox.setQuota(dropbox.usedBytes());
    const down = await deadPort();
    const offline = { BACKUP_MANAGER_ONEDRIVE_API_URL: `http://127.0.0.1:${down}`, BACKUP_MANAGER_ONEDRIVE_TOKEN_URL: `http://127.0.0.1:${down}/token` };

    const backup = await run(['backup', src, '--json'], offline);
    expect(backup.code, describeRun(['backup'], backup)).toBe(0);
    const out = lines(backup);
    const summary = out.find((l) => l.type === 'summary') as { snapshot: Snapshot };
    const reports = out.filter((l) => l.type === 'sync');
    expect(reports.map((r) => [r.destination, r.outcome, (r.error as { code: string }).code])).toEqual([
      ['dropbox', 'failure', 'QUOTA_EXCEEDED'],
      ['onedrive', 'failure', 'UNAVAILABLE'],
    ]);
    expect(backup.stderr).toMatch(/^warning: sync to dropbox \(dropbox:\/backups\/repo1\) failed/m);
    expect(backup.stderr).toMatch(/^warning: sync to onedrive \(onedrive:backups\/repo1\) failed/m);
    expect(backup.stderr).toContain(`the backup itself is saved in ${local}`);
    expect(hasStackTrace(backup.stderr)).toBe(false);
    const failed = logLines(home).filter((l) => l.operation === 'sync').slice(-2);
    expect(failed.map((l) => [l.destination, l.outcome, l.errorCode])).toEqual([
      [DROPBOX, 'failure', 'QUOTA_EXCEEDED'],
      [ONEDRIVE, 'failure', 'UNAVAILABLE'],
    ]);
    // The local backup is complete, and the mirrors still hold a repository with the first snapshot only.
    const ids = localSnapshots();
    expect(ids).toContain(summary.snapshot.id);
    expect(ids).toHaveLength(2);
    expect(dropboxFiles('snapshots')).toHaveLength(1);

    // Still down: `bam sync` fails (exit 1) and says where.
    const stillDown = await run(['sync'], offline);
    expect(stillDown.code).toBe(1);
    expect(stillDown.stderr).toMatch(/^error: sync to dropbox .*full/m);

    // Back: a dry run shows the work, then the sync does it.
    dropbox.setQuota(1024 ** 3);
    const dry = await ok(['sync', '--dry-run', '--json']);
    const plans = lines(dry).filter((l) => l.type === 'sync') as { plan: { upload: { files: number } }; uploaded: { files: number } }[];
    expect(plans.every((p) => p.plan.upload.files > 0 && p.uploaded.files === 0)).toBe(true);
    const sync = await ok(['sync']);
    expect(sync.stdout).toMatch(/^synced to dropbox/m);
    expect(sync.stdout).toMatch(/^synced to onedrive/m);
    expect(dropboxFiles('snapshots')).toEqual(ids);
    expect(await snapshotIds(ONEDRIVE)).toEqual(ids);
    const target = s.path('restore-after-catch-up');
    await ok(['--repo', ONEDRIVE, 'restore', summary.snapshot.id, '--target', target]);
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
    expectNoTokens(seen, home, runs);
  });

  test('what prune removes locally is removed from the mirrors', async () => {
    await ok(['forget', '--keep-last', '1', '--prune', '--max-unused', '0', '--yes']);
    const kept = localSnapshots();
    expect(kept).toHaveLength(1);
    const sync = await ok(['sync', '--json']);
    const deleted = lines(sync).filter((l) => l.type === 'sync').map((l) => (l.deleted as { files: number }).files);
    expect(deleted.every((n) => n > 1)).toBe(true);
    expect(dropboxFiles('snapshots')).toEqual(kept);
    expect(dropboxFiles('data')).toEqual(repoFiles(local, 'data').map((p) => path.basename(p)).sort());
    expect(await snapshotIds(ONEDRIVE)).toEqual(kept);
  });
});
