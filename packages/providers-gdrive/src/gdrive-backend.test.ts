// GdriveBackend against the Drive fake with the real SDK: the faults real Drive produces (dropped connections mid-
// upload, expired sessions and tokens, 429, a full Drive), Drive's quirks (duplicate names, paging, trash), layout.

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { BackupError, FileTokenStore, RequestPacer, RetryBackend } from '@backup-manager/core-archive';
import type { Backend, FileInfo, FileType, Handle } from '@backup-manager/core-archive';
import { afterEach, describe, expect, it } from 'vitest';
import { GdriveBackend } from './gdrive-backend.ts';
import { FOLDER, filesIn, folderAt, startHarness } from '../test/harness.ts';
import type { Harness } from '../test/harness.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const UPLOAD_PATH = '/upload/drive/v3/files';

let h: Harness | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await h?.fake.close();
  h = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function handleFor(type: FileType, data: Uint8Array): Handle {
  return { type, name: type === 'config' ? 'config' : createHash('sha256').update(data).digest('hex') };
}

async function collect(listing: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of listing) out.push(info);
  return out;
}

async function failure(p: Promise<unknown>): Promise<BackupError> {
  const error = await p.then(() => undefined, (e: unknown) => e);
  expect(error, 'expected a BackupError').toBeInstanceOf(BackupError);
  return error as BackupError;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  return Buffer.from(actual).equals(Buffer.from(expected));
}

/** The fake's upload PUTs, split into data chunks and status queries. */
function uploadPuts(harness: Harness) {
  const puts = harness.fake.log.filter((e) => e.method === 'PUT' && e.path === UPLOAD_PATH);
  const isQuery = (range: string | undefined) => /^bytes \*\//.test(range ?? '');
  return {
    puts,
    chunks: puts.filter((e) => !isQuery(e.headers['content-range'])),
    queries: puts.filter((e) => isQuery(e.headers['content-range'])),
  };
}

describe('resumable uploads', () => {
  it('resumes a pack upload after the connection drops on a chunk PUT, in 256 KiB-multiple chunks', async () => {
    h = await startHarness({ backend: { uploadChunkBytes: 2 * MiB } });
    const data = bytes(6 * MiB + 12_345, 1);
    const handle = handleFor('data', data);
    // The second chunk is stored by the server, then the connection is reset before the answer.
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 2, action: { kind: 'reset-after' } });
    await h.backend.save(handle, data);

    expect(sameBytes(await h.backend.load(handle), data)).toBe(true);
    expect(await collect(h.backend.list('data'))).toEqual([{ name: handle.name, size: data.byteLength }]);
    const { puts, chunks, queries } = uploadPuts(h);
    expect(chunks.map((e) => e.requestBytes)).toEqual([2 * MiB, 2 * MiB, 2 * MiB, 12_345]);
    for (const e of chunks.slice(0, -1)) expect(e.requestBytes % (256 * KiB)).toBe(0);
    expect(queries).toHaveLength(1);
    expect(queries[0]?.headers['content-range']).toBe(`bytes */${data.byteLength}`);
    expect(puts.map((e) => [e.status, e.fault ?? null])).toEqual([
      [308, null],
      [0, 'reset-after'],
      [308, null], // the status query: 4 MiB persisted, so the third chunk is next, the second is not re-sent
      [308, null],
      [200, null],
    ]);
    // The session URI is the upload's credential: no bearer token is sent to it.
    for (const e of puts) expect(e.headers['authorization']).toBeUndefined();
    // One POST opened the session; nothing was uploaded twice.
    expect(h.fake.log.filter((e) => e.method === 'POST' && e.path === UPLOAD_PATH)).toHaveLength(1);
    expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/data`).id)).toHaveLength(1);
  });

  it('re-sends a chunk the server never received (reset before it was applied)', async () => {
    h = await startHarness({ backend: { uploadChunkBytes: 1 * MiB } });
    const data = bytes(5 * MiB + 1, 2);
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 3, action: { kind: 'reset-before' } });
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 6, action: { kind: 'status', status: 503 } });
    await h.backend.save(handleFor('data', data), data);
    expect(sameBytes(await h.backend.load(handleFor('data', data)), data)).toBe(true);
    const { chunks, queries } = uploadPuts(h);
    expect(queries).toHaveLength(2);
    expect(chunks.map((e) => e.headers['content-range'])).toEqual([
      'bytes 0-1048575/5242881',
      'bytes 1048576-2097151/5242881',
      'bytes 2097152-3145727/5242881', // reset before it was applied …
      'bytes 2097152-3145727/5242881', // … so it is sent again after the status query
      'bytes 3145728-4194303/5242881', // 503: not stored either, sent again after the next status query
      'bytes 3145728-4194303/5242881',
      'bytes 4194304-5242879/5242881',
      'bytes 5242880-5242880/5242881',
    ]);
  });

  it('gives up UNAVAILABLE after a bounded number of resumes, leaving no file visible', async () => {
    h = await startHarness({ backend: { uploadChunkBytes: 1 * MiB } });
    const data = bytes(6 * MiB, 3);
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 2, times: Infinity, action: { kind: 'reset-before' } });
    const error = await failure(h.backend.save(handleFor('data', data), data));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(uploadPuts(h).puts).toHaveLength(1 + 1 + 3); // one good chunk, the failed one, three failed status queries
    expect(await collect(h.backend.list('data'))).toEqual([]);
    expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/data`).id)).toEqual([]);
  });

  it('fails UNAVAILABLE when the session expires, and RetryBackend starts the upload over', async () => {
    h = await startHarness({ backend: { uploadChunkBytes: 1 * MiB } });
    const data = bytes(6 * MiB, 4);
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 3, action: { kind: 'expire-upload-session' } });
    const direct = await failure(h.backend.save(handleFor('data', data), data));
    expect(direct.code).toBe('UNAVAILABLE');
    expect(direct.message).toContain('upload session');

    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 2, action: { kind: 'expire-upload-session' } });
    const sleeps: number[] = [];
    const retrying = new RetryBackend(h.backend, { sleep: async (ms) => void sleeps.push(ms), random: () => 0 });
    await retrying.save(handleFor('data', data), data);
    expect(sleeps).toHaveLength(1);
    expect(sameBytes(await h.backend.load(handleFor('data', data)), data)).toBe(true);
    expect(await collect(h.backend.list('data'))).toHaveLength(1);
  });
});

describe('rate limits and authorisation', () => {
  it('surfaces a 429 as RATE_LIMITED with Retry-After, and RetryBackend waits it out', async () => {
    h = await startHarness();
    const data = bytes(1000, 5);
    const handle = handleFor('index', data);
    await h.backend.save(handle, data);
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/files', action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const error = await failure(h.backend.stat(handle));
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.retryAfterMs).toBe(7000);

    h.fake.faults.add({ method: 'GET', path: '/drive/v3/files', times: 2, action: { kind: 'status', status: 429, retryAfterSeconds: 3 } });
    const sleeps: number[] = [];
    const retrying = new RetryBackend(h.backend, { sleep: async (ms) => void sleeps.push(ms), random: () => 0 });
    expect(await retrying.stat(handle)).toEqual({ name: handle.name, size: 1000 });
    expect(sleeps).toEqual([3000, 3000]);
    // The SDK itself never retried: each 429 reached the backend once.
    expect(h.fake.log.filter((e) => e.status === 429)).toHaveLength(3);
  });

  it('treats a 403 userRateLimitExceeded as RATE_LIMITED and a 503 as UNAVAILABLE', async () => {
    h = await startHarness();
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/about', action: { kind: 'status', status: 403 } });
    expect((await failure(h.backend.usage())).code).toBe('RATE_LIMITED');
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/about', action: { kind: 'status', status: 503 } });
    expect((await failure(h.backend.usage())).code).toBe('UNAVAILABLE');
  });

  it('refreshes an expired access token once, persists it (0600), and repeats the request', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bam-gdrive-token-'));
    cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'google_drive-token.json');
    h = await startHarness({
      store: async (tokens) => {
        const store = new FileTokenStore(file);
        await store.write(tokens);
        return store;
      },
    });
    const data = bytes(2000, 6);
    const handle = handleFor('snapshots', data);
    await h.backend.save(handle, data);
    h.fake.log.clear();
    h.fake.faults.add({ method: 'GET', path: /^\/drive\/v3\/files/, action: { kind: 'expire-token' } });

    expect(sameBytes(await h.backend.load(handle), data)).toBe(true);
    expect(h.fake.log.entries.map((e) => `${e.method} ${e.path} ${e.status}`)).toEqual([
      `GET /drive/v3/files/${[...h.fake.files.values()].find((f) => f.name === handle.name)?.id} 401`,
      'POST /token 200',
      `GET /drive/v3/files/${[...h.fake.files.values()].find((f) => f.name === handle.name)?.id} 206`,
    ]);
    const saved = await new FileTokenStore(file).read();
    expect(saved?.accessToken).not.toBe(h.tokens.accessToken);
    expect(h.fake.tokens.isValid(saved?.accessToken ?? '')).toBe(true);
    expect(saved?.refreshToken).toBe(h.tokens.refreshToken);
    expect((await fsp.stat(file)).mode & 0o777).toBe(0o600);
    expect(await fsp.readdir(dir)).toEqual(['google_drive-token.json']);
  });

  it('fails UNAUTHORIZED with the re-auth hint when the refreshed token is refused too, or cannot be refreshed', async () => {
    h = await startHarness();
    const handle = handleFor('keys', bytes(10, 7));
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/files', times: 2, action: { kind: 'status', status: 401 } });
    const twice = await failure(h.backend.stat(handle));
    expect(twice.code).toBe('UNAUTHORIZED');
    expect(twice.message).toContain('run `bam auth google_drive` again');
    expect(h.fake.log.filter((e) => e.path === '/token')).toHaveLength(1); // refreshed once, not in a loop

    h.fake.tokens.revokeRefreshToken(h.tokens.refreshToken ?? '');
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/files', action: { kind: 'expire-token' } });
    const revoked = await failure(h.backend.stat(handle));
    expect(revoked.code).toBe('UNAUTHORIZED');
    expect(revoked.message).toContain('run `bam auth google_drive` again');
    const text = `${revoked.message} ${inspect(revoked, { depth: 10 })} ${inspect(twice, { depth: 10 })}`;
    for (const token of [...h.fake.tokens.issued, h.tokens.refreshToken ?? '']) expect(text).not.toContain(token);
  });
});

describe('a full Drive', () => {
  it('fails a multipart save with QUOTA_EXCEEDED naming the account, and leaves nothing visible', async () => {
    h = await startHarness({ fake: { quotaBytes: 1 * MiB } });
    const data = bytes(2 * MiB, 8);
    const error = await failure(h.backend.save(handleFor('data', data), data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('fake.user@example.com');
    expect(await collect(h.backend.list('data'))).toEqual([]);
    expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/data`).id)).toEqual([]);
  });

  it('fails a resumable save on the final chunk with QUOTA_EXCEEDED and leaves no partial file', async () => {
    h = await startHarness({ backend: { uploadChunkBytes: 1 * MiB } });
    const data = bytes(6 * MiB + 5, 9);
    h.fake.faults.add({ method: 'PUT', path: UPLOAD_PATH, nth: 7, action: { kind: 'quota-full' } });
    const error = await failure(h.backend.save(handleFor('data', data), data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.message).toContain('fake.user@example.com');
    expect(await collect(h.backend.list('data'))).toEqual([]);
    expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/data`).id)).toEqual([]);

    // Declared up front, the size is refused when the session opens.
    h.fake.setQuota(h.fake.usedBytes() + 1 * MiB);
    const early = await failure(h.backend.save(handleFor('data', data), data));
    expect(early.code).toBe('QUOTA_EXCEEDED');
    expect(uploadPuts(h).chunks).toHaveLength(7); // no chunk was sent for the second attempt
  });
});

describe('listing, duplicates and usage', () => {
  it('lists across many pages, each file once', async () => {
    h = await startHarness({ fake: { pageSizeMax: 3 } });
    const files = Array.from({ length: 20 }, (_, i) => bytes(100 + i, 100 + i));
    for (const data of files) await h.backend.save(handleFor('index', data), data);
    h.fake.log.clear();
    const listed = await collect(h.backend.list('index'));
    expect(listed.map((f) => f.name).sort()).toEqual(files.map((d) => handleFor('index', d).name).sort());
    const pages = h.fake.log.filter((e) => e.method === 'GET' && e.path === '/drive/v3/files');
    expect(pages).toHaveLength(7); // ceil(20 / 3)
    expect(pages.slice(1).every((e) => e.query['pageToken'] !== undefined)).toBe(true);
    expect(pages[0]?.query['pageSize']).toBe('1000');
  });

  it('resolves duplicate names in list, load, stat and save: one copy stays, the others are deleted', async () => {
    h = await startHarness();
    const data = bytes(3000, 10);
    const handle = handleFor('data', data);
    const folder = folderAt(h.fake, `${FOLDER}/data`).id;
    const copies = () => filesIn(h!.fake, folder).filter((f) => f.name === handle.name);

    for (let i = 0; i < 3; i++) h.fake.createFileDirect({ name: handle.name, parents: [folder], content: Buffer.from(data) });
    expect(copies()).toHaveLength(3);
    expect(await collect(h.backend.list('data'))).toEqual([{ name: handle.name, size: 3000 }]);
    expect(copies()).toHaveLength(1);

    // A damaged copy (content does not match the name) loses against an intact one, even a newer damaged one.
    // (Another process's backend: this one has the file's id cached and would not look the name up again.)
    h.fake.createFileDirect({ name: handle.name, parents: [folder], content: Buffer.from(bytes(3000, 11)) });
    expect(copies()).toHaveLength(2);
    expect(sameBytes(await new GdriveBackend(h.options).load(handle), data)).toBe(true);
    expect(copies()).toHaveLength(1);
    expect(copies()[0]?.sha256Checksum).toBe(handle.name);

    h.fake.createFileDirect({ name: handle.name, parents: [folder], content: Buffer.from(data) });
    expect(await h.backend.stat(handle)).toEqual({ name: handle.name, size: 3000 });
    expect(copies()).toHaveLength(1);

    // Saving what is already there uploads nothing and still tidies up.
    h.fake.createFileDirect({ name: handle.name, parents: [folder], content: Buffer.from(data) });
    h.fake.log.clear();
    await h.backend.save(handle, data);
    expect(h.fake.log.filter((e) => e.path === UPLOAD_PATH)).toEqual([]);
    expect(copies()).toHaveLength(1);

    await h.backend.remove(handle);
    expect(copies()).toEqual([]);
  });

  it('replaces config by uploading the new one first, then deleting the old one', async () => {
    h = await startHarness();
    const config: Handle = { type: 'config', name: 'config' };
    await h.backend.save(config, bytes(100, 12));
    await h.backend.save(config, bytes(200, 13));
    const root = folderAt(h.fake, FOLDER).id;
    expect(filesIn(h.fake, root).map((f) => [f.name, f.size])).toEqual([['config', 200]]);
    const order = h.fake.log.entries.filter((e) => e.path === UPLOAD_PATH || e.method === 'DELETE').map((e) => e.method);
    expect(order).toEqual(['POST', 'POST', 'DELETE']);
  });

  it('reports usage from about.get, with trash and an unlimited quota', async () => {
    h = await startHarness({ fake: { quotaBytes: 100 * MiB } });
    const data = bytes(10_000, 14);
    await h.backend.save(handleFor('data', data), data);
    h.fake.createFileDirect({ name: 'old-photo.jpg', content: Buffer.alloc(4321), trashed: true });
    expect(await h.backend.usage()).toEqual({ usedBytes: 10_000 + 4321, totalBytes: 100 * MiB, trashBytes: 4321 });
    h.fake.setQuota(null);
    expect((await h.backend.usage()).totalBytes).toBeNull();
  });
});

describe('layout and folders', () => {
  it('keeps config in the repository folder and each type in its own folder, and removes permanently', async () => {
    h = await startHarness();
    const saved: Record<string, string> = {};
    for (const [i, type] of (['config', 'keys', 'locks', 'snapshots', 'index', 'data'] as const).entries()) {
      const data = bytes(50, 40 + i);
      const handle = handleFor(type, data);
      await h.backend.save(handle, data);
      saved[type] = handle.name;
    }
    const root = folderAt(h.fake, FOLDER);
    expect(filesIn(h.fake, root.id).map((f) => f.name)).toEqual(['config']);
    for (const type of ['keys', 'locks', 'snapshots', 'index', 'data']) {
      expect(filesIn(h.fake, folderAt(h.fake, `${FOLDER}/${type}`).id).map((f) => f.name)).toEqual([saved[type]]);
    }
    expect(h.backend.location).toBe('gdrive:backup-manager/repo1');

    await h.backend.remove({ type: 'data', name: saved['data'] ?? '' });
    expect(h.fake.trashBytes()).toBe(0); // deleted, not trashed
    expect([...h.fake.files.values()].some((f) => f.name === saved['data'])).toBe(false);
  });

  it('create() reuses existing folders and, with same-named folders, always the oldest', async () => {
    h = await startHarness();
    const foldersBefore = [...h.fake.files.values()].filter((f) => f.mimeType === 'application/vnd.google-apps.folder').length;
    const again = await GdriveBackend.create(h.options);
    expect([...h.fake.files.values()].filter((f) => f.mimeType === 'application/vnd.google-apps.folder').length).toBe(foldersBefore);

    // A second "repo1" created later (e.g. by another process at the same moment) is ignored.
    const parent = folderAt(h.fake, 'backup-manager').id;
    h.fake.createFileDirect({ name: 'repo1', parents: [parent], mimeType: 'application/vnd.google-apps.folder' });
    const data = bytes(10, 15);
    await again.save(handleFor('locks', data), data);
    const fresh = new GdriveBackend(h.options);
    expect(await collect(fresh.list('locks'))).toEqual([{ name: handleFor('locks', data).name, size: 10 }]);
  });

  it('opens a missing repository folder as empty, refuses to save into it, and validates its options', async () => {
    h = await startHarness();
    const missing = new GdriveBackend({ ...h.options, folder: 'no/such/repo' });
    for (const type of ['config', 'data'] as const) expect(await collect(missing.list(type))).toEqual([]);
    const handle = handleFor('data', bytes(10, 16));
    expect((await failure(missing.stat(handle))).code).toBe('NOT_FOUND');
    await missing.remove(handle);
    const save = await failure(missing.save(handle, bytes(10, 16)));
    expect(save.code).toBe('NOT_FOUND');
    expect(save.message).toContain('initialise the repository');
    expect([...h.fake.files.values()].some((f) => f.name === 'no')).toBe(false);

    expect(() => new GdriveBackend({ ...h!.options, uploadChunkBytes: 300 * KiB })).toThrow(/multiple of 256 KiB/);
    expect(() => new GdriveBackend({ ...h!.options, folder: 'a/../b' })).toThrow(/invalid Google Drive folder/);
    expect(() => new GdriveBackend({ ...h!.options, folder: '/' })).toThrow(/invalid Google Drive folder/);
  });

  it('finds a folder whose name needs quoting in a Drive query', async () => {
    h = await startHarness({ backend: { folder: "Bob's \\backups/repo 'one'" } });
    const data = bytes(10, 17);
    await h.backend.save(handleFor('index', data), data);
    const reopened = new GdriveBackend(h.options);
    expect(await collect(reopened.list('index'))).toHaveLength(1);
    expect(folderAt(h.fake, "Bob's \\backups/repo 'one'").name).toBe("repo 'one'");
  });
});

describe('pacing', () => {
  it('paces every request it sends, uploads and token refreshes aside', async () => {
    let acquired = 0;
    const pacer = new RequestPacer({ requestsPerSecond: 1000 });
    const counting = Object.assign(Object.create(pacer) as RequestPacer, {
      acquire: () => {
        acquired++;
        return pacer.acquire();
      },
    });
    h = await startHarness({ backend: { pacer: counting, uploadChunkBytes: 256 * KiB } });
    const backend: Backend = h.backend;
    const data = bytes(6 * MiB, 18);
    await backend.save(handleFor('data', data), data);
    await backend.load(handleFor('data', data), 10, 10);
    await collect(backend.list('data'));
    await backend.usage?.();
    expect(acquired).toBe(h.fake.log.filter((e) => e.path !== '/token').length);
  });
});
