import { describe, expect, it } from 'vitest';
import type { FileType, Handle } from '../backend/backend.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { BackupError } from '../errors.ts';
import { FaultyBackend } from './faulty.ts';

const id = (n: number) => n.toString(16).padStart(64, '0');
const h = (n: number, type: FileType = 'data'): Handle => ({ type, name: id(n) });
const unavailable = () => new BackupError('UNAVAILABLE', 'injected');

/** Runs `fn` n times and returns which calls (1-based) failed. */
async function failingCalls(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const failed: number[] = [];
  for (let i = 1; i <= n; i++) {
    try {
      await fn();
    } catch {
      failed.push(i);
    }
  }
  return failed;
}

async function withFile(): Promise<MemoryBackend> {
  const m = new MemoryBackend();
  await m.save(h(1), new Uint8Array([1]));
  await m.save(h(2, 'index'), new Uint8Array([2]));
  return m;
}

describe('FaultyBackend', () => {
  it('passes everything through without rules', async () => {
    const f = new FaultyBackend(await withFile());
    expect(await f.load(h(1))).toEqual(new Uint8Array([1]));
    expect(await f.stat(h(1))).toEqual({ name: id(1), size: 1 });
    expect(await f.usage?.()).toMatchObject({ usedBytes: 2 });
  });

  it('fails only the nth matching call when nth is given alone', async () => {
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'load', nth: 3, error: unavailable });
    expect(await failingCalls(6, () => f.load(h(1)))).toEqual([3]);
  });

  it('fails from the nth call on, `times` times', async () => {
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'stat', nth: 2, times: 3, error: unavailable });
    expect(await failingCalls(8, () => f.stat(h(1)))).toEqual([2, 3, 4]);
    expect(f.firedCounts).toEqual([3]);
  });

  it('counts only calls of the rule operation and file type', async () => {
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'load', type: 'index', nth: 2, error: unavailable });
    await f.load(h(2, 'index'));
    await f.load(h(1));
    await f.stat(h(2, 'index'));
    await expect(f.load(h(2, 'index'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(f.calls.map((c) => `${c.operation} ${c.type} ${c.injected ?? '-'}`)).toEqual([
      'load index -',
      'load data -',
      'stat index -',
      'load index UNAVAILABLE',
    ]);
  });

  it('fails every matching call without nth or times, and stops after clearRules', async () => {
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'remove', error: unavailable });
    expect(await failingCalls(3, () => f.remove(h(9)))).toEqual([1, 2, 3]);
    f.clearRules();
    expect(await failingCalls(3, () => f.remove(h(9)))).toEqual([]);
  });

  it('is deterministic for a seed and fails about `probability` of the calls', async () => {
    const pattern = async (seed: number) => {
      const f = new FaultyBackend(await withFile(), { seed });
      f.addRule({ operation: 'stat', probability: 0.3, error: unavailable });
      return failingCalls(400, () => f.stat(h(1)));
    };
    const a = await pattern(42);
    expect(await pattern(42)).toEqual(a);
    expect(await pattern(43)).not.toEqual(a);
    expect(a.length).toBeGreaterThan(80);
    expect(a.length).toBeLessThan(160);
  });

  it('throws the given instance, or a fresh error from a factory each time', async () => {
    const instance = new BackupError('IO', 'same');
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'load', times: 2, error: instance });
    expect(await f.load(h(1)).catch((e: unknown) => e)).toBe(instance);
    expect(await f.load(h(1)).catch((e: unknown) => e)).toBe(instance);
    f.addRule({ operation: 'stat', error: unavailable });
    const e1 = await f.stat(h(1)).catch((e: unknown) => e);
    const e2 = await f.stat(h(1)).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(BackupError);
    expect(e1).not.toBe(e2);
  });

  it('performs the operation before failing when applyFirst is set', async () => {
    const memory = new MemoryBackend();
    const f = new FaultyBackend(memory);
    f.addRule({ operation: 'save', applyFirst: true, nth: 1, error: unavailable });
    f.addRule({ operation: 'remove', nth: 1, error: unavailable });
    await expect(f.save(h(5), new Uint8Array([5]))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(await memory.load(h(5))).toEqual(new Uint8Array([5]));
    await expect(f.remove(h(5))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(await memory.load(h(5))).toEqual(new Uint8Array([5]));
    expect(f.calls.map((c) => c.applied ?? false)).toEqual([true, false]);
  });

  it('fails a listing before the first entry, after some entries, or after all of them', async () => {
    const memory = new MemoryBackend();
    for (let i = 0; i < 5; i++) await memory.save(h(i), new Uint8Array(1));
    const f = new FaultyBackend(memory);
    f.addRule({ operation: 'list', nth: 1, error: unavailable });
    f.addRule({ operation: 'list', nth: 2, afterItems: 3, error: unavailable });
    f.addRule({ operation: 'list', nth: 3, applyFirst: true, error: unavailable });
    const drain = async () => {
      const names: string[] = [];
      const error = await (async () => {
        for await (const x of f.list('data')) names.push(x.name);
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      return { count: names.length, failed: error !== undefined };
    };
    expect(await drain()).toEqual({ count: 0, failed: true });
    expect(await drain()).toEqual({ count: 3, failed: true });
    expect(await drain()).toEqual({ count: 5, failed: true });
    expect(await drain()).toEqual({ count: 5, failed: false });
  });

  it('lets the first-added rule win when several fire', async () => {
    const f = new FaultyBackend(await withFile());
    f.addRule({ operation: 'stat', nth: 1, error: () => new BackupError('IO', 'first') });
    f.addRule({ operation: 'stat', nth: 1, error: () => new BackupError('UNAVAILABLE', 'second') });
    await expect(f.stat(h(1))).rejects.toMatchObject({ code: 'IO' });
    await f.stat(h(1));
    expect(f.firedCounts).toEqual([1, 0]);
  });

  it('rejects nonsensical rules', () => {
    const f = new FaultyBackend(new MemoryBackend());
    expect(() => f.addRule({ operation: 'save', nth: 0, error: unavailable })).toThrow(TypeError);
    expect(() => f.addRule({ operation: 'save', probability: 2, error: unavailable })).toThrow(TypeError);
    expect(() => f.addRule({ operation: 'save', afterItems: 1, error: unavailable })).toThrow(TypeError);
  });
});
