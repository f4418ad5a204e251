// Restore's read-ahead is bounded in bytes. A regression once left the byte count high after buffers were
// transferred to workers (a transferred buffer reads as empty), so any restore larger than the bound hung.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import { backup, restore } from '../index.ts';
import { initRepo, tempDir } from '../test-support/repo.ts';
import { compareTrees } from '../test-support/tree.ts';

describe('restore read-ahead bound', () => {
  it('restores far more data than the in-flight bound, from many packs, without stalling', async () => {
    const srcDir = tempDir('bound-src');
    const src = srcDir.dir;
    // 40 files of 96 KiB random data: about 4 MiB in many small packs, ten times the 400 KiB bound below.
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(src, `f${i}`), crypto.randomBytes(96 * 1024));
    const repo = await initRepo(new MemoryBackend());
    const { snapshotId } = await backup(repo, { paths: [src] });
    const targetDir = tempDir('bound-dst');
    const target = targetDir.dir;
    const result = await restore(repo, snapshotId, { target, maxInFlightBytes: 400 * 1024 });
    expect(result.problems).toEqual([]);
    expect(result.files).toBe(40);
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
    srcDir.cleanup();
    targetDir.cleanup();
  }, 30_000);
});
