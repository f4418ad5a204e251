/**
 * The "1% change" between two backups: a seeded, deterministic plan of appends, in-place overwrites inside large
 * files, new files and deletions, applied with an undo journal so that it can be reverted exactly (content, sizes,
 * modes and mtimes, folder mtimes included) and each run starts from the same corpus, even after a crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Entry } from './corpus.ts';

export type ChangeOp =
  | { kind: 'append'; path: string; bytes: number }
  | { kind: 'overwrite'; path: string; offset: number; bytes: number }
  | { kind: 'create'; path: string; bytes: number; text: boolean }
  | { kind: 'delete'; path: string; bytes: number };

export type ChangePlan = { seed: number; fraction: number; budgetBytes: number; ops: ChangeOp[] };

export type ChangeStats = Record<ChangeOp['kind'], { count: number; bytes: number }> & { totalBytes: number; fraction: number };

type Times = { atimeNs: string; mtimeNs: string };
type Journal = {
  version: 1;
  plan: ChangePlan;
  /** Size and times of each existing file the plan touches, before the change. */
  files: Record<string, Times & { size: number }>;
  /** Times of each folder whose listing the plan changes. */
  dirs: Record<string, Times>;
};

/** The mtime given to changed and new files: fixed, so that the changed corpus is the same in every run. */
const CHANGED_MTIME_SEC = 1_000_000_000;

/** mulberry32: a small, fast, seedable PRNG; quality is ample for picking files and filling bytes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic content for op `index`: printable lines for text, uniform bytes otherwise. */
export function content(seed: number, index: number, bytes: number, text: boolean): Buffer {
  const random = prng((seed * 7919 + index * 104729) >>> 0);
  const out = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) {
    out[i] = text ? ((i + 1) % 72 === 0 ? 0x0a : 0x20 + Math.floor(random() * 95)) : Math.floor(random() * 256);
  }
  return out;
}

/**
 * Plans a change of about `fraction` of the tree's file bytes: 30% in-place overwrites of 64–512 KiB regions inside
 * the largest files, 20% appends of 0.5–64 KiB to small files, 30% new files of 1–256 KiB, 20% deleted small files.
 * Each kind gets at least one operation when there is a candidate; no file is touched by two kinds.
 */
export function planChange(entries: readonly Entry[], options: { seed: number; fraction: number }): ChangePlan {
  const random = prng(options.seed);
  const files = entries.filter((e) => e.type === 'file');
  const dirs = entries.filter((e) => e.type === 'dir');
  const total = files.reduce((sum, e) => sum + e.size, 0);
  const budget = Math.round(total * options.fraction);
  const bySizeDesc = [...files].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  const large = bySizeDesc.filter((e) => e.size >= 8 * 2 ** 20);
  const bigEnough = large.length > 0 ? large : bySizeDesc.slice(0, Math.max(1, Math.ceil(files.length / 20))).filter((e) => e.size >= 16);
  const small = files.filter((e) => e.size > 0 && e.size <= 2 ** 20);
  const used = new Set<string>();
  const ops: ChangeOp[] = [];
  const pick = <T>(list: readonly T[]): T | undefined => list[Math.floor(random() * list.length)];
  const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

  const spend = (share: number, once: () => number | undefined): void => {
    let spent = 0;
    for (let attempts = 0; attempts < 100_000 && (spent === 0 || spent < budget * share); attempts++) {
      const got = once();
      if (got !== undefined) spent += got;
      else if (attempts > 1000 && spent === 0) return;
    }
  };

  spend(0.3, () => {
    const file = pick(bigEnough);
    if (file === undefined) return undefined;
    const len = Math.max(1, Math.min(between(64 * 1024, 512 * 1024), Math.floor(file.size / 4)));
    const offset = between(0, file.size - len);
    used.add(file.path);
    ops.push({ kind: 'overwrite', path: file.path, offset, bytes: len });
    return len;
  });
  spend(0.2, () => {
    const file = pick(small);
    if (file === undefined || used.has(file.path)) return undefined;
    used.add(file.path);
    const len = between(512, 64 * 1024);
    ops.push({ kind: 'append', path: file.path, bytes: len });
    return len;
  });
  let created = 0;
  spend(0.3, () => {
    const dir = pick(dirs);
    const text = random() < 0.5;
    const rel = `${dir === undefined ? '' : `${dir.path}/`}bench-change-${String(created++).padStart(4, '0')}.${text ? 'txt' : 'bin'}`;
    const len = between(1024, 256 * 1024);
    ops.push({ kind: 'create', path: rel, bytes: len, text });
    return len;
  });
  spend(0.2, () => {
    const file = pick(small);
    if (file === undefined || used.has(file.path)) return undefined;
    used.add(file.path);
    ops.push({ kind: 'delete', path: file.path, bytes: file.size });
    return file.size;
  });
  return { seed: options.seed, fraction: options.fraction, budgetBytes: budget, ops };
}

export function changeStats(plan: ChangePlan, corpusBytes: number): ChangeStats {
  const stats: ChangeStats = {
    append: { count: 0, bytes: 0 }, overwrite: { count: 0, bytes: 0 }, create: { count: 0, bytes: 0 },
    delete: { count: 0, bytes: 0 }, totalBytes: 0, fraction: 0,
  };
  for (const op of plan.ops) {
    stats[op.kind].count++;
    stats[op.kind].bytes += op.bytes;
    stats.totalBytes += op.bytes;
  }
  stats.fraction = corpusBytes > 0 ? stats.totalBytes / corpusBytes : 0;
  return stats;
}

const journalFile = (undoDir: string): string => path.join(undoDir, 'journal.json');

export function changePending(undoDir: string): boolean {
  return fs.existsSync(journalFile(undoDir));
}

function times(file: string): Times {
  const st = fs.lstatSync(file, { bigint: true });
  return { atimeNs: st.atimeNs.toString(), mtimeNs: st.mtimeNs.toString() };
}

function nsToSeconds(ns: string): number {
  const value = BigInt(ns);
  return Number(value / 1_000_000_000n) + Number(value % 1_000_000_000n) / 1e9;
}

function setTimes(file: string, t: Times): void {
  fs.utimesSync(file, nsToSeconds(t.atimeNs), nsToSeconds(t.mtimeNs));
}

/**
 * Applies the plan to the tree at `root`. The journal (original sizes and times, the original bytes of each
 * overwritten region) is written before anything is changed; deleted files are moved into `undoDir` (same file
 * system), not removed, so a revert gives back the very same inodes.
 */
export function applyChange(root: string, plan: ChangePlan, undoDir: string): void {
  if (changePending(undoDir)) throw new Error(`a change is already applied (${journalFile(undoDir)}): revert it first`);
  fs.rmSync(undoDir, { recursive: true, force: true });
  fs.mkdirSync(path.join(undoDir, 'regions'), { recursive: true });
  fs.mkdirSync(path.join(undoDir, 'deleted'), { recursive: true });
  const journal: Journal = { version: 1, plan, files: {}, dirs: {} };
  plan.ops.forEach((op, i) => {
    const abs = path.join(root, op.path);
    const parent = path.dirname(op.path);
    if (op.kind === 'create' || op.kind === 'delete') journal.dirs[parent] ??= times(path.join(root, parent));
    if (op.kind === 'create') return;
    journal.files[op.path] ??= { ...times(abs), size: fs.statSync(abs).size };
    if (op.kind === 'overwrite') {
      const fd = fs.openSync(abs, 'r');
      try {
        const original = Buffer.alloc(op.bytes);
        fs.readSync(fd, original, 0, op.bytes, op.offset);
        fs.writeFileSync(path.join(undoDir, 'regions', String(i)), original);
      } finally {
        fs.closeSync(fd);
      }
    }
  });
  fs.writeFileSync(journalFile(undoDir), JSON.stringify(journal));

  plan.ops.forEach((op, i) => {
    const abs = path.join(root, op.path);
    switch (op.kind) {
      case 'append':
        fs.appendFileSync(abs, content(plan.seed, i, op.bytes, true));
        break;
      case 'overwrite': {
        const fd = fs.openSync(abs, 'r+');
        try {
          fs.writeSync(fd, content(plan.seed, i, op.bytes, false), 0, op.bytes, op.offset);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'create':
        fs.writeFileSync(abs, content(plan.seed, i, op.bytes, op.text), { mode: 0o644 });
        fs.chmodSync(abs, 0o644); // independent of the umask
        break;
      case 'delete':
        fs.renameSync(abs, path.join(undoDir, 'deleted', String(i)));
        break;
    }
  });
  // Fixed times, files then folders, so the changed tree is identical from run to run.
  plan.ops.forEach((op, i) => {
    if (op.kind !== 'delete') fs.utimesSync(path.join(root, op.path), CHANGED_MTIME_SEC + i, CHANGED_MTIME_SEC + i);
  });
  for (const dir of Object.keys(journal.dirs)) fs.utimesSync(path.join(root, dir), CHANGED_MTIME_SEC, CHANGED_MTIME_SEC);
}

/**
 * Undoes a change recorded in `undoDir`, also one that was only partly applied. Returns false when there was none.
 * Every step is idempotent, so an interrupted revert can simply be run again.
 */
export function revertChange(root: string, undoDir: string): boolean {
  if (!changePending(undoDir)) return false;
  const journal = JSON.parse(fs.readFileSync(journalFile(undoDir), 'utf8')) as Journal;
  const ops = journal.plan.ops;
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i] as ChangeOp;
    const abs = path.join(root, op.path);
    switch (op.kind) {
      case 'create':
        fs.rmSync(abs, { force: true });
        break;
      case 'delete': {
        const saved = path.join(undoDir, 'deleted', String(i));
        if (fs.existsSync(saved)) fs.renameSync(saved, abs);
        break;
      }
      case 'overwrite': {
        const saved = path.join(undoDir, 'regions', String(i));
        if (!fs.existsSync(saved)) break; // the journal is written after all regions, so this is not reached
        const fd = fs.openSync(abs, 'r+');
        try {
          const original = fs.readFileSync(saved);
          fs.writeSync(fd, original, 0, original.length, op.offset);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'append': {
        const before = journal.files[op.path];
        if (before !== undefined) fs.truncateSync(abs, before.size);
        break;
      }
    }
  }
  for (const [rel, before] of Object.entries(journal.files)) {
    const abs = path.join(root, rel);
    if (fs.existsSync(abs)) setTimes(abs, before);
  }
  for (const [rel, before] of Object.entries(journal.dirs)) setTimes(path.join(root, rel), before);
  fs.rmSync(undoDir, { recursive: true, force: true });
  return true;
}

/** The paths a plan touches (for a cheap content check after a revert). */
export function touchedPaths(plan: ChangePlan): string[] {
  return [...new Set(plan.ops.filter((op) => op.kind !== 'create').map((op) => op.path))];
}
