/**
 * Issue requirement 2, the quick start: `bam init` with nothing configured makes and uses a password file; the
 * other password sources and repository selectors work; `bam backup` with no paths runs the configured sources,
 * highest priority first; every operation leaves one JSON line in backup.log; no secret is ever printed or logged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Scratch, bam, describeRun, hasStackTrace, jsonLines } from './support.ts';
import type { RunOptions, RunResult } from './support.ts';

const PASSWORD = 'qs-Secret-4f9b2d7e';
const FILE_PASSWORD = 'qs-FilePass-91c3aa';

describe('quick start', () => {
  const s = new Scratch('quickstart');
  const seen: RunResult[] = [];
  const secrets = new Set<string>([PASSWORD, FILE_PASSWORD]);
  /** bam, remembering every output so the last test can look for secrets in all of it */
  const run = async (args: string[], options: RunOptions, expected?: number): Promise<RunResult> => {
    const r = await bam(args, options);
    seen.push(r);
    if (expected !== undefined) expect(r.code, describeRun(args, r)).toBe(expected);
    expect(hasStackTrace(r.stderr), describeRun(args, r)).toBe(false);
    return r;
  };
  const src = s.dir('src');
  fs.writeFileSync(path.join(src, 'notes.txt'), 'quick start\n');
  afterAll(() => s.cleanup());

  test('bam init with no password configured generates ~/.backup-manager/password (0600), warns, and later commands use it', async () => {
    const home = s.path('qs-home');
    const init = await run(['init'], { home }, 0);
    const pwFile = path.join(home, 'password');
    expect(fs.existsSync(pwFile)).toBe(true);
    expect(fs.statSync(pwFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(home).mode & 0o077).toBe(0);
    const generated = fs.readFileSync(pwFile, 'utf8').trim();
    secrets.add(generated);
    expect(generated.length).toBeGreaterThanOrEqual(20);
    expect(init.stderr).toContain(pwFile);
    expect(init.stderr).toMatch(/keep a copy/i);
    expect(fs.existsSync(path.join(home, 'backups', 'config'))).toBe(true);

    await run(['backup', src], { home }, 0);
    const snaps = await run(['snapshots', '--json'], { home }, 0);
    expect(JSON.parse(snaps.stdout)).toHaveLength(1);
    // The generated password really is the repository's: it opens it when given explicitly, and a wrong one does not.
    await run(['snapshots'], { home, password: generated }, 0);
    await run(['snapshots'], { home, password: 'not-it' }, 12);
    // A second init finds the repository and leaves the password alone.
    const again = await run(['init'], { home }, 1);
    expect(again.stderr).toMatch(/already exists/);
    expect(fs.readFileSync(pwFile, 'utf8').trim()).toBe(generated);
  });

  test('a repeated init does not replace a working password source with a new random password file', async () => {
    const home = s.path('env-home');
    await run(['init'], { home, password: PASSWORD }, 0);
    expect(fs.existsSync(path.join(home, 'password'))).toBe(false);
    const again = await run(['init'], { home }, 1);
    expect(again.stderr).toMatch(/already exists/);
    // No password file that cannot open the repository was left behind.
    expect(fs.existsSync(path.join(home, 'password'))).toBe(false);
  });

  test('BACKUP_MANAGER_PASSWORD, --password-file and --password-command open the repository', async () => {
    const home = s.path('pw-home');
    await run(['init'], { home, password: PASSWORD }, 0);
    await run(['backup', src], { home, password: PASSWORD }, 0);
    const pwFile = s.path('pw.txt');
    fs.writeFileSync(pwFile, PASSWORD + '\n', { mode: 0o600 });
    const wrongFile = s.path('wrong.txt');
    fs.writeFileSync(wrongFile, FILE_PASSWORD + '\n', { mode: 0o600 });

    await run(['snapshots'], { home, password: PASSWORD }, 0);
    await run(['--password-file', pwFile, 'snapshots'], { home }, 0);
    await run(['--password-command', `cat ${pwFile}`, 'snapshots'], { home }, 0);
    // --password-file wins over the environment, and each source really is used (a wrong one fails).
    await run(['--password-file', pwFile, 'snapshots'], { home, password: 'wrong' }, 0);
    await run(['--password-file', wrongFile, 'snapshots'], { home, password: PASSWORD }, 12);
    await run(['--password-command', `cat ${wrongFile}`, 'snapshots'], { home }, 12);
    const failing = await run(['--password-command', 'exit 3', 'snapshots'], { home }, 1);
    expect(failing.stderr).toMatch(/password command failed/);
    const none = await run(['snapshots'], { home }, 1);
    expect(none.stderr).toMatch(/no repository password/);
  });

  test('--repo and BACKUP_MANAGER_REPO choose the repository, --repo first', async () => {
    const home = s.path('repo-home');
    const repoA = s.path('repo-a');
    const repoB = s.path('repo-b');
    await run(['init', '--repo', repoA], { home, password: PASSWORD }, 0);
    await run(['init'], { home, password: PASSWORD, env: { BACKUP_MANAGER_REPO: repoB } }, 0);
    expect(fs.existsSync(path.join(repoA, 'config'))).toBe(true);
    expect(fs.existsSync(path.join(repoB, 'config'))).toBe(true);
    expect(fs.existsSync(path.join(home, 'backups'))).toBe(false);

    await run(['--repo', repoA, 'backup', src], { home, password: PASSWORD }, 0);
    const count = async (options: RunOptions, args: string[] = []): Promise<number> =>
      (JSON.parse((await run([...args, 'snapshots', '--json'], options, 0)).stdout) as unknown[]).length;
    expect(await count({ home, password: PASSWORD }, ['--repo', repoA])).toBe(1);
    expect(await count({ home, password: PASSWORD, env: { BACKUP_MANAGER_REPO: repoA } })).toBe(1);
    expect(await count({ home, password: PASSWORD, env: { BACKUP_MANAGER_REPO: repoB } })).toBe(0);
    expect(await count({ home, password: PASSWORD, env: { BACKUP_MANAGER_REPO: repoB } }, ['--repo', repoA])).toBe(1);
    // A relative --repo is relative to the working directory, like any path argument.
    expect(await count({ home, password: PASSWORD, cwd: s.root }, ['--repo', 'repo-a'])).toBe(1);
    // Without either, the default repository (in BACKUP_MANAGER_HOME) does not exist.
    const missing = await run(['snapshots'], { home, password: PASSWORD }, 10);
    expect(missing.stderr).toMatch(/bam init/);
  });

  test('backup with no paths backs up the configured sources, high priority first, each into its own snapshot', async () => {
    const home = s.dir('cfg-home');
    const low = s.dir('low-source');
    const high = s.dir('high-source');
    fs.writeFileSync(path.join(low, 'l.txt'), 'low\n');
    fs.writeFileSync(path.join(high, 'h.txt'), 'high\n');
    const repo = s.path('cfg-repo');
    fs.writeFileSync(
      path.join(home, 'config.json'),
      JSON.stringify({
        sources: [
          { path: low, priority: 'low', tags: ['lowtag'] },
          { path: high, priority: 'high', tags: ['hightag'] },
        ],
        destinations: { local: { path: repo } },
      }),
    );
    await run(['init'], { home, password: PASSWORD }, 0);
    expect(fs.existsSync(path.join(repo, 'config'))).toBe(true);
    const b = await run(['backup', '--json'], { home, password: PASSWORD }, 0);
    const summaries = jsonLines(b.stdout).filter((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string; paths: string[]; tags: string[] } }[];
    expect(summaries.map((x) => x.snapshot.paths)).toEqual([[high], [low]]);
    expect(summaries.map((x) => x.snapshot.tags)).toEqual([['hightag'], ['lowtag']]);
    const list = JSON.parse((await run(['snapshots', '--json'], { home, password: PASSWORD }, 0)).stdout) as { id: string; paths: string[] }[];
    expect(list.map((x) => x.paths)).toEqual([[high], [low]]);
    expect(list.map((x) => x.id)).toEqual(summaries.map((x) => x.snapshot.id));
  });

  test('a missing configured source fails alone: the other sources are still backed up, exit 1', async () => {
    const home = s.dir('cfg2-home');
    const present = s.dir('present-source');
    fs.writeFileSync(path.join(present, 'p.txt'), 'present\n');
    const gone = s.path('gone-source');
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ sources: [{ path: gone, priority: 'high' }, { path: present, priority: 'low' }] }));
    await run(['init'], { home, password: PASSWORD }, 0);
    const b = await run(['backup'], { home, password: PASSWORD }, 1);
    expect(b.stderr).toContain(gone);
    const list = JSON.parse((await run(['snapshots', '--json'], { home, password: PASSWORD }, 0)).stdout) as { paths: string[] }[];
    expect(list.map((x) => x.paths)).toEqual([[present]]);
  });

  test('every operation appends one JSON line to backup.log: time, user, host, operation, outcome, durationMs, …', async () => {
    const home = s.path('log-home');
    const log = path.join(home, 'backup.log');
    const lines = (): Record<string, unknown>[] => (fs.existsSync(log) ? (jsonLines(fs.readFileSync(log, 'utf8')) as Record<string, unknown>[]) : []);
    const steps: { args: string[]; code: number; operation: string; password?: string }[] = [
      { args: ['init'], code: 0, operation: 'init' },
      { args: ['backup', src], code: 0, operation: 'backup' },
      { args: ['snapshots'], code: 0, operation: 'snapshots' },
      { args: ['ls', 'latest'], code: 0, operation: 'ls' },
      { args: ['restore', 'latest', '--target', s.path('log-restore')], code: 0, operation: 'restore' },
      { args: ['dump', 'latest', path.join(src, 'notes.txt')], code: 0, operation: 'dump' },
      { args: ['key', 'list'], code: 0, operation: 'key list' },
      { args: ['unlock'], code: 0, operation: 'unlock' },
      { args: ['backup', s.path('no-such-dir')], code: 1, operation: 'backup' },
      { args: ['backup', src], code: 12, operation: 'backup', password: 'wrong-password' },
    ];
    for (const step of steps) {
      const before = lines().length;
      const started = Date.now();
      await run(step.args, { home, password: step.password ?? PASSWORD }, step.code);
      const after = lines();
      expect(after.length, `bam ${step.args.join(' ')} appends one line`).toBe(before + 1);
      const e = after.at(-1)!;
      expect(e.operation).toBe(step.operation);
      expect(Date.parse(e.time as string)).toBeGreaterThanOrEqual(started - 1000);
      expect(typeof e.user).toBe('string');
      expect(typeof e.host).toBe('string');
      expect(typeof e.durationMs).toBe('number');
      expect(e.outcome).toBe(step.code === 0 ? 'success' : 'failure');
      if (step.code !== 0) expect(e.errorCode).toBe(step.code === 12 ? 'WRONG_PASSWORD' : 'SOURCE_NOT_FOUND');
    }
    const backups = lines().filter((e) => e.operation === 'backup' && e.outcome === 'success');
    expect(backups).toHaveLength(1);
    expect(backups[0]!.snapshot).toMatch(/^[0-9a-f]{64}$/);
    expect(backups[0]!.counts).toMatchObject({ filesNew: 1, filesChanged: 0 });
    const restore = lines().find((e) => e.operation === 'restore')!;
    expect(restore.snapshot).toBe(backups[0]!.snapshot);
    expect(fs.statSync(log).mode & 0o077).toBe(0);
  });

  test('no secret ever appears in backup.log, stdout or stderr', () => {
    expect(seen.length).toBeGreaterThan(30);
    const logs = fs
      .readdirSync(s.root)
      .filter((d) => d.endsWith('home'))
      .map((d) => path.join(s.root, d, 'backup.log'))
      .filter((f) => fs.existsSync(f));
    expect(logs.length).toBeGreaterThan(3);
    const texts = [...seen.flatMap((r) => [r.stdout, r.stderr]), ...logs.map((f) => fs.readFileSync(f, 'utf8'))];
    for (const secret of secrets) {
      const leaks = texts.filter((t) => t.includes(secret));
      expect(leaks, `the secret ${secret.slice(0, 3)}… leaked`).toEqual([]);
    }
  });
});
