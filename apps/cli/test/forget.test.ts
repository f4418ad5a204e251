/**
 * End-to-end tests of `bam forget`: the real launcher in a child process against a repository made by `bam init` and
 * `bam backup --time`, plus the terminal confirmation run in-process (a child process cannot be given a terminal).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend, Repository } from '@backup-manager/core-archive';
import { runCli } from '../src/cli.ts';
import { bam, bamOk, describeRun, hasStackTrace, jsonLines, pseudoRandomBytes, repoFiles, Scratch } from './support.ts';

const PASSWORD = 'forget-test-password';
/** Eight daily snapshots at noon UTC, 2026-09-27 (a Sunday) to 2026-10-04. */
const DAYS = ['2026-09-27', '2026-09-28', '2026-09-29', '2026-09-30', '2026-10-01', '2026-10-02', '2026-10-03', '2026-10-04'];

interface Snap {
  id: string;
  time: string;
  tags: string[];
}

const scratch = new Scratch('forget');
let template: string;
let src: string;
/** oldest first */
let snaps: Snap[];

/** A fresh copy of the seeded state folder (config, password, repository). */
function freshHome(name: string): string {
  const home = scratch.path(name);
  fs.cpSync(template, home, { recursive: true });
  return home;
}

function snapshotIds(home: string): string[] {
  return repoFiles(path.join(home, 'backups'), 'snapshots').map((f) => path.basename(f)).sort();
}

function idsOf(days: string[]): string[] {
  return snaps.filter((s) => days.some((d) => s.time.startsWith(d))).map((s) => s.id).sort();
}

/** Every repository file except locks, with its size: equal means nothing was changed. */
function repoState(home: string): string[] {
  const repo = path.join(home, 'backups');
  return (['data', 'index', 'snapshots', 'keys'] as const).flatMap((f) => repoFiles(repo, f).map((p) => `${p} ${fs.statSync(path.join(repo, p)).size}`));
}

beforeAll(async () => {
  template = scratch.dir('template');
  src = scratch.dir('src');
  const opts = { home: template, password: PASSWORD };
  await bamOk(['init', '--pack-size', '64KiB'], opts);
  snaps = [];
  for (const [i, day] of DAYS.entries()) {
    // a changing source: a new file each day, one that changes every other day, one that never changes
    fs.writeFileSync(path.join(src, `day-${i}.bin`), pseudoRandomBytes(40_000, i + 1));
    fs.writeFileSync(path.join(src, 'changing.bin'), pseudoRandomBytes(30_000, 100 + (i >> 1)));
    fs.writeFileSync(path.join(src, 'fixed.txt'), 'the same every day\n');
    const tags = i === 1 ? ['keep-me'] : i % 2 === 0 ? ['even'] : [];
    const args = ['backup', src, '--time', `${day}T12:00:00Z`, '--json', ...tags.flatMap((t) => ['--tag', t])];
    const r = await bamOk(args, opts);
    const summary = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string } };
    snaps.push({ id: summary.snapshot.id, time: `${day}T12:00:00Z`, tags });
  }
}, 120_000);

afterAll(() => scratch.cleanup());

describe('bam forget', () => {
  it('applies --keep-* flags, explains every kept snapshot, and removes the rest with --yes', async () => {
    const home = freshHome('flags');
    const args = ['forget', '--keep-daily', '3', '--keep-monthly', '2', '--yes', '--json'];
    const r = await bamOk(args, { home, password: PASSWORD });
    const lines = jsonLines(r.stdout) as { type: string }[];
    const plan = lines.find((l) => l.type === 'forget-plan') as unknown as {
      policySource: string; groups: { keep: { id: string; reasons: string[]; matches: string[] }[]; remove: { id: string }[] }[];
    };
    expect(plan.policySource).toBe('flags');
    expect(plan.groups).toHaveLength(1);
    const kept = plan.groups[0]!.keep;
    // daily: Oct 4, 3, 2; monthly: October's newest (Oct 4) and September's newest (Sep 30)
    expect(kept.map((k) => k.id).sort()).toEqual(idsOf(['2026-10-04', '2026-10-03', '2026-10-02', '2026-09-30']));
    for (const k of kept) expect(k.reasons.length).toBeGreaterThan(0);
    expect(kept.find((k) => k.id === idsOf(['2026-09-30'])[0])!.matches).toEqual(['monthly']);
    expect(kept.find((k) => k.id === idsOf(['2026-10-04'])[0])!.matches).toEqual(['daily', 'monthly']);
    const done = lines.find((l) => l.type === 'forget') as unknown as { removed: string[] };
    expect(done.removed.sort()).toEqual(idsOf(['2026-09-27', '2026-09-28', '2026-09-29', '2026-10-01']));
    expect(snapshotIds(home)).toEqual(idsOf(['2026-10-04', '2026-10-03', '2026-10-02', '2026-09-30']));
    // forget alone deletes snapshot files only; data stays until prune
    expect(repoFiles(path.join(home, 'backups'), 'data')).toEqual(repoFiles(path.join(template, 'backups'), 'data'));

    // the text form shows the same plan with reasons
    const again = freshHome('flags-text');
    const t = await bamOk(['forget', '--keep-daily', '3', '--keep-monthly', '2', '--dry-run'], { home: again, password: PASSWORD });
    expect(t.stdout).toContain('policy from the --keep-* flags: keep 3 daily, 2 monthly');
    expect(t.stdout).toMatch(/keep 4 snapshot\(s\)/);
    expect(t.stdout).toMatch(/remove 4 snapshot\(s\)/);
    expect(t.stdout).toMatch(/monthly snapshot/);
  });

  it('uses the config\'s retention when no policy flag is given', async () => {
    const home = freshHome('config');
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ retention: { daily: 2, weekly: 0, monthly: 0, yearly: 0, keep_tags: ['keep-me'] } }));
    const r = await bamOk(['forget', '--yes'], { home, password: PASSWORD });
    expect(r.stdout).toContain("policy from the config's retention");
    expect(r.stdout).toContain('keep 2 daily');
    // two newest days, plus the snapshot tagged keep-me
    expect(snapshotIds(home)).toEqual(idsOf(['2026-10-04', '2026-10-03', '2026-09-28']));
  });

  it('without a terminal refuses to act unless --yes is given (exit 2), after showing the plan', async () => {
    const home = freshHome('no-tty');
    const before = repoState(home);
    const args = ['forget', '--keep-last', '2'];
    const r = await bam(args, { home, password: PASSWORD });
    expect(r.code, describeRun(args, r)).toBe(2);
    expect(r.stdout).toMatch(/remove 6 snapshot\(s\)/);
    expect(r.stderr).toMatch(/--yes/);
    expect(r.stderr).toMatch(/no terminal/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(repoState(home)).toEqual(before);
    expect(repoFiles(path.join(home, 'backups'), 'locks')).toEqual([]);
  });

  it('--dry-run changes nothing, with --prune too', async () => {
    const home = freshHome('dry');
    const before = repoState(home);
    const r = await bamOk(['forget', '--keep-last', '1', '--prune', '--dry-run', '--max-unused', '0'], { home, password: PASSWORD });
    expect(r.stdout).toMatch(/remove 7 snapshot\(s\)/);
    expect(r.stdout).toMatch(/prune: .*frees about/);
    expect(r.stdout).toContain('dry run: nothing was changed');
    expect(repoState(home)).toEqual(before);
    expect(repoFiles(path.join(home, 'backups'), 'locks')).toEqual([]);
  });

  it('--prune removes the snapshots and the data only they used; the kept ones restore', async () => {
    const home = freshHome('prune');
    const repoDir = path.join(home, 'backups');
    const args = ['forget', '--keep-last', '2', '--prune', '--max-unused', '0', '--yes', '--json'];
    const sizeOf = (): number => (['data', 'index', 'snapshots'] as const).flatMap((f) => repoFiles(repoDir, f)).reduce((n, p) => n + fs.statSync(path.join(repoDir, p)).size, 0);
    const before = sizeOf();
    const r = await bamOk(args, { home, password: PASSWORD });
    const lines = jsonLines(r.stdout) as { type: string }[];
    const plan = lines.find((l) => l.type === 'forget-plan') as unknown as { prune: { estimatedBytesFreed: number; empty: boolean } };
    expect(plan.prune.empty).toBe(false);
    expect(plan.prune.estimatedBytesFreed).toBeGreaterThan(0);
    const done = lines.find((l) => l.type === 'forget') as unknown as { removed: string[]; prune: { bytesFreed: number; packsDeleted: number } };
    expect(done.removed).toHaveLength(6);
    expect(done.prune.packsDeleted).toBeGreaterThan(0);
    const snapshotBytes = snaps.filter((s) => done.removed.includes(s.id)).reduce((n, s) => n + fs.statSync(path.join(template, 'backups', 'snapshots', s.id)).size, 0);
    expect(done.prune.bytesFreed + snapshotBytes).toBe(before - sizeOf());
    expect(snapshotIds(home)).toEqual(idsOf(['2026-10-04', '2026-10-03']));

    // the older kept snapshot restores, every file checked against its recorded SHA-256 (the newest: below)
    const oldest = idsOf(['2026-10-03'])[0]!;
    const target = scratch.path('restore-after-prune');
    const rr = await bamOk(['restore', oldest, '--target', target], { home, password: PASSWORD });
    expect(rr.stdout).toContain('every restored file matches its SHA-256');
    expect(fs.readdirSync(path.join(target, src)).sort()).toEqual(['changing.bin', 'day-0.bin', 'day-1.bin', 'day-2.bin', 'day-3.bin', 'day-4.bin', 'day-5.bin', 'day-6.bin', 'fixed.txt']);
    const newest = await bamOk(['dump', idsOf(['2026-10-04'])[0]!, path.join(src, 'day-7.bin')], { home, password: PASSWORD });
    expect(newest.stdoutBytes.equals(pseudoRandomBytes(40_000, 8))).toBe(true);
    // and there is nothing left to prune
    const p = await bamOk(['prune', '--dry-run', '--max-unused', '0', '--json'], { home, password: PASSWORD });
    expect((jsonLines(p.stdout).find((l) => (l as { type: string }).type === 'prune-plan') as { empty: boolean }).empty).toBe(true);
  });

  it('with an empty policy removes nothing and says so', async () => {
    const home = freshHome('empty');
    const before = repoState(home);
    const r = await bamOk(['forget', '--keep-daily', '0', '--yes'], { home, password: PASSWORD });
    expect(r.stdout).toContain('policy is empty');
    expect(r.stdout).toContain('nothing was removed');
    expect(repoState(home)).toEqual(before);
  });

  it('considers only the snapshots matching --tag and --path, and groups by --group-by', async () => {
    const home = freshHome('filters');
    const r = await bamOk(['forget', '--tag', 'even', '--path', src, '--keep-last', '1', '--yes'], { home, password: PASSWORD });
    expect(r.stdout).toMatch(/remove 3 snapshot\(s\)/);
    // the four "even" snapshots are Sep 27, 29, Oct 1, 3: only Oct 3 of them stays, the others are untouched
    expect(snapshotIds(home)).toEqual(idsOf(['2026-09-28', '2026-09-30', '2026-10-02', '2026-10-03', '2026-10-04']));

    const grouped = freshHome('group-by');
    const g = await bamOk(['forget', '--group-by', 'tags', '--keep-last', '1', '--dry-run', '--json'], { home: grouped, password: PASSWORD });
    const plan = jsonLines(g.stdout).find((l) => (l as { type: string }).type === 'forget-plan') as { groups: { key: { tags?: string[] } }[] };
    expect(plan.groups.map((x) => JSON.stringify(x.key.tags)).sort()).toEqual(['["even"]', '["keep-me"]', '[]']);

    const bad = await bam(['forget', '--keep-daily', 'seven'], { home, password: PASSWORD });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--keep-daily needs a whole number/);
    const badWithin = await bam(['forget', '--keep-within', '2w'], { home, password: PASSWORD });
    expect(badWithin.code).toBe(2);
    expect(badWithin.stderr).toMatch(/14d/);
    expect(hasStackTrace(badWithin.stderr)).toBe(false);
  });

  it('removes exactly the snapshots named by id or prefix, and refuses ids together with a policy', async () => {
    const home = freshHome('ids');
    const [a, b] = [snaps[2]!.id, snaps[5]!.id];
    const r = await bamOk(['forget', a.slice(0, 8), b, '--yes'], { home, password: PASSWORD });
    expect(r.stdout).toContain('remove the 2 snapshot(s) named on the command line');
    expect(snapshotIds(home)).toEqual(snaps.map((s) => s.id).filter((id) => id !== a && id !== b).sort());
    const mixed = await bam(['forget', a, '--keep-last', '1'], { home, password: PASSWORD });
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/either snapshot ids/);
    const unknown = await bam(['forget', 'ffffffff', '--yes'], { home, password: PASSWORD });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no snapshot id starts with ffffffff/);
  });

  it('asks on a terminal, and acts only on yes', async () => {
    const run = async (answer: string): Promise<{ code: number; err: string; home: string }> => {
      const home = freshHome(`tty-${answer.trim() || 'empty'}`);
      const stdin = Object.assign(new PassThrough(), { isTTY: true });
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let err = '';
      stderr.on('data', (b: Buffer) => (err += b.toString()));
      stdout.resume();
      const env = { BACKUP_MANAGER_HOME: home, BACKUP_MANAGER_PASSWORD: PASSWORD, TZ: 'UTC', PATH: process.env.PATH ?? '' };
      const cli = runCli(['forget', '--keep-last', '3'], env, { stdin, stdout, stderr });
      // answer once the question is up
      for (let i = 0; i < 400 && !err.includes('[y/N]'); i++) await new Promise((r) => setTimeout(r, 25));
      stdin.write(answer);
      return { code: await cli.done, err, home };
    };
    const no = await run('n\n');
    expect(no.err).toContain('Remove 5 snapshot(s)? [y/N]');
    expect(no.code).toBe(1);
    expect(snapshotIds(no.home)).toHaveLength(8);
    const yes = await run('y\n');
    expect(yes.code).toBe(0);
    expect(snapshotIds(yes.home)).toEqual(idsOf(['2026-10-04', '2026-10-03', '2026-10-02']));
  });
});

describe('an append-only repository', () => {
  it('refuses forget, forget --prune, prune and their dry runs before showing any plan', async () => {
    const home = scratch.dir('append-only');
    const opts = { home, password: PASSWORD };
    await bamOk(['init', '--append-only'], opts);
    await bamOk(['backup', src, '--time', '2026-10-01T12:00:00Z'], opts);
    await bamOk(['backup', src, '--time', '2026-10-02T12:00:00Z'], opts);
    const before = repoState(home);
    for (const args of [
      ['forget', '--keep-last', '1', '--yes'],
      ['forget', '--keep-last', '1', '--prune', '--yes'],
      ['forget', '--keep-last', '1', '--dry-run'],
      ['prune', '--yes'],
      ['prune', '--dry-run'],
    ]) {
      const r = await bam(args, opts);
      expect(r.code, describeRun(args, r)).toBe(1);
      expect(r.stderr).toMatch(/append-only/);
      expect(r.stderr).toMatch(/ransomware/);
      expect(r.stdout).not.toMatch(/keep|remove|prune:/);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
    expect(repoState(home)).toEqual(before);
    const repo = await Repository.open(new LocalBackend(path.join(home, 'backups')), PASSWORD);
    expect(repo.config.appendOnly).toBe(true);
    repo.close();
  });
});
