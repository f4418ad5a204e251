import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupError } from '@backup-manager/core-archive';
import { checkRepository, verifyRepository } from './check.ts';
import { startVerifyPool } from './pool.ts';
import { repairIndex } from './repair-index.ts';
import type { CheckEvent, CheckSummary, Finding, FindingKind } from './findings.ts';
import { FILES, cloneBackend, cloneToLocal, firstBlobOf, flipByte, makeFixture, open, replaceFile, tempDir, treePacks } from './test-support.ts';
import type { Fixture } from './test-support.ts';

let fx: Fixture;
beforeAll(async () => {
  fx = await makeFixture('check');
}, 60_000);
afterAll(() => fx.cleanup());

const abs = (rel: string): string => path.join(fx.src, rel);

async function check(backend: Parameters<typeof open>[0], readData: boolean, workers = 0): Promise<{ summary: CheckSummary; events: CheckEvent[] }> {
  const repo = await open(backend);
  const events: CheckEvent[] = [];
  try {
    const summary = await verifyRepository(repo, { ...(readData ? { readData: { kind: 'all' } } : {}), workers, onEvent: (e) => events.push(e) });
    return { summary, events };
  } finally {
    repo.close();
  }
}

function only(summary: CheckSummary, kind: FindingKind): Finding[] {
  return summary.findings.filter((f) => f.kind === kind);
}

/** Every path any finding says is at risk, in any snapshot. */
function pathsAtRisk(findings: readonly Finding[]): Set<string> {
  return new Set(findings.flatMap((f) => (f.affects ?? []).flatMap((a) => a.paths)));
}

describe('a healthy repository', () => {
  it('passes the structure check and the data check, reading every pack once', async () => {
    const s = await check(fx.backend, false);
    expect(s.summary.findings).toEqual([]);
    expect(s.summary.healthy).toBe(true);
    expect(s.summary.counts.snapshots).toBe(2);
    expect(s.summary.counts.packsRead).toBe(0);
    expect(s.summary.newestSnapshots).toEqual([fx.snapshots[1]]);

    const d = await check(fx.backend, true, 2);
    expect(d.summary.findings).toEqual([]);
    expect(d.summary.healthy).toBe(true);
    expect(d.summary.counts.packsRead).toBe(d.summary.counts.packFiles);
    expect(new Set(d.summary.packsRead).size).toBe(d.summary.packsRead.length);
    expect(d.summary.counts.bytesRead).toBeGreaterThan(1024 * 1024);
    expect(d.summary.dataScope).toBe('all');
    expect(d.events.at(-1)?.type).toBe('summary');
  });

  it('checks a local repository with workers started before it was opened, as it checks it in memory, and closes them', async () => {
    const tmp = tempDir('check-local');
    try {
      const local = await cloneToLocal(fx.backend, path.join(tmp.dir, 'repo'));
      const pool = startVerifyPool(2);
      const repo = await open(local);
      let summary: CheckSummary;
      try {
        summary = await verifyRepository(repo, { readData: { kind: 'all' }, pool });
      } finally {
        repo.close();
      }
      const inMemory = (await check(fx.backend, true, 2)).summary;
      expect(summary.findings).toEqual([]);
      expect(summary.counts).toEqual(inMemory.counts);
      expect(summary.packsRead).toEqual(inMemory.packsRead);
      // Closed by the check: it takes no more work.
      await expect(pool.hashFiles([path.join(tmp.dir, 'repo', 'config')])).rejects.toThrow();
    } finally {
      tmp.cleanup();
    }
  });

  it('an interrupt while the index loads, with packs already being read, ends the check without waiting for them', async () => {
    const repo = await open(fx.backend);
    const controller = new AbortController();
    try {
      const run = verifyRepository(repo, {
        readData: { kind: 'all' },
        workers: 1,
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'phase' && e.phase === 'index') controller.abort();
        },
      });
      await expect(run).rejects.toMatchObject({ code: 'INTERRUPTED' });
    } finally {
      repo.close();
    }
  });

  it('an index that cannot be reached ends the check with that error, also when packs were being read meanwhile', async () => {
    const b = await cloneBackend(fx.backend);
    const load = b.load.bind(b);
    b.load = async (h, offset, length) => {
      // Slow enough that packs are read while the index "loads".
      if (h.type === 'index') await new Promise((r) => setTimeout(r, 50));
      if (h.type === 'index') throw new BackupError('UNAVAILABLE', 'the destination went away');
      return load(h, offset, length);
    };
    const repo = await open(b);
    try {
      await expect(verifyRepository(repo, { readData: { kind: 'all' }, workers: 1 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      repo.close();
    }
  });

  it('streams the same check as an async iterator that ends with the summary', async () => {
    const repo = await open(fx.backend);
    const types: string[] = [];
    const it = checkRepository(repo, { readData: { kind: 'bucket', bucket: 1, of: 2 }, workers: 0 });
    let last: CheckEvent | undefined;
    for await (const e of it) {
      types.push(e.type);
      last = e;
    }
    repo.close();
    expect(types[0]).toBe('phase');
    expect(last?.type).toBe('summary');
    if (last?.type === 'summary') expect(last.summary.dataScope).toBe('bucket 1/2');
  });
});

describe('damage', () => {
  it('a flipped byte inside a pack: the data check names the blob, its pack and the file in both snapshots', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[0]!, abs(FILES.big));
    repo.close();
    await flipByte(b, { type: 'data', name: where.pack }, where.offset + 40);

    // The structure check does not read blob data; it still finds nothing wrong with the layout.
    expect((await check(b, false)).summary.healthy).toBe(true);

    const { summary, events } = await check(b, true, 1);
    expect(summary.healthy).toBe(false);
    const corrupt = only(summary, 'corrupt-blob');
    expect(corrupt).toHaveLength(1);
    expect(corrupt[0]).toMatchObject({ blob: where.blob, pack: where.pack, blobType: 'data', severity: 'error' });
    expect(corrupt[0]!.affects?.map((a) => a.snapshot)).toEqual(fx.snapshots);
    for (const a of corrupt[0]!.affects!) expect(a.paths).toEqual([abs(FILES.big)]);
    // streamed as found, before the summary
    const firstFinding = events.findIndex((e) => e.type === 'finding');
    expect(firstFinding).toBeGreaterThan(-1);
    expect(firstFinding).toBeLessThan(events.findIndex((e) => e.type === 'summary'));
  });

  it('a truncated pack: the structure check reports its header, and the data check the blobs past the end', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[0]!, abs(FILES.photo));
    repo.close();
    await replaceFile(b, { type: 'data', name: where.pack }, (bytes) => bytes.slice(0, where.offset + where.length - 10));

    const s = await check(b, false);
    const header = only(s.summary, 'corrupt-pack-header');
    expect(header).toHaveLength(1);
    expect(header[0]!.pack).toBe(where.pack);
    expect(pathsAtRisk(header)).toContain(abs(FILES.photo));

    const d = await check(b, true);
    expect(only(d.summary, 'corrupt-pack-header')).toHaveLength(1);
    const blobs = only(d.summary, 'corrupt-blob');
    expect(blobs.map((f) => f.blob)).toContain(where.blob);
    expect(pathsAtRisk(blobs)).toContain(abs(FILES.photo));
  });

  it('a deleted pack: missing-pack, with every file that had data in it', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const where = await firstBlobOf(repo, fx.snapshots[0]!, abs(FILES.deep));
    repo.close();
    await b.remove({ type: 'data', name: where.pack });

    for (const readData of [false, true]) {
      const { summary } = await check(b, readData);
      const missing = only(summary, 'missing-pack');
      expect(missing).toHaveLength(1);
      expect(missing[0]).toMatchObject({ pack: where.pack, file: `data/${where.pack.slice(0, 2)}/${where.pack}` });
      expect(pathsAtRisk(missing)).toContain(abs(FILES.deep));
      expect(summary.healthy).toBe(false);
    }
  });

  it('a corrupted index file: unreadable-index, the blobs it listed missing, its packs orphaned', async () => {
    const b = await cloneBackend(fx.backend);
    const ids: string[] = [];
    for await (const f of b.list('index')) ids.push(f.name);
    const target = ids.sort()[0]!;
    await flipByte(b, { type: 'index', name: target }, 30);

    const { summary } = await check(b, false);
    expect(only(summary, 'unreadable-index')).toEqual([expect.objectContaining({ index: target, file: `index/${target}` })]);
    expect(only(summary, 'orphan-pack').length).toBeGreaterThan(0);
    expect(only(summary, 'orphan-pack').every((f) => f.severity === 'note')).toBe(true);
    // The blobs are still in the packs the index no longer lists: each such pack is named, with the way back.
    const missing = only(summary, 'missing-blob');
    expect(missing.length).toBeGreaterThan(0);
    expect(missing.every((f) => f.pack !== undefined && /bam repair index/.test(f.message))).toBe(true);
    const orphans = new Set(only(summary, 'orphan-pack').map((f) => f.pack));
    expect(missing.every((f) => orphans.has(f.pack))).toBe(true);
    // Trees only an orphan pack holds are still walked, so the files at risk are named.
    expect([...pathsAtRisk(missing)].some((p) => p.endsWith('.bin'))).toBe(true);
    expect(summary.healthy).toBe(false);
  });

  it('a corrupted snapshot file: unreadable-snapshot names it; the other snapshot is still checked', async () => {
    const b = await cloneBackend(fx.backend);
    await flipByte(b, { type: 'snapshots', name: fx.snapshots[0]! }, 20);
    const { summary } = await check(b, true);
    expect(only(summary, 'unreadable-snapshot')).toEqual([expect.objectContaining({ snapshot: fx.snapshots[0], file: `snapshots/${fx.snapshots[0]}` })]);
    expect(summary.errors).toBe(1);
    expect(summary.newestSnapshots).toEqual([fx.snapshots[1]]);
  });

  it('a missing tree blob: the directories that used it are named, in the snapshots that use them', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    const packs = await treePacks(repo);
    repo.close();
    for (const p of packs) await b.remove({ type: 'data', name: p });
    // With the packs gone the check says missing-pack; rebuilding the index from what is left makes the trees
    // simply missing (in no index), which is the case to test.
    const listed = await check(b, false);
    expect(only(listed.summary, 'missing-pack').map((f) => f.pack).sort()).toEqual(packs);
    const r = await open(b);
    await repairIndex(r);
    r.close();

    const { summary } = await check(b, false);
    const missing = only(summary, 'missing-blob');
    expect(missing.length).toBe(2);
    expect(missing.every((f) => f.blobType === 'tree')).toBe(true);
    const roots = missing.flatMap((f) => f.affects ?? []).filter((a) => a.paths.includes('/'));
    expect(roots.map((a) => a.snapshot).sort()).toEqual([...fx.snapshots].sort());
  });

  it('a stale lock is a note, not an error', async () => {
    const b = await cloneBackend(fx.backend);
    const repo = await open(b);
    await repo.saveDocument('lock', { version: 1, time: '2020-01-01T00:00:00.000Z', exclusive: false, hostname: 'elsewhere', username: 'u', pid: 1, operation: 'backup' });
    repo.close();
    const { summary } = await check(b, false);
    expect(summary.findings.map((f) => [f.kind, f.severity])).toEqual([['stale-lock', 'note']]);
    expect(summary.healthy).toBe(true);
  });
});
