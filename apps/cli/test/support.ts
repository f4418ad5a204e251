/**
 * End-to-end helpers: run the real `bam` launcher (apps/cli/bin/bam.mjs, which loads apps/cli/dist/main.js) in a
 * child process exactly as a user's shell would, with its own state folder, and inspect what it left on disk.
 * The CLI must be built first (`npx nx run-many -t build`).
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CLI_ROOT = path.resolve(import.meta.dirname, '..');
/** The launcher; BAM_E2E_BIN may point at a copy of a built tree (to run against a build others are not rebuilding). */
export const BAM = process.env.BAM_E2E_BIN ?? path.join(CLI_ROOT, 'bin', 'bam.mjs');
export const NOBODY = 65534;

export interface RunOptions {
  /** BACKUP_MANAGER_HOME */
  home: string;
  /** BACKUP_MANAGER_PASSWORD; omitted or undefined leaves it unset */
  password?: string | undefined;
  /** more environment (undefined removes a variable) */
  env?: Record<string, string | undefined>;
  /** bytes to pipe in, or `{ file }` to redirect a file (`< file`); default: an empty stdin */
  stdin?: string | Buffer | { file: string };
  /** redirect stdout into this file (`> file`) instead of capturing it */
  stdoutFile?: string;
  /** killed with SIGKILL after this long (default 120 s) */
  timeoutMs?: number;
  cwd?: string;
  /** run as this uid/gid through setpriv (the files the run needs must be accessible to it) */
  as?: { uid: number; gid: number };
  /**
   * Start bam in its own process group, as a shell starts a job, so a test can signal the whole job like a terminal
   * does (Ctrl-C reaches every process of the foreground job) with signalJob.
   */
  detached?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

/** What every run gets: no inherited BACKUP_MANAGER_* variables, a throw-away HOME, UTC, a plain locale. */
function environment(options: RunOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: path.join(options.home, '..'),
    TZ: 'UTC',
    LANG: 'C.UTF-8',
    BACKUP_MANAGER_HOME: options.home,
  };
  if (options.password !== undefined) env.BACKUP_MANAGER_PASSWORD = options.password;
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface Running {
  child: ChildProcess;
  /** resolves when the process has exited and been reaped */
  result: Promise<RunResult>;
}

/** Starts `bam ...args` and returns at once: for tests that signal the process while it runs. */
export function startBam(args: string[], options: RunOptions): Running {
  const started = Date.now();
  let command = process.execPath;
  let argv = [BAM, ...args];
  if (options.as) {
    command = 'setpriv';
    argv = [`--reuid=${options.as.uid}`, `--regid=${options.as.gid}`, '--clear-groups', process.execPath, ...argv];
  }
  const fds: number[] = [];
  let stdin: 'pipe' | number = 'pipe';
  if (options.stdin !== undefined && typeof options.stdin === 'object' && !Buffer.isBuffer(options.stdin)) {
    stdin = fs.openSync(options.stdin.file, 'r');
    fds.push(stdin);
  }
  let stdout: 'pipe' | number = 'pipe';
  if (options.stdoutFile !== undefined) {
    stdout = fs.openSync(options.stdoutFile, 'w');
    fds.push(stdout);
  }
  const child = spawn(command, argv, { cwd: options.cwd ?? CLI_ROOT, env: environment(options), stdio: [stdin, stdout, 'pipe'], detached: options.detached === true });
  for (const fd of fds) fs.closeSync(fd);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  if (child.stdin) {
    child.stdin.on('error', () => undefined); // the command may exit without reading its input
    if (typeof options.stdin === 'string' || Buffer.isBuffer(options.stdin)) child.stdin.end(options.stdin);
    else child.stdin.end();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (options.detached === true) signalJob(child, 'SIGKILL');
    else child.kill('SIGKILL');
  }, options.timeoutMs ?? 120_000);
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8'), durationMs: Date.now() - started, timedOut });
    });
  });
  return { child, result };
}

/** Sends a signal to every process of a job started with `detached` (the launcher and the CLI process it runs). */
export function signalJob(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** The direct children of a process (Linux), e.g. the CLI process that bin/bam.mjs started. */
export function childPids(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Waits until none of the processes runs any more (gone, or a zombie waiting for init to reap it). */
export async function waitForExit(pids: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const running = (pid: number): boolean => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    } catch {
      return false;
    }
  };
  while (pids.some(running)) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.filter(running).join(', ')} still run after ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** Runs `bam ...args` to completion. */
export function bam(args: string[], options: RunOptions): Promise<RunResult> {
  return startBam(args, options).result;
}

/** A readable account of a run for assertion messages. */
export function describeRun(args: string[], r: RunResult): string {
  return `bam ${args.join(' ')} → code ${r.code}${r.signal ? ` signal ${r.signal}` : ''}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${r.stdout.slice(0, 4000)}\n--- stderr\n${r.stderr.slice(0, 4000)}`;
}

/** Runs bam and fails (with its output) unless it exits with `expected`. */
export async function bamOk(args: string[], options: RunOptions, expected = 0): Promise<RunResult> {
  const r = await bam(args, options);
  if (r.code !== expected) throw new Error(`expected exit ${expected}\n${describeRun(args, r)}`);
  return r;
}

/** Node or V8 stack frames, or an uncaught error's dump: never acceptable in what a user sees. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+(:\d+:\d+\)?|\(native\)|\(node:[^)]*\))$/m.test(text) || /node:internal|\bUncaught\b|\.ts:\d+:\d+|\.js:\d+:\d+/.test(text);
}

/** Every non-empty line parsed as JSON; throws naming the first line that is not. */
export function jsonLines(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new Error(`line ${i + 1} of the output is not JSON: ${JSON.stringify(l.slice(0, 200))}`);
      }
    });
}

// ---- temporary folders --------------------------------------------------------------------------------------

export class Scratch {
  readonly root: string;
  private readonly mounts: string[] = [];

  constructor(prefix: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `bam-e2e-${prefix}-`));
    fs.chmodSync(this.root, 0o755);
  }

  /** A new (empty) folder inside the scratch folder. */
  dir(name: string): string {
    const p = path.join(this.root, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  }

  path(name: string): string {
    return path.join(this.root, name);
  }

  /** Mounts a tmpfs of the given size (e.g. "8m") at a new folder; unmounted by cleanup. */
  tmpfs(name: string, size: string, extraOptions = ''): string {
    const p = this.dir(name);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755${extraOptions ? `,${extraOptions}` : ''}`, 'tmpfs', p]);
    this.mounts.push(p);
    return p;
  }

  remount(p: string, size: string): void {
    execFileSync('mount', ['-o', `remount,size=${size}`, p]);
  }

  cleanup(): void {
    for (const m of this.mounts.splice(0).reverse()) {
      try {
        execFileSync('umount', [m]);
      } catch {
        execFileSync('umount', ['-l', m]);
      }
    }
    fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

// ---- looking at a repository --------------------------------------------------------------------------------

/** Every entry below `dir` (files and folders) as `path type size mtimeNs`, sorted: equal means nothing was written. */
export function listingWithTimes(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    out.push(`${rel || '.'} ${type} ${type === 'dir' ? '-' : st.size} ${st.mtimeNs} ${st.ino}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs)) visit(rel ? `${rel}/${n}` : n);
  };
  visit('');
  return out.sort();
}

/** Repository files (not folders) under one of its folders, as paths relative to the repository. */
export function repoFiles(repo: string, folder: 'data' | 'index' | 'snapshots' | 'keys' | 'locks' | 'tmp'): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    const abs = path.join(repo, rel);
    if (!fs.existsSync(abs)) return;
    const st = fs.lstatSync(abs);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) visit(`${rel}/${n}`);
    else out.push(rel);
  };
  visit(folder);
  return out;
}

/** `du -sb`: the bytes a folder takes, as the issue asks to measure repository growth. */
export function duBytes(dir: string): number {
  const out = execFileSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(out.split('\t')[0]);
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Flips one bit of a file in place (a damaged byte). */
export function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x10;
    fs.writeSync(fd, b, 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** A small deterministic PRNG (mulberry32), so "random" delays and contents repeat from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic pseudo-random bytes (incompressible enough for dedup tests), fast. */
export function pseudoRandomBytes(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < size; i++) buf[i] = i & 0xff;
  return buf;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
