// DropboxBackend against the local Dropbox fake, through the real SDK, under the faults Dropbox produces: lost
// connections inside an upload session, expired sessions, 429s with Retry-After, expired access tokens, a full
// account, multi-page listings; plus the repository layout, space usage and option checks.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { dropboxFakeFetch } from '@backup-manager/cloud-fakes';
import { BackupError, FileTokenStore, RetryBackend } from '@backup-manager/core-archive';
import type { FileInfo } from '@backup-manager/core-archive';
import { afterEach, describe, expect, it } from 'vitest';
import { DropboxBackend } from './dropbox-backend.ts';
import { apiArgOf, dataFile, MiB, openOnFake, ROOT, sameBytes, signIn } from '../test/support.ts';
import type { FakeSetup } from '../test/support.ts';

const APPEND = '/2/files/upload_session/append_v2';
const FINISH = '/2/files/upload_session/finish';
/** Dropbox's limit for one request body. */
const MAX_REQUEST_BYTES = 150 * MiB;

let open: FakeSetup[] = [];

async function setUp(...args: Parameters<typeof openOnFake>): Promise<FakeSetup> {
  const setup = await openOnFake(...args);
  open.push(setup);
  return setup;
}

afterEach(async () => {
  for (const { backend, fake } of open) {
    await backend.close();
    await fake.close();
  }
  open = [];
});

async function failure(call: Promise<unknown>): Promise<BackupError> {
  try {
    await call;
  } catch (e) {
    expect(e).toBeInstanceOf(BackupError);
    return e as BackupError;
  }
  throw new Error('expected the call to fail');
}

async function collect(listing: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of listing) out.push(info);
  return out;
}

function filePathOf(name: string): string {
  return `${ROOT}/data/${name.slice(0, 2)}/${name}`.toLowerCase();
}

/** Sleeps recorded instead of waited, for RetryBackend. */
function recordingSleep(): { sleeps: number[]; sleep: (ms: number) => Promise<void> } {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms) => void sleeps.push(ms) };
}

describe('layout', () => {
  it('creates the repository folders, keeps them when created again, and stores files at <root>/<handlePath>', async () => {
    const { fake, session, backend } = await setUp();
    for (const folder of ['keys', 'locks', 'snapshots', 'index', 'data']) {
      expect(fake.folders.has(`${ROOT}/${folder}`), folder).toBe(true);
    }
    await DropboxBackend.create({ root: `${ROOT}/`, session, fetch: dropboxFakeFetch(fake.url), requestsPerSecond: Infinity });
    expect(backend.location).toBe(`dropbox:${ROOT}`);

    const { h, data } = dataFile(1000, 1);
    await backend.save(h, data);
    await backend.save({ type: 'config', name: 'config' }, data);
    expect(fake.files.get(filePathOf(h.name))?.content.equals(data)).toBe(true);
    expect(fake.files.has(`${ROOT}/config`)).toBe(true);
    const upload = fake.log.filter((e) => e.path === '/2/files/upload').at(-1);
    expect(apiArgOf(upload!)).toMatchObject({ path: `${ROOT}/config`, mode: { '.tag': 'overwrite' }, autorename: false, mute: true });
  });

  it('refuses a repository folder where a file is, and unusable options', async () => {
    const { fake, session } = await setUp();
    fake.putFile('/occupied/keys', 'not a folder');
    const error = await failure(DropboxBackend.create({ root: '/occupied', session, fetch: dropboxFakeFetch(fake.url) }));
    expect(error.code).toBe('PERMISSION_DENIED');
    expect(error.message).toContain('/occupied/keys');

    for (const root of ['', '/', 'relative/path', '/a//b', '/a/../b', '/a/./b', '/ spaced']) {
      expect(() => new DropboxBackend({ root, session }), JSON.stringify(root)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    for (const sessionChunkBytes of [0, 1.5, 150 * MiB]) {
      expect(() => new DropboxBackend({ root: ROOT, session, sessionChunkBytes })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(() => new DropboxBackend({ root: ROOT, session, requestsPerSecond: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('upload sessions', () => {
  it.each([
    ['applied, then the connection dropped (reset-after)', 'reset-after', [200, 0, 409, 200]],
    ['dropped before it was applied (reset-before)', 'reset-before', [200, 0, 200, 200]],
  ] as const)('resumes a pack upload at the right offset when an append is %s', async (_what, kind, statuses) => {
    const { fake, backend } = await setUp();
    const { h, data } = dataFile(28 * MiB + 5, 2); // start 8 MiB, appends at 8, 16 (dropped), 24 MiB, finish
    fake.faults.add({ path: APPEND, nth: 2, action: { kind } });
    await backend.save(h, data);

    expect(sameBytes(await backend.load(h), data)).toBe(true);
    expect(fake.files.get(filePathOf(h.name))?.content.length).toBe(data.length);
    const uploads = fake.log.filter((e) => e.path.startsWith('/2/files/upload'));
    expect(uploads.map((e) => e.path.slice('/2/files/'.length))).toEqual([
      'upload_session/start', 'upload_session/append_v2', 'upload_session/append_v2', 'upload_session/append_v2',
      'upload_session/append_v2', 'upload_session/finish',
    ]);
    for (const e of uploads) expect(e.requestBytes).toBeLessThan(MAX_REQUEST_BYTES);
    expect(uploads[0]?.requestBytes).toBe(8 * MiB);
    const appends = uploads.filter((e) => e.path === APPEND);
    // The dropped append is sent again at the same offset: Dropbox takes it, or says it already has it (409
    // incorrect_offset, correct_offset 24 MiB), and the upload goes on from there without asking anything else.
    expect(appends.map((e) => (apiArgOf(e)['cursor'] as { offset: number }).offset)).toEqual([8 * MiB, 16 * MiB, 16 * MiB, 24 * MiB]);
    expect(appends.map((e) => e.status)).toEqual(statuses);
    expect(appends.map((e) => e.requestBytes)).toEqual([8 * MiB, 8 * MiB, 8 * MiB, 4 * MiB + 5]);
    const finish = apiArgOf(uploads.at(-1)!);
    expect(finish).toMatchObject({ cursor: { offset: data.length }, commit: { path: `${ROOT}/data/${h.name.slice(0, 2)}/${h.name}`, mode: { '.tag': 'overwrite' } } });
    expect(uploads.at(-1)?.requestBytes).toBe(0);
  });

  it('continues from correct_offset when Dropbox has more than was acknowledged (two lost answers in a row)', async () => {
    const { fake, backend } = await setUp({ sessionChunkBytes: MiB });
    const { h, data } = dataFile(4 * MiB + 100, 3);
    fake.faults.add({ path: APPEND, nth: 1, times: 2, action: { kind: 'reset-after' } });
    await backend.save(h, data);
    const appends = fake.log.filter((e) => e.path === APPEND);
    expect(appends.map((e) => [(apiArgOf(e)['cursor'] as { offset: number }).offset / MiB, e.status])).toEqual([
      [1, 0], [1, 0], [1, 409], [2, 200], [3, 200], [4, 200],
    ]);
    expect(sameBytes(await backend.load(h), data)).toBe(true);
  });

  it('gives up as UNAVAILABLE after a bounded number of resumes, leaving no file', async () => {
    const { fake, backend } = await setUp({ sessionChunkBytes: MiB });
    const { h, data } = dataFile(3 * MiB, 4);
    fake.faults.add({ path: APPEND, times: Infinity, action: { kind: 'reset-before' } });
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('UNAVAILABLE');
    expect(fake.log.filter((e) => e.path === APPEND).length).toBeLessThanOrEqual(8);
    expect(fake.log.entries.some((e) => e.path === FINISH)).toBe(false);
    expect((await failure(backend.stat(h))).code).toBe('NOT_FOUND');
  });

  it('reports an expired session as UNAVAILABLE, so RetryBackend starts the save over in a new session', async () => {
    const { fake, backend } = await setUp({ sessionChunkBytes: MiB });
    const { h, data } = dataFile(3 * MiB + 1, 5);
    fake.faults.add({ path: APPEND, nth: 1, action: { kind: 'expire-upload-session' } });
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(await collect(backend.list('data'))).toEqual([]);

    fake.faults.add({ path: APPEND, nth: 1, action: { kind: 'expire-upload-session' } });
    const { sleeps, sleep } = recordingSleep();
    await new RetryBackend(backend, { sleep }).save(h, data);
    expect(sleeps).toHaveLength(1);
    expect(sameBytes(await backend.load(h), data)).toBe(true);
    // The failed plain save, the failed first attempt, the successful retry.
    expect(fake.log.filter((e) => e.path === '/2/files/upload_session/start')).toHaveLength(3);
  });
});

describe('rate limiting', () => {
  it('surfaces a 429 as RATE_LIMITED with Retry-After, which RetryBackend waits out', async () => {
    const { fake, backend } = await setUp();
    const { h, data } = dataFile(5000, 6);
    fake.rateLimit({ path: '/2/files/upload', retryAfterSeconds: 7 });
    const error = await failure(backend.save(h, data));
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 7000, retryable: true });
    expect(error.message).toContain('slow down');

    fake.rateLimit({ path: '/2/files/upload', reason: 'too_many_write_operations', retryAfterSeconds: 3, times: 2 });
    const { sleeps, sleep } = recordingSleep();
    await new RetryBackend(backend, { sleep, random: () => 0 }).save(h, data);
    expect(sleeps).toEqual([3000, 3000]);
    expect(sameBytes(await backend.load(h), data)).toBe(true);
  });

  it('takes Retry-After from an injected 429 on a listing, and 5xx as UNAVAILABLE', async () => {
    const { fake, backend } = await setUp();
    fake.faults.add({ path: '/2/files/list_folder', action: { kind: 'status', status: 429, retryAfterSeconds: 2 } });
    expect(await failure(collect(backend.list('keys')))).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 2000 });
    fake.faults.add({ path: '/2/files/get_metadata', action: { kind: 'status', status: 503 } });
    expect(await failure(backend.stat({ type: 'config', name: 'config' }))).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
  });
});

describe('OAuth', () => {
  let tempDir: string | undefined;
  afterEach(async () => {
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
    tempDir = undefined;
  });

  it('refreshes an expired access token once, persists it, and repeats only the rejected request', async () => {
    const { fake } = await setUp();
    tempDir = await mkdtemp(path.join(tmpdir(), 'bam-dropbox-token-'));
    const store = new FileTokenStore(path.join(tempDir, 'dropbox-token.json'));
    const session = await signIn(fake, store);
    const before = (await store.read())?.accessToken;
    const backend = new DropboxBackend({ root: ROOT, session, fetch: dropboxFakeFetch(fake.url), requestsPerSecond: Infinity });
    const { h, data } = dataFile(2000, 7);
    await backend.save(h, data);

    fake.log.clear();
    fake.faults.add({ path: '/2/files/download', action: { kind: 'expire-token' } });
    expect(sameBytes(await backend.load(h), data)).toBe(true);
    expect(fake.log.entries.map((e) => [e.path, e.status])).toEqual([
      ['/2/files/download', 401],
      ['/oauth2/token', 200],
      ['/2/files/download', 200],
    ]);
    const after = await store.read();
    expect(after?.accessToken).toBe(fake.tokens.issued.at(-1));
    expect(after?.accessToken).not.toBe(before);
    expect(JSON.parse(await readFile(store.path, 'utf8'))).toMatchObject({ accessToken: after?.accessToken });
    // Later calls use the refreshed token without another refresh.
    await backend.stat(h);
    expect(fake.log.filter((e) => e.path === '/oauth2/token')).toHaveLength(1);
  });

  it('is UNAUTHORIZED, with what to run, when Dropbox rejects the refreshed token too', async () => {
    const { fake, backend } = await setUp();
    fake.faults.add({ path: '/2/files/get_metadata', times: 2, action: { kind: 'expire-token' } });
    const error = await failure(backend.stat({ type: 'config', name: 'config' }));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('run `bam auth dropbox` again');
    expect(fake.log.filter((e) => e.path === '/oauth2/token')).toHaveLength(1);
    expect(fake.log.filter((e) => e.path === '/2/files/get_metadata')).toHaveLength(2);
  });
});

describe('full account', () => {
  it('fails a small save with QUOTA_EXCEEDED naming the account, and leaves no file', async () => {
    const { fake, backend } = await setUp();
    fake.setQuota(fake.usedBytes() + 1000);
    const { h, data } = dataFile(1001, 8);
    const { sleeps, sleep } = recordingSleep();
    const error = await failure(new RetryBackend(backend, { sleep }).save(h, data));
    expect(error).toMatchObject({ code: 'QUOTA_EXCEEDED', retryable: false });
    expect(error.message).toContain('the Dropbox account of backup.tester@example.com is full');
    expect(sleeps).toEqual([]);
    expect(fake.files.has(filePathOf(h.name))).toBe(false);
    expect((await failure(backend.stat(h))).code).toBe('NOT_FOUND');
    expect(await collect(backend.list('data'))).toEqual([]);
  });

  it('fails a session save at finish with QUOTA_EXCEEDED and leaves no partial file', async () => {
    const { fake, backend } = await setUp({ sessionChunkBytes: MiB });
    fake.setQuota(2 * MiB);
    const { h, data } = dataFile(3 * MiB, 9);
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(fake.log.filter((e) => e.path === FINISH).map((e) => e.status)).toEqual([409]);
    expect(fake.files.has(filePathOf(h.name))).toBe(false);
    expect(await collect(backend.list('data'))).toEqual([]);
  });

  it('says "the Dropbox account" when the account cannot be looked up', async () => {
    const { fake, backend } = await setUp();
    fake.faults.add({ path: '/2/files/upload', action: { kind: 'quota-full' } });
    fake.faults.add({ path: '/2/users/get_current_account', action: { kind: 'status', status: 500 } });
    const { h, data } = dataFile(10, 10);
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.message).toContain('the Dropbox account is full');
  });
});

describe('listing', () => {
  it('pages through list_folder/continue, yields each repository file once and nothing else', async () => {
    const { fake, backend } = await setUp({}, { listLimit: 3 });
    const saved = Array.from({ length: 14 }, (_, i) => dataFile(10 + i, 100 + i));
    for (const { h, data } of saved) await backend.save(h, data);
    const keys = Array.from({ length: 5 }, (_, i) => dataFile(20 + i, 200 + i));
    for (const { h, data } of keys) await backend.save({ type: 'keys', name: h.name }, data);
    // Things a repository folder may hold that are not repository files.
    const stray = dataFile(5, 300).h.name;
    const otherPrefix = stray.startsWith('00') ? 'ff' : '00';
    fake.putFile(`${ROOT}/data/${stray.slice(0, 2)}/notes.txt`, 'x');
    fake.putFile(`${ROOT}/data/${stray}`, 'not in a fan-out folder');
    fake.putFile(`${ROOT}/data/${otherPrefix}/${stray}`, 'wrong fan-out folder');
    fake.putFile(`${ROOT}/data/${stray.slice(0, 2)}/deeper/${stray}`, 'too deep');
    fake.putFile(`${ROOT}/data/${stray.slice(0, 2)}/${stray.toUpperCase()}`, 'upper case');
    fake.putFile(`${ROOT}/keys/${stray}.tmp`, 'temporary');

    fake.log.clear();
    const data = await collect(backend.list('data'));
    expect(new Set(data.map((f) => f.name)).size).toBe(data.length);
    expect(new Map(data.map((f) => [f.name, f.size]))).toEqual(new Map(saved.map(({ h, data: d }) => [h.name, d.length])));
    expect(fake.log.filter((e) => e.path === '/2/files/list_folder/continue').length).toBeGreaterThanOrEqual(5);
    const listedKeys = await collect(backend.list('keys'));
    expect(listedKeys.map((f) => f.name).sort()).toEqual(keys.map((k) => k.h.name).sort());
  });

  it('starts over, through RetryBackend, when Dropbox resets the listing cursor midway', async () => {
    const { fake, backend } = await setUp({}, { listLimit: 2 });
    const saved = Array.from({ length: 7 }, (_, i) => dataFile(10, 400 + i));
    for (const { h, data } of saved) await backend.save({ type: 'index', name: h.name }, data);
    const { sleep } = recordingSleep();
    const names: string[] = [];
    for await (const info of new RetryBackend(backend, { sleep }).list('index')) {
      if (names.length === 3) fake.resetCursors();
      names.push(info.name);
    }
    expect(names.sort()).toEqual(saved.map((s) => s.h.name).sort());
  });

  it('lists nothing for a type whose folder is missing', async () => {
    const { fake, session } = await setUp();
    const bare = new DropboxBackend({ root: '/never-created', session, fetch: dropboxFakeFetch(fake.url) });
    expect(await collect(bare.list('snapshots'))).toEqual([]);
    expect(await collect(bare.list('data'))).toEqual([]);
    expect(await collect(bare.list('config'))).toEqual([]);
  });
});

describe('usage', () => {
  it('reports used bytes and the individual allocation, with no trash', async () => {
    const { fake, backend } = await setUp({}, { quotaBytes: 64 * MiB });
    const { h, data } = dataFile(300_000, 11);
    await backend.save(h, data);
    expect(await backend.usage()).toEqual({ usedBytes: fake.usedBytes(), totalBytes: 64 * MiB, trashBytes: 0 });
    expect(fake.usedBytes()).toBe(300_000);
    await backend.remove(h);
    expect(await backend.usage()).toEqual({ usedBytes: 0, totalBytes: 64 * MiB, trashBytes: 0 });
  });

  it.each([
    ['a team pool without a member limit', { '.tag': 'off' }, 0, { usedBytes: 900, totalBytes: 5000, trashBytes: 0 }],
    ['a member limit within the team', { '.tag': 'stop_sync' }, 2000, { usedBytes: 120, totalBytes: 2000, trashBytes: 0 }],
  ] as const)('reports %s', async (_what, limitType, memberLimit, expected) => {
    const { fake, session } = await setUp();
    const base = dropboxFakeFetch(fake.url);
    const team = {
      used: 120,
      allocation: { '.tag': 'team', used: 900, allocated: 5000, user_within_team_space_allocated: memberLimit, user_within_team_space_limit_type: limitType, user_within_team_space_used_cached: 120 },
    };
    const teamFetch = async (url: string, init?: RequestInit): Promise<Response> =>
      url.endsWith('/2/users/get_space_usage') ? Response.json(team) : base(url, init);
    const backend = new DropboxBackend({ root: ROOT, session, fetch: teamFetch });
    expect(await backend.usage()).toEqual(expected);
  });
});

describe('pacing', () => {
  it('spaces requests at requestsPerSecond', async () => {
    const { fake, session } = await setUp();
    const backend = new DropboxBackend({ root: ROOT, session, fetch: dropboxFakeFetch(fake.url), requestsPerSecond: 40 });
    const started = performance.now();
    // The pacer lets one second's worth (40) start at once, then spaces the rest 25 ms apart: 49 requests take
    // at least 9 × 25 ms.
    await Promise.all(Array.from({ length: 49 }, () => backend.stat({ type: 'config', name: 'config' }).catch(() => undefined)));
    expect(performance.now() - started).toBeGreaterThanOrEqual(220);
  });
});

describe('after close', () => {
  it('refuses further use', async () => {
    const { backend } = await setUp();
    await backend.close();
    expect((await failure(backend.stat({ type: 'config', name: 'config' }))).code).toBe('INTERNAL');
  });
});
