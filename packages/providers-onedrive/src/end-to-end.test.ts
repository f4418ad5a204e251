// A whole repository on OneDrive: init on OnedriveBackend (inside RetryBackend, as the CLI composes it), a backup of
// the core's adversarial tree (names, links, hard links, special files, odd times and modes) plus a few packs'
// worth of random data while OneDrive throttles an upload and drops a fragment's connection, then a restore from a
// separately opened repository that must give back the identical tree.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Repository, RetryBackend, TEST_SCRYPT, backup, restore } from '@backup-manager/core-archive';
import { compareTrees, makeAdversarialTree } from '@backup-manager/core-archive/testing';
import { afterEach, expect, it } from 'vitest';
import { OnedriveBackend } from './onedrive-backend.ts';
import { RequestPacer } from '@backup-manager/core-archive';
import { FRAGMENT_UNIT, KiB, UPLOAD_URL_PATH, openOnFake, recordingSleep } from '../test/support.ts';

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

it('initialises a repository on OneDrive, backs up a tree and restores it identically', async () => {
  // Packs (512 KiB) above the simple-upload limit set here (one fragment) go up in sessions of at least two 320 KiB
  // fragments, whose first one the fault below hits; the pacer records OneDrive's Retry-After hold instead of waiting.
  const { sleep: pacerSleep } = recordingSleep();
  const pacer = new RequestPacer({ requestsPerSecond: Number.POSITIVE_INFINITY, sleep: pacerSleep });
  const { fake, options } = await openOnFake({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: FRAGMENT_UNIT, pacer });
  cleanups.push(() => fake.close());
  const { sleeps, sleep } = recordingSleep();
  const retrying = new RetryBackend(new OnedriveBackend(options), { sleep });

  const work = await tempDir('bam-onedrive-src-');
  const tree = await makeAdversarialTree(path.join(work, 'src'), { big: false });
  await writeFile(path.join(tree.root, 'random.bin'), randomBytes(1_500_000));
  await writeFile(path.join(tree.root, 'repeated.bin'), Buffer.alloc(700_000, 7));

  const repo = await Repository.init(retrying, PASSWORD, {
    scrypt: TEST_SCRYPT,
    chunkSizes: { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 256 * KiB },
    packSize: 512 * KiB,
  });
  // OneDrive throttles one simple upload and drops the connection of one fragment (after storing it) mid-backup.
  fake.faults.add({ method: 'PUT', path: /:\/content$/, nth: 3, action: { kind: 'status', status: 429, retryAfterSeconds: 2 } });
  fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 1, action: { kind: 'reset-after' } });
  const result = await backup(repo, { paths: [tree.root], type: 'full' });
  repo.close();
  expect(result.partial).toBe(false);
  expect(result.warnings).toEqual([]);
  expect(sleeps).toContain(2000);
  expect(fake.faults.pending()).toBe(0);
  // The dropped fragment was picked up inside the save: status GET, then on from nextExpectedRanges.
  const dropped = fake.log.filter((e) => UPLOAD_URL_PATH.test(e.path) && e.status === 0);
  expect(dropped).toHaveLength(1);
  const session = fake.log.filter((e) => e.path === dropped[0]?.path).map((e) => `${e.method} ${e.status}`);
  expect(session.slice(0, 2)).toEqual(['PUT 0', 'GET 200']);
  expect(session.at(-1)).toBe('PUT 201');
  expect(fake.items().filter((item) => item.file !== undefined && item.path.includes('/data/')).length).toBeGreaterThan(2);

  const target = await tempDir('bam-onedrive-restore-');
  const reopened = await Repository.open(new RetryBackend(new OnedriveBackend(options), { sleep }), PASSWORD);
  const restored = await restore(reopened, result.snapshotId, { target });
  reopened.close();
  expect(restored.mismatches).toEqual([]);
  expect(restored.problems.map((p) => p.code)).toEqual(['unsupported']); // the socket
  expect(compareTrees(tree.root, path.join(target, tree.root))).toEqual([]);
});
