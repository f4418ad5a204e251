/**
 * The benchmark's input and its proof of identity: a reproducible corpus copied from real files on this machine
 * (a sorted walk of /usr/include, /usr/share and /usr/lib that stops at a size), and manifests of any tree
 * (path, type, size, mode, mtime, SHA-256) so that a restored tree can be compared with its source, untimed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export type EntryType = 'file' | 'dir' | 'symlink';

/** What the first bytes of a file say it is; only used to describe the corpus's mix. */
export type FileKind = 'text' | 'elf' | 'compressed' | 'data';

export type Entry = {
  /** Relative to the tree's root, `/`-separated; never empty (the root itself is not an entry). */
  path: string;
  type: EntryType;
  size: number;
  /** Permission bits, including setuid/setgid/sticky. */
  mode: number;
  /** Modification time in nanoseconds, as a decimal string (bigint does not survive JSON). */
  mtimeNs: string;
  sha256?: string;
  kind?: FileKind;
  /** Symlinks only. */
  target?: string;
};

export type CorpusManifest = {
  version: 1;
  roots: string[];
  limitBytes: number;
  createdAt: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  composition: Record<FileKind, { files: number; bytes: number }>;
  entries: Entry[];
};

export type Log = (message: string) => void;

export const CORPUS_ROOTS = ['/usr/include', '/usr/share', '/usr/lib'] as const;

const READ_BUFFER = 1024 * 1024;

/** Runs `fn` over `items` with at most `concurrency` at a time. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
}

function classify(head: Buffer): FileKind {
  const starts = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (starts(0x7f, 0x45, 0x4c, 0x46)) return 'elf';
  if (
    starts(0x1f, 0x8b) || // gzip
    starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00) || // xz
    starts(0x42, 0x5a, 0x68) || // bzip2
    starts(0x28, 0xb5, 0x2f, 0xfd) || // zstd
    starts(0x50, 0x4b, 0x03, 0x04) || // zip, jar, whl
    starts(0x89, 0x50, 0x4e, 0x47) || // png
    starts(0xff, 0xd8, 0xff) || // jpeg
    starts(0x77, 0x4f, 0x46, 0x32) // woff2
  ) {
    return 'compressed';
  }
  return head.subarray(0, 8192).includes(0) ? 'data' : 'text';
}

/** Reads a whole file once; `onChunk` sees every byte. Returns the first bytes (for classification). */
export async function readWhole(file: string, onChunk?: (chunk: Buffer) => void): Promise<Buffer> {
  const handle = await fsp.open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    let head: Buffer | undefined;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      head ??= Buffer.from(chunk.subarray(0, 8192));
      onChunk?.(chunk);
    }
    return head ?? Buffer.alloc(0);
  } finally {
    await handle.close();
  }
}

export async function hashFile(file: string): Promise<{ sha256: string; kind: FileKind }> {
  const hash = createHash('sha256');
  const head = await readWhole(file, (chunk) => hash.update(chunk));
  return { sha256: hash.digest('hex'), kind: classify(head) };
}

function entryFromStat(rel: string, st: fs.BigIntStats, abs: string): Entry | undefined {
  const base = { path: rel, mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs.toString() };
  if (st.isFile()) return { ...base, type: 'file', size: Number(st.size) };
  if (st.isDirectory()) return { ...base, type: 'dir', size: 0 };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', size: 0, target: fs.readlinkSync(abs) };
  return undefined; // sockets, fifos, devices: not part of any tree we compare
}

/** Every file, folder and symlink under `root` (sorted by path), optionally with SHA-256 and kind of each file. */
export async function scanTree(root: string, options: { hash: boolean; concurrency?: number }): Promise<Entry[]> {
  const entries: Entry[] = [];
  const walk = (absDir: string, relDir: string): void => {
    const names = fs.readdirSync(absDir).sort();
    for (const name of names) {
      const abs = path.join(absDir, name);
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const entry = entryFromStat(rel, fs.lstatSync(abs, { bigint: true }), abs);
      if (entry === undefined) continue;
      entries.push(entry);
      if (entry.type === 'dir') walk(abs, rel);
    }
  };
  walk(root, '');
  if (options.hash) {
    await pool(
      entries.filter((e) => e.type === 'file'),
      options.concurrency ?? 4,
      async (entry) => {
        const { sha256, kind } = await hashFile(path.join(root, entry.path));
        entry.sha256 = sha256;
        entry.kind = kind;
      },
    );
  }
  return entries;
}

export type Comparison = {
  /** No missing or extra entry, and every file's size, SHA-256, mode and mtime (to 1 µs), every symlink's target and
   *  every folder's mode agree. Folder mtimes are counted separately (`dirMtime`). */
  identical: boolean;
  compared: number;
  missing: number;
  extra: number;
  type: number;
  size: number;
  sha256: number;
  mode: number;
  mtime: number;
  target: number;
  dirMtime: number;
  /** Files whose mtime differs by less than 1 µs: a restorer that sets times through a float of seconds. */
  mtimeSubMicrosecond: number;
  examples: string[];
};

const MTIME_TOLERANCE_NS = 1000n;

/** Compares a tree's entries with the expected ones. `checkHash` false skips SHA-256 (a quick stat-only check). */
export function compareTrees(expected: readonly Entry[], actual: readonly Entry[], options: { checkHash: boolean }): Comparison {
  const result: Comparison = {
    identical: true, compared: 0, missing: 0, extra: 0, type: 0, size: 0, sha256: 0, mode: 0, mtime: 0, target: 0,
    dirMtime: 0, mtimeSubMicrosecond: 0, examples: [],
  };
  const note = (field: Exclude<keyof Comparison, 'identical' | 'compared' | 'examples'>, message: string): void => {
    result[field]++;
    if (field !== 'dirMtime' && field !== 'mtimeSubMicrosecond') result.identical = false;
    if (result.examples.length < 10) result.examples.push(message);
  };
  const byPath = new Map(actual.map((e) => [e.path, e]));
  for (const want of expected) {
    const got = byPath.get(want.path);
    if (got === undefined) {
      note('missing', `missing: ${want.path}`);
      continue;
    }
    byPath.delete(want.path);
    result.compared++;
    if (got.type !== want.type) {
      note('type', `type: ${want.path} is ${got.type}, expected ${want.type}`);
      continue;
    }
    if (want.type === 'symlink') {
      if (got.target !== want.target) note('target', `symlink target: ${want.path} -> ${String(got.target)}, expected ${String(want.target)}`);
      continue;
    }
    if (got.mode !== want.mode) note('mode', `mode: ${want.path} is ${got.mode.toString(8)}, expected ${want.mode.toString(8)}`);
    const drift = BigInt(got.mtimeNs) - BigInt(want.mtimeNs);
    const absDrift = drift < 0n ? -drift : drift;
    if (want.type === 'dir') {
      if (absDrift > MTIME_TOLERANCE_NS) note('dirMtime', `folder mtime: ${want.path} off by ${drift.toString()} ns`);
      continue;
    }
    if (got.size !== want.size) note('size', `size: ${want.path} is ${got.size}, expected ${want.size}`);
    else if (options.checkHash && got.sha256 !== want.sha256) note('sha256', `content: ${want.path} differs`);
    if (absDrift > MTIME_TOLERANCE_NS) note('mtime', `mtime: ${want.path} off by ${drift.toString()} ns`);
    else if (absDrift !== 0n) note('mtimeSubMicrosecond', `mtime: ${want.path} off by ${drift.toString()} ns (< 1 µs)`);
  }
  for (const rest of byPath.keys()) note('extra', `extra: ${rest}`);
  return result;
}

type Selected = { abs: string; rel: string; stat: fs.Stats };

/**
 * The deterministic selection: walk the roots in order, each folder's names sorted, taking every file, folder and
 * symlink met until the files add up to `limitBytes` (the last file may overshoot). Special files are skipped.
 */
function selectCorpus(roots: readonly string[], limitBytes: number): Selected[] {
  const selected: Selected[] = [];
  let total = 0;
  const walk = (abs: string): boolean => {
    let names: string[];
    try {
      names = fs.readdirSync(abs).sort();
    } catch {
      return true;
    }
    for (const name of names) {
      if (total >= limitBytes) return false;
      const child = path.join(abs, name);
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(child);
      } catch {
        continue;
      }
      const rel = child.replace(/^\/+/, '');
      if (stat.isDirectory()) {
        selected.push({ abs: child, rel, stat });
        if (!walk(child)) return false;
      } else if (stat.isFile()) {
        try {
          fs.accessSync(child, fs.constants.R_OK);
        } catch {
          continue;
        }
        selected.push({ abs: child, rel, stat });
        total += stat.size;
      } else if (stat.isSymbolicLink()) {
        selected.push({ abs: child, rel, stat });
      }
    }
    return true;
  };
  for (const root of roots) {
    if (total >= limitBytes) break;
    const stat = fs.statSync(root, { throwIfNoEntry: false });
    if (stat?.isDirectory() !== true) continue;
    selected.push({ abs: root, rel: root.replace(/^\/+/, ''), stat });
    walk(root);
  }
  // Parent folders of the roots (`usr`) are created by mkdir -p; give them the source's metadata too.
  return selected;
}

function setTimes(target: string, stat: fs.Stats, isLink: boolean): void {
  // Numbers of seconds lose sub-microsecond precision; files under /usr carry whole-second times from dpkg.
  const atime = stat.atimeMs / 1000;
  const mtime = stat.mtimeMs / 1000;
  if (isLink) fs.lutimesSync(target, atime, mtime);
  else fs.utimesSync(target, atime, mtime);
}

export function readManifest(file: string): CorpusManifest | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as CorpusManifest;
    return parsed.version === 1 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Stat-only check that `dir` still holds exactly the manifest's tree (sizes, modes, mtimes, names). */
export async function quickCheck(dir: string, manifest: CorpusManifest): Promise<Comparison> {
  return compareTrees(manifest.entries, await scanTree(dir, { hash: false }), { checkHash: false });
}

export type CorpusResult = { manifest: CorpusManifest; reused: boolean; removedOld: boolean; seconds: number };

/**
 * Returns the corpus at `dir`: reused when `manifestFile` was made with the same roots and size and the tree still
 * matches it, else (re)built by copying the selection and hashing the copy.
 */
export async function ensureCorpus(options: {
  dir: string;
  manifestFile: string;
  roots: readonly string[];
  limitBytes: number;
  log: Log;
}): Promise<CorpusResult> {
  const { dir, manifestFile, roots, limitBytes, log } = options;
  const started = performance.now();
  const existing = readManifest(manifestFile);
  if (existing !== undefined && existing.limitBytes === limitBytes && existing.roots.join('\n') === roots.join('\n') && fs.existsSync(dir)) {
    const check = await quickCheck(dir, existing);
    if (check.identical) {
      return { manifest: existing, reused: true, removedOld: false, seconds: (performance.now() - started) / 1000 };
    }
    log(`corpus at ${dir} does not match its manifest (${check.examples.slice(0, 3).join('; ')}): rebuilding`);
  }
  let removedOld = false;
  if (fs.existsSync(dir)) {
    log(`removing the old corpus at ${dir} (a mass delete: ext4 creates are slow for some minutes after it)`);
    fs.rmSync(dir, { recursive: true, force: true });
    removedOld = true;
  }
  fs.rmSync(manifestFile, { force: true });
  log(`selecting ${(limitBytes / 2 ** 30).toFixed(2)} GiB from ${roots.join(', ')} (sorted walk)`);
  const selection = selectCorpus(roots, limitBytes);
  const building = `${dir}.building`;
  fs.rmSync(building, { recursive: true, force: true });
  fs.mkdirSync(building, { recursive: true });
  const dirs = selection.filter((s) => s.stat.isDirectory());
  for (const d of dirs) fs.mkdirSync(path.join(building, d.rel), { recursive: true, mode: 0o755 });
  let copied = 0;
  let lastLog = performance.now();
  await pool(selection.filter((s) => !s.stat.isDirectory()), 4, async (item) => {
    const target = path.join(building, item.rel);
    if (item.stat.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(item.abs), target);
      setTimes(target, item.stat, true);
      return;
    }
    await fsp.copyFile(item.abs, target);
    fs.chmodSync(target, item.stat.mode & 0o7777);
    setTimes(target, item.stat, false);
    copied += item.stat.size;
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log(`  copied ${(copied / 1e6).toFixed(0)} MB`);
    }
  });
  // Folders last, deepest first, so that creating their children does not move their mtimes again.
  for (const d of [...dirs].reverse()) {
    const target = path.join(building, d.rel);
    fs.chmodSync(target, d.stat.mode & 0o7777);
    setTimes(target, d.stat, false);
  }
  fs.renameSync(building, dir);
  log('hashing the corpus for its manifest');
  const entries = await scanTree(dir, { hash: true });
  const manifest = summarize(entries, roots, limitBytes);
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  return { manifest, reused: false, removedOld, seconds: (performance.now() - started) / 1000 };
}

export function summarize(entries: Entry[], roots: readonly string[], limitBytes: number): CorpusManifest {
  const composition: CorpusManifest['composition'] = {
    text: { files: 0, bytes: 0 }, elf: { files: 0, bytes: 0 }, compressed: { files: 0, bytes: 0 }, data: { files: 0, bytes: 0 },
  };
  let bytes = 0;
  for (const e of entries) {
    if (e.type !== 'file') continue;
    bytes += e.size;
    const slot = composition[e.kind ?? 'data'];
    slot.files++;
    slot.bytes += e.size;
  }
  return {
    version: 1,
    roots: [...roots],
    limitBytes,
    createdAt: new Date().toISOString(),
    files: entries.filter((e) => e.type === 'file').length,
    dirs: entries.filter((e) => e.type === 'dir').length,
    symlinks: entries.filter((e) => e.type === 'symlink').length,
    bytes,
    composition,
    entries,
  };
}

/** Apparent size of everything under `dir` (the sum of file sizes), and how many files. */
export function treeSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (abs: string): void => {
    for (const d of fs.readdirSync(abs, { withFileTypes: true })) {
      const child = path.join(abs, d.name);
      if (d.isDirectory()) walk(child);
      else if (d.isFile()) {
        bytes += fs.statSync(child).size;
        files++;
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return { bytes, files };
}
