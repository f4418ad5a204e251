/**
 * Issue requirement 4: a repository whose disk fills up during a backup. The backup fails with exit 1 and a plain
 * "disk is full" message, earlier snapshots still restore, and once there is space again a backup succeeds.
 * Needs root (mount -t tmpfs), which the tests and CI have.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { Scratch, bam, bamOk, describeRun, hasStackTrace, jsonLines, pseudoRandomBytes, repoFiles } from './support.ts';

const PASSWORD = 'faults-pw-5d0c';
const MiB = 1024 * 1024;

describe('the repository disk fills up', () => {
  const s = new Scratch('faults');
  afterAll(() => s.cleanup());

  test('a full disk fails the backup cleanly; earlier snapshots restore; with more space the backup succeeds', async () => {
    const home = s.path('home');
    const disk = s.tmpfs('disk', '8m');
    const repo = path.join(disk, 'repo');
    const run = { home, password: PASSWORD };
    const small = s.dir('small');
    fs.writeFileSync(path.join(small, 'a.txt'), 'small and important\n');
    fs.mkdirSync(path.join(small, 'sub'));
    fs.writeFileSync(path.join(small, 'sub', 'b.bin'), pseudoRandomBytes(200_000, 1));
    const big = s.dir('big');
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(big, `part${i}.bin`), pseudoRandomBytes(4 * MiB, 100 + i));

    await bamOk(['init', '--repo', repo, '--pack-size', '1MiB'], run);
    await bamOk(['backup', '--repo', repo, small], run);

    const full = await bam(['backup', '--repo', repo, big], run);
    expect(full.code, describeRun(['backup', big], full)).toBe(1);
    expect(full.stderr).toMatch(/^bam: .*disk .*is full/m);
    expect(full.stderr).toContain(repo);
    expect(hasStackTrace(full.stderr)).toBe(false);
    expect(full.stdout).toBe('');
    const logged = jsonLines(fs.readFileSync(path.join(home, 'backup.log'), 'utf8')).at(-1) as Record<string, unknown>;
    expect(logged).toMatchObject({ operation: 'backup', outcome: 'failure', errorCode: 'QUOTA_EXCEEDED' });
    // No half-written temporary file and no lock stays behind.
    expect(repoFiles(repo, 'tmp')).toEqual([]);
    expect(repoFiles(repo, 'locks')).toEqual([]);

    // Reading still works on the full disk: the earlier snapshot lists and restores identically.
    const list = JSON.parse((await bamOk(['snapshots', '--json', '--repo', repo], run)).stdout) as { paths: string[] }[];
    expect(list.map((x) => x.paths)).toEqual([[small]]);
    const out1 = s.path('restore-small');
    await bamOk(['restore', 'latest', '--repo', repo, '--target', out1], run);
    expect(compareTrees(small, path.join(out1, small))).toEqual([]);

    // Free space: a bigger disk. The same backup now succeeds and restores identically.
    s.remount(disk, '64m');
    const again = await bam(['backup', '--repo', repo, big, '--json'], run);
    expect(again.code, describeRun(['backup', big, '(after remount)'], again)).toBe(0);
    const summary = jsonLines(again.stdout).find((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string } };
    const out2 = s.path('restore-big');
    await bamOk(['restore', summary.snapshot.id, '--repo', repo, '--target', out2], run);
    expect(compareTrees(big, path.join(out2, big))).toEqual([]);
  }, 120_000);
});
