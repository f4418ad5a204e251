/**
 * Test-only helpers (not exported): a small source tree backed up twice into a repository with small chunks and
 * packs, copies of that repository to damage one way per test, and ways to find where a file's data lives.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FILE_TYPES, LocalBackend, MemoryBackend, Repository, TEST_SCRYPT, backup, resolveSnapshotPath } from '@backup-manager/core-archive';
import type { Backend, Handle, Id, RunContext, TreeNode } from '@backup-manager/core-archive';

export const PASSWORD = 'pw';
export const SMALL_CHUNKS = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };
export const SMALL_PACK = 256 * 1024;

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `bam-${prefix}-`)));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes (xorshift32): incompressible, reproducible. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** mtime (seconds) of the first fixture file; each further write is a minute later */
export const FIXTURE_MTIME = 1_767_225_600;

export interface Fixture {
  backend: MemoryBackend;
  src: string;
  /** snapshot ids, oldest first */
  snapshots: Id[];
  cleanup: () => void;
}

/** The files of the fixture, relative to `src`. */
export const FILES = {
  note: 'docs/note.txt',
  big: 'docs/big.bin',
  photo: 'photos/p1.bin',
  deep: 'photos/2024/summer/p2.bin',
  empty: 'empty.txt',
  changing: 'changing.txt',
} as const;

/** Backs up a small tree twice (the second time with one file changed and one added) into a memory repository. */
export async function makeFixture(prefix = 'verify'): Promise<Fixture> {
  const tmp = tempDir(prefix);
  const src = path.join(tmp.dir, 'src');
  let clock = FIXTURE_MTIME;
  const write = (rel: string, content: string | Uint8Array, mode = 0o644): void => {
    const p = path.join(src, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
    fs.chmodSync(p, mode);
    // Whole seconds, so that a test can put a file's mtime back exactly after changing its content.
    fs.utimesSync(p, clock, clock);
    clock += 60;
  };
  write(FILES.note, 'hello, this is a note\n', 0o640);
  write(FILES.big, pseudoRandomBytes(900 * 1024, 1));
  write(FILES.photo, pseudoRandomBytes(300 * 1024, 2));
  write(FILES.deep, pseudoRandomBytes(120 * 1024, 3), 0o600);
  write(FILES.empty, '');
  write(FILES.changing, 'version 1\n');
  fs.symlinkSync('docs/note.txt', path.join(src, 'link'));
  fs.chmodSync(path.join(src, 'photos', '2024'), 0o750);
  const backend = new MemoryBackend();
  const repo = await Repository.init(backend, PASSWORD, { scrypt: TEST_SCRYPT, chunkSizes: SMALL_CHUNKS, packSize: SMALL_PACK });
  const first = await backup(repo, { paths: [src], time: new Date('2026-01-01T00:00:00Z'), workers: 1 });
  write(FILES.changing, 'version 2, longer\n');
  write('docs/added.bin', pseudoRandomBytes(40 * 1024, 4));
  const second = await backup(repo, { paths: [src], time: new Date('2026-01-02T00:00:00Z'), workers: 1 });
  repo.close();
  return { backend, src, snapshots: [first.snapshotId, second.snapshotId], cleanup: tmp.cleanup };
}

/** A copy of a repository's files in a new memory backend, to damage without touching the original. */
export async function cloneBackend(from: Backend): Promise<MemoryBackend> {
  const to = new MemoryBackend();
  for (const type of FILE_TYPES) {
    for await (const f of from.list(type)) {
      const h = { type, name: f.name };
      await to.save(h, await from.load(h));
    }
  }
  return to;
}

/** A copy of a repository's files in a local folder (created at `dir`), whose packs the verify workers read themselves. */
export async function cloneToLocal(from: Backend, dir: string): Promise<LocalBackend> {
  const to = await LocalBackend.create(dir);
  for (const type of FILE_TYPES) {
    for await (const f of from.list(type)) {
      const h = { type, name: f.name };
      await to.save(h, await from.load(h));
    }
  }
  return to;
}

export async function open(backend: Backend, context: Partial<RunContext> = {}): Promise<Repository> {
  return Repository.open(backend, PASSWORD, { context });
}

export async function replaceFile(backend: Backend, h: Handle, edit: (bytes: Uint8Array) => Uint8Array): Promise<void> {
  const bytes = await backend.load(h);
  const next = edit(bytes.slice());
  await backend.remove(h);
  await backend.save(h, next);
}

export async function flipByte(backend: Backend, h: Handle, offset: number): Promise<void> {
  await replaceFile(backend, h, (b) => {
    b[offset] = b[offset]! ^ 0xff;
    return b;
  });
}

/** The node of a file of the source inside a snapshot. */
export async function nodeOf(repo: Repository, snapshot: Id, absPath: string): Promise<TreeNode> {
  if (repo.indexFiles.length === 0) await repo.loadIndex();
  const snap = await repo.loadSnapshot(snapshot);
  return (await resolveSnapshotPath(repo, snap.tree, absPath)).node;
}

/** Where the first data blob of a file lives. */
export async function firstBlobOf(repo: Repository, snapshot: Id, absPath: string): Promise<{ blob: Id; pack: Id; offset: number; length: number }> {
  const node = await nodeOf(repo, snapshot, absPath);
  const blob = node.content![0]!;
  const loc = repo.index.lookup(blob)!;
  return { blob, pack: loc.packId, offset: loc.offset, length: loc.length };
}

/** Pack ids holding tree blobs. */
export async function treePacks(repo: Repository): Promise<Id[]> {
  if (repo.indexFiles.length === 0) await repo.loadIndex();
  return repo.index.toPackEntries().filter((p) => p.blobs.some((b) => b.type === 'tree')).map((p) => p.id).sort();
}
