/**
 * Test-only builders for hostile source trees and a strict comparison of two trees, so archiver and restorer tests
 * can say "backup then restore gives the same tree" in one line. Not exported from the package. Several entries
 * (devices, foreign owners) need root, which the tests and CI have.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Size of each of the identical random copies under `big/dup`. */
export const DUP_SIZE = 24 * MiB;
/** Logical size of `big/sparse.img`. */
export const SPARSE_SIZE = GiB;
/** Offsets of the few non-zero bytes written into the sparse file. */
export const SPARSE_WRITES: readonly { offset: number; text: string }[] = [
  { offset: 0, text: 'head' },
  { offset: 300 * MiB + 123, text: 'middle' },
  { offset: SPARSE_SIZE - 4, text: 'tail' },
];

/** The foreign owner given to a few entries. */
export const OTHER_UID = 12345;
export const OTHER_GID = 54321;

export const NFC_NAME = 'caf\u00e9';
export const NFD_NAME = 'cafe\u0301';
export const LONG_NAME = 'L'.repeat(250);
export const DEPTH = 60;

export interface AdversarialTree {
  /** the directory passed in, now filled */
  root: string;
  /** everything except `big/` (cheap to hash, dump or copy) */
  light: string;
  /** the sparse file and the duplicate copies */
  big: string;
  /** relative paths (from root) of the entries tests single out */
  rel: {
    socket: string;
    fifo: string;
    chardev: string;
    sparse: string;
    dups: string[];
    shifted: string;
    hardlinks: string[];
    deepLeaf: string;
    old: string;
    future: string;
    setuid: string;
    noperm: string;
    foreign: string;
  };
}

export interface AdversarialOptions {
  /** create `big/` (1 GiB sparse file, 4 × 24 MiB copies); default true */
  big?: boolean;
}

function write(p: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
}

/** `touch -d @S.N` sets atime and mtime to the nanosecond, which fs.utimes cannot. */
function touchExact(p: string, seconds: number, nanos: number, noDeref = false): void {
  const stamp = `@${seconds}.${String(nanos).padStart(9, '0')}`;
  execFileSync('touch', [...(noDeref ? ['-h'] : []), '-d', stamp, '--', p]);
}

/**
 * Creates a unix socket file that outlives its server. libuv unlinks the path a pipe server bound when the server
 * closes, so the server binds a temporary name, the socket inode gets a second (hard) name, and only the temporary
 * name is removed on close.
 */
async function makeSocket(p: string): Promise<void> {
  const bound = `${p}.bound`;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bound, () => resolve());
  });
  fs.linkSync(bound, p);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(bound, { force: true });
  if (!fs.lstatSync(p).isSocket()) throw new Error(`socket ${p} vanished after the server closed`);
}

/**
 * Fills `dir` with every kind of entry a backup engine gets wrong. The layout:
 *   light/names      NFC and NFD spellings of one word, emoji, CJK, newline, backslash, leading '-', 250-byte name
 *   light/deep       60 nested directories with a file at the bottom
 *   light/empty      an empty file and an empty directory
 *   light/links      relative, absolute, dangling symlinks and a symlink to a directory
 *   light/hard       three names of one inode across two directories
 *   light/special    FIFO, socket, char device (1,3 like /dev/null)
 *   light/times      mtimes in 1971 and 2099 with nanoseconds, and one on an exact microsecond
 *   light/modes      setuid, setgid, sticky, 0o000
 *   light/owner      entries owned by 12345:54321
 *   big/sparse.img   1 GiB, all holes but a few bytes
 *   big/dup/*        three identical 24 MiB random files and one shifted by 100 inserted bytes
 * Times are set last, directories after their contents, so nothing later disturbs them.
 */
export async function makeAdversarialTree(dir: string, options: AdversarialOptions = {}): Promise<AdversarialTree> {
  const root = path.resolve(dir);
  const light = path.join(root, 'light');
  const big = path.join(root, 'big');
  const L = (...parts: string[]): string => path.join(light, ...parts);

  // names
  write(L('names', NFC_NAME), 'composed\n');
  write(L('names', NFD_NAME), 'decomposed\n');
  write(L('names', '\u{1F600} smile.txt'), 'emoji\n');
  write(L('names', '日本語のファイル名.txt'), 'cjk\n');
  write(L('names', 'new\nline'), 'newline\n');
  write(L('names', 'back\\slash'), 'backslash\n');
  write(L('names', '-starts-with-dash'), 'dash\n');
  write(L('names', LONG_NAME), 'long\n');
  fs.mkdirSync(L('names', NFD_NAME + '-dir'));
  write(L('names', NFD_NAME + '-dir', 'inside'), 'x');

  // deep nesting
  const deepParts = Array.from({ length: DEPTH }, (_, i) => `d${String(i).padStart(2, '0')}`);
  write(L('deep', ...deepParts, 'leaf.txt'), 'bottom of the tree\n');

  // empty things
  write(L('empty', 'empty-file'), '');
  fs.mkdirSync(L('empty', 'empty-dir'), { recursive: true });

  // symlinks
  fs.mkdirSync(L('links'), { recursive: true });
  fs.symlinkSync('../names/日本語のファイル名.txt', L('links', 'relative'));
  fs.symlinkSync('/etc/hostname', L('links', 'absolute'));
  fs.symlinkSync('no/such/target', L('links', 'dangling'));
  fs.symlinkSync('../deep', L('links', 'to-dir'));

  // hard links: three names of one inode across two directories
  write(L('hard', 'a', 'one'), 'one inode, three names\n');
  fs.mkdirSync(L('hard', 'b'), { recursive: true });
  fs.linkSync(L('hard', 'a', 'one'), L('hard', 'a', 'two'));
  fs.linkSync(L('hard', 'a', 'one'), L('hard', 'b', 'three'));

  // special files
  fs.mkdirSync(L('special'), { recursive: true });
  execFileSync('mkfifo', ['-m', '0640', '--', L('special', 'fifo')]);
  await makeSocket(L('special', 'socket'));
  execFileSync('mknod', ['-m', '0666', '--', L('special', 'null-like'), 'c', '1', '3']);

  // modes
  write(L('modes', 'setuid'), '#!/bin/sh\n');
  fs.chmodSync(L('modes', 'setuid'), 0o4755);
  fs.mkdirSync(L('modes', 'setgid-dir'));
  write(L('modes', 'setgid-dir', 'f'), 'g');
  fs.chmodSync(L('modes', 'setgid-dir'), 0o2775);
  fs.mkdirSync(L('modes', 'sticky-dir'));
  fs.chmodSync(L('modes', 'sticky-dir'), 0o1777);
  write(L('modes', 'no-permissions'), 'nobody may read this (except root)\n');
  fs.chmodSync(L('modes', 'no-permissions'), 0o000);
  write(L('modes', 'group-exec'), 'x');
  fs.chmodSync(L('modes', 'group-exec'), 0o610);

  // foreign owner (chown clears set-id bits, so owners first, then modes)
  write(L('owner', 'file'), 'owned by someone else\n');
  fs.mkdirSync(L('owner', 'dir'));
  fs.symlinkSync('file', L('owner', 'link'));
  fs.chownSync(L('owner', 'file'), OTHER_UID, OTHER_GID);
  fs.chownSync(L('owner', 'dir'), OTHER_UID, OTHER_GID);
  fs.lchownSync(L('owner', 'link'), OTHER_UID, OTHER_GID);
  fs.chmodSync(L('owner', 'dir'), 0o750);

  // times (set last for files; directories are done at the very end)
  write(L('times', 'old-1971'), 'from 1971\n');
  write(L('times', 'future-2099'), 'from 2099\n');
  write(L('times', 'exact-micro'), 'on a microsecond boundary\n');
  write(L('times', 'almost-next-second'), '999999999 ns\n');
  touchExact(L('times', 'old-1971'), 31_536_000 + 12_345, 123_456_789);
  touchExact(L('times', 'future-2099'), 4_073_587_200 + 678, 987_654_321);
  touchExact(L('times', 'exact-micro'), 1_700_000_000, 250_000_000);
  touchExact(L('times', 'almost-next-second'), 4_000_000_000, 999_999_999);
  touchExact(L('links', 'absolute'), 1_000_000_000, 500_000_000, true);

  const rel = {
    socket: 'light/special/socket',
    fifo: 'light/special/fifo',
    chardev: 'light/special/null-like',
    sparse: 'big/sparse.img',
    dups: ['big/dup/copy1', 'big/dup/copy2', 'big/dup/copy3'],
    shifted: 'big/dup/shifted',
    hardlinks: ['light/hard/a/one', 'light/hard/a/two', 'light/hard/b/three'],
    deepLeaf: path.posix.join('light/deep', ...deepParts, 'leaf.txt'),
    old: 'light/times/old-1971',
    future: 'light/times/future-2099',
    setuid: 'light/modes/setuid',
    noperm: 'light/modes/no-permissions',
    foreign: 'light/owner/file',
  };

  if (options.big !== false) {
    fs.mkdirSync(path.join(big, 'dup'), { recursive: true });
    // Sparse: ftruncate to 1 GiB, then a few bytes at chosen offsets.
    const fd = fs.openSync(path.join(root, rel.sparse), 'w');
    try {
      fs.ftruncateSync(fd, SPARSE_SIZE);
      for (const w of SPARSE_WRITES) fs.writeSync(fd, Buffer.from(w.text), 0, w.text.length, w.offset);
    } finally {
      fs.closeSync(fd);
    }
    const random = randomBytes(DUP_SIZE);
    for (const d of rel.dups) fs.writeFileSync(path.join(root, d), random);
    fs.writeFileSync(path.join(root, rel.shifted), Buffer.concat([randomBytes(100), random]));
  } else {
    fs.mkdirSync(big, { recursive: true });
  }

  // Directory times last, deepest first, so creating their contents no longer moves them.
  const dirs: string[] = [];
  const collect = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) collect(path.join(d, e.name));
    }
    dirs.push(d);
  };
  collect(root);
  let t = 1_600_000_000;
  for (const d of dirs) touchExact(d, t++, 111_111_111);
  return { root, light, big, rel };
}

// ---- comparison --------------------------------------------------------------------------------------------------

export interface CompareOptions {
  /** compare the metadata of the two roots themselves (default true) */
  root?: boolean;
  /** sockets in `a` are expected to be missing from `b` (default true: restore and tar skip sockets) */
  socketsAbsentInB?: boolean;
  /** compare uid and gid (default true) */
  owners?: boolean;
  /** compare mtimes (default true) */
  mtimes?: boolean;
  /** relative paths to leave out of the comparison (and everything below them) */
  ignore?: string[];
}

interface Entry {
  rel: string;
  st: fs.BigIntStats;
  kind: string;
}

function kindOf(st: fs.BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return 'unknown';
}

function walk(root: string, ignore: ReadonlySet<string>): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs, { bigint: true });
    out.set(rel, { rel, st, kind: kindOf(st) });
    if (!st.isDirectory()) return;
    for (const name of fs.readdirSync(abs).sort()) {
      const child = rel === '' ? name : `${rel}/${name}`;
      if (!ignore.has(child)) visit(child);
    }
  };
  visit('');
  return out;
}

/** SHA-256 of a file's content, read in large blocks (holes read as zeros). */
export function sha256File(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 * MiB);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

const hashCache = new Map<string, string>();

/** sha256File, remembered by path, size, inode and mtime: a source tree is hashed once however often it is compared. */
function cachedHash(p: string, st: fs.BigIntStats): string {
  const key = `${p}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`;
  let h = hashCache.get(key);
  if (h === undefined) {
    h = sha256File(p);
    hashCache.set(key, h);
  }
  return h;
}

const display = (rel: string): string => JSON.stringify(rel === '' ? '.' : rel);

/**
 * Compares two trees entry by entry (lstat, never following links) and returns the differences, empty when the
 * trees are identical: type, size and SHA-256 of regular files, mode (st_mode & 0o7777), owner, mtime, symlink
 * target, rdev of devices, and hard-link groups (the set of names sharing an inode must be the same on both sides).
 *
 * mtimes are compared to the microsecond: the restorer sets times through fs.utimes, which (via libuv) truncates to
 * microseconds, so nanoseconds cannot come back exactly. Directory sizes, link counts of directories and atimes
 * are not compared (they depend on the filesystem and on reading). Sockets in `a` must be absent in `b` unless
 * `socketsAbsentInB` is false.
 */
export function compareTrees(a: string, b: string, options: CompareOptions = {}): string[] {
  const ignore = new Set(options.ignore ?? []);
  const ea = walk(path.resolve(a), ignore);
  const eb = walk(path.resolve(b), ignore);
  const diffs: string[] = [];
  const socketsAbsent = options.socketsAbsentInB !== false;
  const groups = (entries: Map<string, Entry>): Map<string, string> => {
    const byInode = new Map<string, string[]>();
    for (const e of entries.values()) {
      if (e.kind === 'dir') continue;
      const key = `${e.st.dev}:${e.st.ino}`;
      byInode.set(key, [...(byInode.get(key) ?? []), e.rel]);
    }
    const out = new Map<string, string>();
    for (const names of byInode.values()) for (const n of names) out.set(n, names.sort().join(' | '));
    return out;
  };
  const ga = groups(ea);
  const gb = groups(eb);
  for (const [rel, x] of ea) {
    if (rel === '' && options.root === false) continue;
    const y = eb.get(rel);
    if (!y) {
      if (!(x.kind === 'socket' && socketsAbsent)) diffs.push(`${display(rel)}: missing in b (a has a ${x.kind})`);
      continue;
    }
    if (x.kind === 'socket' && socketsAbsent) {
      diffs.push(`${display(rel)}: a socket was restored (expected none)`);
      continue;
    }
    if (x.kind !== y.kind) {
      diffs.push(`${display(rel)}: type ${x.kind} vs ${y.kind}`);
      continue;
    }
    const sa = x.st;
    const sb = y.st;
    const mode = (s: fs.BigIntStats): string => (s.mode & 0o7777n).toString(8).padStart(4, '0');
    if (x.kind !== 'symlink' && mode(sa) !== mode(sb)) diffs.push(`${display(rel)}: mode ${mode(sa)} vs ${mode(sb)}`);
    if (options.owners !== false && (sa.uid !== sb.uid || sa.gid !== sb.gid)) {
      diffs.push(`${display(rel)}: owner ${sa.uid}:${sa.gid} vs ${sb.uid}:${sb.gid}`);
    }
    if (options.mtimes !== false) {
      const ua = sa.mtimeNs / 1000n;
      const ub = sb.mtimeNs / 1000n;
      if (ua !== ub) diffs.push(`${display(rel)}: mtime ${sa.mtimeNs} ns vs ${sb.mtimeNs} ns (compared to the microsecond)`);
    }
    switch (x.kind) {
      case 'file': {
        if (sa.size !== sb.size) {
          diffs.push(`${display(rel)}: size ${sa.size} vs ${sb.size}`);
          break;
        }
        const ha = cachedHash(path.join(a, rel), sa);
        const hb = sha256File(path.join(b, rel));
        if (ha !== hb) diffs.push(`${display(rel)}: content differs (sha256 ${ha.slice(0, 12)} vs ${hb.slice(0, 12)})`);
        break;
      }
      case 'symlink': {
        const ta = fs.readlinkSync(path.join(a, rel));
        const tb = fs.readlinkSync(path.join(b, rel));
        if (ta !== tb) diffs.push(`${display(rel)}: symlink target ${JSON.stringify(ta)} vs ${JSON.stringify(tb)}`);
        break;
      }
      case 'chardev':
      case 'blockdev':
        if (sa.rdev !== sb.rdev) diffs.push(`${display(rel)}: rdev ${sa.rdev} vs ${sb.rdev}`);
        break;
      default:
        break;
    }
    if (x.kind !== 'dir' && ga.get(rel) !== gb.get(rel)) {
      diffs.push(`${display(rel)}: hard-link group [${ga.get(rel)}] vs [${gb.get(rel)}]`);
    }
  }
  for (const [rel, y] of eb) {
    if (rel === '' && options.root === false) continue;
    if (!ea.has(rel)) diffs.push(`${display(rel)}: unexpected in b (a ${y.kind})`);
  }
  return diffs;
}

/** Allocated 512-byte blocks of a file (st_blocks). */
export function allocatedBytes(p: string): number {
  return Number(fs.statSync(p, { bigint: true }).blocks) * 512;
}
