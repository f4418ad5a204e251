// Drives the Google Drive fake with the real @googleapis/drive client and google-auth-library OAuth2 client,
// pointed at the fake exactly as docs/cloud-apis.md §1.7 prescribes, to prove the SDK cannot tell the difference.

import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { auth as googleAuth, drive as driveApi } from '@googleapis/drive';
import type { drive_v3 } from '@googleapis/drive';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FOLDER_MIME_TYPE, startGdriveFake } from './index.ts';
import type { GdriveFake, GdriveFakeOptions } from './index.ts';

type OAuth2Client = InstanceType<typeof googleAuth.OAuth2>;
type AuthUrlOptions = NonNullable<Parameters<OAuth2Client['generateAuthUrl']>[0]>;

const KiB = 1024;
const MiB = 1024 * KiB;

interface Harness {
  fake: GdriveFake;
  /** Origin with a trailing slash, as the SDK's rootUrl wants it. */
  root: string;
  oauth2: OAuth2Client;
  drive: drive_v3.Drive;
}

let h: Harness;

async function harness(options: GdriveFakeOptions = {}, clientOptions: { forceRefreshOnFailure?: boolean } = {}): Promise<Harness> {
  const fake = await startGdriveFake(options);
  const root = `${fake.url}/`;
  const oauth2 = new googleAuth.OAuth2({
    clientId: 'cid.apps.example',
    clientSecret: 'csecret',
    endpoints: { oauth2TokenUrl: `${root}token`, oauth2AuthBaseUrl: `${root}auth` },
    ...clientOptions,
  });
  oauth2.setCredentials({ refresh_token: fake.tokens.issue().refresh_token });
  const drive = driveApi({ version: 'v3', auth: oauth2, rootUrl: root });
  return { fake, root, oauth2, drive };
}

afterEach(async () => {
  await h?.fake.close();
});

/** The GaxiosError thrown by a promise, for asserting on status, body and headers. */
async function failure(promise: Promise<unknown>): Promise<{
  status?: number;
  message: string;
  response?: { status: number; headers: Headers; data: unknown };
}> {
  try {
    await promise;
  } catch (error) {
    return error as { status?: number; message: string; response?: { status: number; headers: Headers; data: unknown } };
  }
  throw new Error('expected the call to fail');
}

function reasonOf(data: unknown): string | undefined {
  return (data as { error?: { errors?: Array<{ reason?: string }> } } | undefined)?.error?.errors?.[0]?.reason;
}

/** A response header, whatever shape the SDK's response type declares for its headers. */
function headerOf(res: { headers: unknown }, name: string): string | null {
  return (res.headers as Headers).get(name);
}

function md5(buf: Buffer): string {
  return createHash('md5').update(buf).digest('hex');
}

async function uploadMultipart(name: string, content: Buffer, parents?: string[]): Promise<drive_v3.Schema$File> {
  const res = await h.drive.files.create(
    {
      requestBody: { name, ...(parents === undefined ? {} : { parents }) },
      media: { mimeType: 'application/octet-stream', body: Readable.from([content]) },
      fields: 'id,name,size,md5Checksum,parents',
    },
    { rootUrl: h.root },
  );
  return res.data;
}

describe('Google Drive fake with the real SDK', () => {
  beforeEach(async () => {
    h = await harness();
  });

  it('creates a folder with a metadata-only files.create after refreshing the token at the fake', async () => {
    const res = await h.drive.files.create({
      requestBody: { name: 'backups', mimeType: FOLDER_MIME_TYPE, parents: ['root'] },
      fields: 'id,name,mimeType,parents,size',
    });
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ id: res.data.id, name: 'backups', mimeType: FOLDER_MIME_TYPE, parents: [h.fake.rootId] });
    const stored = h.fake.files.get(res.data.id ?? '');
    expect(stored?.mimeType).toBe(FOLDER_MIME_TYPE);

    const paths = h.fake.log.entries.map((e) => `${e.method} ${e.path} ${e.status}`);
    expect(paths).toEqual(['POST /token 200', 'POST /drive/v3/files 200']);
    const apiCall = h.fake.log.entries[1];
    expect(apiCall?.headers['authorization']).toBe('Bearer [redacted]');
    expect(JSON.stringify(h.fake.log.entries)).not.toContain(h.fake.tokens.issued[0]);
  });

  it('resumes a 3 MiB resumable upload after a reset-after fault from the offset a status query reports', async () => {
    const content = randomBytes(3 * MiB + 123);
    const total = content.length;
    const chunkSize = 1 * MiB;
    h.fake.faults.add({ method: 'PUT', path: '/upload/drive/v3/files', nth: 2, action: { kind: 'reset-after' } });

    const init = await h.oauth2.request({
      url: `${h.root}upload/drive/v3/files`,
      method: 'POST',
      params: { uploadType: 'resumable', fields: 'id,name,size,md5Checksum' },
      headers: {
        'X-Upload-Content-Type': 'application/octet-stream',
        'X-Upload-Content-Length': String(total),
        'Content-Type': 'application/json; charset=UTF-8',
      },
      data: { name: 'pack-0001.bin', parents: ['root'] },
    });
    expect(init.status).toBe(200);
    const session = init.headers.get('location');
    expect(session).toContain('upload_id=');

    const put = (headers: Record<string, string>, data?: Buffer) =>
      h.oauth2.request<drive_v3.Schema$File>({
        url: session ?? '',
        method: 'PUT',
        headers,
        ...(data === undefined ? {} : { data }),
        validateStatus: (s) => s === 308 || (s >= 200 && s < 300),
      });
    const persistedEnd = (range: string | null): number => (range === null ? 0 : Number(/bytes=0-(\d+)/.exec(range)?.[1]) + 1);

    let offset = 0;
    let file: drive_v3.Schema$File | undefined;
    let resets = 0;
    while (file === undefined) {
      const end = Math.min(offset + chunkSize, total);
      try {
        const res = await put({ 'Content-Range': `bytes ${offset}-${end - 1}/${total}` }, content.subarray(offset, end));
        if (res.status === 308) offset = persistedEnd(res.headers.get('range'));
        else file = res.data;
      } catch (error) {
        resets += 1;
        expect((error as { code?: string }).code).toMatch(/ECONNRESET|socket hang up|UND_ERR_SOCKET/i);
        const status = await put({ 'Content-Range': `bytes */${total}` });
        expect(status.status).toBe(308);
        expect(status.headers.get('location')).toBeNull();
        offset = persistedEnd(status.headers.get('range'));
        expect(offset).toBe(2 * MiB); // the reset chunk was applied before the connection dropped
      }
    }
    expect(resets).toBe(1);
    expect(file).toEqual({ id: file.id, name: 'pack-0001.bin', size: String(total), md5Checksum: md5(content) });
    expect(h.fake.files.get(file.id ?? '')?.content.equals(content)).toBe(true);

    const puts = h.fake.log.filter((e) => e.method === 'PUT' && e.path === '/upload/drive/v3/files');
    const dataPuts = puts.filter((e) => !/^bytes \*\//.test(e.headers['content-range'] ?? ''));
    expect(dataPuts.map((e) => e.requestBytes)).toEqual([MiB, MiB, MiB, 123]);
    for (const e of dataPuts.slice(0, -1)) expect(e.requestBytes % (256 * KiB)).toBe(0);
    expect(puts.map((e) => [e.status, e.fault])).toEqual([
      [308, undefined],
      [0, 'reset-after'],
      [308, undefined],
      [308, undefined],
      [200, undefined],
    ]);
  });

  it('rejects a non-final resumable chunk that is not a multiple of 256 KiB, and answers 404 for an expired session', async () => {
    const init = await h.oauth2.request({
      url: `${h.root}upload/drive/v3/files`,
      method: 'POST',
      params: { uploadType: 'resumable' },
      headers: { 'X-Upload-Content-Length': String(MiB), 'Content-Type': 'application/json; charset=UTF-8' },
      data: { name: 'odd.bin' },
    });
    const session = init.headers.get('location') ?? '';
    const bad = await h.oauth2.request({
      url: session,
      method: 'PUT',
      headers: { 'Content-Range': `bytes 0-99999/${MiB}` },
      data: Buffer.alloc(100_000),
      validateStatus: () => true,
    });
    expect(bad.status).toBe(400);
    expect(reasonOf(bad.data)).toBe('badRequest');

    const empty = await h.oauth2.request({
      url: session,
      method: 'PUT',
      headers: { 'Content-Range': `bytes */${MiB}` },
      validateStatus: () => true,
    });
    expect(empty.status).toBe(308);
    expect(empty.headers.get('range')).toBeNull(); // nothing persisted yet: no Range header, as Drive does

    h.fake.faults.add({ method: 'PUT', action: { kind: 'expire-upload-session' } });
    const expired = await h.oauth2.request({
      url: session,
      method: 'PUT',
      headers: { 'Content-Range': `bytes 0-${256 * KiB - 1}/${MiB}` },
      data: Buffer.alloc(256 * KiB),
      validateStatus: () => true,
    });
    expect(expired.status).toBe(404);
    const again = await h.oauth2.request({ url: session, method: 'PUT', headers: { 'Content-Range': `bytes */${MiB}` }, validateStatus: () => true });
    expect(again.status).toBe(404);
    expect(h.fake.uploadSessions()).toEqual([]);
  });

  it('stores a small multipart upload with the checksum Drive reports', async () => {
    const content = Buffer.from('hello, drive\n'.repeat(100));
    const created = await uploadMultipart('small.txt', content);
    expect(created).toMatchObject({ name: 'small.txt', size: String(content.length), md5Checksum: md5(content), parents: [h.fake.rootId] });
    const upload = h.fake.log.filter((e) => e.path === '/upload/drive/v3/files');
    expect(upload).toHaveLength(1);
    expect(upload[0]?.query['uploadType']).toBe('multipart');
    expect(upload[0]?.headers['content-type']).toMatch(/^multipart\/related; boundary=/);

    // Without metadata the SDK falls back to uploadType=media; Drive names such a file "Untitled".
    const bare = await h.drive.files.create(
      { media: { mimeType: 'text/plain', body: Readable.from([Buffer.from('raw')]) }, fields: 'name,mimeType,size' },
      { rootUrl: h.root },
    );
    expect(bare.data).toEqual({ name: 'Untitled', mimeType: 'text/plain', size: '3' });
  });

  it('lists 5 files 2 per page with nextPageToken, and honours the fields selection', async () => {
    const folder = h.fake.createFileDirect({ name: 'data', mimeType: FOLDER_MIME_TYPE });
    for (let i = 0; i < 5; i += 1) h.fake.createFileDirect({ name: `f${i}`, parents: [folder.id], content: `content ${i}` });
    h.fake.createFileDirect({ name: 'elsewhere', content: 'x' });

    const names: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const res = await h.drive.files.list({
        q: `'${folder.id}' in parents and trashed = false`,
        fields: 'nextPageToken, files(id, name, size)',
        pageSize: 2,
        orderBy: 'name',
        ...(pageToken === undefined ? {} : { pageToken }),
      });
      pages += 1;
      for (const f of res.data.files ?? []) {
        expect(Object.keys(f).sort()).toEqual(['id', 'name', 'size']);
        names.push(f.name ?? '');
      }
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken !== undefined);
    expect(pages).toBe(3);
    expect(names).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);

    // Forgetting nextPageToken in `fields` drops it, exactly like Drive.
    const partial = await h.drive.files.list({ q: `'${folder.id}' in parents`, fields: 'files(id)', pageSize: 2 });
    expect(partial.data).toEqual({ files: [expect.any(Object), expect.any(Object)] });
    // Without `fields`, only Drive's default file fields come back.
    const defaults = await h.drive.files.list({ q: `name = 'f1'` });
    expect(defaults.data.files).toEqual([{ kind: 'drive#file', id: expect.any(String), name: 'f1', mimeType: 'application/octet-stream' }]);

    const badQuery = await failure(h.drive.files.list({ q: `name ~ 'x'` }));
    expect(badQuery.status).toBe(400);
    expect(reasonOf(badQuery.response?.data)).toBe('invalid');
    const badFields = await failure(h.drive.files.list({ fields: 'files(id,sizee)' }));
    expect(badFields.status).toBe(400);
  });

  it('serves ranged downloads with 206 and answers 416 for an unsatisfiable range', async () => {
    const content = randomBytes(100);
    const file = h.fake.createFileDirect({ name: 'blob', content });
    const ranged = await h.drive.files.get(
      { fileId: file.id, alt: 'media' },
      { responseType: 'arraybuffer', headers: { Range: 'bytes=10-19' } },
    );
    expect(ranged.status).toBe(206);
    expect(headerOf(ranged, 'content-range')).toBe('bytes 10-19/100');
    expect(Buffer.from(ranged.data as unknown as ArrayBuffer).equals(content.subarray(10, 20))).toBe(true);

    const whole = await h.drive.files.get({ fileId: file.id, alt: 'media' }, { responseType: 'arraybuffer' });
    expect(whole.status).toBe(200);
    expect(Buffer.from(whole.data as unknown as ArrayBuffer).equals(content)).toBe(true);

    const beyond = await failure(
      h.drive.files.get({ fileId: file.id, alt: 'media' }, { responseType: 'arraybuffer', headers: { Range: 'bytes=100-' }, retry: false }),
    );
    expect(beyond.status).toBe(416);
    expect(beyond.response?.headers.get('content-range')).toBe('bytes */100');
  });

  it('deletes permanently with 204, after which the file is 404 notFound', async () => {
    const file = h.fake.createFileDirect({ name: 'doomed', content: 'bye' });
    const res = await h.drive.files.delete({ fileId: file.id });
    expect(res.status).toBe(204);
    expect(h.fake.files.has(file.id)).toBe(false);
    const gone = await failure(h.drive.files.get({ fileId: file.id, fields: 'id' }));
    expect(gone.status).toBe(404);
    expect(reasonOf(gone.response?.data)).toBe('notFound');
    expect(gone.message).toBe(`File not found: ${file.id}.`);
  });

  it('trashes with files.update, counts trash in about.get storageQuota, and empties the trash', async () => {
    const content = randomBytes(5000);
    const created = await uploadMultipart('old-pack', content);
    await uploadMultipart('kept', Buffer.alloc(100));
    const trashed = await h.drive.files.update({ fileId: created.id ?? '', requestBody: { trashed: true }, fields: 'id,trashed' });
    expect(trashed.data).toEqual({ id: created.id, trashed: true });
    expect(h.fake.trashBytes()).toBe(5000);

    const about = await h.drive.about.get({ fields: 'storageQuota' });
    expect(about.data).toEqual({
      storageQuota: { limit: String(15 * 1024 ** 3), usage: '5100', usageInDrive: '5100', usageInDriveTrash: '5000' },
    });
    const visible = await h.drive.files.list({ q: `'root' in parents and trashed = false`, fields: 'files(name)' });
    expect(visible.data.files).toEqual([{ name: 'kept' }]);

    await h.drive.files.emptyTrash({});
    expect(h.fake.files.has(created.id ?? '')).toBe(false);
    h.fake.setQuota(null);
    const unlimited = await h.drive.about.get({ fields: 'storageQuota(limit,usage,usageInDriveTrash)' });
    expect(unlimited.data).toEqual({ storageQuota: { usage: '100', usageInDriveTrash: '0' } });

    const noFields = await failure(h.drive.about.get({}));
    expect(noFields.status).toBe(400);
    expect(reasonOf(noFields.response?.data)).toBe('required');
  });

  it('allows duplicate names in one folder, as Drive does', async () => {
    const folder = h.fake.createFileDirect({ name: 'repo', mimeType: FOLDER_MIME_TYPE });
    const direct = h.fake.createFileDirect({ name: 'config', parents: [folder.id], content: 'a' });
    const viaApi = await uploadMultipart('config', Buffer.from('b'), [folder.id]);
    const res = await h.drive.files.list({
      q: `name = 'config' and '${folder.id}' in parents and trashed = false`,
      fields: 'files(id,md5Checksum)',
    });
    expect(res.data.files?.map((f) => f.id).sort()).toEqual([direct.id, viaApi.id].sort());
    expect(new Set(res.data.files?.map((f) => f.md5Checksum)).size).toBe(2);
  });

  it('lets the SDK retry through 429s, and surfaces a 429 with Retry-After when retries are off', async () => {
    h.fake.faults.add({ method: 'GET', path: '/drive/v3/about', times: 2, action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const res = await h.drive.about.get({ fields: 'storageQuota(usage)' });
    expect(res.status).toBe(200);
    expect(h.fake.log.filter((e) => e.path === '/drive/v3/about').map((e) => [e.status, e.fault])).toEqual([
      [429, 'status'],
      [429, 'status'],
      [200, undefined],
    ]);

    h.fake.faults.add({ method: 'GET', path: /^\/drive\/v3\/files/, action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const err = await failure(h.drive.files.list({ fields: 'files(id)' }, { retry: false }));
    expect(err.status).toBe(429);
    expect(err.response?.headers.get('retry-after')).toBe('7');
    expect(reasonOf(err.response?.data)).toBe('rateLimitExceeded');
    expect(err.message).toBe('Rate Limit Exceeded');

    h.fake.faults.add({ path: '/drive/v3/about', action: { kind: 'status', status: 503 } });
    const backend = await failure(h.drive.about.get({ fields: 'kind' }, { retry: false }));
    expect(backend.status).toBe(503);
    expect(reasonOf(backend.response?.data)).toBe('backendError');
  });

  it("answers 403 storageQuotaExceeded when the quota is full, for uploads and for the 'quota-full' fault", async () => {
    h.fake.setQuota(1000);
    const tooBig = await failure(uploadMultipart('big', Buffer.alloc(1001)));
    expect(tooBig.status).toBe(403);
    expect(reasonOf(tooBig.response?.data)).toBe('storageQuotaExceeded');
    expect(tooBig.message).toBe("The user's Drive storage quota has been exceeded.");

    const init = await failure(
      h.oauth2.request({
        url: `${h.root}upload/drive/v3/files`,
        method: 'POST',
        params: { uploadType: 'resumable' },
        headers: { 'X-Upload-Content-Length': '5000', 'Content-Type': 'application/json; charset=UTF-8' },
        data: { name: 'big' },
      }),
    );
    expect(init.status).toBe(403);
    expect(h.fake.files.size).toBe(0);

    // Without a declared length the quota is enforced on the final chunk, which is then not stored.
    const open = await h.oauth2.request({
      url: `${h.root}upload/drive/v3/files`,
      method: 'POST',
      params: { uploadType: 'resumable' },
      headers: { 'Content-Type': 'application/json; charset=UTF-8' },
      data: { name: 'late' },
    });
    const session = open.headers.get('location') ?? '';
    const put = (range: string, data?: Buffer) =>
      h.oauth2.request({ url: session, method: 'PUT', headers: { 'Content-Range': range }, ...(data === undefined ? {} : { data }), validateStatus: () => true });
    const last = await put('bytes 0-1499/1500', Buffer.alloc(1500));
    expect(last.status).toBe(403);
    expect(reasonOf(last.data)).toBe('storageQuotaExceeded');
    expect((await put('bytes */1500')).headers.get('range')).toBeNull();
    h.fake.setQuota(2000);
    expect((await put('bytes 0-1499/1500', Buffer.alloc(1500))).status).toBe(200);

    h.fake.setQuota(null);
    h.fake.faults.add({ method: 'POST', path: '/drive/v3/files', action: { kind: 'quota-full' } });
    const folder = await failure(h.drive.files.create({ requestBody: { name: 'x', mimeType: FOLDER_MIME_TYPE } }));
    expect(folder.status).toBe(403);
    expect(reasonOf(folder.response?.data)).toBe('storageQuotaExceeded');
  });

  it('surfaces 401 authError for an expired token, and a refresh at the fake token endpoint recovers', async () => {
    await h.drive.about.get({ fields: 'kind' });
    h.fake.tokens.expire(); // the SDK still believes its token is good for an hour
    const err = await failure(h.drive.about.get({ fields: 'kind' }));
    expect(err.status).toBe(401);
    expect(reasonOf(err.response?.data)).toBe('authError');

    await h.oauth2.refreshAccessToken();
    const ok = await h.drive.about.get({ fields: 'kind' });
    expect(ok.data).toEqual({ kind: 'drive#about' });
    expect(h.fake.tokens.issued).toHaveLength(3); // the harness's own issue() + two refreshes
    expect(h.fake.log.entries.map((e) => `${e.path} ${e.status}`)).toEqual([
      '/token 200',
      '/drive/v3/about 200',
      '/drive/v3/about 401',
      '/token 200',
      '/drive/v3/about 200',
    ]);

    const missing = await fetch(`${h.fake.url}/drive/v3/about?fields=kind`);
    expect(missing.status).toBe(401);
    expect(reasonOf(await missing.json())).toBe('required');
  });

  it("refreshes and retries transparently after an 'expire-token' fault when the client forces refresh on failure", async () => {
    await h.fake.close();
    h = await harness({}, { forceRefreshOnFailure: true });
    await h.drive.about.get({ fields: 'kind' });
    h.fake.faults.add({ path: '/drive/v3/files', action: { kind: 'expire-token' } });
    const res = await h.drive.files.list({ fields: 'files(id)' });
    expect(res.status).toBe(200);
    expect(h.fake.log.entries.map((e) => `${e.path} ${e.status}${e.fault === undefined ? '' : ` ${e.fault}`}`)).toEqual([
      '/token 200',
      '/drive/v3/about 200',
      '/drive/v3/files 401 expire-token',
      '/token 200',
      '/drive/v3/files 200',
    ]);
    const badRefresh = await fetch(`${h.fake.url}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'nope', client_id: 'cid' }),
    });
    expect(badRefresh.status).toBe(400);
    expect(await badRefresh.json()).toMatchObject({ error: 'invalid_grant' });
  });

  it('runs the authorization-code flow with PKCE S256 end to end through a loopback redirect', async () => {
    const callback = createServer();
    const received = new Promise<URLSearchParams>((resolve) => {
      callback.on('request', (req, res) => {
        res.end('You may close this window.');
        resolve(new URL(req.url ?? '/', 'http://127.0.0.1').searchParams);
      });
    });
    await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
    const redirectUri = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/oauth2callback`;
    try {
      const client = new googleAuth.OAuth2({
        clientId: 'cli-client',
        clientSecret: 'cli-secret',
        redirectUri,
        endpoints: { oauth2TokenUrl: `${h.root}token`, oauth2AuthBaseUrl: `${h.root}auth` },
      });
      const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
      const authUrl = client.generateAuthUrl({
        access_type: 'offline',
        scope: ['https://www.googleapis.com/auth/drive.file'],
        state: 'xyzzy',
        code_challenge: codeChallenge ?? '',
        code_challenge_method: 'S256' as NonNullable<AuthUrlOptions['code_challenge_method']>,
      });
      expect(authUrl.startsWith(`${h.root}auth?`)).toBe(true);

      const browser = await fetch(authUrl); // follows the 302 to the loopback callback, like a browser
      expect(browser.status).toBe(200);
      const params = await received;
      expect(params.get('state')).toBe('xyzzy');
      const code = params.get('code') ?? '';

      const wrongVerifier = await failure(client.getToken({ code, codeVerifier: `${codeVerifier}x` }));
      expect(wrongVerifier.status).toBe(400);
      expect(wrongVerifier.response?.data).toMatchObject({ error: 'invalid_grant' });
      const reused = await failure(client.getToken({ code, codeVerifier })); // the failed attempt consumed the code
      expect(reused.response?.data).toMatchObject({ error: 'invalid_grant' });

      const next = nextCallback(callback);
      await fetch(authUrl);
      const freshCode = (await next).get('code') ?? '';
      const { tokens } = await client.getToken({ code: freshCode, codeVerifier });
      expect(tokens).toMatchObject({ token_type: 'Bearer', scope: 'https://www.googleapis.com/auth/drive.file' });
      expect(tokens.refresh_token).toEqual(expect.any(String));
      expect(h.fake.tokens.isValid(tokens.access_token ?? '')).toBe(true);

      client.setCredentials(tokens);
      const drive = driveApi({ version: 'v3', auth: client, rootUrl: h.root });
      const about = await drive.about.get({ fields: 'user(me)' });
      expect(about.data).toEqual({ user: { me: true } });
    } finally {
      await new Promise<void>((resolve) => callback.close(() => resolve()));
    }
  });

  it('refuses a non-loopback redirect_uri at the consent endpoint', async () => {
    const res = await fetch(`${h.fake.url}/auth?client_id=c&response_type=code&redirect_uri=${encodeURIComponent('https://evil.example/cb')}`, {
      redirect: 'manual',
    });
    expect(res.status).toBe(400);
  });
});

function nextCallback(server: ReturnType<typeof createServer>): Promise<URLSearchParams> {
  return new Promise((resolve) => {
    server.once('request', (req) => resolve(new URL(req.url ?? '/', 'http://127.0.0.1').searchParams));
  });
}
