// The whole engine on Google Drive: init a repository on a GdriveBackend wrapped in RetryBackend (as the product
// composes them), back up a small tree, restore it through a separately opened repository, and compare.

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository, RetryBackend, TEST_SCRYPT, backup, restore } from '@backup-manager/core-archive';
import { afterEach, describe, expect, it } from 'vitest';
import { GdriveBackend } from './gdrive-backend.ts';
import { FOLDER, filesIn, folderAt, startHarness } from '../test/harness.ts';
import type { Harness } from '../test/harness.ts';

const PASSWORD = 'correct horse battery staple';
const KiB = 1024;

let h: Harness | undefined;
let dir: string | undefined;

afterEach(async () => {
  await h?.fake.close();
  if (dir !== undefined) await fsp.rm(dir, { recursive: true, force: true });
  h = undefined;
  dir = undefined;
});

/** Every regular file under `root`, relative path → content. */
async function readTree(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await fsp.readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    out.set(path.relative(root, full), await fsp.readFile(full));
  }
  return out;
}

describe('Repository on Google Drive (fake)', () => {
  it('init → backup → restore gives back identical files', async () => {
    h = await startHarness({ fake: { pageSizeMax: 25 }, backend: { uploadChunkBytes: 256 * KiB } });
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bam-gdrive-e2e-'));
    const source = path.join(dir, 'source');
    await fsp.mkdir(path.join(source, 'docs', 'deep'), { recursive: true });
    await fsp.writeFile(path.join(source, 'readme.txt'), 'hello drive\n');
    await fsp.writeFile(path.join(source, 'docs', 'random.bin'), randomBytes(700 * KiB));
    await fsp.writeFile(path.join(source, 'docs', 'deep', 'zeros.bin'), Buffer.alloc(300 * KiB));
    await fsp.writeFile(path.join(source, 'docs', 'empty'), '');
    // A transient fault on the way: RetryBackend rides it out.
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/files', nth: 5, action: { kind: 'status', status: 503 } });

    const options = { scrypt: TEST_SCRYPT, packSize: 256 * KiB, chunkSizes: { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 256 * KiB } };
    const writer = await Repository.init(new RetryBackend(h.backend, { baseDelayMs: 1 }), PASSWORD, options);
    const result = await backup(writer, { paths: [source] });
    expect(result.warnings).toEqual([]);
    writer.close();
    expect(h.fake.faults.pending()).toBe(0);
    expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/data`).id).length).toBeGreaterThan(1); // several packs

    // A later run: a new backend and repository on the same folder.
    const reader = await Repository.open(new RetryBackend(new GdriveBackend(h.options), { baseDelayMs: 1 }), PASSWORD);
    const target = path.join(dir, 'restored');
    const restored = await restore(reader, result.snapshotId, { target });
    reader.close();
    expect(restored.mismatches).toEqual([]);
    expect(restored.problems).toEqual([]);
    const original = await readTree(source);
    const copy = await readTree(path.join(target, source));
    expect([...copy.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [rel, content] of original) expect(copy.get(rel)?.equals(content), rel).toBe(true);
  });
});
