/**
 * `--nice` and `--io-priority` (and config.json's `process` section): lowers the CPU and I/O priority of a
 * long-running command so that a scheduled backup, prune or verification leaves the machine usable.
 *
 * Linux keeps both priorities per thread, not per process: setpriority(PRIO_PROCESS, pid) and ioprio_set with a
 * process id change only the thread whose id that is, and a new thread starts with the priorities of the thread
 * that creates it. So every thread that already runs (V8's and libuv's helpers) is changed one by one, before the
 * command starts its worker threads, which then inherit the main thread's priorities.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { Option } from 'commander';
import type { Command } from 'commander';
import { MAX_NICE, checkIoPriority, checkNice, parseIoPriority } from '@backup-manager/config';
import type { IoPriority, ProcessConfig } from '@backup-manager/config';
import { BackupError } from '@backup-manager/core-archive';
import type { Runtime } from './runtime.ts';

export interface PriorityFlags {
  nice?: string;
  ioPriority?: string;
}

/** What a command runs with: undefined leaves that priority as the process was started with. */
export interface Priority {
  nice?: number;
  io?: IoPriority;
}

/** --nice for a long-running command (add ioPriorityOption() too). */
export function niceOption(): Option {
  return new Option('--nice <n>', `CPU niceness from 0 (normal) to ${MAX_NICE} (lowest), e.g. for scheduled runs (default: the config's process.nice, else unchanged)`);
}

/** --io-priority for a long-running command. */
export function ioPriorityOption(): Option {
  return new Option('--io-priority <class>', 'I/O priority on Linux: idle, best-effort or best-effort:0..7 (default: the config\'s process.io_priority, else unchanged)');
}

/** Whether `cmd` takes --nice and --io-priority. */
export function hasPriorityOptions(cmd: Command): boolean {
  return cmd.options.some((o) => o.long === '--nice');
}

/** --nice: an integer from 0 to 19. */
export function parseNiceFlag(text: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (checkNice(n) !== undefined) throw new BackupError('INVALID_ARGUMENT', `--nice must be an integer from 0 to ${MAX_NICE}, not ${JSON.stringify(text)}`);
  return n;
}

/** --io-priority: idle, best-effort or best-effort:N. */
export function parseIoPriorityFlag(text: string): IoPriority {
  const problem = checkIoPriority(text);
  if (problem !== undefined) throw new BackupError('INVALID_ARGUMENT', `--io-priority: ${problem}`);
  return parseIoPriority(text);
}

/**
 * The priority a command runs with: its flags, else config.json's `process` section. The flags are checked
 * first, so a bad value fails before anything is read. A config that cannot be loaded only costs its settings
 * here (with a note): the command reports the problem itself if it needs the config, and a restore that does
 * not must not fail because of it.
 */
export async function chosenPriority(rt: Runtime, flags: PriorityFlags): Promise<Priority> {
  const priority: Priority = {};
  if (flags.nice !== undefined) priority.nice = parseNiceFlag(flags.nice);
  if (flags.ioPriority !== undefined) priority.io = parseIoPriorityFlag(flags.ioPriority);
  if (priority.nice !== undefined && priority.io !== undefined) return priority;
  let fromConfig: ProcessConfig;
  try {
    fromConfig = (await rt.config()).process;
  } catch {
    rt.note(`bam: the process settings of ${rt.paths.config} are not applied: the file cannot be used (\`bam config validate\` shows why)`);
    return priority;
  }
  if (priority.nice === undefined && fromConfig.nice !== undefined) priority.nice = fromConfig.nice;
  if (priority.io === undefined && fromConfig.io_priority !== undefined) priority.io = parseIoPriority(fromConfig.io_priority);
  return priority;
}

/** The ids of this process's threads (Linux); elsewhere the process id, which there stands for the whole process. */
export function threadIds(): number[] {
  try {
    return fs
      .readdirSync('/proc/self/task')
      .map(Number)
      .filter((tid) => Number.isInteger(tid) && tid > 0);
  } catch {
    return [process.pid];
  }
}

/**
 * Applies `priority` to every thread of this process. A priority that cannot be applied is a warning, never a
 * failure: a backup that runs at normal priority is better than none.
 */
export function applyPriority(priority: Priority, warn: (message: string) => void): void {
  if (priority.nice !== undefined) applyNice(priority.nice, warn);
  if (priority.io !== undefined) applyIoPriority(priority.io, warn);
}

function applyNice(nice: number, warn: (message: string) => void): void {
  let refused: number | undefined;
  for (const tid of threadIds()) {
    try {
      if (os.getPriority(tid) !== nice) os.setPriority(tid, nice);
    } catch (e) {
      // ESRCH: the thread ended meanwhile. EACCES: lowering the niceness (raising the priority) needs privileges.
      if ((e as { info?: { code?: string } }).info?.code !== 'ESRCH') refused ??= currentNice(tid);
    }
  }
  if (refused !== undefined) {
    warn(`bam: --nice ${nice} is not applied: lowering the niceness from ${refused} needs privileges (CAP_SYS_NICE); running at ${refused}`);
  }
}

function currentNice(tid: number): number {
  try {
    return os.getPriority(tid);
  } catch {
    return os.getPriority();
  }
}

function applyIoPriority(io: IoPriority, warn: (message: string) => void): void {
  const name = io.class === 'idle' ? 'idle' : `best-effort:${io.level}`;
  if (process.platform !== 'linux') {
    warn(`bam: --io-priority ${name} is not applied: I/O priorities are set on Linux only`);
    return;
  }
  const classArgs = io.class === 'idle' ? ['-c', '3'] : ['-c', '2', '-n', String(io.level)];
  // Node cannot call ioprio_set itself: util-linux's ionice does, for each thread id given.
  let failure = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = spawnSync('ionice', [...classArgs, '-p', ...threadIds().map(String)], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    if (r.error !== undefined) {
      const code = (r.error as NodeJS.ErrnoException).code;
      failure = code === 'ENOENT' ? 'ionice (from util-linux) is not installed' : `ionice could not run (${code ?? r.error.message})`;
      break;
    }
    if (r.status === 0) return;
    // A thread that ended between listing and ionice fails the call: list again once.
    failure = `ionice failed: ${r.stderr.trim().split('\n')[0] ?? `exit status ${r.status}`}`;
  }
  warn(`bam: --io-priority ${name} is not applied: ${failure}`);
}
