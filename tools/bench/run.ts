/**
 * Running the tools: each measured command runs under GNU `/usr/bin/time -v` (peak RSS, user and system CPU) and a
 * monotonic clock (wall), with the load average read before and after. Also the untimed helpers that keep the
 * comparison honest: reading a step's input right before timing it (this machine drops file pages untouched for
 * about a minute), and the commands for bam and restic with the same password, from the environment, and defaults.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pool, readWhole } from './corpus.ts';

export type ToolName = 'bam' | 'restic';

export type Timed = {
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKB: number;
  /** Bytes the command read from and wrote to the storage layer (GNU time's "File system inputs/outputs", 512-byte
   *  blocks): reads that missed the page cache, and write-back. */
  diskReadBytes: number;
  diskWriteBytes: number;
  exitCode: number;
  signal: string | null;
  /** The last 256 KiB of each stream. */
  stdout: string;
  stderr: string;
  load1Before: number;
  load1After: number;
  /** CPU seconds the hypervisor gave to other guests while the command ran (steal time, all CPUs), NaN if unknown. */
  stealS: number;
  startedAt: string;
};

const KEEP_OUTPUT = 256 * 1024;

/** Measured commands still running, so that an interrupted benchmark can stop exactly the processes it started. */
export const activeChildren = new Set<ChildProcess>();

/** The 1-, 5- and 15-minute load averages. */
export function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = os.loadavg();
  return [a, b, c];
}

/** Sends `signal` to the process group of each measured command still running (only the ones this run started). */
export function stopChildren(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const child of activeChildren) {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

function tail(chunks: Buffer[]): string {
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - KEEP_OUTPUT)).toString('utf8');
}

/** Runs a command to completion without measuring it. */
export function runPlain(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.error !== undefined) return { code: 127, stdout: '', stderr: String(r.error.message) };
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

function parseGnuTime(text: string): { userS: number; sysS: number; maxRssKB: number; diskReadBytes: number; diskWriteBytes: number } {
  const num = (label: string): number => {
    const m = new RegExp(`${label}[^:]*:\\s*([0-9.]+)`).exec(text);
    return m?.[1] === undefined ? Number.NaN : Number(m[1]);
  };
  return {
    userS: num('User time'),
    sysS: num('System time'),
    maxRssKB: num('Maximum resident set size'),
    diskReadBytes: num('File system inputs') * 512,
    diskWriteBytes: num('File system outputs') * 512,
  };
}

/**
 * The steal time of all CPUs so far, in seconds (/proc/stat): time this virtual machine was ready to run but the
 * hypervisor ran another guest. On a shared VM it makes the same command take longer from one run to the next.
 */
export function stealSeconds(): number {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    // cpu user nice system idle iowait irq softirq steal …, in USER_HZ (100 per second on Linux).
    return cpu[0] === 'cpu' && cpu[8] !== undefined ? Number(cpu[8]) / 100 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Runs `cmd` under `/usr/bin/time -v` and returns its wall time, CPU, peak RSS, exit and output. */
export async function runTimed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  const timeFile = path.join(os.tmpdir(), `bam-bench-time-${process.pid}-${Date.now()}.txt`);
  const load1Before = loadAverage()[0];
  const stealBefore = stealSeconds();
  const startedAt = new Date().toISOString();
  const started = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-v', '-o', timeFile, cmd, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that stopping it (stopChildren) reaches the tool under `time` and nothing else.
    detached: true,
  });
  activeChildren.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let outBytes = 0;
  let errBytes = 0;
  // Keep memory bounded: drop old chunks once far past what we keep.
  child.stdout.on('data', (c: Buffer) => {
    out.push(c);
    outBytes += c.length;
    while (outBytes - (out[0]?.length ?? 0) > KEEP_OUTPUT) outBytes -= out.shift()?.length ?? 0;
  });
  child.stderr.on('data', (c: Buffer) => {
    err.push(c);
    errBytes += c.length;
    while (errBytes - (err[0]?.length ?? 0) > KEEP_OUTPUT) errBytes -= err.shift()?.length ?? 0;
  });
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  }).finally(() => activeChildren.delete(child));
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const load1After = loadAverage()[0];
  const stealS = stealSeconds() - stealBefore;
  let timeText = '';
  try {
    timeText = fs.readFileSync(timeFile, 'utf8');
  } catch {
    // time did not write: the fields stay NaN
  }
  fs.rmSync(timeFile, { force: true });
  const statusMatch = /Exit status:\s*(\d+)/.exec(timeText);
  const signalMatch = /Command terminated by signal (\d+)/.exec(timeText);
  return {
    wallS,
    ...parseGnuTime(timeText),
    // time exits with the command's status; "Exit status" is the command's own.
    exitCode: statusMatch?.[1] !== undefined ? Number(statusMatch[1]) : (code ?? 128),
    signal: signalMatch?.[1] !== undefined ? `signal ${signalMatch[1]}` : signal,
    stdout: tail(out),
    stderr: tail(err),
    load1Before,
    load1After,
    stealS,
    startedAt,
  };
}

/**
 * Reads every regular file under each path once (untimed), so that the step that follows starts with its input
 * in the page cache, the same for both tools. Returns what was read and how long it took.
 */
export async function prewarm(paths: readonly string[]): Promise<{ bytes: number; files: number; seconds: number; list: string[] }> {
  const started = performance.now();
  const files: string[] = [];
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isFile()) files.push(p);
    // Sorted, like the tools walk: the file a tool reads last is also among the last warmed.
    else if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) walk(path.join(p, name));
  };
  for (const p of paths) walk(p);
  let bytes = 0;
  await pool(files, 4, async (file) => {
    try {
      await readWhole(file, (chunk) => {
        bytes += chunk.length;
      });
    } catch {
      // a file that vanished (a lock) is not part of the input
    }
  });
  return { bytes, files: files.length, seconds: (performance.now() - started) / 1000, list: files };
}

const hasFincore = runPlain('sh', ['-c', 'command -v fincore']).code === 0;

/**
 * The fraction of the files' bytes now in the page cache (util-linux `fincore`, which uses mincore(2) and does not
 * touch the pages), or NaN without fincore. Taken before and after each measured step: a drop means pages were
 * evicted while the tool ran, so part of its input came from the disk.
 */
export function residentFraction(files: readonly string[]): number {
  if (!hasFincore || files.length === 0) return Number.NaN;
  let resident = 0;
  let size = 0;
  for (let i = 0; i < files.length; i += 1000) {
    const r = runPlain('fincore', ['-b', '-n', '-o', 'RES,SIZE', ...files.slice(i, i + 1000)]);
    for (const line of r.stdout.split('\n')) {
      const [res, total] = line.trim().split(/\s+/).map(Number);
      if (res !== undefined && total !== undefined && Number.isFinite(res) && Number.isFinite(total)) {
        // fincore counts whole pages; a file's resident bytes cannot exceed its size.
        resident += Math.min(res, total);
        size += total;
      }
    }
  }
  return size > 0 ? resident / size : Number.NaN;
}

/** Where one tool's repository and its local state (bam's home, restic's cache) live for one measurement. */
export type ToolContext = { repo: string; state: string };

export const PASSWORD = 'bam-bench: not a secret';

/** The environment for a tool: ours without any BACKUP_MANAGER_* or RESTIC_* leaking in, plus its own. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BACKUP_MANAGER_') && !k.startsWith('RESTIC_')) env[k] = v;
  }
  return { ...env, ...extra };
}

export type Invocation = { cmd: string; args: string[]; env: NodeJS.ProcessEnv };

export type Tool = {
  name: ToolName;
  version: string;
  /** Whether a full read-data check exists (bam: `verify --read-data`; restic: `check --read-data`). */
  hasReadDataCheck: boolean;
  /** Program files to keep in the page cache. */
  programPaths: string[];
  init(ctx: ToolContext): Invocation;
  backup(ctx: ToolContext, source: string): Invocation;
  restore(ctx: ToolContext, target: string): Invocation;
  check(ctx: ToolContext): Invocation;
  /** A cheap command run untimed right before a measured one, so the program's own pages are warm. */
  warm(): Invocation;
  /** Bytes processed and added by a backup, from its JSON summary; undefined when it printed none. */
  backupSummary(stdout: string): { bytesProcessed: number; dataAdded: number; files: number } | undefined;
};

function lastJson(stdout: string, match: (doc: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]?.trim();
    if (line === undefined || !line.startsWith('{')) continue;
    try {
      const doc = JSON.parse(line) as Record<string, unknown>;
      if (match(doc)) return doc;
    } catch {
      // a progress line cut by the tail: skip
    }
  }
  return undefined;
}

/** bam, run from `buildRoot` (a frozen copy of the workspace's build, see freeze.ts) with the benchmark's Node. */
export function bamTool(buildRoot: string): Tool {
  const launcher = path.join(buildRoot, 'apps', 'cli', 'bin', 'bam.mjs');
  const entry = path.join(buildRoot, 'apps', 'cli', 'dist', 'main.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build bam first`);
  const node = process.execPath;
  const env = (ctx?: ToolContext): NodeJS.ProcessEnv =>
    cleanEnv({ BACKUP_MANAGER_PASSWORD: PASSWORD, BACKUP_MANAGER_HOME: ctx?.state ?? path.join(os.tmpdir(), 'bam-bench-home') });
  const bam = (ctx: ToolContext | undefined, ...args: string[]): Invocation => ({
    cmd: node,
    args: [launcher, ...(ctx === undefined ? [] : ['--repo', ctx.repo]), ...args],
    env: env(ctx),
  });
  const help = runPlain(node, [launcher, '--help'], env());
  const hasVerify = /^\s+verify\b/m.test(help.stdout);
  const hasReadData = hasVerify && runPlain(node, [launcher, 'verify', '--help'], env()).stdout.includes('--read-data');
  const version = runPlain(node, [launcher, '--version'], env()).stdout.trim();
  const scope = path.join(buildRoot, 'node_modules', '@backup-manager');
  const dists = [path.join(buildRoot, 'apps', 'cli', 'dist'), ...(fs.existsSync(scope) ? fs.readdirSync(scope).map((p) => path.join(scope, p, 'dist')) : [])];
  return {
    name: 'bam',
    version: `${version} (node ${process.version})`,
    hasReadDataCheck: hasReadData,
    programPaths: [node, launcher, ...dists.filter((d) => fs.existsSync(d))],
    init: (ctx) => bam(ctx, '--json', 'init'),
    backup: (ctx, source) => bam(ctx, '--json', 'backup', source),
    restore: (ctx, target) => bam(ctx, '--json', 'restore', 'latest', '--target', target),
    check: (ctx) => bam(ctx, '--json', 'verify', '--read-data'),
    warm: () => bam(undefined, '--version'),
    backupSummary: (stdout) => {
      const doc = lastJson(stdout, (d) => d['type'] === 'summary');
      const snapshot = doc?.['snapshot'] as { summary?: Record<string, number> } | undefined;
      const s = snapshot?.summary;
      if (s === undefined) return undefined;
      return { bytesProcessed: s['totalBytes'] ?? Number.NaN, dataAdded: s['dataAdded'] ?? Number.NaN, files: s['totalFiles'] ?? Number.NaN };
    },
  };
}

/** restic from the system, installed from Debian's packages when missing. */
export function resticTool(log: (m: string) => void): Tool {
  let found = runPlain('restic', ['version']);
  if (found.code !== 0) {
    log('restic is missing: apt-get install -y restic');
    let install = runPlain('apt-get', ['install', '-y', 'restic'], { ...process.env, DEBIAN_FRONTEND: 'noninteractive' });
    if (install.code !== 0) {
      runPlain('apt-get', ['update'], process.env);
      install = runPlain('apt-get', ['install', '-y', 'restic'], { ...process.env, DEBIAN_FRONTEND: 'noninteractive' });
    }
    found = runPlain('restic', ['version']);
    if (found.code !== 0) throw new Error(`could not install restic: ${install.stderr.trim().slice(-500)}`);
  }
  const which = runPlain('sh', ['-c', 'command -v restic']).stdout.trim();
  // RESTIC_PROGRESS_FPS=1: with --json and no terminal restic prints 60 status lines a second; bam prints one.
  const env = (ctx: ToolContext): NodeJS.ProcessEnv =>
    cleanEnv({ RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: ctx.state, RESTIC_PROGRESS_FPS: '1' });
  const restic = (ctx: ToolContext, ...args: string[]): Invocation => ({ cmd: 'restic', args: ['-r', ctx.repo, ...args], env: env(ctx) });
  return {
    name: 'restic',
    version: found.stdout.trim(),
    hasReadDataCheck: true,
    programPaths: which === '' ? [] : [fs.realpathSync(which)],
    init: (ctx) => restic(ctx, 'init'),
    backup: (ctx, source) => restic(ctx, '--json', 'backup', source),
    restore: (ctx, target) => restic(ctx, 'restore', 'latest', '--target', target),
    check: (ctx) => restic(ctx, 'check', '--read-data'),
    warm: () => ({ cmd: 'restic', args: ['version'], env: cleanEnv({}) }),
    backupSummary: (stdout) => {
      const doc = lastJson(stdout, (d) => d['message_type'] === 'summary');
      if (doc === undefined) return undefined;
      const n = (k: string): number => (typeof doc[k] === 'number' ? (doc[k] as number) : Number.NaN);
      return { bytesProcessed: n('total_bytes_processed'), dataAdded: n('data_added'), files: n('total_files_processed') };
    },
  };
}

/** `findmnt` facts about the file system holding `p`: device, type and mount options. */
export function fileSystemOf(p: string): string {
  const r = runPlain('findmnt', ['-no', 'SOURCE,FSTYPE,OPTIONS', '-T', p]);
  return r.code === 0 ? r.stdout.trim().replace(/\s+/g, ' ') : 'unknown';
}
