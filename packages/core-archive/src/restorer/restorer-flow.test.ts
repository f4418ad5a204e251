// Restore's read-ahead is bounded in bytes. A regression once left the byte count high after buffers were
// transferred to workers (a transferred buffer reads as empty), so any restore larger than the bound hung.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MemoryBackend } from '../backend/memory.ts';
import { backup, restore } from '../index.ts';
import { initRepo, tempDir } from '../test-support/repo.ts';
import { compareTrees } from '../test-support/tree.ts';

describe('restore read-ahead bound', () => {
  it('restores far more data than the in-flight bound, from many packs, without stalling', async () => {
    const srcDir = tempDir('bound-src');
    onTestFinished(srcDir.cleanup);
    const src = srcDir.dir;
    // 40 files of 96 KiB random data: about 4 MiB in many small packs, ten times the 400 KiB bound below.
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(src, `f${i}`), crypto.randomBytes(96 * 1024));
    const repo = await initRepo(new MemoryBackend());
    const { snapshotId } = await backup(repo, { paths: [src] });
    const targetDir = tempDir('bound-dst');
    onTestFinished(targetDir.cleanup);
    const target = targetDir.dir;
    const result = await restore(repo, snapshotId, { target, maxInFlightBytes: 400 * 1024 });
    expect(result.problems).toEqual([]);
    expect(result.files).toBe(40);
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
  }, 30_000);

  it('restores a directory of more small files than the plan may hold, from one pack, exactly', async () => {
    // 3,000 files of a few bytes land in one pack: the layout must stop planning before the pack is done
    // (MAX_QUEUED_WRITES is 2,048), have that part of the pack written, and plan the rest as a later read of it.
    const srcDir = tempDir('many-src');
    onTestFinished(srcDir.cleanup);
    const src = srcDir.dir;
    for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(src, `f${String(i).padStart(4, '0')}`), `file ${i}\n${crypto.randomBytes(8).toString('hex')}`);
    const repo = await initRepo(new MemoryBackend());
    const { snapshotId } = await backup(repo, { paths: [src] });
    const targetDir = tempDir('many-dst');
    onTestFinished(targetDir.cleanup);
    const result = await restore(repo, snapshotId, { target: targetDir.dir });
    expect(result.problems).toEqual([]);
    expect(result.mismatches).toEqual([]);
    expect(result.files).toBe(3000);
    expect(compareTrees(src, path.join(targetDir.dir, src))).toEqual([]);
  }, 60_000);
});
