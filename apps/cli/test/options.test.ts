/**
 * Issue requirement 6: backup from stdin, the exclude flags, tags, time and host, what incremental, full and
 * differential backups read and record, restore of a part of a snapshot with include/exclude and the overwrite
 * rule, key management and unlock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { Scratch, bam, bamOk, childPids, describeRun, hasStackTrace, jsonLines, pseudoRandomBytes, repoFiles, sha256, signalJob, sleep, startBam, waitForExit } from './support.ts';
import type { RunOptions, RunResult } from './support.ts';

const PASSWORD = 'options-pw-93e1';
const MiB = 1024 * 1024;

interface Summary {
  snapshot: {
    id: string;
    time: string;
    hostname: string;
    tags: string[];
    type: string;
    parent?: string;
    summary: { filesNew: number; filesChanged: number; filesUnchanged: number; totalFiles: number; totalBytes: number; dataAdded: number };
  };
}

function summaryOf(r: RunResult): Summary {
  const s = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'summary');
  if (!s) throw new Error(`no summary in\n${describeRun(['backup'], r)}`);
  return s as Summary;
}

/** Snapshot paths (below `root`) that `bam ls --json` lists. */
async function listedBelow(id: string, root: string, run: RunOptions): Promise<string[]> {
  const r = await bamOk(['ls', id, '--json'], run);
  return (jsonLines(r.stdout) as { struct_type: string; path?: string }[])
    .filter((n) => n.struct_type === 'node' && n.path !== undefined && n.path.startsWith(root + '/'))
    .map((n) => n.path!.slice(root.length + 1))
    .sort();
}

describe('backup, restore, key and unlock options', () => {
  const s = new Scratch('options');
  const home = s.path('home');
  const run = { home, password: PASSWORD };
  afterAll(() => s.cleanup());

  test('setup: a repository', async () => {
    await bamOk(['init'], run);
  });

  test('--stdin --stdin-filename: the piped data restores and dumps byte for byte', async () => {
    const data = pseudoRandomBytes(3 * MiB + 123, 7);
    const b = await bam(['backup', '--stdin', '--stdin-filename', 'db.sql', '--json'], { ...run, stdin: data });
    expect(b.code, describeRun(['backup', '--stdin'], b)).toBe(0);
    const id = summaryOf(b).snapshot.id;
    expect(await listedBelow(id, '', run)).toEqual(['db.sql']);
    const out = s.path('stdin-restore');
    await bamOk(['restore', id, '--target', out], run);
    expect(sha256(fs.readFileSync(path.join(out, 'db.sql')))).toBe(sha256(data));
    const dump = await bamOk(['dump', id, '/db.sql'], run);
    expect(sha256(dump.stdoutBytes)).toBe(sha256(data));
    // Redirected from a file (`< dump.sql`) instead of a pipe.
    const file = s.path('dump.sql');
    fs.writeFileSync(file, data.subarray(0, MiB));
    const b2 = await bamOk(['backup', '--stdin', '--stdin-filename', 'db.sql', '--json'], { ...run, stdin: { file } });
    const dump2 = await bamOk(['dump', summaryOf(b2).snapshot.id, '/db.sql'], run);
    expect(sha256(dump2.stdoutBytes)).toBe(sha256(data.subarray(0, MiB)));
  });

  test('--exclude, --exclude-file, --exclude-if-present and --exclude-larger-than leave out exactly what they name', async () => {
    const src = s.dir('ex-src');
    const files: Record<string, string | Buffer> = {
      'keep/a.txt': 'a',
      'keep/a.o': 'object',
      'keep/sub/deep.txt': 'deep',
      'keep/big.bin': pseudoRandomBytes(2 * MiB, 1),
      'keep/small.bin': pseudoRandomBytes(MiB - 1, 2),
      'cache/CACHEDIR.TAG': 'Signature: 8a477f597d28d172789f06886806bc55',
      'cache/data': 'cached',
      'proj/node_modules/x/index.js': 'module',
      'proj/main.js': 'main',
      'logs/today.log': 'log',
      'logs/keep.txt': 'kept log folder file',
    };
    for (const [rel, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
      fs.writeFileSync(path.join(src, rel), content);
    }
    const exFile = s.path('excludes.txt');
    fs.writeFileSync(exFile, '# build output\n\n**/node_modules\n  *.log  \n');
    const b = await bam(
      ['backup', src, '--json', '--exclude', '*.o', '--exclude-file', exFile, '--exclude-if-present', 'CACHEDIR.TAG', '--exclude-larger-than', '1MiB'],
      run,
    );
    expect(b.code, describeRun(['backup', 'excludes'], b)).toBe(0);
    expect(await listedBelow(summaryOf(b).snapshot.id, src, run)).toEqual(
      ['keep', 'keep/a.txt', 'keep/small.bin', 'keep/sub', 'keep/sub/deep.txt', 'logs', 'logs/keep.txt', 'proj', 'proj/main.js'].sort(),
    );
  });

  test('--tag, --time and --host are recorded and filter snapshots', async () => {
    const src = s.dir('tagged');
    fs.writeFileSync(path.join(src, 'f'), 'tagged');
    const b = await bamOk(['backup', src, '--tag', 'alpha', '--tag', 'beta', '--time', '2020-01-02T03:04:05Z', '--host', 'e2e-host', '--json'], run);
    const snap = summaryOf(b).snapshot;
    expect(snap.tags).toEqual(['alpha', 'beta']);
    expect(snap.time).toBe('2020-01-02T03:04:05.000Z');
    expect(snap.hostname).toBe('e2e-host');
    const byHost = JSON.parse((await bamOk(['snapshots', '--host', 'e2e-host', '--json'], run)).stdout) as { id: string }[];
    expect(byHost.map((x) => x.id)).toEqual([snap.id]);
    const byTag = JSON.parse((await bamOk(['snapshots', '--tag', 'beta', '--json'], run)).stdout) as { id: string }[];
    expect(byTag.map((x) => x.id)).toEqual([snap.id]);
    const none = JSON.parse((await bamOk(['snapshots', '--tag', 'gamma', '--json'], run)).stdout) as unknown[];
    expect(none).toEqual([]);
    // The oldest snapshot by its recorded time comes first.
    const all = JSON.parse((await bamOk(['snapshots', '--json'], run)).stdout) as { id: string }[];
    expect(all[0]!.id).toBe(snap.id);
  });

  describe('what incremental, full and differential backups read (source on a strictatime tmpfs: every read moves atime)', () => {
    let src = '';
    const files = ['one.bin', 'two.bin', 'sub/three.bin'];
    const atimes = (): bigint[] => files.map((f) => fs.statSync(path.join(src, f), { bigint: true }).atimeNs);
    const ids: Record<string, string> = {};

    test('first backup (full), then an unchanged incremental: 0 new, 0 changed, nothing read', async () => {
      // tmpfs with strictatime: every read updates atime, so "was this file read?" has an exact answer.
      src = s.tmpfs('typed', '32m', 'strictatime');
      fs.mkdirSync(path.join(src, 'sub'));
      files.forEach((f, i) => fs.writeFileSync(path.join(src, f), pseudoRandomBytes(2 * MiB + i, 50 + i)));

      const full = summaryOf(await bamOk(['backup', src, '--type', 'full', '--json'], run));
      ids.full = full.snapshot.id;
      expect(full.snapshot.type).toBe('full');
      expect(full.snapshot.summary.filesNew).toBe(3);
      await sleep(20);
      const before = atimes();
      const inc = await bamOk(['backup', src], run);
      expect(inc.stdout).toMatch(/files: 0 new, 0 changed, 3 unchanged/);
      const incJson = summaryOf(await bamOk(['backup', src, '--json'], run));
      ids.inc = incJson.snapshot.id;
      expect(incJson.snapshot.summary).toMatchObject({ filesNew: 0, filesChanged: 0, filesUnchanged: 3 });
      expect(incJson.snapshot.parent).toBeDefined();
      expect(atimes()).toEqual(before);
    });

    test('--type full reads every file but adds almost nothing', async () => {
      const before = atimes();
      await sleep(20);
      const full = summaryOf(await bamOk(['backup', src, '--type', 'full', '--json'], run));
      ids.full2 = full.snapshot.id;
      expect(full.snapshot.type).toBe('full');
      expect(full.snapshot.summary).toMatchObject({ filesNew: 0, filesChanged: 0, filesUnchanged: 3 });
      const after = atimes();
      after.forEach((t, i) => expect(t, `${files[i]} was read`).toBeGreaterThan(before[i]!));
      expect(full.snapshot.summary.totalBytes).toBeGreaterThan(6 * MiB);
      expect(full.snapshot.summary.dataAdded).toBeLessThan(64 * 1024);
    });

    test('--type differential names the latest full backup as its parent', async () => {
      fs.writeFileSync(path.join(src, 'one.bin'), pseudoRandomBytes(MiB, 99));
      const inc = summaryOf(await bamOk(['backup', src, '--json'], run));
      expect(inc.snapshot.parent).toBe(ids.full2);
      expect(inc.snapshot.summary).toMatchObject({ filesChanged: 1, filesUnchanged: 2 });
      fs.writeFileSync(path.join(src, 'two.bin'), pseudoRandomBytes(MiB, 98));
      const inc2 = summaryOf(await bamOk(['backup', src, '--json'], run));
      expect(inc2.snapshot.parent).toBe(inc.snapshot.id);
      const diff = summaryOf(await bamOk(['backup', src, '--type', 'differential', '--json'], run));
      expect(diff.snapshot.type).toBe('differential');
      expect(diff.snapshot.parent).toBe(ids.full2);
      expect(diff.snapshot.summary).toMatchObject({ filesChanged: 2, filesUnchanged: 1 });
      const out = s.path('typed-restore');
      await bamOk(['restore', diff.snapshot.id, '--target', out], run);
      expect(compareTrees(src, path.join(out, src))).toEqual([]);
    });
  });

  describe('restore', () => {
    const src = s.path('rs-src');
    let id = '';

    test('SNAPSHOT:/sub/path restores just that folder', async () => {
      for (const [rel, content] of Object.entries({ 'docs/a.txt': 'A', 'docs/notes/b.md': 'B', 'docs/c.log': 'C', 'music/song.mp3': pseudoRandomBytes(300_000, 3), 'top.txt': 'T' })) {
        fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
        fs.writeFileSync(path.join(src, rel), content);
      }
      id = summaryOf(await bamOk(['backup', src, '--json'], run)).snapshot.id;
      const out = s.path('rs-sub');
      await bamOk(['restore', `${id.slice(0, 10)}:${src}/docs`, '--target', out], run);
      expect(compareTrees(path.join(src, 'docs'), out, { root: false })).toEqual([]);
    });

    test('--include and --exclude choose what is restored', async () => {
      const inc = s.path('rs-include');
      await bamOk(['restore', id, '--target', inc, '--include', '*.txt'], run);
      const found = (dir: string): string[] =>
        (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => path.relative(src.slice(1), f)).sort();
      expect(found(inc)).toEqual(['docs/a.txt', 'top.txt']);
      const exc = s.path('rs-exclude');
      await bamOk(['restore', id, '--target', exc, '--exclude', 'music', '--exclude', '*.log'], run);
      expect(found(exc)).toEqual(['docs/a.txt', 'docs/notes/b.md', 'top.txt']);
    });

    test('an existing file is not overwritten without --overwrite (non-zero exit, file untouched); --overwrite replaces it', async () => {
      const out = s.path('rs-over');
      await bamOk(['restore', `${id}:${src}/docs`, '--target', out], run);
      const a = path.join(out, 'a.txt');
      fs.writeFileSync(a, 'edited since');
      const stamp = fs.statSync(a, { bigint: true }).mtimeNs;
      const refused = await bam(['restore', `${id}:${src}/docs`, '--target', out], run);
      expect(refused.code, describeRun(['restore', '(no --overwrite)'], refused)).not.toBe(0);
      expect(refused.stderr).toContain(a);
      expect(refused.stderr).toMatch(/--overwrite/);
      expect(hasStackTrace(refused.stderr)).toBe(false);
      expect(fs.readFileSync(a, 'utf8')).toBe('edited since');
      expect(fs.statSync(a, { bigint: true }).mtimeNs).toBe(stamp);
      await bamOk(['restore', `${id}:${src}/docs`, '--target', out, '--overwrite'], run);
      expect(fs.readFileSync(a, 'utf8')).toBe('A');
      expect(compareTrees(path.join(src, 'docs'), out, { root: false })).toEqual([]);
    });

    test('a target that is a file is refused with a clear message', async () => {
      const file = s.path('a-file');
      fs.writeFileSync(file, 'x');
      const r = await bam(['restore', id, '--target', file], run);
      expect(r.code, describeRun(['restore', '--target', file], r)).not.toBe(0);
      expect(r.stderr).toContain(file);
      expect(hasStackTrace(r.stderr)).toBe(false);
      expect(fs.readFileSync(file, 'utf8')).toBe('x');
    });
  });

  test('bam key add, list, remove and passwd', async () => {
    const khome = s.path('key-home');
    const pw = (name: string, value: string): string => {
      const f = s.path(name);
      fs.writeFileSync(f, value + '\n');
      return f;
    };
    const first = pw('pw-first', 'first-password-1');
    const second = pw('pw-second', 'second-password-2');
    const third = pw('pw-third', 'third-password-3');
    const withPw = (file: string, args: string[]): string[] => ['--password-file', file, ...args];
    await bamOk(withPw(first, ['init']), { home: khome });
    const keys = async (file: string): Promise<{ id: string; current: boolean }[]> =>
      JSON.parse((await bamOk(withPw(file, ['key', 'list', '--json']), { home: khome })).stdout) as { id: string; current: boolean }[];
    expect(await keys(first)).toHaveLength(1);

    const added = await bamOk(withPw(first, ['key', 'add', '--new-password-file', second]), { home: khome });
    expect(added.stdout).toMatch(/added key [0-9a-f]{10}/);
    const list2 = await keys(second);
    expect(list2).toHaveLength(2);
    expect(list2.filter((k) => k.current)).toHaveLength(1);
    const text = await bamOk(withPw(first, ['key', 'list']), { home: khome });
    expect(text.stdout.split('\n').filter((l) => /^[ *] +[0-9a-f]{10} /.test(l))).toHaveLength(2);

    // Remove the first key, using the second; the first password stops working.
    const firstId = list2.find((k) => !k.current)!.id;
    const selfRemove = await bam(withPw(second, ['key', 'remove', list2.find((k) => k.current)!.id.slice(0, 8)]), { home: khome });
    expect(selfRemove.code).not.toBe(0);
    expect(hasStackTrace(selfRemove.stderr)).toBe(false);
    await bamOk(withPw(second, ['key', 'remove', firstId.slice(0, 8)]), { home: khome });
    expect((await bam(withPw(first, ['snapshots']), { home: khome })).code).toBe(12);

    // passwd replaces the second password with the third.
    await bamOk(withPw(second, ['key', 'passwd', '--new-password-file', third]), { home: khome });
    expect((await bam(withPw(second, ['snapshots']), { home: khome })).code).toBe(12);
    expect(await keys(third)).toHaveLength(1);
    const missing = await bam(withPw(third, ['key', 'add', '--new-password-file', s.path('no-such-file')]), { home: khome });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(s.path('no-such-file'));
    expect(hasStackTrace(missing.stderr)).toBe(false);
  });

  test('bam unlock removes the stale lock of a killed backup, keeps a live lock unless --remove-all', async () => {
    const repo = path.join(home, 'backups');
    const src = s.dir('unlock-src');
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, `f${i}`), pseudoRandomBytes(2 * MiB, 200 + i));
    // A backup killed while it holds its lock leaves a stale lock file.
    const killed = startBam(['backup', src], { ...run, detached: true });
    const deadline = Date.now() + 20_000;
    while (repoFiles(repo, 'locks').length === 0 && Date.now() < deadline) await sleep(5);
    const pids = [killed.child.pid!, ...childPids(killed.child.pid!)];
    signalJob(killed.child, 'SIGKILL');
    await killed.result;
    await waitForExit(pids);
    expect(repoFiles(repo, 'locks')).toHaveLength(1);
    const u = await bamOk(['unlock'], run);
    expect(u.stdout).toMatch(/removed 1 lock/);
    expect(repoFiles(repo, 'locks')).toEqual([]);

    // A live lock (a running backup, paused with SIGSTOP) is kept by unlock and removed by unlock --remove-all.
    const live = startBam(['backup', src, '--type', 'full'], { ...run, detached: true });
    const deadline2 = Date.now() + 20_000;
    while (repoFiles(repo, 'locks').length === 0 && Date.now() < deadline2) await sleep(5);
    signalJob(live.child, 'SIGSTOP');
    try {
      const kept = await bamOk(['unlock'], run);
      expect(kept.stdout).toMatch(/removed 0 lock.*1 lock\(s\) of running processes kept/s);
      expect(repoFiles(repo, 'locks')).toHaveLength(1);
      const all = await bamOk(['unlock', '--remove-all'], run);
      expect(all.stdout).toMatch(/removed 1 lock/);
      expect(repoFiles(repo, 'locks')).toEqual([]);
    } finally {
      signalJob(live.child, 'SIGKILL');
      await live.result;
    }
  });
});
