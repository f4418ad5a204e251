// The local index cache as a user meets it: a backup leaves one in ~/.backup-manager/cache, restores work from it,
// and a damaged or deleted cache costs nothing but time.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Scratch, bamOk, sha256 } from './support.ts';

describe('index cache', () => {
  const s = new Scratch('index-cache');
  const home = s.path('home');
  const run = { home, password: 'index-cache-pw' };
  afterAll(() => s.cleanup());

  const src = s.dir('src');
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 5; i++) files[`f${i}.bin`] = Buffer.alloc(200_000 + i * 1000, i + 1);
  for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(src, name), bytes);

  const cacheFiles = (): string[] => (fs.existsSync(path.join(home, 'cache')) ? fs.readdirSync(path.join(home, 'cache')) : []);
  const restoreAndCompare = async (name: string): Promise<void> => {
    const target = s.path(name);
    await bamOk(['restore', 'latest', '--target', target], run);
    for (const [file, bytes] of Object.entries(files)) expect(sha256(fs.readFileSync(path.join(target, src, file)))).toBe(sha256(bytes));
  };

  test('a backup leaves a cache that restores use, and a damaged or missing one is rebuilt', async () => {
    await bamOk(['init'], run);
    await bamOk(['backup', src], run);
    expect(cacheFiles()).toHaveLength(1);
    expect(cacheFiles()[0]).toMatch(/^index-[0-9a-f]{64}\.bin$/);
    const file = path.join(home, 'cache', cacheFiles()[0]!);
    const good = fs.readFileSync(file);
    await restoreAndCompare('r1');

    fs.writeFileSync(file, good.subarray(0, good.length >> 1));
    await restoreAndCompare('r2');
    expect(fs.readFileSync(file).equals(good)).toBe(true);

    fs.rmSync(path.join(home, 'cache'), { recursive: true });
    await restoreAndCompare('r3');
    expect(cacheFiles()).toHaveLength(1);
  });
});
