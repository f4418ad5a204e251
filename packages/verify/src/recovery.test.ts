import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareWithSource } from './compare-source.ts';
import { testRecovery } from './recovery.ts';
import { FILES, FIXTURE_MTIME, cloneBackend, firstBlobOf, flipByte, makeFixture, open, tempDir } from './test-support.ts';
import type { Fixture } from './test-support.ts';

let fx: Fixture;
const tmp = tempDir('recovery-tests');
beforeAll(async () => {
  fx = await makeFixture('recovery');
}, 60_000);
afterAll(() => {
  fx.cleanup();
  tmp.cleanup();
});
const abs = (rel: string): string => path.join(fx.src, rel);
const leftovers = (): string[] => fs.readdirSync(tmp.dir).filter((n) => n.startsWith('bam-recovery-'));

describe('testRecovery', () => {
  it('restores a whole snapshot into a temporary folder, checks every entry, measures throughput and cleans up', async () => {
    const repo = await open(fx.backend);
    const r = await testRecovery(repo, fx.snapshots[1]!, { tempRoot: tmp.dir, workers: 1 });
    repo.close();
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.scope).toBe('full');
    expect(r.expected.files).toBe(7);
    expect(r.checked.files).toBe(7);
    expect(r.expected.others).toBe(1); // the symlink
    expect(r.bytesRestored).toBe(r.expected.bytes);
    expect(r.throughputBytesPerSec).toBeGreaterThan(0);
    expect(r.kept).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('restores a random sample of the files, or only the paths asked for', async () => {
    const repo = await open(fx.backend);
    const sample = await testRecovery(repo, fx.snapshots[1]!, { tempRoot: tmp.dir, samplePercent: 30, random: () => 0.01, workers: 0 });
    expect(sample.ok).toBe(true);
    expect(sample.scopeText).toBe('sample 30%');
    expect(sample.expected.files).toBe(2); // round(7 × 30%)
    const target = path.join(tmp.dir, 'kept');
    const paths = await testRecovery(repo, fx.snapshots[1]!, { target, paths: [abs('photos')], workers: 0 });
    repo.close();
    expect(paths.failures).toEqual([]);
    expect(paths.expected.files).toBe(2);
    expect(paths.kept).toBe(true);
    expect(fs.readdirSync(path.join(target, fx.src, 'photos')).sort()).toEqual(['2024', 'p1.bin']);
    expect(leftovers()).toEqual([]);
  });

  it('names the exact file whose data blob is damaged', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[1]!, abs(FILES.deep));
    repo.close();
    await flipByte(b, { type: 'data', name: where.pack }, where.offset + 100);
    const damaged = await open(b);
    const r = await testRecovery(damaged, fx.snapshots[1]!, { tempRoot: tmp.dir, workers: 1 });
    damaged.close();
    expect(r.ok).toBe(false);
    expect(r.failures).toEqual([expect.objectContaining({ path: abs(FILES.deep), problem: 'unreadable-data' })]);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a target that is not empty', async () => {
    const target = path.join(tmp.dir, 'busy');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'x'), 'x');
    const repo = await open(fx.backend);
    await expect(testRecovery(repo, fx.snapshots[1]!, { target })).rejects.toThrow(/not empty/);
    repo.close();
  });
});

describe('compareWithSource', () => {
  it('passes while the source is unchanged, and catches content that changed under an unchanged size and mtime', async () => {
    const repo = await open(fx.backend);
    const ok = await compareWithSource(repo, fx.snapshots[1]!, { sampleSize: 50 });
    expect(ok.skipped).toBeUndefined();
    expect(ok.ok).toBe(true);
    expect(ok.snapshotFiles).toBe(7);
    expect(ok.liveFiles).toBe(7);
    expect(ok.compared).toBe(7);

    const p = abs(FILES.note);
    fs.writeFileSync(p, 'HELLO, this is a note\n'); // same length
    fs.utimesSync(p, FIXTURE_MTIME, FIXTURE_MTIME);
    try {
      const bad = await compareWithSource(repo, fx.snapshots[1]!, { sampleSize: 50 });
      expect(bad.ok).toBe(false);
      expect(bad.mismatches.map((m) => m.path)).toEqual([p]);
    } finally {
      fs.writeFileSync(p, 'hello, this is a note\n');
      fs.utimesSync(p, FIXTURE_MTIME, FIXTURE_MTIME);
    }
    repo.close();
  });

  it('flags a file count outside the tolerance, and skips snapshots of another host', async () => {
    const extra = path.join(fx.src, 'many');
    fs.mkdirSync(extra);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(extra, `f${i}`), String(i));
    try {
      const repo = await open(fx.backend);
      const r = await compareWithSource(repo, fx.snapshots[1]!, { tolerancePercent: 5 });
      repo.close();
      expect(r.liveFiles).toBe(10);
      expect(r.countWithinTolerance).toBe(false);
      expect(r.ok).toBe(false);
      const other = await open(fx.backend, { hostname: 'another-host' });
      expect((await compareWithSource(other, fx.snapshots[1]!)).skipped).toMatch(/another-host/);
      other.close();
    } finally {
      fs.rmSync(extra, { recursive: true });
    }
  });
});
