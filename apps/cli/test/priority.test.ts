/**
 * --nice and --io-priority (issue 3: polite scheduled runs), and config.json's `process` section: bad values are
 * usage errors before anything is written; during a real backup every thread of the bam process (the worker pool
 * included) runs at the niceness and I/O priority asked for; a missing ionice is a warning, not a failure.
 * Linux only: threads are read from /proc.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Scratch, bam, bamOk, childPids, describeRun, repoFiles, sleep, startBam } from './support.ts';
import type { RunOptions } from './support.ts';

const PASSWORD = 'priority-pw-5c1a';
const MiB = 1024 * 1024;
const hasIonice = spawnSync('ionice', ['-p', String(process.pid)]).status === 0;

interface ThreadState {
  tid: number;
  name: string;
  nice: number;
}

/** Every thread of `pid` with its niceness (field 19 of /proc/<pid>/task/<tid>/stat). */
function threadsOf(pid: number): ThreadState[] {
  const out: ThreadState[] = [];
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(tid), name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(), nice: Number(fields[19 - 3]) });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** `ionice -p` of each thread: "idle", "best-effort: prio 7", ... */
function ioPrioritiesOf(tids: number[]): string[] {
  const r = spawnSync('ionice', ['-p', ...tids.map(String)], { encoding: 'utf8' });
  return r.stdout.trim().split('\n');
}

/**
 * Runs `bam backup` of `source` with `args` and looks at the threads of the bam process once its worker pool has
 * started. The process is stopped (SIGSTOP) while it is looked at, so no thread comes or goes meanwhile. Returns
 * the threads seen, their I/O priorities, and the run's result.
 */
async function observeBackup(source: string, args: string[], run: RunOptions) {
  const running = startBam(['backup', ...args, source], run);
  let threads: ThreadState[] = [];
  let io: string[] = [];
  const deadline = Date.now() + 60_000;
  while (threads.length === 0 && Date.now() < deadline && running.child.exitCode === null) {
    // The launcher runs the CLI in a child Node process: that is the one doing the work.
    const pid = childPids(running.child.pid!)[0];
    if (pid !== undefined && threadsOf(pid).some((t) => t.name === 'WorkerThread')) {
      process.kill(pid, 'SIGSTOP');
      try {
        threads = threadsOf(pid);
        if (hasIonice) io = ioPrioritiesOf(threads.map((t) => t.tid));
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    }
    await sleep(5);
  }
  return { threads, io, result: await running.result };
}

describe('--nice and --io-priority', () => {
  const s = new Scratch('priority');
  const home = s.path('home');
  const run = { home, password: PASSWORD };
  afterAll(() => s.cleanup());

  test('setup: a repository, a small folder and a larger one (so that the worker pool runs for a while)', async () => {
    await bamOk(['init'], run);
    fs.mkdirSync(s.path('src'));
    fs.writeFileSync(s.path('src/a.txt'), 'a');
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(s.dir('big'), `f${i}.bin`), randomBytes(16 * MiB));
  });

  test('bad values are usage errors (exit 2) that say what is allowed, and nothing is written', async () => {
    const before = repoFiles(path.join(home, 'backups'), 'snapshots');
    for (const [args, message] of [
      [['--nice', '20'], '--nice must be an integer from 0 to 19, not "20"'],
      [['--nice', '-1'], '--nice must be an integer from 0 to 19, not "-1"'],
      [['--nice', 'low'], '--nice must be an integer from 0 to 19, not "low"'],
      [['--nice', '2.5'], '--nice must be an integer from 0 to 19, not "2.5"'],
      [['--io-priority', 'realtime'], '--io-priority: "realtime" is not an I/O priority; write "idle", "best-effort" or "best-effort:N"'],
      [['--io-priority', 'best-effort:8'], '--io-priority: "best-effort:8" has level 8'],
      [['--io-priority', 'idle:2'], 'the idle class has no levels'],
    ] as const) {
      const r = await bam(['backup', ...args, s.path('src')], run);
      expect(r.code, describeRun(['backup', ...args], r)).toBe(2);
      expect(r.stderr).toContain(message);
    }
    const prune = await bam(['prune', '--nice', '99', '--yes'], run);
    expect(prune.code).toBe(2);
    expect(prune.stderr).toContain('--nice must be an integer from 0 to 19');
    expect(repoFiles(path.join(home, 'backups'), 'snapshots')).toEqual(before);
  });

  test('a backup runs every thread, the worker pool included, at the niceness and I/O priority asked for', async () => {
    const { threads, io, result } = await observeBackup(s.path('big'), ['--nice', '7', '--io-priority', 'idle'], run);
    expect(result.code, describeRun(['backup', '--nice', '7'], result)).toBe(0);
    expect(threads.filter((t) => t.name === 'WorkerThread').length).toBeGreaterThan(0);
    expect(threads.filter((t) => t.nice !== 7), JSON.stringify(threads)).toEqual([]);
    if (hasIonice) expect(new Set(io), JSON.stringify(io)).toEqual(new Set(['idle']));
    expect(result.stderr).not.toContain('not applied');
  });

  test('config.json\'s process section applies when no flag is given, and a flag overrides it', async () => {
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ version: 1, process: { nice: 5, io_priority: 'best-effort:7' } }));
    try {
      const fromConfig = await observeBackup(s.path('big'), ['--type', 'full'], run);
      expect(fromConfig.result.code, describeRun(['backup'], fromConfig.result)).toBe(0);
      expect(fromConfig.threads.filter((t) => t.name === 'WorkerThread').length).toBeGreaterThan(0);
      expect(fromConfig.threads.filter((t) => t.nice !== 5), JSON.stringify(fromConfig.threads)).toEqual([]);
      if (hasIonice) expect(new Set(fromConfig.io)).toEqual(new Set(['best-effort: prio 7']));

      const overridden = await observeBackup(s.path('big'), ['--type', 'full', '--nice', '9'], run);
      expect(overridden.result.code).toBe(0);
      expect(overridden.threads.filter((t) => t.name === 'WorkerThread').length).toBeGreaterThan(0);
      expect(overridden.threads.filter((t) => t.nice !== 9), JSON.stringify(overridden.threads)).toEqual([]);
      if (hasIonice) expect(new Set(overridden.io)).toEqual(new Set(['best-effort: prio 7']));
    } finally {
      fs.rmSync(path.join(home, 'config.json'));
    }
  });

  test('without ionice, --io-priority is a warning and the backup still succeeds', async () => {
    const r = await bam(['backup', '--io-priority', 'idle', s.path('src')], { ...run, env: { PATH: s.dir('empty-path') } });
    expect(r.code, describeRun(['backup', '--io-priority', 'idle'], r)).toBe(0);
    expect(r.stderr).toContain('bam: --io-priority idle is not applied: ionice (from util-linux) is not installed');
  });

  test('restore, verify and sync take the options too', async () => {
    const target = s.path('restored');
    await bamOk(['restore', 'latest', '--target', target, '--nice', '3', '--io-priority', 'best-effort'], run);
    expect(fs.readdirSync(target).length).toBeGreaterThan(0);
    await bamOk(['verify', '--read-data', '--nice', '3'], run);
    for (const command of [['forget', '--help'], ['prune', '--help'], ['sync', '--help'], ['test-recovery', '--help'], ['check-consistency', '--help']]) {
      const help = await bamOk(command, run);
      expect(help.stdout, command.join(' ')).toContain('--nice <n>');
      expect(help.stdout, command.join(' ')).toContain('--io-priority <class>');
    }
  });
});
