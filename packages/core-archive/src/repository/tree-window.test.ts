import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Handle } from '../backend/backend.ts';
import { MemoryBackend } from '../backend/memory.ts';
import type { Id, TreeNode } from '../format.ts';
import { initRepo, PASSWORD, rejection, truncateFile } from '../test-support/repo.ts';
import { PackSaver } from './pack-saver.ts';
import { Repository } from './repository.ts';
import { decodeTree, encodeTree } from './tree.ts';

/** A memory backend that counts the reads of pack files, and the bytes they return. */
class CountingBackend extends MemoryBackend {
  packReads = 0;
  packBytes = 0;
  override async load(h: Handle, offset?: number, length?: number): Promise<Uint8Array> {
    const bytes = await super.load(h, offset, length);
    if (h.type === 'data') {
      this.packReads++;
      this.packBytes += bytes.byteLength;
    }
    return bytes;
  }
}

function listing(i: number): TreeNode[] {
  // Some padding that does not compress, so the pack is a few hundred KiB.
  const noise = [0, 1, 2, 3].map((k) => createHash('sha256').update(`${i}/${k}`).digest('base64url')).join('');
  return [{ name: `entry-${i}-${noise}`, type: 'fifo', mode: 0o644, uid: i, gid: 0, mtimeNs: String(i), atimeNs: '0', ctimeNs: '0', dev: '1', inode: String(i), nlink: 1 }];
}

/** A repository holding `count` small trees, written in order into one pack. */
async function repoWithTrees(count: number): Promise<{ backend: CountingBackend; ids: Id[] }> {
  const backend = new CountingBackend();
  const repo = await initRepo(backend);
  const saver = new PackSaver(repo);
  const ids: Id[] = [];
  for (let i = 0; i < count; i++) ids.push((await saver.addPlain('tree', encodeTree(listing(i)))).id);
  await saver.finish();
  return { backend, ids };
}

describe('tree blobs', () => {
  it('are read a window of their pack at a time, each one exactly as stored', async () => {
    const { backend, ids } = await repoWithTrees(4000);
    const repo = await Repository.open(backend, PASSWORD);
    await repo.loadIndex();
    backend.packReads = 0;
    backend.packBytes = 0;
    // In the order a walk from the top reads trees written children first: backwards, with jumps.
    const order = [...ids.keys()].reverse();
    for (let i = 0; i + 2 < order.length; i += 3) [order[i], order[i + 2]] = [order[i + 2]!, order[i]!];
    for (const i of order) expect(decodeTree(await repo.loadBlob('tree', ids[i]!), 'tree').nodes).toEqual(listing(i));
    const packs = [...new Set(ids.map((id) => repo.index.lookup(id)!.packId))];
    let stored = 0;
    for (const name of packs) stored += (await backend.stat({ type: 'data', name })).size;
    expect(stored).toBeGreaterThan(1024 * 1024);
    // One read per blob would be 4000; each part of a pack is read about once.
    expect(backend.packReads).toBeLessThan(4 * packs.length + 4);
    expect(backend.packBytes).toBeLessThan(3 * stored);
  });

  it('are still read from a damaged pack up to the damage, and what is cut off is CORRUPT as before', async () => {
    const { backend, ids } = await repoWithTrees(200);
    const repo = await Repository.open(backend, PASSWORD);
    await repo.loadIndex();
    const last = repo.index.lookup(ids.at(-1)!)!;
    // The pack now ends in the middle of the last tree: a window reaching to it cannot be read.
    await truncateFile(backend, { type: 'data', name: last.packId }, last.offset + 10);
    const err = await rejection(repo.loadBlob('tree', ids.at(-1)!), 'CORRUPT');
    expect(err.message).toContain('shorter than the index says');
    for (const i of [198, 0, 100]) expect(decodeTree(await repo.loadBlob('tree', ids[i]!), 'tree').nodes).toEqual(listing(i));
  });
});
