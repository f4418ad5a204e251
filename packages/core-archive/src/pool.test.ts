import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from './backend/memory.ts';
import { backup, restore } from './index.ts';
import { prestartWorkers, warmWorkerCount } from './pool.ts';
import { initRepo, pseudoRandomBytes, SMALL_CHUNKS, tempDir, writeTree } from './test-support/repo.ts';
import { compareTrees } from './test-support/tree.ts';

const tmp = tempDir('pool');
afterAll(() => tmp.cleanup());

describe('prestarted workers', () => {
  it('are taken by the next backup and the next restore, which work as with workers of their own', async () => {
    const root = path.join(tmp.dir, 'src');
    writeTree(root, { 'a.txt': 'alpha', 'big.bin': pseudoRandomBytes(300 * 1024, 7), 'sub/b.txt': 'beta' });
    const repo = await initRepo(new MemoryBackend(), { chunkSizes: SMALL_CHUNKS });
    prestartWorkers(2);
    expect(warmWorkerCount()).toBe(2);
    const r = await backup(repo, { paths: [root], workers: 2 });
    expect(warmWorkerCount()).toBe(0);
    expect(r.warnings).toEqual([]);

    prestartWorkers(2);
    const target = path.join(tmp.dir, 'restored');
    const result = await restore(repo, r.snapshotId, { target, subpath: root, workers: 2 });
    expect(warmWorkerCount()).toBe(0);
    expect(result.problems).toEqual([]);
    expect(compareTrees(root, target, { root: false })).toEqual([]);
  }, 30_000);

  it('do not keep the process alive when no pool takes them', () => {
    const poolUrl = new URL('./pool.ts', import.meta.url).href;
    const script = `import { prestartWorkers } from ${JSON.stringify(poolUrl)}; prestartWorkers(2);`;
    // A process held open by its workers would be killed by the timeout: no exit status then.
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
  }, 30_000);
});
