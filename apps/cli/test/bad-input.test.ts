/**
 * Issue requirement 5, bad input: wrong passwords, missing repositories, usage errors, a repository locked by a
 * live process, damaged repository files, missing sources, invalid config files and unreadable source files. Each
 * gives its documented exit code and a readable message, never a stack trace, and writes nothing it should not.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLI_ROOT, NOBODY, Scratch, bam, bamOk, describeRun, flipByte, hasStackTrace, jsonLines, listingWithTimes, pseudoRandomBytes, repoFiles } from './support.ts';
import type { RunResult } from './support.ts';

const PASSWORD = 'bad-input-pw-2a6f';

function expectClean(r: RunResult, args: string[]): void {
  expect(hasStackTrace(r.stderr), describeRun(args, r)).toBe(false);
  expect(r.stderr.trim(), describeRun(args, r)).not.toBe('');
}

describe('bad input', () => {
  const s = new Scratch('bad-input');
  const home = s.path('home');
  const repo = path.join(home, 'backups');
  const run = { home, password: PASSWORD };
  const src = s.dir('src');
  let pristine = '';

  beforeAll(async () => {
    fs.mkdirSync(path.join(src, 'docs'));
    fs.writeFileSync(path.join(src, 'docs', 'letter.txt'), 'Dear reader,\n'.repeat(100));
    fs.writeFileSync(path.join(src, 'big.bin'), pseudoRandomBytes(3 * 1024 * 1024, 42));
    await bamOk(['init', '--pack-size', '1MiB'], run);
    await bamOk(['backup', src], run);
    pristine = s.path('pristine');
    fs.cpSync(repo, pristine, { recursive: true, preserveTimestamps: true });
  }, 60_000);
  afterAll(() => s.cleanup());

  /** A fresh copy of the repository after the first backup, to damage. */
  const copyOfRepo = (name: string): string => {
    const p = s.path(name);
    fs.cpSync(pristine, p, { recursive: true, preserveTimestamps: true });
    return p;
  };

  test('a wrong password: exit 12 and nothing is written to the repository', async () => {
    const before = listingWithTimes(repo);
    const cases = [['backup', src], ['snapshots'], ['restore', 'latest', '--target', s.path('never')], ['key', 'passwd', '--new-password-file', '/dev/null'], ['unlock'], ['ls', 'latest']];
    for (const args of cases) {
      const r = await bam(args, { home, password: 'definitely-wrong' });
      expect(r.code, describeRun(args, r)).toBe(12);
      expect(r.stderr).toMatch(/wrong password/);
      expectClean(r, args);
    }
    expect(listingWithTimes(repo)).toEqual(before);
    expect(fs.existsSync(s.path('never'))).toBe(false);
  });

  test('no repository: exit 10 and a message to run bam init', async () => {
    for (const args of [['backup', src], ['snapshots'], ['restore', 'latest', '--target', s.path('x')], ['ls', 'latest'], ['key', 'list']]) {
      const r = await bam(['--repo', s.path('nothing-here'), ...args], run);
      expect(r.code, describeRun(args, r)).toBe(10);
      expect(r.stderr).toMatch(/bam init/);
      expectClean(r, args);
    }
    expect(fs.existsSync(s.path('nothing-here'))).toBe(false);
  });

  test('usage errors (unknown flag or command, missing argument, bad flag value): exit 2', async () => {
    const cases = [
      ['backup', '--frobnicate', src],
      ['--no-such-global', 'snapshots'],
      ['frobnicate'],
      ['restore'],
      ['ls'],
      ['key', 'remove'],
      ['backup', src, '--exclude'],
      ['backup', src, '--type', 'sometimes'],
      ['backup', src, '--time', 'yesterday-ish'],
      ['backup', src, '--exclude-larger-than', 'lots'],
      ['init', '--repo', s.path('never-made'), '--pack-size', 'banana'],
      ['snapshots', '--latest', 'many'],
      ['restore', 'latest'],
      ['backup', '--stdin'],
    ];
    for (const args of cases) {
      const r = await bam(args, run);
      expect(r.code, describeRun(args, r)).toBe(2);
      expectClean(r, args);
    }
    expect(fs.existsSync(s.path('never-made'))).toBe(false);
  });

  test('a repository locked by a live process: exit 11 naming the holder and its pid', async () => {
    const holder: ChildProcess = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { LocalBackend, Repository, lockRepository } from '@backup-manager/core-archive';
         const repo = await Repository.open(new LocalBackend(process.argv[1]), process.env.BACKUP_MANAGER_PASSWORD);
         await lockRepository(repo, { exclusive: true, operation: 'e2e-holder' });
         process.stdout.write('locked\\n');
         setInterval(() => {}, 1000);`,
        repo,
      ],
      { cwd: CLI_ROOT, env: { ...process.env, BACKUP_MANAGER_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
        holder.on('exit', (c) => reject(new Error(`the lock holder exited with ${c}`)));
      });
      for (const args of [['backup', src], ['key', 'passwd', '--new-password-file', '/dev/null'], ['restore', 'latest', '--target', s.path('locked-restore')]]) {
        const r = await bam(args, run);
        expect(r.code, describeRun(args, r)).toBe(11);
        expect(r.stderr).toMatch(new RegExp(`locked by e2e-holder .*pid ${holder.pid}\\b`));
        expectClean(r, args);
      }
      expect(repoFiles(repo, 'locks')).toHaveLength(1);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('close', r));
    }
    // Its process is gone: the lock is stale and the next backup proceeds without `bam unlock`.
    await bamOk(['backup', src], run);
    expect(repoFiles(repo, 'locks')).toEqual([]);
  });

  describe('damaged repository files give a typed error naming the file, never a stack trace', () => {
    /** Cuts the file in half, or flips a byte: in the middle, or (packs) in the first blob's ciphertext. */
    const damage = (file: string, how: 'truncate' | 'flip', at?: number): void => {
      const size = fs.statSync(file).size;
      if (how === 'truncate') fs.truncateSync(file, Math.floor(size / 2));
      else flipByte(file, at ?? Math.floor(size / 2));
    };

    for (const how of ['truncate', 'flip'] as const) {
      test(`snapshot file (${how})`, async () => {
        const r0 = copyOfRepo(`snap-${how}`);
        const [file] = repoFiles(r0, 'snapshots');
        damage(path.join(r0, file!), how);
        const id = path.basename(file!);
        for (const args of [['snapshots'], ['restore', 'latest', '--target', s.path(`t-snap-${how}`)], ['ls', id.slice(0, 8)], ['dump', 'latest', src]]) {
          const r = await bam(['--repo', r0, ...args], run);
          // The listing leaves the damaged snapshot out and says so (exit 3, partial); the others cannot go on (1).
          expect(r.code, describeRun(args, r)).toBe(args[0] === 'snapshots' ? 3 : 1);
          expect(r.stderr).toMatch(new RegExp(`snapshot ${id.slice(0, 8)}[0-9a-f]*\\b.*damaged`));
          expectClean(r, args);
        }
      });

      test(`index file (${how})`, async () => {
        const r0 = copyOfRepo(`index-${how}`);
        const files = repoFiles(r0, 'index');
        expect(files.length).toBeGreaterThan(0);
        for (const f of files) damage(path.join(r0, f), how);
        // The local copy of the index, made before the damage, still serves a restore (`bam verify` reports the
        // damage: it never uses the copy).
        await bamOk(['--repo', r0, 'restore', 'latest', '--target', s.path(`t-index-cached-${how}`)], run);
        for (const args of [['restore', 'latest', '--target', s.path(`t-index-${how}`)], ['ls', 'latest'], ['dump', 'latest', path.join(src, 'big.bin')]]) {
          // Without it (another machine, or the cache deleted), the damaged index files are met.
          fs.rmSync(path.join(home, 'cache'), { recursive: true, force: true });
          const r = await bam(['--repo', r0, ...args], run);
          expect(r.code, describeRun(args, r)).toBe(1);
          expect(r.stderr).toMatch(/index [0-9a-f]{8,}.*damaged/);
          expect(files.some((f) => r.stderr.includes(path.basename(f).slice(0, 12)))).toBe(true);
          expectClean(r, args);
        }
      });

      test(`pack files (${how})`, async () => {
        const r0 = copyOfRepo(`pack-${how}`);
        const packs = repoFiles(r0, 'data');
        for (const f of packs) damage(path.join(r0, f), how, 20);
        const names = packs.map((f) => path.basename(f).slice(0, 12));
        const restore = ['restore', 'latest', '--target', s.path(`t-pack-${how}`)];
        const dump = ['dump', 'latest', path.join(src, 'big.bin')];
        for (const args of [restore, ['ls', 'latest'], dump]) {
          const r = await bam(['--repo', r0, ...args], run);
          expect(r.code, describeRun(args, r)).not.toBe(0);
          expect(r.stderr).toMatch(/pack [0-9a-f]{8,}/);
          expect(names.some((n) => r.stderr.includes(n)), describeRun(args, r)).toBe(true);
          expectClean(r, args);
        }
      });
    }

    test('only the data pack of one file damaged: that file is reported, the rest restores', async () => {
      const r0 = copyOfRepo('one-pack');
      // The largest pack holds file data (big.bin); tree packs are tiny.
      const packs = repoFiles(r0, 'data').map((f) => ({ f, size: fs.statSync(path.join(r0, f)).size })).sort((a, b) => b.size - a.size);
      flipByte(path.join(r0, packs[0]!.f), Math.floor(packs[0]!.size / 3));
      const target = s.path('t-one-pack');
      const args = ['restore', 'latest', '--target', target];
      const r = await bam(['--repo', r0, ...args], run);
      expect(r.code, describeRun(args, r)).not.toBe(0);
      expect(r.stderr).toContain(path.join(src, 'big.bin'));
      expect(r.stderr).toContain(`pack ${path.basename(packs[0]!.f).slice(0, 12)}`);
      expectClean(r, args);
      expect(fs.readFileSync(path.join(target, src, 'docs', 'letter.txt'), 'utf8')).toBe(fs.readFileSync(path.join(src, 'docs', 'letter.txt'), 'utf8'));
      const dump = await bam(['--repo', r0, 'dump', 'latest', path.join(src, 'big.bin')], run);
      expect(dump.code).toBe(1);
      expect(dump.stderr).toMatch(/pack [0-9a-f]{12}.*failed authentication|damaged/);
      expectClean(dump, ['dump']);
    });
  });

  test('a missing source path: exit 1 naming it, nothing written', async () => {
    const before = listingWithTimes(repo);
    const missing = path.join(s.root, 'no', 'such', 'folder');
    for (const args of [['backup', missing], ['backup', src, missing]]) {
      const r = await bam(args, run);
      expect(r.code, describeRun(args, r)).toBe(1);
      expect(r.stderr).toContain(missing);
      expect(r.stderr).toMatch(/does not exist/);
      expectClean(r, args);
    }
    expect(listingWithTimes(repo)).toEqual(before);
  });

  test('an invalid config.json: config validate and backup show the exact path and the fix', async () => {
    const cfgHome = s.dir('cfg-home');
    fs.writeFileSync(path.join(cfgHome, 'config.json'), JSON.stringify({ sources: [{ path: src, priority: 'urgent', frequency: 'daily' }] }, null, 2));
    const cfgRun = { home: cfgHome, password: PASSWORD };
    const validate = await bam(['config', 'validate'], cfgRun);
    const backup = await bam(['backup'], cfgRun);
    for (const [args, r] of [[['config', 'validate'], validate], [['backup'], backup]] as const) {
      expect(r.code, describeRun([...args], r)).toBe(1);
      expect(r.stderr).toContain('sources[0].priority');
      expect(r.stderr).toMatch(/must be one of high, medium, low/);
      expect(r.stderr).toContain('sources[0].frequency');
      expect(r.stderr).toMatch(/unknown key/);
      expectClean(r, [...args]);
    }
    const json = await bam(['config', 'validate', '--json'], cfgRun);
    expect(json.code).toBe(1);
    const doc = jsonLines(json.stdout)[0] as { valid: boolean; issues: { path: string }[] };
    expect(doc.valid).toBe(false);
    expect(doc.issues.map((i) => i.path).sort()).toEqual(['sources[0].frequency', 'sources[0].priority']);
    expect(fs.existsSync(path.join(cfgHome, 'backups'))).toBe(false);
  });

  test('unreadable files (run as an unprivileged user): exit 3, warnings name them, the snapshot holds the rest', async () => {
    const base = s.dir('nobody');
    const nHome = path.join(base, 'home');
    const nSrc = path.join(base, 'src');
    fs.mkdirSync(path.join(nSrc, 'open'), { recursive: true });
    fs.mkdirSync(path.join(nSrc, 'closed'));
    fs.writeFileSync(path.join(nSrc, 'open', 'readable.txt'), 'anyone may read this\n');
    fs.writeFileSync(path.join(nSrc, 'closed', 'inside.txt'), 'in a closed folder\n');
    fs.writeFileSync(path.join(nSrc, 'secret.txt'), 'nobody may read this\n');
    fs.mkdirSync(nHome);
    for (const p of [base, nHome, nSrc, path.join(nSrc, 'open'), path.join(nSrc, 'open', 'readable.txt'), path.join(nSrc, 'closed'), path.join(nSrc, 'closed', 'inside.txt'), path.join(nSrc, 'secret.txt')]) {
      fs.chownSync(p, NOBODY, NOBODY);
    }
    fs.chmodSync(path.join(nSrc, 'secret.txt'), 0o000);
    fs.chmodSync(path.join(nSrc, 'closed'), 0o000);
    const as = { uid: NOBODY, gid: NOBODY };
    const nRun = { home: nHome, password: PASSWORD, as };
    await bamOk(['init'], nRun);
    const r = await bam(['backup', nSrc], nRun);
    expect(r.code, describeRun(['backup', '(as nobody)'], r)).toBe(3);
    expect(r.stderr).toContain(path.join(nSrc, 'secret.txt'));
    expect(r.stderr).toContain(path.join(nSrc, 'closed'));
    expectClean(r, ['backup']);
    const ls = await bamOk(['ls', 'latest', '--json'], nRun);
    const listed = (jsonLines(ls.stdout) as { path?: string }[]).map((n) => n.path).filter((p): p is string => p?.startsWith(nSrc) === true);
    expect(listed.sort()).toEqual([nSrc, path.join(nSrc, 'open'), path.join(nSrc, 'open', 'readable.txt')]);
    const target = path.join(base, 'restored');
    const restored = await bam(['restore', 'latest', '--target', target], nRun);
    expect(restored.code, describeRun(['restore', '(as nobody)'], restored)).toBe(0);
    expect(fs.readFileSync(path.join(target, nSrc, 'open', 'readable.txt'), 'utf8')).toBe('anyone may read this\n');
    expect(fs.statSync(path.join(target, nSrc, 'open', 'readable.txt')).uid).toBe(NOBODY);
  });
});
