import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { FileTokenStore, MemoryTokenStore } from './token-store.ts';

let dir: string;

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bam-token-store-'));
});

afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('FileTokenStore', () => {
  it('reads nothing from a missing file, then round-trips tokens in a 0600 file inside a new folder', async () => {
    const store = new FileTokenStore(path.join(dir, 'state', 'google_drive-token.json'));
    expect(await store.read()).toBeUndefined();
    const tokens = { accessToken: 'at-1', refreshToken: 'rt-1', expiresAt: 1_700_000_000_000, scope: 's', tokenType: 'Bearer' };
    await store.write(tokens);
    expect(await store.read()).toEqual(tokens);
    expect((await fsp.stat(store.path)).mode & 0o777).toBe(0o600);
    expect((await fsp.stat(path.dirname(store.path))).mode & 0o777).toBe(0o700);
  });

  it('replaces the file by rename and leaves no temporary file behind', async () => {
    const store = new FileTokenStore(path.join(dir, 'token.json'));
    await store.write({ accessToken: 'old' });
    const before = await fsp.stat(store.path);
    await store.write({ accessToken: 'new', refreshToken: 'rt' });
    const after = await fsp.stat(store.path);
    expect(after.ino).not.toBe(before.ino); // a new file renamed into place, not the old one rewritten
    expect(after.mode & 0o777).toBe(0o600);
    expect(await fsp.readdir(dir)).toEqual(['token.json']);
    expect(await store.read()).toEqual({ accessToken: 'new', refreshToken: 'rt' });
  });

  it('writes 0600 even under a permissive umask', async () => {
    const previous = process.umask(0o000);
    try {
      const store = new FileTokenStore(path.join(dir, 'token.json'));
      await store.write({ accessToken: 'x' });
      expect((await fsp.stat(store.path)).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });

  it('reports a damaged file as CONFIG_INVALID without echoing its content', async () => {
    const file = path.join(dir, 'token.json');
    await fsp.writeFile(file, '{"accessToken": "secret-at", ');
    const error = await new FileTokenStore(file).read().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(BackupError);
    expect((error as BackupError).code).toBe('CONFIG_INVALID');
    expect((error as BackupError).message).not.toContain('secret-at');
  });

  it('runs exclusive sections one at a time, also between two stores on one file', async () => {
    const file = path.join(dir, 'token.json');
    const a = new FileTokenStore(file);
    const b = new FileTokenStore(file);
    const events: string[] = [];
    const section = (name: string) => async () => {
      events.push(`${name} in`);
      await new Promise((resolve) => setTimeout(resolve, 30));
      events.push(`${name} out`);
      return name;
    };
    expect(await Promise.all([a.exclusive(section('a')), b.exclusive(section('b'))])).toEqual(['a', 'b']);
    expect(events.join(',')).toMatch(/^(a in,a out,b in,b out|b in,b out,a in,a out)$/);
    expect(await fsp.readdir(dir)).toEqual([]); // the lock file is gone
  });

  it('takes over a lock left behind by a process that died', async () => {
    const file = path.join(dir, 'token.json');
    await fsp.writeFile(`${file}.lock`, '99999\n');
    const store = new FileTokenStore(file, { now: () => Date.now() + 10 * 60_000 });
    expect(await store.exclusive(async () => 'ran')).toBe('ran');
  });
});

describe('MemoryTokenStore', () => {
  it('keeps its own copy of the tokens', async () => {
    const tokens = { accessToken: 'a' };
    const store = new MemoryTokenStore(tokens);
    tokens.accessToken = 'changed';
    expect(await store.read()).toEqual({ accessToken: 'a' });
    await store.write({ accessToken: 'b', refreshToken: 'r' });
    expect(await store.read()).toEqual({ accessToken: 'b', refreshToken: 'r' });
    expect(await new MemoryTokenStore().read()).toBeUndefined();
  });
});
