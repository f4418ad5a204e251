import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { AppendOnlyBackend } from './append-only.ts';
import { FILE_TYPES } from './backend.ts';
import type { Handle } from './backend.ts';
import { LocalBackend } from './local.ts';
import { MemoryBackend } from './memory.ts';

const handleOf = (type: Handle['type']): Handle => ({ type, name: type === 'config' ? 'config' : 'a'.repeat(64) });

describe('AppendOnlyBackend', () => {
  for (const type of FILE_TYPES.filter((t) => t !== 'locks')) {
    it(`refuses to remove a ${type} file and leaves it in place`, async () => {
      const memory = new MemoryBackend();
      const b = new AppendOnlyBackend(memory);
      await b.save(handleOf(type), new Uint8Array([1, 2]));
      const e = await b.remove(handleOf(type)).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(BackupError);
      expect((e as BackupError).code).toBe('APPEND_ONLY');
      expect((e as BackupError).retryable).toBe(false);
      expect((e as BackupError).message).toMatch(/^this repository is append-only: .* refused; turn append-only off .* if you really mean to delete$/);
      expect(await memory.load(handleOf(type))).toEqual(new Uint8Array([1, 2]));
    });
  }

  it('still removes lock files, and passes saves, reads and usage through', async () => {
    const memory = new MemoryBackend({ capacityBytes: 1000 });
    const b = new AppendOnlyBackend(memory);
    expect(b.inner).toBe(memory);
    expect(b.location).toBe(memory.location);
    await b.save(handleOf('locks'), new Uint8Array([1]));
    await b.save(handleOf('data'), new Uint8Array([2, 3]));
    expect(await b.load(handleOf('data'), 1, 1)).toEqual(new Uint8Array([3]));
    expect(await b.stat(handleOf('data'))).toEqual({ name: 'a'.repeat(64), size: 2 });
    await b.remove(handleOf('locks'));
    await expect(memory.stat(handleOf('locks'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const listed = [];
    for await (const f of b.list('data')) listed.push(f.name);
    expect(listed).toEqual(['a'.repeat(64)]);
    expect(await b.usage?.()).toEqual({ usedBytes: 2, totalBytes: 1000, trashBytes: 0 });
  });

  it('offers stage, loadInto and localFile only when the inner backend does, and passes them through', async () => {
    const overMemory = new AppendOnlyBackend(new MemoryBackend());
    expect([overMemory.stage, overMemory.loadInto, overMemory.localFile]).toEqual([undefined, undefined, undefined]);
    const dir = await mkdtemp(path.join(tmpdir(), 'bam-append-only-'));
    try {
      const local = await LocalBackend.create(path.join(dir, 'repo'));
      const b = new AppendOnlyBackend(local);
      const file = b.stage!('data');
      await file.append(new Uint8Array([4, 5]));
      await file.commit(handleOf('data'));
      expect(await local.load(handleOf('data'))).toEqual(new Uint8Array([4, 5]));
      const into = new Uint8Array(1);
      await b.loadInto!(handleOf('data'), 1, into);
      expect(into).toEqual(new Uint8Array([5]));
      expect(b.localFile!(handleOf('data'))).toEqual(local.localFile(handleOf('data')));
      // Still no deleting through the wrapper.
      await expect(b.remove(handleOf('data'))).rejects.toMatchObject({ code: 'APPEND_ONLY' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
