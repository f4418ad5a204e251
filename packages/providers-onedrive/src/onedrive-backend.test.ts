// OnedriveBackend against the local OneDrive fake, through the real Microsoft Graph client, under the faults OneDrive
// produces: connections lost inside an upload session, expired sessions, 429s with Retry-After, expired access
// tokens, a full drive, multi-page listings; plus the repository layout, atomic saves, the recycle bin, quota and
// option checks.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loopbackFetch } from '@backup-manager/cloud-fakes';
import { FileTokenStore, RetryBackend } from '@backup-manager/core-archive';
import { afterEach, describe, expect, it } from 'vitest';
import { OnedriveBackend } from './onedrive-backend.ts';
import { RequestPacer } from '@backup-manager/core-archive';
import {
  FRAGMENT_UNIT, MiB, ROOT, UPLOAD_URL_PATH, collect, dataFile, drivePathOf, failure, graphOnFake, makeFolder,
  openOnFake, putFile, recordingSleep, sameBytes, signIn, spyingFetch,
} from '../test/support.ts';
import type { FakeSetup } from '../test/support.ts';

/** Graph's limit for one fragment request. */
const MAX_FRAGMENT_BYTES = 60 * MiB;
const SIMPLE_UPLOAD = /:\/content$/;
const CREATE_SESSION = /:\/createUploadSession$/;
const CHILDREN = /:\/children$/;
const TOKEN_ENDPOINT = '/consumers/oauth2/v2.0/token';

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

/** A pacer that records the waits it would make instead of waiting, on a clock that stands still. */
function recordingPacer(): { pacer: RequestPacer; waits: number[] } {
  const { sleeps, sleep } = recordingSleep();
  return { pacer: new RequestPacer({ requestsPerSecond: Number.POSITIVE_INFINITY, now: () => 0, sleep }), waits: sleeps };
}

describe('layout', () => {
  it('creates the repository folders, keeps them when created again, and stores files at <root>/<handlePath>', async () => {
    const { fake, backend, options } = await setUp();
    for (const folder of ['keys', 'locks', 'snapshots', 'index', 'data']) {
      expect(fake.item(`/${ROOT}/${folder}`)?.folder, folder).toBeDefined();
    }
    await OnedriveBackend.create({ ...options, root: `/${ROOT}/` });
    expect(fake.items().filter((item) => item.folder !== undefined)).toHaveLength(7);
    expect(backend.location).toBe(`onedrive:${ROOT}`);

    const { h, data } = dataFile(1000, 1);
    await backend.save(h, data);
    await backend.save({ type: 'config', name: 'config' }, data);
    expect(fake.item(drivePathOf(h))?.content.equals(data)).toBe(true);
    expect(fake.item(`/${ROOT}/config`)?.content.equals(data)).toBe(true);
    // The fan-out folder data/ab was made on first use: the upload found it missing, the folder was created, the
    // upload repeated.
    const puts = fake.log.filter((e) => e.method === 'PUT' && SIMPLE_UPLOAD.test(e.path));
    expect(puts.map((e) => e.status)).toEqual([404, 201, 201]);
    expect(puts[1]?.query).toMatchObject({ '@microsoft.graph.conflictBehavior': 'replace' });
    expect(puts[1]?.headers['content-type']).toBe('application/octet-stream');
    expect(fake.item(`/${ROOT}/data/${h.name.slice(0, 2)}`)?.folder).toBeDefined();
  });

  it('refuses a repository folder where a file is in the way, and unusable options', async () => {
    const setup = await setUp();
    const client = await graphOnFake(setup);
    await putFile(client, 'occupied', 'not a folder');
    const error = await failure(OnedriveBackend.create({ ...setup.options, root: 'occupied/repo' }));
    expect(error.code).toBe('PERMISSION_DENIED');
    expect(error.message).toContain('occupied');
    await putFile(client, `${ROOT}/keys-file`, 'x');
    const blocked = await failure(OnedriveBackend.create({ ...setup.options, root: `${ROOT}/keys-file` }));
    expect(blocked.code).toBe('PERMISSION_DENIED');

    const { session } = setup;
    const invalid = (extra: Record<string, unknown>) => () => new OnedriveBackend({ root: ROOT, session, ...extra });
    for (const fragmentBytes of [0, 1000, FRAGMENT_UNIT + 1, 192 * FRAGMENT_UNIT, 1.5]) {
      expect(invalid({ fragmentBytes }), `fragmentBytes ${fragmentBytes}`).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(() => new OnedriveBackend({ root: ROOT, session, fragmentBytes: 191 * FRAGMENT_UNIT })).not.toThrow();
    for (const simpleUploadMaxBytes of [-1, 4 * MiB + 1, 0.5]) {
      expect(invalid({ simpleUploadMaxBytes }), `simpleUploadMaxBytes ${simpleUploadMaxBytes}`).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    for (const listPageSize of [0, 1001]) {
      expect(invalid({ listPageSize })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(invalid({ requestsPerSecond: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    for (const graphBaseUrl of ['http://graph.microsoft.com/', 'https://graph.microsoft.com/v1.0', 'not a url']) {
      expect(invalid({ graphBaseUrl }), graphBaseUrl).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(invalid({ root: 'bad:name' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('upload sessions', () => {
  it.each([
    ['applied, then the connection dropped (reset-after)', 'reset-after', ['PUT 202', 'PUT 0', 'GET 200', 'PUT 201'], [10, 10, 5]],
    ['dropped before it was applied (reset-before)', 'reset-before', ['PUT 202', 'PUT 0', 'GET 200', 'PUT 202', 'PUT 201'], [10, 10, 10, 5]],
  ] as const)('resumes a pack upload where the session says when a fragment is %s', async (_what, kind, sequence, fragmentsMiB) => {
    const { fake, backend } = await setUp();
    const { h, data } = dataFile(25 * MiB + 5, 2); // 10 MiB fragments: 0–10, 10–20 (dropped), 20–25 MiB + 5
    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 2, action: { kind } });
    await backend.save(h, data);

    expect(sameBytes(await backend.load(h), data)).toBe(true);
    expect(fake.item(drivePathOf(h))?.size).toBe(data.length);
    const session = fake.log.filter((e) => UPLOAD_URL_PATH.test(e.path));
    expect(session.map((e) => `${e.method} ${e.status}`)).toEqual(sequence);
    const fragments = session.filter((e) => e.method === 'PUT');
    expect(fragments.map((e) => Math.floor(e.requestBytes / MiB))).toEqual(fragmentsMiB);
    for (const fragment of fragments.slice(0, -1)) expect(fragment.requestBytes % FRAGMENT_UNIT).toBe(0);
    for (const fragment of fragments) expect(fragment.requestBytes).toBeLessThan(MAX_FRAGMENT_BYTES);
    expect(fragments.at(-1)?.requestBytes).toBe(5 * MiB + 5);
    expect(fragments.map((e) => e.headers['content-range'])).toEqual(
      kind === 'reset-after'
        ? [`bytes 0-${10 * MiB - 1}/${data.length}`, `bytes ${10 * MiB}-${20 * MiB - 1}/${data.length}`, `bytes ${20 * MiB}-${data.length - 1}/${data.length}`]
        : [`bytes 0-${10 * MiB - 1}/${data.length}`, `bytes ${10 * MiB}-${20 * MiB - 1}/${data.length}`, `bytes ${10 * MiB}-${20 * MiB - 1}/${data.length}`, `bytes ${20 * MiB}-${data.length - 1}/${data.length}`],
    );
    // Upload URLs are pre-authenticated: the token goes to Graph only.
    for (const e of session) expect(e.headers['authorization']).toBeUndefined();
    // The first createUploadSession found the fan-out folder missing; the folder was made and the session opened.
    const creates = fake.log.filter((e) => CREATE_SESSION.test(e.path));
    expect(creates.map((e) => [e.status, e.headers['authorization']])).toEqual([[404, 'Bearer [redacted]'], [200, 'Bearer [redacted]']]);
    expect(fake.openUploadSessions()).toBe(0);
  });

  it('declares the size and replace behaviour when it opens a session, and sends fragments of fragmentBytes', async () => {
    const setup = await setUp();
    const spy = spyingFetch(setup.fake);
    const backend = new OnedriveBackend({ ...setup.options, fetchOverride: spy.fetch, fragmentBytes: 3 * FRAGMENT_UNIT, simpleUploadMaxBytes: MiB });
    const { h, data } = dataFile(MiB + 1, 3);
    await backend.save(h, data);
    const create = spy.seen.find((r) => CREATE_SESSION.test(new URL(r.url).pathname));
    expect(create?.json).toEqual({ item: { '@microsoft.graph.conflictBehavior': 'replace', name: h.name, fileSize: MiB + 1 } });
    const sizes = setup.fake.log.filter((e) => e.method === 'PUT' && UPLOAD_URL_PATH.test(e.path)).map((e) => e.requestBytes);
    expect(sizes).toEqual([3 * FRAGMENT_UNIT, MiB + 1 - 3 * FRAGMENT_UNIT]);
    // At the threshold itself a file still goes in one simple upload.
    const atLimit = dataFile(MiB, 4);
    setup.fake.log.clear();
    await backend.save(atLimit.h, atLimit.data);
    expect(setup.fake.log.entries.some((e) => CREATE_SESSION.test(e.path))).toBe(false);
  });

  /** A fetch on the fake that replaces the nextExpectedRanges of the first 202 fragment answer. */
  function rewritingFirstAnswer(setup: FakeSetup, nextExpectedRanges: string[]): typeof fetch {
    const base = loopbackFetch(setup.fake.url);
    let rewritten = false;
    return (async (input: string | URL | Request, init?: RequestInit) => {
      const response = await base(input, init);
      if (rewritten || response.status !== 202) return response;
      rewritten = true;
      const status = (await response.json()) as Record<string, unknown>;
      return Response.json({ ...status, nextExpectedRanges }, { status: 202 });
    }) as typeof fetch;
  }

  it('goes on where nextExpectedRanges says, and finds its place again from the session status after a 416', async () => {
    const setup = await setUp();
    // OneDrive claims, once, to have kept nothing of the first fragment: the resend overlaps (416), the session's
    // status tells the truth, and the upload goes on from there.
    const backend = new OnedriveBackend({ ...setup.options, fetchOverride: rewritingFirstAnswer(setup, ['0-']), fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const { h, data } = dataFile(3 * FRAGMENT_UNIT - 5, 19);
    await backend.save(h, data);
    expect(setup.fake.log.filter((e) => UPLOAD_URL_PATH.test(e.path)).map((e) => `${e.method} ${e.status} ${e.headers['content-range'] ?? ''}`)).toEqual([
      `PUT 202 bytes 0-${FRAGMENT_UNIT - 1}/${data.length}`,
      `PUT 416 bytes 0-${FRAGMENT_UNIT - 1}/${data.length}`,
      'GET 200 ',
      `PUT 202 bytes ${FRAGMENT_UNIT}-${2 * FRAGMENT_UNIT - 1}/${data.length}`,
      `PUT 201 bytes ${2 * FRAGMENT_UNIT}-${data.length - 1}/${data.length}`,
    ]);
    expect(setup.fake.item(drivePathOf(h))?.content.equals(data)).toBe(true);
  });

  it('gives up as UNAVAILABLE when the session claims bytes that were never sent', async () => {
    const setup = await setUp();
    const { h, data } = dataFile(3 * FRAGMENT_UNIT, 20);
    const backend = new OnedriveBackend({ ...setup.options, fetchOverride: rewritingFirstAnswer(setup, [`${2 * FRAGMENT_UNIT}-`]), fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const error = await failure(backend.save(h, data));
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(error.message).toContain('never sent');
    expect(setup.fake.openUploadSessions()).toBe(0);
    expect(setup.fake.item(drivePathOf(h))).toBeUndefined();
  });

  it('finishes when the answer to the last fragment is lost but the session committed the file', async () => {
    const { fake, backend } = await setUp({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const { h, data } = dataFile(2 * FRAGMENT_UNIT + 10, 5);
    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 3, action: { kind: 'reset-after' } });
    await backend.save(h, data);
    expect(fake.log.filter((e) => UPLOAD_URL_PATH.test(e.path)).map((e) => `${e.method} ${e.status}`)).toEqual([
      'PUT 202', 'PUT 202', 'PUT 0', 'GET 404',
    ]);
    expect(fake.log.entries.at(-1)).toMatchObject({ method: 'GET', status: 200 }); // the file, looked up by path
    expect(sameBytes(await backend.load(h), data)).toBe(true);
  });

  it('gives up as UNAVAILABLE after a bounded number of resumes, leaving no file and no session', async () => {
    const { fake, backend } = await setUp({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const { h, data } = dataFile(3 * FRAGMENT_UNIT, 6);
    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, times: Infinity, action: { kind: 'reset-before' } });
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain(h.name);
    expect(fake.log.filter((e) => e.method === 'PUT' && UPLOAD_URL_PATH.test(e.path)).length).toBeLessThanOrEqual(6);
    expect((await failure(backend.stat(h))).code).toBe('NOT_FOUND');
    expect(fake.log.filter((e) => e.method === 'DELETE' && UPLOAD_URL_PATH.test(e.path)).map((e) => e.status)).toEqual([204]);
    expect(fake.openUploadSessions()).toBe(0);
  });

  it('reports an expired session as UNAVAILABLE, so RetryBackend starts the save over in a new session', async () => {
    const { fake, backend } = await setUp({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const { h, data } = dataFile(3 * FRAGMENT_UNIT + 1, 7);
    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 2, action: { kind: 'expire-upload-session' } });
    const error = await failure(backend.save(h, data));
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(error.message).toContain('upload session');
    expect(await collect(backend.list('data'))).toEqual([]);

    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 3, action: { kind: 'expire-upload-session' } });
    const { sleeps, sleep } = recordingSleep();
    await new RetryBackend(backend, { sleep }).save(h, data);
    expect(sleeps).toHaveLength(1);
    expect(sameBytes(await backend.load(h), data)).toBe(true);
    // The failed plain save, the failed first attempt, the successful retry.
    expect(fake.log.filter((e) => CREATE_SESSION.test(e.path) && e.status === 200)).toHaveLength(3);
  });

  it('is atomic: the file is invisible while its session runs, and a save that fails midway leaves nothing', async () => {
    const setup = await setUp();
    const { h, data } = dataFile(4 * FRAGMENT_UNIT + 3, 8);
    const visibleBeforeFragment: boolean[] = [];
    const spy = spyingFetch(setup.fake, (request) => {
      if (request.method === 'PUT' && UPLOAD_URL_PATH.test(new URL(request.url).pathname)) {
        visibleBeforeFragment.push(setup.fake.item(drivePathOf(h)) !== undefined);
      }
    });
    const backend = new OnedriveBackend({ ...setup.options, fetchOverride: spy.fetch, fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });

    setup.fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 3, action: { kind: 'status', status: 503 } });
    expect((await failure(backend.save(h, data))).code).toBe('UNAVAILABLE');
    expect(setup.fake.log.filter((e) => e.method === 'PUT' && UPLOAD_URL_PATH.test(e.path)).map((e) => e.status)).toEqual([202, 202, 503]);
    expect(setup.fake.item(drivePathOf(h))).toBeUndefined();
    expect(setup.fake.items().filter((item) => item.file !== undefined)).toEqual([]);
    expect(await collect(backend.list('data'))).toEqual([]);
    expect(setup.fake.openUploadSessions()).toBe(0);

    await backend.save(h, data);
    expect(visibleBeforeFragment).toEqual([false, false, false, false, false, false, false, false]);
    expect(setup.fake.item(drivePathOf(h))?.content.equals(data)).toBe(true);
  });
});

describe('rate limiting', () => {
  it('surfaces a 429 as RATE_LIMITED with Retry-After, which RetryBackend waits out', async () => {
    const { pacer, waits } = recordingPacer();
    const { fake, backend } = await setUp({ pacer });
    const { h, data } = dataFile(5000, 9);
    await backend.save({ type: 'keys', name: h.name }, data);
    fake.faults.add({ method: 'PUT', path: SIMPLE_UPLOAD, action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const error = await failure(backend.save({ type: 'keys', name: h.name }, data));
    expect(error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 7000, retryable: true });
    expect(error.message).toContain('slow down');
    // The pacer holds this account's next request until the Retry-After has passed.
    await backend.stat({ type: 'keys', name: h.name });
    expect(waits).toEqual([7000]);

    fake.faults.add({ method: 'PUT', path: SIMPLE_UPLOAD, times: 2, action: { kind: 'status', status: 429, retryAfterSeconds: 3 } });
    const { sleeps, sleep } = recordingSleep();
    await new RetryBackend(backend, { sleep, random: () => 0 }).save(h, data);
    expect(sleeps).toEqual([3000, 3000]);
    expect(sameBytes(await backend.load(h), data)).toBe(true);
  });

  it('takes Retry-After from a throttled listing page, and 5xx as UNAVAILABLE', async () => {
    const { pacer } = recordingPacer();
    const { fake, backend } = await setUp({ pacer });
    fake.faults.add({ method: 'GET', path: CHILDREN, action: { kind: 'status', status: 429, retryAfterSeconds: 2 } });
    expect(await failure(collect(backend.list('keys')))).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 2000 });
    fake.faults.add({ method: 'GET', path: /config:$/, action: { kind: 'status', status: 503, retryAfterSeconds: 1 } });
    expect(await failure(backend.stat({ type: 'config', name: 'config' }))).toMatchObject({ code: 'UNAVAILABLE', retryable: true, retryAfterMs: 1000 });
    fake.faults.add({ method: 'GET', path: /^\/dl\//, action: { kind: 'reset-before' } });
    await backend.save({ type: 'config', name: 'config' }, new Uint8Array([1, 2, 3]));
    expect(await failure(backend.load({ type: 'config', name: 'config' }))).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
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
    tempDir = await mkdtemp(path.join(tmpdir(), 'bam-onedrive-token-'));
    const store = new FileTokenStore(path.join(tempDir, 'onedrive-token.json'));
    const session = await signIn(fake, store);
    const before = (await store.read())?.accessToken;
    const backend = new OnedriveBackend({ root: ROOT, session, fetchOverride: loopbackFetch(fake.url), requestsPerSecond: Infinity });
    const { h, data } = dataFile(2000, 10);
    await backend.save(h, data);

    fake.log.clear();
    fake.faults.add({ method: 'GET', path: /:\/content$/, action: { kind: 'expire-token' } });
    expect(sameBytes(await backend.load(h), data)).toBe(true);
    expect(fake.log.entries.map((e) => [e.method, e.path.replace(/^\/dl\/.*/, '/dl/…').replace(/root:.*:/, 'root:…:'), e.status])).toEqual([
      ['GET', '/v1.0/me/drive/root:…:/content', 401],
      ['POST', TOKEN_ENDPOINT, 200],
      ['GET', '/v1.0/me/drive/root:…:/content', 302],
      ['GET', '/dl/…', 200],
    ]);
    const after = await store.read();
    expect(after?.accessToken).toBe(fake.tokens.issued.at(-1));
    expect(after?.accessToken).not.toBe(before);
    expect(JSON.parse(await readFile(store.path, 'utf8'))).toMatchObject({ accessToken: after?.accessToken });
    // Later calls use the refreshed token without another refresh.
    await backend.stat(h);
    expect(fake.log.filter((e) => e.path === TOKEN_ENDPOINT)).toHaveLength(1);
  });

  it('is UNAUTHORIZED, with what to run, when Graph rejects the refreshed token too', async () => {
    const { fake, backend } = await setUp();
    fake.faults.add({ method: 'GET', path: /config:$/, times: 2, action: { kind: 'expire-token' } });
    const error = await failure(backend.stat({ type: 'config', name: 'config' }));
    expect(error).toMatchObject({ code: 'UNAUTHORIZED', retryable: false });
    expect(error.message).toContain('run `bam auth onedrive` again');
    expect(fake.log.filter((e) => e.path === TOKEN_ENDPOINT)).toHaveLength(1);
    expect(fake.log.filter((e) => /config:$/.test(e.path))).toHaveLength(2);
  });
});

describe('full drive', () => {
  it('fails a small save with QUOTA_EXCEEDED naming the account, without retrying, and leaves no file', async () => {
    const { fake, backend } = await setUp();
    fake.setQuota(fake.quota().used + 1000);
    const { h, data } = dataFile(1001, 11);
    const { sleeps, sleep } = recordingSleep();
    const error = await failure(new RetryBackend(backend, { sleep }).save(h, data));
    expect(error).toMatchObject({ code: 'QUOTA_EXCEEDED', retryable: false });
    expect(error.message).toContain('the OneDrive of Fake OneDrive User is full');
    expect(error.message).toContain('recycle bin');
    expect(sleeps).toEqual([]);
    expect(fake.item(drivePathOf(h))).toBeUndefined();
    expect((await failure(backend.stat(h))).code).toBe('NOT_FOUND');
    expect(await collect(backend.list('data'))).toEqual([]);
  });

  it('refuses a session save when the session is opened, before any byte is sent', async () => {
    const { fake, backend } = await setUp({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    fake.setQuota(2 * MiB);
    const { h, data } = dataFile(3 * MiB, 12);
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(fake.log.filter((e) => CREATE_SESSION.test(e.path)).map((e) => e.status).at(-1)).toBe(507);
    expect(fake.log.entries.some((e) => UPLOAD_URL_PATH.test(e.path))).toBe(false);
    expect(fake.openUploadSessions()).toBe(0);
  });

  it('fails a session save at its last fragment with QUOTA_EXCEEDED and leaves no partial file', async () => {
    const { fake, backend } = await setUp({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0 });
    const { h, data } = dataFile(3 * FRAGMENT_UNIT - 1, 13);
    fake.faults.add({ method: 'PUT', path: UPLOAD_URL_PATH, nth: 3, action: { kind: 'quota-full' } });
    const error = await failure(backend.save(h, data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.message).toContain('Fake OneDrive User');
    expect(fake.log.filter((e) => e.method === 'PUT' && UPLOAD_URL_PATH.test(e.path)).map((e) => e.status)).toEqual([202, 202, 507]);
    expect(fake.item(drivePathOf(h))).toBeUndefined();
    expect(await collect(backend.list('data'))).toEqual([]);
    expect(fake.openUploadSessions()).toBe(0);
  });

  it('says "the OneDrive" when the owner cannot be looked up', async () => {
    const { fake, backend } = await setUp();
    fake.faults.add({ method: 'PUT', path: SIMPLE_UPLOAD, action: { kind: 'quota-full' } });
    fake.faults.add({ method: 'GET', path: '/v1.0/me/drive', action: { kind: 'status', status: 503 } });
    const { h, data } = dataFile(10, 14);
    const error = await failure(backend.save({ type: 'keys', name: h.name }, data));
    expect(error.code).toBe('QUOTA_EXCEEDED');
    expect(error.message).toContain('the OneDrive is full');
  });
});

describe('listing', () => {
  it('pages through every folder and yields each repository file once, ignoring anything else', async () => {
    const setup = await setUp({ listPageSize: 3 }, { pageSize: 3 });
    const { fake, backend } = setup;
    const saved = Array.from({ length: 14 }, (_, i) => dataFile(100 + i, 300 + i));
    for (const { h, data } of saved) await backend.save(h, data);
    const keys = Array.from({ length: 7 }, (_, i) => dataFile(10, 400 + i));
    for (const { h, data } of keys) await backend.save({ type: 'keys', name: h.name }, data);

    // Foreign things in the repository folders are not repository files.
    const client = await graphOnFake(setup);
    const stray = saved[0]!.h.name;
    const otherPrefix = stray.startsWith('00') ? 'ff' : '00';
    await putFile(client, `${ROOT}/data/${stray.slice(0, 2)}/notes.txt`, 'x');
    await putFile(client, `${ROOT}/data/${stray}`, 'not in a fan-out folder');
    await makeFolder(client, `${ROOT}/data/${otherPrefix}`).catch(() => undefined);
    await putFile(client, `${ROOT}/data/${otherPrefix}/${stray}`, 'wrong fan-out folder');
    await makeFolder(client, `${ROOT}/data/zz`);
    await putFile(client, `${ROOT}/data/zz/${stray}`, 'not a fan-out folder');
    await makeFolder(client, `${ROOT}/keys/${'e'.repeat(64)}`);
    await putFile(client, `${ROOT}/keys/${stray}.tmp`, 'temporary');

    fake.log.clear();
    const data = await collect(backend.list('data'));
    expect(new Set(data.map((f) => f.name)).size).toBe(data.length);
    expect(new Map(data.map((f) => [f.name, f.size]))).toEqual(new Map(saved.map(({ h, data: d }) => [h.name, d.length])));
    const nextPages = fake.log.filter((e) => CHILDREN.test(e.path) && e.query['$skiptoken'] !== undefined);
    expect(nextPages.length).toBeGreaterThanOrEqual(4);
    for (const page of fake.log.filter((e) => CHILDREN.test(e.path))) expect(page.query['$top']).toBe('3');
    const listedKeys = await collect(backend.list('keys'));
    expect(listedKeys.map((f) => f.name).sort()).toEqual(keys.map((k) => k.h.name).sort());
  });

  it('starts over, through RetryBackend, when a page fails midway, without repeating names', async () => {
    const { fake, backend } = await setUp({ listPageSize: 2 }, { pageSize: 2 });
    const saved = Array.from({ length: 7 }, (_, i) => dataFile(10, 500 + i));
    for (const { h, data } of saved) await backend.save({ type: 'index', name: h.name }, data);
    fake.faults.add({ method: 'GET', path: CHILDREN, nth: 3, action: { kind: 'status', status: 503 } });
    const { sleeps, sleep } = recordingSleep();
    const names = (await collect(new RetryBackend(backend, { sleep }).list('index'))).map((f) => f.name);
    expect(sleeps).toHaveLength(1);
    expect(names.sort()).toEqual(saved.map((s) => s.h.name).sort());
  });

  it('lists nothing for a type whose folder is missing', async () => {
    const { options } = await setUp();
    const bare = new OnedriveBackend({ ...options, root: 'never-created' });
    expect(await collect(bare.list('snapshots'))).toEqual([]);
    expect(await collect(bare.list('data'))).toEqual([]);
    expect(await collect(bare.list('config'))).toEqual([]);
  });
});

describe('remove and usage', () => {
  it('deletes permanently, so nothing lands in the recycle bin, and succeeds for missing files', async () => {
    const { fake, backend } = await setUp({}, { quotaBytes: 64 * MiB });
    const { h, data } = dataFile(300_000, 15);
    await backend.save(h, data);
    expect(await backend.usage()).toEqual({ usedBytes: 300_000, totalBytes: 64 * MiB, trashBytes: 0 });
    await backend.remove(h);
    await backend.remove(h);
    expect(fake.recycleBinBytes()).toBe(0);
    expect(fake.items().filter((item) => item.deleted)).toEqual([]);
    expect(fake.log.filter((e) => e.path.endsWith('/permanentDelete')).map((e) => `${e.method} ${e.status}`)).toEqual(['POST 204']);
    expect(await backend.usage()).toEqual({ usedBytes: 0, totalBytes: 64 * MiB, trashBytes: 0 });
  });

  it('falls back to the recycle bin where the drive cannot delete permanently, and reports the bin in usage()', async () => {
    const { fake, backend } = await setUp({}, { quotaBytes: 64 * MiB });
    const first = dataFile(200_000, 16);
    const second = dataFile(100_000, 17);
    await backend.save(first.h, first.data);
    await backend.save(second.h, second.data);
    fake.faults.add({ method: 'POST', path: /\/permanentDelete$/, action: { kind: 'status', status: 501 } });
    await backend.remove(first.h);
    expect(fake.recycleBinBytes()).toBe(200_000);
    expect(await backend.usage()).toEqual({ usedBytes: 300_000, totalBytes: 64 * MiB, trashBytes: 200_000 });
    expect((await failure(backend.stat(first.h))).code).toBe('NOT_FOUND');
    // Known now: the next remove goes straight to DELETE.
    await backend.remove(second.h);
    expect(fake.log.filter((e) => e.path.endsWith('/permanentDelete'))).toHaveLength(1);
    expect(fake.log.filter((e) => e.method === 'DELETE').map((e) => e.status)).toEqual([204, 204]);
    expect(await backend.usage()).toMatchObject({ usedBytes: 300_000, trashBytes: 300_000 });
  });

  it('leaves a folder that has a repository file name alone', async () => {
    const setup = await setUp();
    const client = await graphOnFake(setup);
    const { h } = dataFile(10, 18);
    const keyPath = `${ROOT}/keys/${h.name}`;
    await makeFolder(client, keyPath);
    await setup.backend.remove({ type: 'keys', name: h.name });
    expect(setup.fake.item(`/${keyPath}`)?.folder).toBeDefined();
    expect((await failure(setup.backend.stat({ type: 'keys', name: h.name }))).code).toBe('NOT_FOUND');
  });

  it.each([
    ['no total', { used: 5000, deleted: 700, remaining: 0, state: 'normal' }, { usedBytes: 5000, totalBytes: null, trashBytes: 700 }],
    ['a null total', { total: null, used: 5000, deleted: 0 }, { usedBytes: 5000, totalBytes: null, trashBytes: 0 }],
    ['a zero total', { total: 0, used: 5000 }, { usedBytes: 5000, totalBytes: null, trashBytes: 0 }],
    ['a business quota', { total: 1_099_511_627_776, used: 5000, deleted: 10, remaining: 1_099_511_622_776, state: 'normal' }, { usedBytes: 5000, totalBytes: 1_099_511_627_776, trashBytes: 10 }],
  ] as const)('reports a drive with %s', async (_what, quota, expected) => {
    const setup = await setUp();
    const base = loopbackFetch(setup.fake.url);
    const unlimited = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      return url.pathname === '/v1.0/me/drive' ? Response.json({ id: 'b!x', driveType: 'business', quota }) : base(input, init);
    }) as typeof fetch;
    const backend = new OnedriveBackend({ ...setup.options, fetchOverride: unlimited });
    expect(await backend.usage()).toEqual(expected);
  });

  it('fails usage() permanently for a drive that reports no quota', async () => {
    const setup = await setUp();
    const base = loopbackFetch(setup.fake.url);
    const noQuota = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      return url.pathname === '/v1.0/me/drive' ? Response.json({ id: 'b!x', driveType: 'documentLibrary' }) : base(input, init);
    }) as typeof fetch;
    const error = await failure(new OnedriveBackend({ ...setup.options, fetchOverride: noQuota }).usage());
    expect(error).toMatchObject({ code: 'INTERNAL', retryable: false });
    expect(error.message).toContain('no storage quota');
  });
});

describe('pacing', () => {
  it('spaces requests at requestsPerSecond', async () => {
    const { options } = await setUp();
    const backend = new OnedriveBackend({ ...options, requestsPerSecond: 40 });
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
