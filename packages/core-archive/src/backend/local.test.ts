import { mkdir, mkdtemp, readdir, rm, stat, statfs, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { describeBackendConformance } from '../testing/conformance.ts';
import type { FileType, Handle } from './backend.ts';
import { LocalBackend, readLocalRangeSync, translateFsError } from './local.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'bam-local-'));
}

describeBackendConformance(
  'LocalBackend',
  async () => {
    const dir = await tempDir();
    return { backend: await LocalBackend.create(path.join(dir, 'repo')), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  { supportsUsage: true, supportsStaging: true },
);

const ID_A = 'ab'.padEnd(64, '1');
const ID_B = 'ab'.padEnd(64, '2');
const ID_C = 'cd'.padEnd(64, '3');
const dataHandle = (name: string): Handle => ({ type: 'data', name });

async function failure(p: Promise<unknown>): Promise<BackupError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'the call should have failed with a BackupError').toBeInstanceOf(BackupError);
  return e as BackupError;
}

describe('LocalBackend on disk', () => {
  let dir: string;
  let root: string;

  beforeEach(async () => {
    dir = await tempDir();
    root = path.join(dir, 'repo');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const mode = async (p: string) => (await stat(p)).mode & 0o777;

  it('creates the repository folders with mode 0700 and resolves the root to an absolute location', async () => {
    const b = await LocalBackend.create(root);
    expect(b.location).toBe(path.resolve(root));
    expect(await mode(root)).toBe(0o700);
    for (const f of ['keys', 'locks', 'snapshots', 'index', 'data', 'tmp']) {
      expect(await mode(path.join(root, f)), f).toBe(0o700);
    }
    // Creating again keeps what is there.
    await b.save(dataHandle(ID_A), new Uint8Array([1]));
    await LocalBackend.create(root);
    expect(await b.load(dataHandle(ID_A))).toEqual(new Uint8Array([1]));
  });

  it('reads a range into a given buffer with loadInto, failing as load does on a short or missing file', async () => {
    const b = await LocalBackend.create(root);
    await b.save(dataHandle(ID_A), Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const buf = new Uint8Array(6).fill(0xee);
    await b.loadInto(dataHandle(ID_A), 3, buf.subarray(0, 4));
    expect([...buf]).toEqual([3, 4, 5, 6, 0xee, 0xee]);
    expect((await failure(b.loadInto(dataHandle(ID_A), 8, new Uint8Array(4)))).code).toBe('INVALID_RANGE');
    expect((await failure(b.loadInto(dataHandle(ID_B), 0, new Uint8Array(1)))).code).toBe('NOT_FOUND');
  });

  it('names where a file lies, and readLocalRangeSync reads ranges of it with the bytes and the errors of load', async () => {
    const b = await LocalBackend.create(root);
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
    await b.save(dataHandle(ID_A), bytes);
    const file = b.localFile(dataHandle(ID_A));
    expect(file).toEqual({ path: path.join(b.location, 'data', 'ab', ID_A), root: b.location });
    const out = new Uint8Array(100);
    readLocalRangeSync(dataHandle(ID_A), file, 150, out);
    expect(out).toEqual(await b.load(dataHandle(ID_A), 150, 100));
    const syncFailure = (h: Handle, offset: number, length: number): BackupError => {
      try {
        readLocalRangeSync(h, b.localFile(h), offset, new Uint8Array(length));
      } catch (e) {
        expect(e).toBeInstanceOf(BackupError);
        return e as BackupError;
      }
      throw new Error('readLocalRangeSync should have failed');
    };
    // Past the end, missing, and a file cut short after it was listed: the codes and messages of load.
    for (const [h, offset, length] of [[dataHandle(ID_A), 250, 100], [dataHandle(ID_B), 0, 1]] as const) {
      const sync = syncFailure(h, offset, length);
      const async = await failure(b.load(h, offset, length));
      expect([sync.code, sync.message]).toEqual([async.code, async.message]);
    }
    expect(syncFailure(dataHandle(ID_B), 0, 1).code).toBe('NOT_FOUND');
    await truncate(file.path, 120);
    expect(syncFailure(dataHandle(ID_A), 100, 50).code).toBe('INVALID_RANGE');
    // A file name that is not a repository name is refused before any path is built from it.
    expect(() => b.localFile(dataHandle('../../etc/passwd'))).toThrow(/malformed repository file name/);
  });

  it('writes files with mode 0600 into data fan-out folders created on demand with mode 0700', async () => {
    const b = await LocalBackend.create(root);
    await b.save(dataHandle(ID_A), new Uint8Array([1, 2, 3]));
    await b.save({ type: 'keys', name: ID_C }, new Uint8Array([4]));
    await b.save({ type: 'config', name: 'config' }, new Uint8Array([5]));
    expect(await mode(path.join(root, 'data', 'ab'))).toBe(0o700);
    expect(await mode(path.join(root, 'data', 'ab', ID_A))).toBe(0o600);
    expect(await mode(path.join(root, 'keys', ID_C))).toBe(0o600);
    expect(await mode(path.join(root, 'config'))).toBe(0o600);
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('removes its temp file when the rename into place fails', async () => {
    const b = await LocalBackend.create(root);
    // A non-empty folder where the file should go: rename cannot replace it, even as root.
    await mkdir(path.join(root, 'keys', ID_C, 'x'), { recursive: true });
    const e = await failure(b.save({ type: 'keys', name: ID_C }, new Uint8Array(1000)));
    expect(e.code).toBe('IO');
    expect(e.message).toContain(path.join(root, 'keys', ID_C));
    expect(e.cause).toBeDefined();
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('removes its temp file when the fan-out folder cannot be created', async () => {
    const b = await LocalBackend.create(root);
    await writeFile(path.join(root, 'data', 'ab'), 'not a folder');
    const e = await failure(b.save(dataHandle(ID_A), new Uint8Array(1000)));
    expect(e.code).toBe('IO');
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    // Other fan-out folders still work.
    await b.save(dataHandle(ID_C), new Uint8Array([7]));
    expect(await b.load(dataHandle(ID_C))).toEqual(new Uint8Array([7]));
  });

  it('recreates a missing tmp folder but never a missing repository folder', async () => {
    const b = await LocalBackend.create(root);
    await rm(path.join(root, 'tmp'), { recursive: true });
    await rm(path.join(root, 'snapshots'), { recursive: true });
    await b.save({ type: 'snapshots', name: ID_C }, new Uint8Array([1]));
    expect(await b.load({ type: 'snapshots', name: ID_C })).toEqual(new Uint8Array([1]));

    const missing = new LocalBackend(path.join(dir, 'nowhere'));
    const e = await failure(missing.save(dataHandle(ID_A), new Uint8Array([1])));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain(path.join(dir, 'nowhere'));
    await expect(stat(path.join(dir, 'nowhere'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stages into tmp/ and leaves no temp file after commit or discard', async () => {
    const b = await LocalBackend.create(root);
    const file = b.stage('data');
    await file.append(new Uint8Array(300_000).fill(1));
    await file.append(new Uint8Array(10).fill(2));
    // Written as appended (small appends at the latest when the next large one or commit comes): not held back.
    expect(await readdir(path.join(root, 'tmp'))).toHaveLength(1);
    await file.commit(dataHandle(ID_A));
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    expect(await mode(path.join(root, 'data', 'ab', ID_A))).toBe(0o600);
    expect((await b.stat(dataHandle(ID_A))).size).toBe(300_010);
    const dropped = b.stage('data');
    await dropped.append(new Uint8Array(200_000));
    await dropped.discard();
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('leaves a staged file failed, visible nowhere and removable, when an append fails', async () => {
    const b = await LocalBackend.create(root);
    await rm(path.join(root, 'tmp'), { recursive: true });
    await writeFile(path.join(root, 'tmp'), 'not a folder');
    const file = b.stage('data');
    const e = await failure(file.append(new Uint8Array(200_000)));
    expect(e.code).toBe('IO');
    // Failed for good: later appends and the commit report it, and nothing appears.
    expect((await failure(file.append(new Uint8Array(10)))).code).toBe('IO');
    expect((await failure(file.commit(dataHandle(ID_A)))).code).toBe('IO');
    await file.discard();
    await expect(stat(path.join(root, 'data', 'ab', ID_A))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('removes the staged temp file when its commit fails, leaving nothing under the name', async () => {
    const b = await LocalBackend.create(root);
    await mkdir(path.join(root, 'keys', ID_C, 'x'), { recursive: true });
    const file = b.stage('keys');
    await file.append(new Uint8Array(1000));
    const e = await failure(file.commit({ type: 'keys', name: ID_C }));
    expect(e.code).toBe('IO');
    expect(e.message).toContain(path.join(root, 'keys', ID_C));
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    expect((await stat(path.join(root, 'keys', ID_C))).isDirectory()).toBe(true);
    // A name of another type is refused, and cleans up too.
    const wrong = b.stage('keys');
    await wrong.append(new Uint8Array(10));
    expect((await failure(wrong.commit(dataHandle(ID_A)))).code).toBe('INVALID_ARGUMENT');
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });

  it('recreates a missing tmp folder for a staged file and cleans up staged temp files of dead processes', async () => {
    const b = await LocalBackend.create(root);
    await rm(path.join(root, 'tmp'), { recursive: true });
    const file = b.stage('data');
    await file.append(new Uint8Array([1, 2, 3]));
    await file.commit(dataHandle(ID_B));
    expect(await b.load(dataHandle(ID_B))).toEqual(new Uint8Array([1, 2, 3]));
    // A staged file whose process died: an old temp file like any other.
    const orphan = b.stage('data');
    await orphan.append(new Uint8Array(200_000));
    const [temp] = await readdir(path.join(root, 'tmp'));
    const old = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000);
    await utimes(path.join(root, 'tmp', temp!), old, old);
    expect(await b.cleanupStaleTemp()).toBe(1);
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    await orphan.discard();
  });

  it('lists nothing when the folders or the whole repository are missing', async () => {
    for (const b of [new LocalBackend(path.join(dir, 'nowhere')), new LocalBackend(dir)]) {
      for (const type of ['config', 'keys', 'locks', 'snapshots', 'index', 'data'] as FileType[]) {
        const names = [];
        for await (const f of b.list(type)) names.push(f.name);
        expect(names, `${b.location} ${type}`).toEqual([]);
      }
    }
  });

  it('never lists temp files, foreign files, folders or misplaced data files', async () => {
    const b = await LocalBackend.create(root);
    await b.save(dataHandle(ID_A), new Uint8Array([1]));
    await b.save({ type: 'index', name: ID_C }, new Uint8Array([2]));
    await writeFile(path.join(root, 'tmp', ID_B), 'half-written');
    await writeFile(path.join(root, 'index', `${ID_A}.tmp`), 'x');
    await writeFile(path.join(root, 'index', ID_B.toUpperCase()), 'x');
    await writeFile(path.join(root, 'index', '.DS_Store'), 'x');
    await mkdir(path.join(root, 'index', ID_B));
    await writeFile(path.join(root, 'data', 'ab', 'README'), 'x');
    await mkdir(path.join(root, 'data', 'cd'));
    await writeFile(path.join(root, 'data', 'cd', ID_B), 'misplaced: its prefix is ab');
    await mkdir(path.join(root, 'data', 'zz'));
    await writeFile(path.join(root, 'data', 'zz', `zz${ID_B.slice(2)}`), 'x');
    await writeFile(path.join(root, 'data', 'ef'), 'a file where a fan-out folder belongs');
    const list = async (type: FileType) => {
      const out = [];
      for await (const f of b.list(type)) out.push(f);
      return out;
    };
    expect(await list('data')).toEqual([{ name: ID_A, size: 1 }]);
    expect(await list('index')).toEqual([{ name: ID_C, size: 1 }]);
  });

  it('keeps hostile names from touching anything inside or outside the repository', async () => {
    const b = await LocalBackend.create(root);
    await b.save({ type: 'config', name: 'config' }, new Uint8Array([9]));
    const before = await readdir(dir);
    const hostile: Handle[] = [
      { type: 'keys', name: '../config' },
      { type: 'keys', name: '../../escaped' },
      { type: '../..' as FileType, name: ID_A },
      { type: 'data', name: `../../${ID_A.slice(6)}` },
    ];
    for (const h of hostile) {
      expect((await failure(b.save(h, new Uint8Array([1])))).code).toBe('INVALID_ARGUMENT');
      expect((await failure(b.remove(h))).code).toBe('INVALID_ARGUMENT');
      expect((await failure(b.load(h))).code).toBe('INVALID_ARGUMENT');
    }
    expect(await readdir(dir)).toEqual(before);
    expect(await b.load({ type: 'config', name: 'config' })).toEqual(new Uint8Array([9]));
    const e = await failure((async () => {
      for await (const _ of b.list('../..' as FileType)) { /* never reached */ }
    })());
    expect(e.code).toBe('INVALID_ARGUMENT');
  });

  it('reports a folder where a file should be as IO, not as a file', async () => {
    const b = await LocalBackend.create(root);
    await mkdir(path.join(root, 'keys', ID_C));
    expect((await failure(b.stat({ type: 'keys', name: ID_C }))).code).toBe('IO');
    expect((await failure(b.load({ type: 'keys', name: ID_C }))).code).toBe('IO');
  });

  it('removes only temp files older than the cut-off', async () => {
    const b = await LocalBackend.create(root);
    const now = new Date('2030-01-10T00:00:00Z');
    const old = path.join(root, 'tmp', 'old');
    const fresh = path.join(root, 'tmp', 'fresh');
    await writeFile(old, 'x');
    await writeFile(fresh, 'y');
    await utimes(old, new Date('2030-01-08T00:00:00Z'), new Date('2030-01-08T00:00:00Z'));
    await utimes(fresh, new Date('2030-01-09T12:00:00Z'), new Date('2030-01-09T12:00:00Z'));
    await mkdir(path.join(root, 'tmp', 'folder'));
    expect(await b.cleanupStaleTemp(undefined, () => now)).toBe(1);
    expect((await readdir(path.join(root, 'tmp'))).sort()).toEqual(['folder', 'fresh']);
    expect(await b.cleanupStaleTemp(6 * 60 * 60 * 1000, () => now)).toBe(1);
    expect(await readdir(path.join(root, 'tmp'))).toEqual(['folder']);
    expect(await new LocalBackend(path.join(dir, 'nowhere')).cleanupStaleTemp()).toBe(0);
  });

  it('reports the disk usage from statfs', async () => {
    const b = await LocalBackend.create(root);
    const u = await b.usage();
    const fs = await statfs(root);
    expect(u.totalBytes).toBe(fs.blocks * fs.bsize);
    expect(u.usedBytes).toBeGreaterThan(0);
    expect(u.usedBytes).toBeLessThanOrEqual(u.totalBytes as number);
    expect(u.trashBytes).toBe(0);
    const e = await failure(new LocalBackend(path.join(dir, 'nowhere')).usage());
    expect(e.code).toBe('NOT_FOUND');
  });
});

describe('translateFsError', () => {
  const root = '/srv/backups/repo';
  const target = '/srv/backups/repo/data/ab/abcd';
  const sysError = (code: string) => Object.assign(new Error(`${code}: something, open '${target}'`), { code });

  const cases: [string, 'load' | 'save' | 'remove', ErrorCode, string][] = [
    ['ENOENT', 'load', 'NOT_FOUND', 'does not exist'],
    ['ENOENT', 'save', 'NOT_FOUND', 'initialise the repository'],
    ['EACCES', 'load', 'PERMISSION_DENIED', 'permission denied'],
    ['EPERM', 'remove', 'PERMISSION_DENIED', 'permission denied'],
    ['EROFS', 'save', 'PERMISSION_DENIED', 'read-only'],
    ['ENOSPC', 'save', 'QUOTA_EXCEEDED', `the disk holding ${root} is full: free space`],
    ['EDQUOT', 'save', 'QUOTA_EXCEEDED', 'disk quota exceeded'],
    ['EIO', 'load', 'IO', 'EIO'],
    ['EMFILE', 'load', 'IO', 'EMFILE'],
  ];
  for (const [code, operation, expected, text] of cases) {
    it(`turns ${code} during ${operation} into ${expected}`, () => {
      const cause = sysError(code);
      const e = translateFsError(cause, operation, root, target);
      expect(e).toBeInstanceOf(BackupError);
      expect(e.code).toBe(expected);
      expect(e.cause).toBe(cause);
      expect(e.retryable).toBe(false);
      expect(e.message).toContain(text);
      expect(e.message).toContain(expected === 'QUOTA_EXCEEDED' ? root : target);
      expect(e.subject).toBe(target);
    });
  }

  it('keeps a BackupError and wraps a thrown non-error as IO', () => {
    const original = new BackupError('INVALID_RANGE', 'x');
    expect(translateFsError(original, 'load', root, target)).toBe(original);
    const e = translateFsError('weird', 'list', root, target);
    expect(e.code).toBe('IO');
    expect(e.message).toContain('weird');
  });
});
