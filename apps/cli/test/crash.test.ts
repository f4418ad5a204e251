/**
 * Issue requirement 3, crash safety: `bam backup` of a medium tree killed with SIGKILL at seeded random moments
 * never damages what was there before, the next `bam backup` works without `bam unlock`, and every snapshot that
 * exists restores to exactly the tree it recorded. Ctrl-C (SIGINT) stops a backup cleanly: exit 130, no snapshot,
 * the lock released at once.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { Scratch, bam, bamOk, childPids, describeRun, hasStackTrace, jsonLines, repoFiles, rng, signalJob, sleep, startBam, waitForExit } from './support.ts';
import type { RunResult } from './support.ts';

const PASSWORD = 'crash-pw-0b5e11';
const SEED = Number(process.env.BAM_E2E_SEED ?? 20261122);
const KILL_RUNS = 5;
const MiB = 1024 * 1024;

/** 3000 files, about 100 MB: mostly small files, some of 100 KB and a few of 1–3 MiB, in 30 folders. */
function makeMediumTree(root: string): number {
  let total = 0;
  for (let d = 0; d < 30; d++) {
    const dir = path.join(root, 'static', `dir${String(d).padStart(2, '0')}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const i = d * 100 + f;
      const size = i % 100 === 7 ? MiB + (i % 3) * 700_000 : i % 10 === 0 ? 100_000 + i * 10 : 200 + ((i * 7919) % 20_000);
      fs.writeFileSync(path.join(dir, `f${f}.bin`), crypto.randomBytes(size));
      total += size;
    }
  }
  return total;
}

/** New content for a run: a folder that sorts first (read early) and one that sorts last (read late). */
function addChurn(root: string, run: number): string[] {
  const names = [`a-run${run}`, `z-run${run}`];
  for (const n of names) {
    fs.mkdirSync(path.join(root, n));
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(root, n, `c${i}.bin`), crypto.randomBytes(512 * 1024 + i * 1000));
  }
  return names;
}

/** Repository files (not locks or temporaries) with their size, mtime and inode: files are never changed in place. */
function durableFiles(repo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const folder of ['data', 'index', 'snapshots', 'keys'] as const) {
    for (const rel of repoFiles(repo, folder)) {
      const st = fs.statSync(path.join(repo, rel), { bigint: true });
      out.set(rel, `${st.size} ${st.mtimeNs} ${st.ino}`);
    }
  }
  const st = fs.statSync(path.join(repo, 'config'), { bigint: true });
  out.set('config', `${st.size} ${st.mtimeNs} ${st.ino}`);
  return out;
}

function summaryId(r: RunResult): string | undefined {
  const s = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string } } | undefined;
  return s?.snapshot.id;
}

describe('crash safety', () => {
  const s = new Scratch('crash');
  const home = s.path('home');
  const repo = path.join(home, 'backups');
  const tree = s.path('tree');
  const run = { home, password: PASSWORD };
  /** snapshot id → the churn folders that existed when it was taken */
  const states = new Map<string, string[]>();
  const churn: string[] = [];
  let fullMs = 0;

  /**
   * Restores a snapshot and compares it with the tree as it was then. `bulk: false` leaves out static/, the 100 MB
   * that every snapshot shares and that was written once before any crash: its pack files are checked to stay
   * untouched after every crash, and one whole restore at the end reads all of it.
   */
  const verifyRestore = async (id: string, bulk: boolean): Promise<void> => {
    const out = s.path(`restore-${id.slice(0, 8)}`);
    const r = await bam(['restore', id, '--target', out, '-q', ...(bulk ? [] : ['--exclude', `${tree}/static`])], run);
    expect(r.code, describeRun(['restore', id], r)).toBe(0);
    const had = states.get(id)!;
    const ignore = [...(bulk ? [] : ['static']), ...churn.filter((c) => !had.includes(c))];
    expect(compareTrees(tree, path.join(out, tree), { root: false, ignore }), `snapshot ${id.slice(0, 8)}`).toEqual([]);
    fs.rmSync(out, { recursive: true, force: true });
  };

  beforeAll(async () => {
    fs.mkdirSync(tree);
    makeMediumTree(tree);
    await bamOk(['init', '--pack-size', '1MiB'], run);
    states.set(summaryId(await bamOk(['backup', tree, '--json'], run))!, []);
    // How long the backup that gets killed takes when left alone: a full one (it reads every file again).
    const full = await bamOk(['backup', '--type', 'full', tree, '--json'], run);
    fullMs = full.durationMs;
    states.set(summaryId(full)!, []);
  }, 120_000);
  afterAll(() => s.cleanup());

  test(`SIGKILL at ${KILL_RUNS} seeded random moments (seed ${SEED}) never damages the repository`, async () => {
    const random = rng(SEED);
    const log: string[] = [];
    let killedMidway = 0;
    onTestFinished(() => console.log(log.join('\n')));
    for (let i = 1; i <= KILL_RUNS; i++) {
      churn.push(...addChurn(tree, i));
      const before = durableFiles(repo);
      const snapshotsBefore = new Set(repoFiles(repo, 'snapshots').map((f) => path.basename(f)));
      const delay = Math.round(50 + random() * Math.max(0, fullMs - 50));
      // What dies: the whole job (power cut), the launcher alone (its CLI process follows at once), or the CLI
      // process alone (the OOM killer's choice).
      const target = (['job', 'launcher', 'cli'] as const)[Math.floor(random() * 3)]!;
      const running = startBam(['backup', '--type', 'full', tree, '--json'], { ...run, detached: true });
      await sleep(delay);
      const pids = [running.child.pid!, ...childPids(running.child.pid!)];
      if (target === 'launcher') running.child.kill('SIGKILL');
      else if (target === 'cli' && pids[1] !== undefined) process.kill(pids[1], 'SIGKILL');
      else signalJob(running.child, 'SIGKILL');
      const killed = await running.result;
      await waitForExit(pids);
      expect(killed.code === 0 || killed.signal === 'SIGKILL', describeRun(['backup', `(SIGKILL to the ${target})`], killed)).toBe(true);
      const made = repoFiles(repo, 'snapshots').map((f) => path.basename(f)).filter((id) => !snapshotsBefore.has(id));
      expect(made.length).toBeLessThanOrEqual(1);
      for (const id of made) states.set(id, [...churn]);
      if (made.length === 0) killedMidway++;
      log.push(`run ${i}: SIGKILL to the ${target} after ${delay} ms (a whole run took ${fullMs} ms) → ${made.length ? 'it had finished' : 'killed mid-way'}`);

      // Nothing that existed before was changed or removed: every earlier snapshot's data is as it was.
      const after = durableFiles(repo);
      for (const [rel, meta] of before) expect(after.get(rel), `${rel} after run ${i}`).toBe(meta);

      // The next backup just works: the dead process's lock is recognised as stale, no `bam unlock` needed.
      const next = await bam(['backup', tree, '--json'], run);
      expect(next.code, describeRun(['backup', 'after kill', String(i)], next)).toBe(0);
      expect(hasStackTrace(next.stderr)).toBe(false);
      states.set(summaryId(next)!, [...churn]);
      expect(repoFiles(repo, 'locks'), 'the stale lock was cleaned up').toEqual([]);

      const listed = JSON.parse((await bamOk(['snapshots', '--json'], run)).stdout) as { id: string }[];
      expect(listed.map((x) => x.id).sort()).toEqual([...states.keys()].sort());

      // Every snapshot restores (nothing half-written is referenced) to exactly the tree it recorded.
      for (const id of states.keys()) await verifyRestore(id, false);
    }
    expect(killedMidway, log.join('\n')).toBeGreaterThanOrEqual(2);
    // And the newest snapshot, whole: the shared bulk too.
    await verifyRestore([...states.keys()].at(-1)!, true);
  }, 240_000);

  test('Ctrl-C (SIGINT) mid-backup: exit 130, no new snapshot, the lock released at once', async () => {
    churn.push(...addChurn(tree, 99));
    const snapshotsBefore = repoFiles(repo, 'snapshots');
    const locksBefore = repoFiles(repo, 'locks');
    const running = startBam(['backup', '--type', 'full', tree], { ...run, detached: true });
    // Wait until the backup runs (its lock is taken, which the CLI process does after it set up its Ctrl-C handling),
    // then press Ctrl-C: the terminal sends SIGINT to every process of the foreground job.
    const deadline = Date.now() + 20_000;
    while (repoFiles(repo, 'locks').every((l) => locksBefore.includes(l)) && Date.now() < deadline) await sleep(10);
    await sleep(150);
    expect(running.child.exitCode, 'the backup is still running').toBeNull();
    signalJob(running.child, 'SIGINT');
    const r = await running.result;
    expect(r.code, describeRun(['backup', '(SIGINT)'], r)).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(repoFiles(repo, 'snapshots')).toEqual(snapshotsBefore);
    expect(repoFiles(repo, 'locks')).toEqual([]);
    const last = jsonLines(fs.readFileSync(path.join(home, 'backup.log'), 'utf8')).at(-1) as Record<string, unknown>;
    expect(last).toMatchObject({ operation: 'backup', outcome: 'interrupted', errorCode: 'INTERRUPTED' });

    // An exclusive operation works immediately.
    const newPw = s.path('new-password');
    fs.writeFileSync(newPw, 'crash-new-pw-77\n');
    const passwd = await bam(['key', 'passwd', '--new-password-file', newPw], run);
    expect(passwd.code, describeRun(['key', 'passwd'], passwd)).toBe(0);
    expect((await bam(['snapshots'], { home, password: 'crash-new-pw-77' })).code).toBe(0);
    expect((await bam(['snapshots'], run)).code).toBe(12);
  }, 60_000);
});
