// A whole repository on Dropbox: init on DropboxBackend (inside RetryBackend, as the CLI composes it), a backup of a
// small tree while Dropbox throttles and drops a connection, then a restore from a freshly opened repository that
// must give back the identical tree.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Repository, RetryBackend, TEST_SCRYPT, backup, restore } from '@backup-manager/core-archive';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { afterEach, expect, it } from 'vitest';
import { openOnFake } from '../test/support.ts';

const PASSWORD = 'correct horse battery staple';
let cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

it('initialises a repository on Dropbox, backs up a tree and restores it identically', async () => {
  // Small session chunks, so that packs go up in upload sessions whose appends the faults below can hit.
  const { fake, backend } = await openOnFake({ sessionChunkBytes: 128 * 1024 });
  cleanups.push(() => fake.close());
  const sleeps: number[] = [];
  const retrying = new RetryBackend(backend, { sleep: async (ms) => void sleeps.push(ms) });

  const source = await tempDir('bam-dropbox-src-');
  await mkdir(path.join(source, 'docs/nested'), { recursive: true });
  await writeFile(path.join(source, 'docs/readme.txt'), 'hello dropbox\n');
  await writeFile(path.join(source, 'docs/nested/empty'), '');
  await writeFile(path.join(source, 'random.bin'), randomBytes(1_500_000));
  await writeFile(path.join(source, 'repeated.bin'), Buffer.alloc(700_000, 7));
  await symlink('docs/readme.txt', path.join(source, 'link'));

  const repo = await Repository.init(retrying, PASSWORD, {
    scrypt: TEST_SCRYPT,
    chunkSizes: { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 },
    packSize: 512 * 1024,
  });
  // Dropbox throttles one upload and drops the answer to one session append while the backup runs.
  fake.rateLimit({ path: '/2/files/upload', nth: 3, retryAfterSeconds: 2 });
  fake.faults.add({ path: '/2/files/upload_session/append_v2', nth: 2, action: { kind: 'reset-after' } });
  const result = await backup(repo, { paths: [source], type: 'full' });
  repo.close();
  expect(result.partial).toBe(false);
  expect(sleeps).toContain(2000);
  expect(fake.faults.pending()).toBe(0);
  // The dropped append was picked up inside the save (Dropbox answered incorrect_offset to the resend).
  const appendStatuses = fake.log.filter((e) => e.path === '/2/files/upload_session/append_v2').map((e) => e.status);
  expect(appendStatuses.join(',')).toContain('0,409');
  expect(fake.log.filter((e) => e.path === '/2/files/upload_session/finish').length).toBeGreaterThan(0);

  const target = await tempDir('bam-dropbox-restore-');
  const reopened = await Repository.open(retrying, PASSWORD);
  await restore(reopened, result.snapshotId, { target });
  reopened.close();
  expect(compareTrees(source, path.join(target, source))).toEqual([]);
});
