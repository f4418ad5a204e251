import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { describeBackendConformance } from '../testing/conformance.ts';
import type { Handle } from './backend.ts';
import { MemoryBackend } from './memory.ts';

describeBackendConformance('MemoryBackend', async () => ({ backend: new MemoryBackend() }), { supportsUsage: true });

const id = (c: string) => c.repeat(64);
const h = (c: string): Handle => ({ type: 'data', name: id(c) });

describe('MemoryBackend capacity', () => {
  it('fails with QUOTA_EXCEEDED when a save would exceed the capacity, and stores nothing', async () => {
    const b = new MemoryBackend({ capacityBytes: 100 });
    await b.save(h('a'), new Uint8Array(60));
    const err = await b.save(h('b'), new Uint8Array(41)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe('QUOTA_EXCEEDED');
    expect((err as BackupError).message).toContain('free space');
    await expect(b.stat(h('b'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await b.usage()).toEqual({ usedBytes: 60, totalBytes: 100, trashBytes: 0 });
    await b.save(h('b'), new Uint8Array(40));
    expect(await b.usage()).toEqual({ usedBytes: 100, totalBytes: 100, trashBytes: 0 });
  });

  it('counts a replaced file once and frees space on remove', async () => {
    const b = new MemoryBackend({ capacityBytes: 100 });
    await b.save(h('a'), new Uint8Array(80));
    await b.save(h('a'), new Uint8Array(90));
    expect((await b.usage()).usedBytes).toBe(90);
    await b.remove(h('a'));
    await b.remove(h('a'));
    expect((await b.usage()).usedBytes).toBe(0);
  });

  it('enforces the capacity across concurrent saves', async () => {
    const b = new MemoryBackend({ capacityBytes: 100 });
    const results = await Promise.allSettled(['a', 'b', 'c'].map((c) => b.save(h(c), new Uint8Array(40))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect((await b.usage()).usedBytes).toBe(80);
  });

  it('reports unlimited capacity as null and rejects a bad capacity', async () => {
    expect((await new MemoryBackend().usage()).totalBytes).toBeNull();
    expect(() => new MemoryBackend({ capacityBytes: -1 })).toThrow(BackupError);
    expect(new MemoryBackend({ label: 'x' }).location).toBe('memory:x');
  });

  it('keeps its files after close, so a test can reopen a repository on it', async () => {
    const b = new MemoryBackend();
    await b.save(h('a'), new Uint8Array([1, 2, 3]));
    await b.close();
    expect(await b.load(h('a'))).toEqual(new Uint8Array([1, 2, 3]));
  });
});
