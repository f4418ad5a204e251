import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendHistory, lastRestoreThroughput, latestVerifiedSnapshotPerSource, readHistory } from './history.ts';
import type { VerificationRecord } from './history.ts';
import { tempDir } from './test-support.ts';

const tmp = tempDir('history');
afterAll(() => tmp.cleanup());

const id = (c: string): string => c.repeat(64);
const snap = (i: string, hostname: string, p: string, time: string) => ({ id: id(i), snapshot: { hostname, paths: [p], time } });
const rec = (r: Partial<VerificationRecord>): VerificationRecord => ({
  time: '2026-01-01T00:00:00Z', repository: '/r', kind: 'verify', scope: 'structure', readData: false, outcome: 'healthy',
  findings: 0, bytesRead: 0, durationMs: 1000, throughputBytesPerSec: 0, ...r,
});

describe('verification history', () => {
  it('appends JSON lines and reads them back oldest first, skipping damaged lines', () => {
    const file = path.join(tmp.dir, 'h', 'verify-history.jsonl');
    appendHistory(file, rec({ time: '2026-01-02T00:00:00Z' }));
    appendHistory(file, rec({ time: '2026-01-01T00:00:00Z', kind: 'recovery-test' }));
    fs.appendFileSync(file, '{broken\n');
    const { records, skipped } = readHistory(file);
    expect(records.map((r) => r.time)).toEqual(['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z']);
    expect(skipped).toBe(1);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(readHistory(path.join(tmp.dir, 'none.jsonl'))).toEqual({ records: [], skipped: 0 });
  });

  it('answers the newest verified snapshot of each source, and how strongly it was verified', () => {
    const snapshots = [
      snap('a', 'h1', '/home', '2026-01-01T00:00:00Z'),
      snap('b', 'h1', '/home', '2026-01-02T00:00:00Z'),
      snap('c', 'h1', '/home', '2026-01-03T00:00:00Z'),
      snap('d', 'h2', '/etc', '2026-01-01T00:00:00Z'),
    ];
    const history = [
      rec({ time: '2026-01-02T05:00:00Z', snapshots: [id('b'), id('d')] }),
      rec({ time: '2026-01-03T05:00:00Z', snapshots: [id('c')], outcome: 'findings', findings: 2 }),
      rec({ time: '2026-01-03T06:00:00Z', kind: 'recovery-test', snapshot: id('a'), readData: true, scope: 'full', bytesRead: 1e9, durationMs: 10_000, throughputBytesPerSec: 1e8 }),
    ];
    const any = latestVerifiedSnapshotPerSource(history, snapshots);
    const home = any.find((s) => s.hostname === 'h1')!;
    expect(home.newest).toBe(id('c'));
    expect(home.verified).toMatchObject({ snapshot: id('b'), level: 'structure' });
    expect(any.find((s) => s.hostname === 'h2')!.verified?.snapshot).toBe(id('d'));
    const restored = latestVerifiedSnapshotPerSource(history, snapshots, { minLevel: 'restore' });
    expect(restored.find((s) => s.hostname === 'h1')!.verified).toMatchObject({ snapshot: id('a'), level: 'restore' });
    expect(restored.find((s) => s.hostname === 'h2')!.verified).toBeNull();
  });

  it('gives the throughput of the newest recovery test that restored data', () => {
    const history = [
      rec({ kind: 'recovery-test', time: '2026-01-01T00:00:00Z', bytesRead: 100, durationMs: 1000, throughputBytesPerSec: 100 }),
      rec({ kind: 'recovery-test', time: '2026-01-02T00:00:00Z', bytesRead: 5000, durationMs: 1000, throughputBytesPerSec: 5000, repository: '/other' }),
      rec({ kind: 'verify', time: '2026-01-03T00:00:00Z', bytesRead: 9, throughputBytesPerSec: 9 }),
    ];
    expect(lastRestoreThroughput(history)?.bytesPerSecond).toBe(5000);
    expect(lastRestoreThroughput(history, '/r')?.bytesPerSecond).toBe(100);
    expect(lastRestoreThroughput([])).toBeUndefined();
  });
});
