import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import type { Handle } from './backend.ts';
import { DryRunBackend } from './dry-run.ts';
import type { DryRunAction } from './dry-run.ts';
import { MemoryBackend } from './memory.ts';

const existing: Handle = { type: 'snapshots', name: '1'.repeat(64) };
const fresh: Handle = { type: 'data', name: '2'.repeat(64) };

async function setup() {
  const memory = new MemoryBackend();
  await memory.save(existing, new Uint8Array([1, 2, 3]));
  const actions: DryRunAction[] = [];
  const b = new DryRunBackend(memory, (a) => actions.push(a));
  return { memory, actions, b };
}

describe('DryRunBackend', () => {
  it('reports saves and removals without performing them', async () => {
    const { memory, actions, b } = await setup();
    await b.save(fresh, new Uint8Array(10));
    await b.remove(existing);
    expect(actions).toEqual([
      { kind: 'save', handle: fresh, size: 10 },
      { kind: 'remove', handle: existing },
    ]);
    await expect(memory.stat(fresh)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await memory.load(existing)).toEqual(new Uint8Array([1, 2, 3]));
    expect(await memory.usage()).toMatchObject({ usedBytes: 3 });
  });

  it('passes reads through to the real backend', async () => {
    const { b } = await setup();
    expect(await b.load(existing, 1)).toEqual(new Uint8Array([2, 3]));
    expect(await b.stat(existing)).toEqual({ name: existing.name, size: 3 });
    const listed = [];
    for await (const f of b.list('snapshots')) listed.push(f);
    expect(listed).toEqual([{ name: existing.name, size: 3 }]);
    await expect(b.load(fresh)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await b.usage?.()).toMatchObject({ usedBytes: 3 });
  });

  it('rejects malformed handles like a real run would, and reports nothing for them', async () => {
    const { actions, b } = await setup();
    const bad: Handle = { type: 'keys', name: '../config' };
    await expect(b.save(bad, new Uint8Array(1))).rejects.toBeInstanceOf(BackupError);
    await expect(b.remove(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(actions).toEqual([]);
  });

  it('works without a listener', async () => {
    const memory = new MemoryBackend();
    const b = new DryRunBackend(memory);
    await b.save(fresh, new Uint8Array(1));
    await b.remove(fresh);
    await expect(memory.stat(fresh)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('stages a file by counting its bytes and reports it as a save on commit, writing nothing', async () => {
    const { memory, actions, b } = await setup();
    const file = b.stage('data');
    await file.append(new Uint8Array(10));
    await file.append(new Uint8Array(5));
    expect(file.size).toBe(15);
    expect(actions).toEqual([]);
    await file.commit(fresh);
    expect(actions).toEqual([{ kind: 'save', handle: fresh, size: 15 }]);
    await expect(memory.stat(fresh)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(file.append(new Uint8Array(1))).rejects.toMatchObject({ code: 'INTERNAL' });
    const dropped = b.stage('data');
    await dropped.append(new Uint8Array(3));
    await dropped.discard();
    await expect(dropped.commit(fresh)).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(actions).toHaveLength(1);
    await expect(b.stage('data').commit({ type: 'data', name: 'nope' })).rejects.toBeInstanceOf(BackupError);
  });
});
