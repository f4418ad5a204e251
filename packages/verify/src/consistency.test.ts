import fs from 'node:fs';
import path from 'node:path';
import { LocalBackend } from '@backup-manager/core-archive';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConsistency } from './consistency.ts';
import { makeFixture, tempDir } from './test-support.ts';
import type { Fixture } from './test-support.ts';

let fx: Fixture;
const tmp = tempDir('consistency');
let primary: string;
beforeAll(async () => {
  fx = await makeFixture('consistency-repo');
  primary = path.join(tmp.dir, 'primary');
  const local = await LocalBackend.create(primary);
  for (const type of ['config', 'keys', 'snapshots', 'index', 'data'] as const) {
    for await (const f of fx.backend.list(type)) await local.save({ type, name: f.name }, await fx.backend.load({ type, name: f.name }));
  }
  await local.close();
}, 60_000);
afterAll(() => {
  fx.cleanup();
  tmp.cleanup();
});

function mirror(name: string): string {
  const dir = path.join(tmp.dir, name);
  fs.cpSync(primary, dir, { recursive: true });
  return dir;
}

function packFiles(root: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(path.join(root, 'data'))) for (const f of fs.readdirSync(path.join(root, 'data', d))) out.push(path.join(root, 'data', d, f));
  return out.sort();
}

describe('checkConsistency', () => {
  it('finds identical copies consistent, by names, sizes and hashes', async () => {
    const m = mirror('same');
    const r = await checkConsistency({ name: 'primary', backend: new LocalBackend(primary) }, [{ name: 'same', backend: new LocalBackend(m) }]);
    expect(r.consistent).toBe(true);
    expect(r.mirrors[0]).toMatchObject({ missing: [], extra: [], different: [], consistent: true });
    expect(r.bytesRead).toBeGreaterThan(2 * 1024 * 1024);
  });

  it('reports per destination what is missing, extra and different', async () => {
    const a = mirror('a');
    const b = mirror('b');
    const [p0, p1, p2] = packFiles(a);
    fs.rmSync(p0!); // missing on a
    const extraName = 'ab'.repeat(32);
    fs.mkdirSync(path.join(a, 'data', 'ab'), { recursive: true });
    fs.writeFileSync(path.join(a, 'data', 'ab', extraName), 'stray'); // extra on a
    const bytes = fs.readFileSync(p1!.replace(a, b));
    bytes[10] = bytes[10]! ^ 0xff;
    fs.writeFileSync(p1!.replace(a, b), bytes); // damaged copy on b
    fs.truncateSync(p2!.replace(a, b), 100); // wrong size on b
    const r = await checkConsistency({ name: 'primary', backend: new LocalBackend(primary) }, [
      { name: 'a', backend: new LocalBackend(a) },
      { name: 'b', backend: new LocalBackend(b) },
    ]);
    expect(r.consistent).toBe(false);
    expect(r.primary.corrupt).toEqual([]);
    const [ra, rb] = r.mirrors;
    expect(ra!.missing.map((f) => f.name)).toEqual([path.basename(p0!)]);
    expect(ra!.extra.map((f) => f.name)).toEqual([extraName]);
    expect(ra!.different).toEqual([]);
    expect(rb!.missing).toEqual([]);
    expect(rb!.different.map((d) => [d.name, d.reason]).sort()).toEqual([[path.basename(p1!), 'content'], [path.basename(p2!), 'size']].sort());
  });

  it('compares config by hash, and can skip hashing', async () => {
    const c = mirror('c');
    fs.writeFileSync(path.join(c, 'config'), 'another repository');
    const r = await checkConsistency({ name: 'primary', backend: new LocalBackend(primary) }, [{ name: 'c', backend: new LocalBackend(c) }]);
    expect(r.mirrors[0]!.different.map((d) => d.reason)).toContain('config');
    const quick = await checkConsistency({ name: 'primary', backend: new LocalBackend(primary) }, [{ name: 'same', backend: new LocalBackend(path.join(tmp.dir, 'same')) }], { hash: false });
    expect(quick.bytesRead).toBe(0);
    expect(quick.consistent).toBe(true);
  });
});
