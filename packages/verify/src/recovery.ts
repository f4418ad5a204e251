/**
 * The recovery test: restore a snapshot (all of it, a random sample of its files, or some paths) with the engine's
 * own restore (its `select` option picks the sample) into an isolated folder, then check what landed there against the snapshot independently of the
 * restorer — every entry's type, every file's size, mode and SHA-256, every symlink's target, and the directory
 * structure (nothing missing, nothing extra) — measure the restore's throughput, and remove the folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BackupError, cryptoMaterial, isBackupError, resolveSnapshotPath, restore } from '@backup-manager/core-archive';
import type { Id, Repository, RestoreEvent, RestoreResult, TreeNode } from '@backup-manager/core-archive';
import { ensureIndex } from './load-index.ts';
import { VerifyPool, defaultVerifyWorkers } from './pool.ts';
import { joinSnapshotPath, throwIfAborted } from './util.ts';

export interface RecoveryTestOptions {
  /** restore here instead of a temporary folder; it must be missing or empty, and is kept afterwards */
  target?: string;
  /** where the temporary folder goes (default: the system's temp folder) */
  tempRoot?: string;
  /** restore a random sample of this percentage of the files (at least one) */
  samplePercent?: number;
  /** restore only these paths inside the snapshot (and everything below them) */
  paths?: string[];
  random?: () => number;
  signal?: AbortSignal;
  /** worker threads for restore and for hashing (default: up to 4) */
  workers?: number;
  onEvent?: (e: RecoveryEvent) => void;
}

export type RecoveryProblem = 'missing' | 'unexpected' | 'type' | 'size' | 'mode' | 'content' | 'link-target' | 'unreadable-data' | 'restore-error';

export interface RecoveryFailure {
  /** path inside the snapshot */
  path: string;
  problem: RecoveryProblem;
  message: string;
}

export type RecoveryEvent =
  | { type: 'selected'; files: number; scope: string }
  | { type: 'restore'; event: RestoreEvent }
  | { type: 'checking'; done: number; total: number }
  | { type: 'failure'; failure: RecoveryFailure };

export interface RecoveryReport {
  kind: 'recovery-test';
  repository: string;
  repositoryId: Id;
  snapshot: Id;
  snapshotTime: string;
  hostname: string;
  sources: string[];
  scope: 'full' | 'sample' | 'paths';
  /** `full`, `sample 10%`, `paths /etc, /home` */
  scopeText: string;
  target: string;
  kept: boolean;
  startedAt: string;
  durationMs: number;
  restoreMs: number;
  expected: { files: number; dirs: number; others: number; bytes: number };
  checked: { files: number; dirs: number; others: number };
  bytesRestored: number;
  throughputBytesPerSec: number;
  failures: RecoveryFailure[];
  /** entries the restorer does not recreate by design (sockets; devices without root) */
  skipped: { path: string; reason: string }[];
  ok: boolean;
}

type Selection = (snapPath: string, isDir: boolean) => 'yes' | 'enter' | 'no';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export async function testRecovery(repo: Repository, snapshotId: Id, options: RecoveryTestOptions = {}): Promise<RecoveryReport> {
  const started = repo.context.now();
  const t0 = Date.now();
  const emit = (e: RecoveryEvent): void => options.onEvent?.(e);
  await ensureIndex(repo);
  const snap = await repo.loadSnapshot(snapshotId);
  const random = options.random ?? Math.random;
  const isRoot = process.getuid?.() === 0;

  // ---- what to restore --------------------------------------------------------------------------------------
  let scope: RecoveryReport['scope'] = 'full';
  let scopeText = 'full';
  /** what restore restores: exact snapshot paths (and what is below them); undefined restores everything */
  let restoreOnly: ((snapshotPath: string) => boolean) | undefined;
  let select: Selection = () => 'yes';
  if (options.paths && options.paths.length > 0) {
    scope = 'paths';
    const wanted: string[] = [];
    for (const p of options.paths) wanted.push((await resolveSnapshotPath(repo, snap.tree, p)).path);
    scopeText = `paths ${wanted.join(', ')}`;
    // The root as a path is the whole snapshot.
    if (!wanted.includes('/')) restoreOnly = (p) => wanted.includes(p);
    select = (p) => (wanted.some((w) => w === '/' || p === w || p.startsWith(`${w}/`)) ? 'yes' : wanted.some((w) => w.startsWith(`${p}/`)) ? 'enter' : 'no');
  } else if (options.samplePercent !== undefined) {
    const pct = options.samplePercent;
    if (!(pct > 0 && pct <= 100)) throw new BackupError('INVALID_ARGUMENT', `a sample of ${pct}% is not possible: give a percentage above 0 and at most 100`);
    scope = 'sample';
    scopeText = `sample ${pct}%`;
    const sample = await sampleFiles(repo, snap.tree, pct, random, options.signal);
    const ancestors = new Set<string>();
    for (const f of sample) for (let d = path.posix.dirname(f); d !== '/' && !ancestors.has(d); d = path.posix.dirname(d)) ancestors.add(d);
    restoreOnly = (p) => sample.has(p);
    select = (p, isDir) => (sample.has(p) ? 'yes' : isDir && ancestors.has(p) ? 'enter' : 'no');
    emit({ type: 'selected', files: sample.size, scope: scopeText });
  }

  // ---- where ------------------------------------------------------------------------------------------------
  let target: string;
  const kept = options.target !== undefined;
  if (options.target !== undefined) {
    target = path.resolve(options.target);
    if (fs.existsSync(target) && fs.readdirSync(target).length > 0) {
      throw new BackupError('INVALID_ARGUMENT', `${target} is not empty: a recovery test needs an empty or new folder, so that what it checks is only what it restored`);
    }
    fs.mkdirSync(target, { recursive: true, mode: 0o700 });
  } else {
    target = fs.mkdtempSync(path.join(options.tempRoot ?? os.tmpdir(), 'bam-recovery-'));
  }

  const failures = new Map<string, RecoveryFailure>();
  const skipped: RecoveryReport['skipped'] = [];
  const fail = (p: string, problem: RecoveryProblem, message: string): void => {
    const existing = failures.get(p);
    if (existing) {
      // One entry per path: the first (most specific: the restorer's own) reason wins; later ones add detail.
      if (!existing.message.includes(message)) existing.message += `; ${message}`;
      return;
    }
    const f = { path: p, problem, message };
    failures.set(p, f);
    emit({ type: 'failure', failure: f });
  };
  const toSnapshotPath = (p: string): string => {
    const rel = path.relative(target, p);
    return rel === '' ? '/' : `/${rel.split(path.sep).join('/')}`;
  };

  const expected = { files: 0, dirs: 0, others: 0, bytes: 0 };
  const checked = { files: 0, dirs: 0, others: 0 };
  let result: RestoreResult | undefined;
  const pool = new VerifyPool(cryptoMaterial(repo).key, options.workers ?? defaultVerifyWorkers());
  try {
    try {
      result = await restore(repo, snapshotId, {
        target,
        // A predicate, not include patterns: every pattern would be tried on every path (10% of 50,000 files took
        // 100 CPU-seconds that way).
        ...(restoreOnly ? { select: restoreOnly } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.workers !== undefined ? { workers: Math.max(1, options.workers) } : {}),
        onEvent: (event) => emit({ type: 'restore', event }),
      });
    } catch (e) {
      if (isBackupError(e, 'INTERRUPTED')) throw e;
      fail('/', 'restore-error', `the restore failed: ${(e as Error).message}`);
    }
    for (const pr of result?.problems ?? []) {
      const sp = toSnapshotPath(pr.path);
      if (pr.code === 'unsupported') skipped.push({ path: sp, reason: pr.message });
      else {
        // The restorer's messages start with the target path; the report names the snapshot path once, itself.
        const message = pr.message.startsWith(`${pr.path}: `) ? pr.message.slice(pr.path.length + 2) : pr.message.replace(pr.path, sp);
        fail(sp, pr.code === 'unreadable-data' ? 'unreadable-data' : pr.code === 'mismatch' ? 'content' : 'restore-error', message);
      }
    }

    // ---- check, independently of the restorer ---------------------------------------------------------------
    if (result) {
      const limiter = new Limiter(Math.max(2, pool.size * 2));
      let done = 0;
      const unsupported = (n: TreeNode): boolean => n.type === 'socket' || ((n.type === 'chardev' || n.type === 'blockdev') && !isRoot);
      // Files are hashed in batches (up to 64 files or 32 MiB) on the workers while the walk goes on.
      let batch: { sp: string; disk: string; node: TreeNode }[] = [];
      let batchBytes = 0;
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const files = batch;
        batch = [];
        batchBytes = 0;
        await limiter.run(async () => {
          const digests = await pool.hashFiles(files.map((f) => f.disk));
          files.forEach((f, i) => {
            const d = digests[i]!;
            if ('error' in d) fail(f.sp, 'content', `cannot read the restored file back: ${d.error}`);
            else if (d.sha256 !== f.node.sha256) fail(f.sp, 'content', `restored content differs from the snapshot (SHA-256 ${d.sha256.slice(0, 12)}…, expected ${f.node.sha256!.slice(0, 12)}…)`);
          });
          done += files.length;
          emit({ type: 'checking', done, total: expected.files });
        });
      };
      const checkFile = async (sp: string, disk: string, node: TreeNode): Promise<void> => {
        if (node.size === 0) {
          if (node.sha256 !== EMPTY_SHA256) fail(sp, 'content', 'the restored file is empty, the snapshot says it has content');
          return;
        }
        batch.push({ sp, disk, node });
        batchBytes += node.size ?? 0;
        if (batch.length >= 64 || batchBytes >= 32 * 1024 * 1024) await flush();
      };
      const walk = async (treeId: Id, snapDir: string, diskDir: string): Promise<void> => {
        throwIfAborted(options.signal, 'recovery test');
        const nodes = (await repo.loadTree(treeId)).nodes;
        const wanted = new Map<string, { node: TreeNode; how: 'yes' | 'enter' }>();
        for (const node of nodes) {
          const sp = joinSnapshotPath(snapDir, node.name);
          const how = select(sp, node.type === 'dir');
          if (how === 'no') continue;
          if (how === 'yes' && unsupported(node)) {
            if (!skipped.some((s) => s.path === sp)) skipped.push({ path: sp, reason: `${node.type}s are not restored${node.type === 'socket' ? '' : ' without root'}` });
            continue;
          }
          wanted.set(node.name, { node, how });
        }
        let present: string[] = [];
        try {
          present = fs.readdirSync(diskDir);
        } catch {
          // the directory itself is reported missing by the caller (or the restore failed)
        }
        for (const name of present) {
          if (!wanted.has(name)) fail(joinSnapshotPath(snapDir, name), 'unexpected', `${joinSnapshotPath(snapDir, name)} was restored but is not in the snapshot${scope === 'full' ? '' : "'s selected part"}`);
        }
        for (const [name, { node, how }] of wanted) {
          const sp = joinSnapshotPath(snapDir, name);
          const disk = path.join(diskDir, name);
          if (how === 'yes') {
            if (node.type === 'file') {
              expected.files++;
              expected.bytes += node.size ?? 0;
            } else if (node.type === 'dir') expected.dirs++;
            else expected.others++;
          }
          let st: fs.Stats;
          try {
            st = fs.lstatSync(disk);
          } catch {
            fail(sp, 'missing', `${sp} is in the snapshot but was not restored`);
            continue;
          }
          const typeOk = node.type === 'file' ? st.isFile() : node.type === 'dir' ? st.isDirectory() : node.type === 'symlink' ? st.isSymbolicLink()
            : node.type === 'fifo' ? st.isFIFO() : node.type === 'chardev' ? st.isCharacterDevice() : node.type === 'blockdev' ? st.isBlockDevice() : true;
          if (!typeOk) {
            fail(sp, 'type', `${sp} was restored as something other than a ${node.type}`);
            continue;
          }
          if (node.type !== 'symlink' && (st.mode & 0o7777) !== node.mode) {
            fail(sp, 'mode', `${sp} has mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, the snapshot says ${node.mode.toString(8).padStart(4, '0')}`);
          }
          if (node.type === 'file') {
            checked.files++;
            if (st.size !== node.size) fail(sp, 'size', `${sp} has ${st.size} bytes, the snapshot says ${node.size}`);
            await checkFile(sp, disk, node);
          } else if (node.type === 'dir') {
            if (how === 'yes') checked.dirs++;
            await walk(node.subtree!, sp, disk);
          } else {
            checked.others++;
            if (node.type === 'symlink') {
              const t = fs.readlinkSync(disk);
              if (t !== node.linkTarget) fail(sp, 'link-target', `${sp} points to ${t}, the snapshot says ${node.linkTarget}`);
            }
          }
        }
      };
      await walk(snap.tree, '/', target);
      await flush();
      await limiter.idle();
    }
  } finally {
    await pool.close();
    if (!kept) removeTree(target);
  }

  const restoreMs = result?.durationMs ?? 0;
  const bytesRestored = result?.bytes ?? 0;
  const list = [...failures.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    kind: 'recovery-test',
    repository: repo.location,
    repositoryId: repo.config.id,
    snapshot: snapshotId,
    snapshotTime: snap.time,
    hostname: snap.hostname,
    sources: snap.paths,
    scope,
    scopeText,
    target,
    kept,
    startedAt: started.toISOString(),
    durationMs: Date.now() - t0,
    restoreMs,
    expected,
    checked,
    bytesRestored,
    throughputBytesPerSec: restoreMs > 0 ? Math.round((bytesRestored * 1000) / restoreMs) : 0,
    failures: list,
    skipped,
    ok: list.length === 0 && result !== undefined,
  };
}

/**
 * A uniform random sample of round(pct% of the files) (at least one), chosen in two walks with Knuth's selection
 * sampling, so that memory holds the sample and never the whole file list.
 */
async function sampleFiles(repo: Repository, root: Id, pct: number, random: () => number, signal: AbortSignal | undefined): Promise<Set<string>> {
  const visit = async (treeId: Id, dir: string, onFile: (p: string) => void): Promise<void> => {
    throwIfAborted(signal, 'recovery test');
    for (const n of (await repo.loadTree(treeId)).nodes) {
      const p = joinSnapshotPath(dir, n.name);
      if (n.type === 'file') onFile(p);
      else if (n.type === 'dir') await visit(n.subtree!, p, onFile);
    }
  };
  let total = 0;
  await visit(root, '/', () => total++);
  const want = total === 0 ? 0 : Math.max(1, Math.round((total * pct) / 100));
  const out = new Set<string>();
  let seen = 0;
  await visit(root, '/', (p) => {
    if ((want - out.size) > 0 && random() * (total - seen) < want - out.size) out.add(p);
    seen++;
  });
  return out;
}

/** At most `limit` tasks at once; `run` waits for a free slot, not for the task. */
class Limiter {
  private readonly limit: number;
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;

  constructor(limit: number) {
    this.limit = limit;
  }

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    if (this.failure) throw this.failure;
    const p: Promise<void> = task().catch((e: unknown) => {
      this.failure ??= e;
    });
    const tracked = p.finally(() => this.running.delete(tracked));
    this.running.add(tracked);
  }

  async idle(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }
}

/** Removes a restored tree, first making its directories writable (a snapshot may hold read-only ones). */
export function removeTree(dir: string): void {
  const unlock = (d: string): void => {
    try {
      fs.chmodSync(d, 0o700);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) unlock(path.join(d, e.name));
    } catch {
      // whatever cannot be opened, rmSync reports
    }
  };
  unlock(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}
