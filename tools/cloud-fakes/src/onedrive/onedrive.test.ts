// Drives the real @microsoft/microsoft-graph-client against the OneDrive fake, the way the backup provider will:
// folders, simple uploads, resumable uploads that lose a connection and resume, paging, ranged downloads, the
// recycle bin and quota, OneDrive's naming rules, throttling, token expiry/refresh and the PKCE sign-in.

import { createHash, randomBytes } from 'node:crypto';
import {
  GraphError,
  OneDriveLargeFileUploadTask,
  PageIterator,
  ResponseType,
  RetryHandlerOptions,
} from '@microsoft/microsoft-graph-client';
import type { Client } from '@microsoft/microsoft-graph-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { s256Challenge } from '../common/tokens.ts';
import { createLoopbackGraphClient, loopbackFetch, quickXorHash, startOnedriveFake } from './index.ts';
import type { OnedriveFake } from './index.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const FRAGMENT_UNIT = 320 * KIB;
const LOGIN = 'https://login.microsoftonline.com/consumers/oauth2/v2.0';
const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const REDIRECT_URI = 'http://127.0.0.1:53682/callback';

let fake: OnedriveFake;
let client: Client;
let accessToken: string;
let refreshToken: string;
let fetchViaFake: typeof fetch;

beforeEach(async () => {
  fake = await startOnedriveFake({ quotaBytes: 64 * MIB });
  const issued = fake.tokens.issue();
  accessToken = issued.access_token;
  refreshToken = issued.refresh_token;
  client = await createLoopbackGraphClient({ fakeUrl: fake.url, getAccessToken: async () => accessToken });
  fetchViaFake = loopbackFetch(fake.url);
});

afterEach(async () => {
  await fake.close();
});

interface GraphErrorBody {
  code: string;
  message: string;
  innerError?: { code?: string; date?: string; 'request-id'?: string };
}

/**
 * The GraphError a Graph call rejects with (fails the test if it resolves or throws something else), with the
 * `error` object of Graph's envelope that the SDK keeps as a JSON string in `body` (absent for binary requests).
 */
async function graphFailure(call: Promise<unknown>): Promise<GraphError & { parsed: GraphErrorBody | undefined }> {
  const error: unknown = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphError);
  const graphErr = error as GraphError;
  const body: unknown = graphErr.body;
  return Object.assign(graphErr, { parsed: typeof body === 'string' ? (JSON.parse(body) as GraphErrorBody) : undefined });
}

function pathOf(...segments: string[]): string {
  return segments.map((s) => encodeURIComponent(s)).join('/');
}

async function putSmall(path: string, content: Buffer): Promise<{ id: string; size: number; file: { hashes: { quickXorHash: string } } }> {
  return (await client
    .api(`/me/drive/root:/${path}:/content`)
    .header('Content-Type', 'application/octet-stream')
    .put(content)) as { id: string; size: number; file: { hashes: { quickXorHash: string } } };
}

async function mkdir(parentPath: string | undefined, name: string): Promise<{ id: string; name: string }> {
  const where = parentPath === undefined ? '/me/drive/root/children' : `/me/drive/root:/${parentPath}:/children`;
  return (await client.api(where).post({ name, folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })) as { id: string; name: string };
}

describe('drive and folders', () => {
  it('reports the drive with its quota facet through the real client, with the token on graph.microsoft.com', async () => {
    const drive = (await client.api('/me/drive').get()) as { id: string; driveType: string; quota: Record<string, unknown> };
    expect(drive.id).toBe(fake.driveId);
    expect(drive.driveType).toBe('personal');
    expect(drive.quota).toMatchObject({ total: 64 * MIB, used: 0, remaining: 64 * MIB, deleted: 0, state: 'normal' });
    const [entry] = fake.log.filter((e) => e.path === '/v1.0/me/drive');
    expect(entry?.headers['x-fake-host']).toBe('graph.microsoft.com');
    expect(entry?.headers['authorization']).toBe('Bearer [redacted]');
  });

  it('creates folders by parent and by path and applies fail / rename / replace conflict behaviour', async () => {
    const backups = await mkdir(undefined, 'backups');
    expect(backups.name).toBe('backups');
    const data = await mkdir('backups', 'data');
    expect(fake.item('/backups/data')?.id).toBe(data.id);

    const conflict = await graphFailure(client.api('/me/drive/root/children').post({ name: 'Backups', folder: {} }));
    expect(conflict.statusCode).toBe(409);
    expect(conflict.code).toBe('nameAlreadyExists');

    const renamed = (await client
      .api('/me/drive/root/children')
      .post({ name: 'backups', folder: {}, '@microsoft.graph.conflictBehavior': 'rename' })) as { name: string };
    expect(renamed.name).toBe('backups 1');

    const replaced = (await client
      .api(`/me/drive/items/${backups.id}/children`)
      .post({ name: 'data', folder: {}, '@microsoft.graph.conflictBehavior': 'replace' })) as { id: string };
    expect(replaced.id).toBe(data.id);
    expect(fake.log.entries.filter((e) => e.method === 'POST').map((e) => e.status)).toEqual([201, 201, 409, 201, 200]);
  });

  it('answers 404 itemNotFound for a missing path and does not create parents implicitly', async () => {
    const missing = await graphFailure(client.api('/me/drive/root:/nope/deeper:').get());
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe('itemNotFound');
    const upload = await graphFailure(
      client.api('/me/drive/root:/nope/file.bin:/content').header('Content-Type', 'application/octet-stream').put(Buffer.from('x')),
    );
    expect(upload.statusCode).toBe(404);
  });
});

describe('simple upload', () => {
  it('stores the bytes and reports size and quickXorHash; replaces by default (200) after creating (201)', async () => {
    await mkdir(undefined, 'backups');
    const content = randomBytes(100 * KIB);
    const created = await putSmall('backups/small.bin', content);
    expect(created.size).toBe(content.length);
    expect(created.file.hashes.quickXorHash).toBe(quickXorHash(content));
    const stored = fake.item('/backups/small.bin');
    expect(stored?.content.equals(content)).toBe(true);
    expect(stored?.file?.hashes.sha256Hash).toBe(createHash('sha256').update(content).digest('hex').toUpperCase());

    const replacement = randomBytes(10);
    const replaced = await putSmall('backups/small.bin', replacement);
    expect(replaced.id).toBe(created.id);
    expect(fake.log.filter((e) => e.method === 'PUT').map((e) => e.status)).toEqual([201, 200]);
    expect(fake.item(created.id)?.size).toBe(10);
  });

  it('refuses a simple upload over 4 MiB with 413, as Graph does', async () => {
    const failure = await graphFailure(
      client
        .api('/me/drive/root:/big.bin:/content')
        .header('Content-Type', 'application/octet-stream')
        .put(Buffer.alloc(4 * MIB + 1)),
    );
    expect(failure.statusCode).toBe(413);
    expect(fake.item('/big.bin')).toBeUndefined();
    await putSmall('exactly-4MiB.bin', Buffer.alloc(4 * MIB));
  });
});

describe('upload sessions', () => {
  it('resumes an SDK upload after a fragment is applied but its connection drops, using the status GET', async () => {
    await mkdir(undefined, 'backups');
    const content = randomBytes(2 * MIB + 12_345);
    // The 2nd fragment reaches the fake, is stored, and then the socket is destroyed before any answer.
    fake.faults.add({ method: 'PUT', path: /^\/up\//u, nth: 2, action: { kind: 'reset-after' } });

    const task = await OneDriveLargeFileUploadTask.create(client, content, {
      fileName: 'pack-0001.bin',
      path: '/backups',
      rangeSize: 640 * KIB,
      conflictBehavior: 'fail',
    });
    await expect(task.upload()).rejects.toThrow();

    const status = (await task.getStatus()) as { nextExpectedRanges: string[] };
    expect(status.nextExpectedRanges).toEqual([`${2 * 640 * KIB}-`]);
    const result = await task.upload();
    const item = result.responseBody as { id: string; size: number; file: { hashes: { quickXorHash: string } } };
    expect(item.size).toBe(content.length);
    expect(item.file.hashes.quickXorHash).toBe(quickXorHash(content));
    expect(fake.item('/backups/pack-0001.bin')?.content.equals(content)).toBe(true);

    const uploadRequests = fake.log.filter((e) => e.path.startsWith('/up/'));
    expect(uploadRequests.map((e) => `${e.method} ${e.status}`)).toEqual(['PUT 202', 'PUT 0', 'GET 200', 'PUT 202', 'PUT 201']);
    const puts = uploadRequests.filter((e) => e.method === 'PUT');
    for (const put of puts.slice(0, -1)) expect(put.requestBytes % FRAGMENT_UNIT).toBe(0);
    expect(puts.at(-1)?.requestBytes).toBe(content.length - 3 * 640 * KIB);
    // Upload URLs are pre-authenticated: the SDK must not (and did not) send the token there.
    for (const entry of uploadRequests) expect(entry.headers['authorization']).toBeUndefined();
    const createSession = fake.log.filter((e) => e.path.endsWith(':/createUploadSession'));
    expect(createSession[0]?.headers['authorization']).toBe('Bearer [redacted]');
    expect(fake.openUploadSessions()).toBe(0);
  });

  it('rejects a non-final fragment that is not a multiple of 320 KiB, overlaps and gaps, and supports status and cancel', async () => {
    const session = (await client
      .api(`/me/drive/root:/${pathOf('odd.bin')}:/createUploadSession`)
      .post({ item: { '@microsoft.graph.conflictBehavior': 'fail', name: 'odd.bin' } })) as {
      uploadUrl: string;
      expirationDateTime: string;
    };
    expect(session.uploadUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/up\/[\w-]+$/u);
    expect(Date.parse(session.expirationDateTime)).toBeGreaterThan(Date.now());
    const total = 3 * FRAGMENT_UNIT;
    const put = (first: number, length: number): Promise<Response> =>
      fetchViaFake(session.uploadUrl, {
        method: 'PUT',
        headers: { 'Content-Range': `bytes ${first}-${first + length - 1}/${total}`, 'Content-Type': 'application/octet-stream' },
        body: Buffer.alloc(length, 7),
      });

    const misaligned = await put(0, 100_000);
    expect(misaligned.status).toBe(400);
    expect(((await misaligned.json()) as { error: { code: string } }).error.code).toBe('invalidRequest');

    const first = await put(0, FRAGMENT_UNIT);
    expect(first.status).toBe(202);
    expect(await first.json()).toMatchObject({ nextExpectedRanges: [`${FRAGMENT_UNIT}-`] });

    const overlap = await put(0, FRAGMENT_UNIT);
    expect(overlap.status).toBe(416);
    expect(((await overlap.json()) as { error: { innerError: { code: string } } }).error.innerError.code).toBe('fragmentOverlap');
    const gap = await put(2 * FRAGMENT_UNIT, FRAGMENT_UNIT);
    expect(gap.status).toBe(416);

    const status = await fetchViaFake(session.uploadUrl);
    expect(await status.json()).toMatchObject({ nextExpectedRanges: [`${FRAGMENT_UNIT}-`] });

    const cancelled = await fetchViaFake(session.uploadUrl, { method: 'DELETE' });
    expect(cancelled.status).toBe(204);
    const gone = await fetchViaFake(session.uploadUrl);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe('itemNotFound');
  });

  it('answers 404 itemNotFound once the session has expired, so the client restarts the upload', async () => {
    const session = (await client.api('/me/drive/root:/late.bin:/createUploadSession').post({})) as { uploadUrl: string };
    fake.faults.add({ method: 'PUT', path: /^\/up\//u, action: { kind: 'expire-upload-session' } });
    const response = await fetchViaFake(session.uploadUrl, {
      method: 'PUT',
      headers: { 'Content-Range': 'bytes 0-9/10' },
      body: Buffer.alloc(10),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 'itemNotFound', innerError: { code: 'uploadSessionNotFound' } } });
  });

  it('reports nameAlreadyExists on the last fragment when conflictBehavior is fail', async () => {
    await putSmall('taken.bin', Buffer.from('old'));
    const session = (await client
      .api('/me/drive/root:/taken.bin:/createUploadSession')
      .post({ item: { '@microsoft.graph.conflictBehavior': 'fail' } })) as { uploadUrl: string };
    const response = await fetchViaFake(session.uploadUrl, {
      method: 'PUT',
      headers: { 'Content-Range': 'bytes 0-2/3' },
      body: Buffer.from('new'),
    });
    expect(response.status).toBe(409);
    expect(fake.item('/taken.bin')?.content.toString()).toBe('old');
  });
});

describe('configuration and clock', () => {
  it('expires upload sessions and access tokens by the injected clock, and can create missing parents', async () => {
    let nowMs = Date.parse('2030-01-01T00:00:00Z');
    const timed = await startOnedriveFake({
      now: () => new Date(nowMs),
      uploadSessionTtlSeconds: 600,
      tokenTtlSeconds: 3600,
      createMissingParents: true,
    });
    try {
      let token = timed.tokens.issue().access_token;
      const timedClient = await createLoopbackGraphClient({ fakeUrl: timed.url, getAccessToken: async () => token });
      const created = (await timedClient
        .api('/me/drive/root:/made/on/demand.bin:/content')
        .header('Content-Type', 'application/octet-stream')
        .put(Buffer.from('abc'))) as { parentReference: { path: string } };
      expect(created.parentReference.path).toBe('/drive/root:/made/on');

      const session = (await timedClient.api('/me/drive/root:/made/s.bin:/createUploadSession').post({})) as {
        uploadUrl: string;
        expirationDateTime: string;
      };
      expect(session.expirationDateTime).toBe('2030-01-01T00:10:00.000Z');
      const viaFake = loopbackFetch(timed.url);
      nowMs += 601_000;
      expect((await viaFake(session.uploadUrl)).status).toBe(404);

      nowMs += 3600_000;
      expect((await graphFailure(timedClient.api('/me/drive').get())).statusCode).toBe(401);
      token = timed.tokens.issue().access_token;
      await timedClient.api('/me/drive').get();
    } finally {
      await timed.close();
    }
  });

  it('refuses an Authorization header on a pre-authenticated upload URL', async () => {
    const session = (await client.api('/me/drive/root:/a.bin:/createUploadSession').post({})) as { uploadUrl: string };
    const response = await fetchViaFake(session.uploadUrl, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(response.status).toBe(401);
  });
});

describe('listing', () => {
  it('pages children with $top=2 and absolute @odata.nextLink URLs that the client follows', async () => {
    await mkdir(undefined, 'paged');
    for (const name of ['e.bin', 'a.bin', 'c.bin', 'b.bin', 'd.bin']) await putSmall(`paged/${name}`, Buffer.from(name));

    const pageSizes: number[] = [];
    const names: string[] = [];
    let page = (await client.api('/me/drive/root:/paged:/children').top(2).select('id,name,size').get()) as {
      value: { name: string; size: number }[];
      '@odata.nextLink'?: string;
    };
    for (;;) {
      pageSizes.push(page.value.length);
      names.push(...page.value.map((v) => v.name));
      const next = page['@odata.nextLink'];
      if (next === undefined) break;
      expect(next).toMatch(/^https:\/\/graph\.microsoft\.com\/v1\.0\/me\/drive\/root:\/paged:\/children\?/u);
      page = (await client.api(next).get()) as typeof page;
    }
    expect(pageSizes).toEqual([2, 2, 1]);
    expect(names).toEqual(['a.bin', 'b.bin', 'c.bin', 'd.bin', 'e.bin']);
    const followUps = fake.log.filter((e) => e.path === '/v1.0/me/drive/root:/paged:/children' && e.query['$skiptoken'] !== undefined);
    expect(followUps).toHaveLength(2);
    for (const entry of followUps) {
      expect(entry.query['$top']).toBe('2');
      expect(entry.headers['authorization']).toBe('Bearer [redacted]');
    }

    const viaIterator: string[] = [];
    const first = (await client.api('/me/drive/root:/paged:/children').top(2).get()) as { value: unknown[] };
    await new PageIterator(client, first as never, (item: { name: string }) => {
      viaIterator.push(item.name);
      return true;
    }).iterate();
    expect(viaIterator).toEqual(names);
  });

  it('hands out plain-http nextLinks to callers that reach the fake directly', async () => {
    for (const name of ['x1', 'x2', 'x3']) await putSmall(name, Buffer.from(name));
    const response = await fetch(`${fake.url}/v1.0/me/drive/root/children?$top=2`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    const body = (await response.json()) as { '@odata.nextLink': string };
    expect(body['@odata.nextLink'].startsWith(`${fake.url}/v1.0/me/drive/root/children?`)).toBe(true);
  });
});

describe('download', () => {
  it('redirects /content to a pre-authenticated URL and serves Range as 206, an impossible range as 416', async () => {
    const content = randomBytes(1000);
    const item = await putSmall('dl.bin', content);

    const whole = (await client.api(`/me/drive/items/${item.id}/content`).responseType(ResponseType.ARRAYBUFFER).get()) as ArrayBuffer;
    expect(Buffer.from(whole).equals(content)).toBe(true);

    const part = (await client
      .api('/me/drive/root:/dl.bin:/content')
      .header('Range', 'bytes=100-199')
      .responseType(ResponseType.ARRAYBUFFER)
      .get()) as ArrayBuffer;
    expect(Buffer.from(part).equals(content.subarray(100, 200))).toBe(true);

    const redirects = fake.log.filter((e) => e.path.endsWith('/content') && e.method === 'GET');
    expect(redirects.map((e) => e.status)).toEqual([302, 302]);
    const downloads = fake.log.filter((e) => e.path.startsWith('/dl/'));
    expect(downloads.map((e) => e.status)).toEqual([200, 206]);
    expect(downloads[1]?.headers['range']).toBe('bytes=100-199');
    for (const entry of downloads) expect(entry.headers['authorization']).toBeUndefined();

    const beyond = await graphFailure(
      client.api(`/me/drive/items/${item.id}/content`).header('Range', 'bytes=5000-').responseType(ResponseType.ARRAYBUFFER).get(),
    );
    expect(beyond.statusCode).toBe(416);
  });
});

describe('delete, recycle bin and quota', () => {
  it('moves deleted items to the recycle bin, which still counts in quota.deleted and quota.used', async () => {
    await mkdir(undefined, 'old');
    const a = await putSmall('old/a.bin', Buffer.alloc(3000));
    await putSmall('old/b.bin', Buffer.alloc(2000));
    const folder = (await client.api('/me/drive/root:/old:').get()) as { id: string; size: number };
    expect(folder.size).toBe(5000);

    await client.api(`/me/drive/items/${a.id}`).delete();
    expect((await graphFailure(client.api(`/me/drive/items/${a.id}`).get())).statusCode).toBe(404);
    let quota = ((await client.api('/me/drive').get()) as { quota: { used: number; deleted: number; remaining: number } }).quota;
    expect(quota).toMatchObject({ used: 5000, deleted: 3000, remaining: 64 * MIB - 5000 });

    await client.api('/me/drive/root:/old:').delete();
    quota = ((await client.api('/me/drive').get()) as { quota: { used: number; deleted: number; remaining: number } }).quota;
    expect(quota).toMatchObject({ used: 5000, deleted: 5000 });
    expect(fake.recycleBinBytes()).toBe(5000);
    expect(fake.item(a.id)?.deleted).toBe(true);
    expect(fake.item('/old')).toBeUndefined();
    expect(fake.log.filter((e) => e.method === 'DELETE').map((e) => e.status)).toEqual([204, 204]);
  });

  it('permanentDelete removes an item without passing through the recycle bin', async () => {
    const item = await putSmall('gone.bin', Buffer.alloc(4000));
    const response = (await client.api(`/me/drive/items/${item.id}/permanentDelete`).responseType(ResponseType.RAW).post(null)) as Response;
    expect(response.status).toBe(204);
    expect(fake.item(item.id)).toBeUndefined();
    expect(fake.quota()).toMatchObject({ used: 0, deleted: 0 });
  });

  it('answers 507 quotaLimitReached when an upload does not fit, and reports the exceeded state', async () => {
    fake.setQuota(10_000);
    await putSmall('fits.bin', Buffer.alloc(9_000));
    const failure = await graphFailure(
      client.api('/me/drive/root:/too-big.bin:/content').header('Content-Type', 'application/octet-stream').put(Buffer.alloc(2_000)),
    );
    expect(failure.statusCode).toBe(507);
    expect(failure.code).toBe('quotaLimitReached');
    const session = await graphFailure(
      client.api('/me/drive/root:/session.bin:/createUploadSession').post({ item: { fileSize: 5_000 } }),
    );
    expect(session.statusCode).toBe(507);
    fake.setQuota(9_000);
    const drive = (await client.api('/me/drive').get()) as { quota: { state: string; remaining: number } };
    expect(drive.quota).toMatchObject({ state: 'exceeded', remaining: 0 });
  });

  it('lets a test force quota-full on one request', async () => {
    fake.faults.add({ method: 'PUT', action: { kind: 'quota-full' } });
    const failure = await graphFailure(
      client.api('/me/drive/root:/x.bin:/content').header('Content-Type', 'application/octet-stream').put(Buffer.alloc(1)),
    );
    expect(failure.statusCode).toBe(507);
    await putSmall('x.bin', Buffer.alloc(1));
  });
});

describe('naming rules', () => {
  it.each(['"', '*', ':', '<', '>', '?', '\\', '|'])('rejects %s in a name with 400 nameContainsInvalidCharacters', async (char) => {
    const failure = await graphFailure(
      client
        .api(`/me/drive/root:/${pathOf(`bad${char}name.bin`)}:/content`)
        .header('Content-Type', 'application/octet-stream')
        .put(Buffer.from('x')),
    );
    expect(failure.statusCode).toBe(400);
    expect(failure.code).toBe('invalidRequest');
    expect(failure.parsed?.innerError?.code).toBe('nameContainsInvalidCharacters');
  });

  it('rejects "/" in a folder name, reserved names and paths over 400 characters', async () => {
    const slash = await graphFailure(client.api('/me/drive/root/children').post({ name: 'a/b', folder: {} }));
    expect(slash.parsed?.innerError?.code).toBe('nameContainsInvalidCharacters');
    for (const reserved of ['CON', 'desktop.ini', '~$draft.docx', 'trailing.']) {
      const failure = await graphFailure(client.api('/me/drive/root/children').post({ name: reserved, folder: {} }));
      expect(failure.statusCode).toBe(400);
    }
    const long = ['d'.repeat(200), 'e'.repeat(150), 'f'.repeat(60)];
    const tooLong = await graphFailure(
      client.api(`/me/drive/root:/${pathOf(...long)}:/content`).header('Content-Type', 'application/octet-stream').put(Buffer.from('x')),
    );
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.parsed?.innerError?.code).toBe('pathIsTooLong');
    expect(fake.items()).toHaveLength(0);
  });
});

describe('throttling', () => {
  it('surfaces 429 with Retry-After and the Graph envelope on the SDK error when retries are off', async () => {
    fake.faults.add({ method: 'GET', path: '/v1.0/me/drive', action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const failure = await graphFailure(client.api('/me/drive').middlewareOptions([new RetryHandlerOptions(0, 0)]).get());
    expect(failure.statusCode).toBe(429);
    expect(failure.code).toBe('activityLimitReached');
    expect(failure.headers?.get('retry-after')).toBe('7');
    expect(failure.parsed?.innerError?.code).toBe('throttledRequest');
    expect(failure.requestId).toMatch(/^[0-9a-f-]{36}$/u);
  });

  it('lets the SDK RetryHandler wait out 429 and 503 with Retry-After and succeed', async () => {
    fake.faults.add({ method: 'GET', path: '/v1.0/me/drive', action: { kind: 'status', status: 429, retryAfterSeconds: 0 } });
    fake.faults.add({ method: 'GET', path: '/v1.0/me/drive', nth: 2, action: { kind: 'status', status: 503, retryAfterSeconds: 0 } });
    const drive = (await client.api('/me/drive').get()) as { id: string };
    expect(drive.id).toBe(fake.driveId);
    const attempts = fake.log.filter((e) => e.path === '/v1.0/me/drive');
    expect(attempts.map((e) => e.status)).toEqual([429, 503, 200]);
    expect(attempts.map((e) => e.headers['retry-attempt'])).toEqual([undefined, '1', '2']);
  });
});

describe('identity platform', () => {
  async function tokenRequest(form: Record<string, string>): Promise<Response> {
    return fetchViaFake(`${LOGIN}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  it('answers an expired token with 401 InvalidAuthenticationToken; a refresh-token grant gets a working one', async () => {
    fake.faults.add({ path: '/v1.0/me/drive', action: { kind: 'expire-token' } });
    const expired = await graphFailure(client.api('/me/drive').get());
    expect(expired.statusCode).toBe(401);
    expect(expired.code).toBe('InvalidAuthenticationToken');
    expect(expired.headers?.get('www-authenticate')).toContain('Bearer');
    expect(fake.tokens.isValid(accessToken)).toBe(false);
    expect((await graphFailure(client.api('/me/drive/root').get())).statusCode).toBe(401);

    const refreshed = await tokenRequest({
      client_id: CLIENT_ID,
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      scope: 'Files.ReadWrite offline_access',
    });
    expect(refreshed.status).toBe(200);
    const body = (await refreshed.json()) as { access_token: string; token_type: string; expires_in: number; refresh_token: string };
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    expect(body.refresh_token).toBe(refreshToken);
    accessToken = body.access_token;
    expect(((await client.api('/me/drive').get()) as { id: string }).id).toBe(fake.driveId);

    const bad = await tokenRequest({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: 'not-a-token' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_grant', error_codes: [70000] });
  });

  it('runs the authorization-code flow with PKCE S256 and a loopback redirect_uri', async () => {
    const authorize = async (challenge: string, scope: string): Promise<URL> => {
      const query = new URLSearchParams({
        client_id: CLIENT_ID,
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope,
        state: 'st-42',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      });
      const response = await fetchViaFake(`${LOGIN}/authorize?${query.toString()}`, { redirect: 'manual' });
      expect(response.status).toBe(302);
      const location = new URL(response.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
      expect(location.searchParams.get('state')).toBe('st-42');
      return location;
    };
    const verifier = randomBytes(48).toString('base64url');
    const redeem = (code: string, codeVerifier: string): Promise<Response> =>
      tokenRequest({
        client_id: CLIENT_ID,
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: codeVerifier,
      });

    const wrong = await redeem((await authorize(s256Challenge(verifier), 'Files.ReadWrite offline_access')).searchParams.get('code') ?? '', 'x'.repeat(43));
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe('invalid_grant');

    const code = (await authorize(s256Challenge(verifier), 'Files.ReadWrite offline_access')).searchParams.get('code') ?? '';
    const redeemed = await redeem(code, verifier);
    expect(redeemed.status).toBe(200);
    const tokens = (await redeemed.json()) as { access_token: string; refresh_token?: string };
    expect(tokens.refresh_token).toBeDefined();
    const reused = await redeem(code, verifier);
    expect(reused.status).toBe(400);
    accessToken = tokens.access_token;
    expect(((await client.api('/me/drive').get()) as { id: string }).id).toBe(fake.driveId);

    const withoutOffline = await redeem((await authorize(s256Challenge(verifier), 'Files.ReadWrite')).searchParams.get('code') ?? '', verifier);
    expect((await withoutOffline.json()) as object).not.toHaveProperty('refresh_token');

    const foreignRedirect = await fetchViaFake(
      `${LOGIN}/authorize?${new URLSearchParams({ client_id: CLIENT_ID, response_type: 'code', redirect_uri: 'https://evil.example/cb' }).toString()}`,
      { redirect: 'manual' },
    );
    expect(foreignRedirect.status).toBe(400);
  });
});
