// Drives the real `dropbox` SDK against the fake: uploads (single and session, with a lost response and resume),
// listing with cursors, ranged downloads, metadata, delete, space usage, quota, rate limits, token expiry and the
// authorization-code + PKCE flow, checking every error has Dropbox's shape as the SDK surfaces it.
import { createHash } from 'node:crypto';
import { Dropbox, DropboxAuth, DropboxResponseError } from 'dropbox';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dropboxFakeFetch } from './client.ts';
import { dropboxContentHash } from './content-hash.ts';
import { startDropboxFake } from './server.ts';
import type { DropboxFake } from './server.ts';

const MiB = 1024 * 1024;
const CLIENT_ID = 'fake-app-key';

interface DropboxErrorBody {
  error_summary: string;
  error: Record<string, unknown>;
}

interface CaughtError {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or the raw text for non-JSON answers. */
  body: unknown;
}

/** Awaits a call that must fail with an HTTP error and returns what the SDK surfaced. */
async function failure(call: Promise<unknown>): Promise<CaughtError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof DropboxResponseError) {
      return { status: error.status, headers: error.headers as Headers, body: error.error };
    }
    throw error;
  }
  throw new Error('expected the call to fail');
}

function routeErrorOf(caught: CaughtError): DropboxErrorBody {
  expect(caught.body).toHaveProperty('error_summary');
  return caught.body as DropboxErrorBody;
}

/** Dropbox's published content-hash recipe, written independently of the fake's implementation. */
function referenceContentHash(data: Buffer): string {
  const digests: Buffer[] = [];
  for (let i = 0; i < data.length; i += 4 * MiB) {
    digests.push(createHash('sha256').update(data.subarray(i, i + 4 * MiB)).digest());
  }
  return createHash('sha256').update(Buffer.concat(digests)).digest('hex');
}

function patterned(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

let fake: DropboxFake;
let auth: DropboxAuth;
let dbx: Dropbox;

beforeEach(async () => {
  fake = await startDropboxFake({ quotaBytes: 64 * MiB });
  // What a linked account looks like to the tool: an app key and a refresh token; the SDK fetches access tokens.
  const { refresh_token } = fake.tokens.issue();
  auth = new DropboxAuth({ clientId: CLIENT_ID, refreshToken: refresh_token, fetch: dropboxFakeFetch(fake.url) });
  dbx = new Dropbox({ auth });
});

afterEach(async () => {
  await fake.close();
});

describe('content hash', () => {
  it('matches the 4 MiB block recipe across block boundaries and for the empty file', () => {
    const data = patterned(9 * MiB + 123, 7);
    expect(dropboxContentHash(data)).toBe(referenceContentHash(data));
    expect(dropboxContentHash(Buffer.alloc(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('files/upload', () => {
  it('stores a small file and returns FileMetadata with Dropbox fields', async () => {
    const data = Buffer.from('hello backup');
    const { status, result } = await dbx.filesUpload({
      path: '/Repo/Data/pack-1.bin',
      contents: data,
      mode: { '.tag': 'add' },
      autorename: false,
      mute: true,
    });
    expect(status).toBe(200);
    expect(result).toMatchObject({
      name: 'pack-1.bin',
      path_lower: '/repo/data/pack-1.bin',
      path_display: '/Repo/Data/pack-1.bin',
      size: data.length,
      is_downloadable: true,
      content_hash: referenceContentHash(data),
    });
    expect(result.id).toMatch(/^id:/);
    expect(result.rev).toMatch(/^[0-9a-f]{9,}$/);
    expect(result.server_modified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(fake.files.get('/repo/data/pack-1.bin')?.content.equals(data)).toBe(true);
    // Parent folders are created implicitly, keeping the caller's casing.
    expect(fake.folders.get('/repo/data')?.path_display).toBe('/Repo/Data');
  });

  it('is case-insensitive and case-preserving', async () => {
    await dbx.filesUpload({ path: '/Repo/Data/a.bin', contents: Buffer.from('a') });
    const { result } = await dbx.filesUpload({ path: '/REPO/data/B.bin', contents: Buffer.from('b') });
    expect(result.path_lower).toBe('/repo/data/b.bin');
    expect(result.path_display).toBe('/Repo/Data/B.bin');
    const meta = await dbx.filesGetMetadata({ path: '/rePO/DATA/b.BIN' });
    expect(meta.result).toMatchObject({ '.tag': 'file', name: 'B.bin', path_display: '/Repo/Data/B.bin' });
  });

  it('applies WriteMode: add conflicts on different content, not on identical content; overwrite keeps the id', async () => {
    const first = await dbx.filesUpload({ path: '/r/x.bin', contents: Buffer.from('one'), mode: { '.tag': 'add' } });
    const same = await dbx.filesUpload({ path: '/r/x.bin', contents: Buffer.from('one'), mode: { '.tag': 'add' } });
    expect(same.result.rev).toBe(first.result.rev);

    const conflict = routeErrorOf(
      await failure(dbx.filesUpload({ path: '/r/X.bin', contents: Buffer.from('two'), mode: { '.tag': 'add' } })),
    );
    expect(conflict.error_summary).toMatch(/^path\/conflict\/file\/\.+$/);
    expect(conflict.error).toMatchObject({ '.tag': 'path', reason: { '.tag': 'conflict', conflict: { '.tag': 'file' } } });
    expect(conflict.error['upload_session_id']).toEqual(expect.any(String));

    const over = await dbx.filesUpload({ path: '/r/x.bin', contents: Buffer.from('two'), mode: { '.tag': 'overwrite' } });
    expect(over.result.id).toBe(first.result.id);
    expect(over.result.rev).not.toBe(first.result.rev);

    const renamed = await dbx.filesUpload({ path: '/r/x.bin', contents: Buffer.from('three'), autorename: true });
    expect(renamed.result.path_display).toBe('/r/x (1).bin');
  });

  it('rejects a file where a folder is and a path below a file', async () => {
    await dbx.filesCreateFolderV2({ path: '/r/dir' });
    const onFolder = routeErrorOf(await failure(dbx.filesUpload({ path: '/r/dir', contents: Buffer.from('x') })));
    expect(onFolder.error).toMatchObject({ reason: { '.tag': 'conflict', conflict: { '.tag': 'folder' } } });
    await dbx.filesUpload({ path: '/r/file', contents: Buffer.from('x') });
    const below = routeErrorOf(await failure(dbx.filesUpload({ path: '/r/file/child', contents: Buffer.from('y') })));
    expect(below.error).toMatchObject({ reason: { '.tag': 'conflict', conflict: { '.tag': 'file_ancestor' } } });
  });

  it('answers insufficient_space when the file does not fit the quota', async () => {
    fake.setQuota(10);
    const caught = routeErrorOf(await failure(dbx.filesUpload({ path: '/r/big.bin', contents: Buffer.alloc(11) })));
    expect(caught.error_summary).toMatch(/^path\/insufficient_space\//);
    expect(caught.error).toMatchObject({ '.tag': 'path', reason: { '.tag': 'insufficient_space' } });
  });

  it('answers malformed arguments with a plain-text 400, like Dropbox', async () => {
    const caught = await failure(dbx.filesUpload({ path: 'no-leading-slash', contents: Buffer.from('x') }));
    expect(caught.status).toBe(400);
    expect(caught.body).toMatch(/^Error in call to API function "files\/upload": HTTP header "Dropbox-API-Arg": path: /);
  });
});

describe('upload sessions', () => {
  it('uploads ~3 MiB in 1 MiB appends and resumes at correct_offset after a lost append response', async () => {
    const data = patterned(3 * MiB + 4321, 3);
    const chunk = (i: number): Buffer => data.subarray(i * MiB, Math.min((i + 1) * MiB, data.length));

    const start = await dbx.filesUploadSessionStart({ close: false, contents: chunk(0) });
    const sessionId = start.result.session_id;
    expect(sessionId).toMatch(/^pid_upload_session:/);

    // The second append is applied by the server, but the connection drops before the answer.
    fake.faults.add({ path: '/2/files/upload_session/append_v2', nth: 1, action: { kind: 'reset-after' } });
    await expect(
      dbx.filesUploadSessionAppendV2({ cursor: { session_id: sessionId, offset: MiB }, close: false, contents: chunk(1) }),
    ).rejects.toThrow();

    // The retry of the same chunk learns the data already arrived.
    const retry = routeErrorOf(
      await failure(
        dbx.filesUploadSessionAppendV2({ cursor: { session_id: sessionId, offset: MiB }, close: false, contents: chunk(1) }),
      ),
    );
    expect(retry.error_summary).toMatch(/^incorrect_offset\//);
    expect(retry.error).toEqual({ '.tag': 'incorrect_offset', correct_offset: 2 * MiB });
    const resumeAt = retry.error['correct_offset'] as number;

    const appended = await dbx.filesUploadSessionAppendV2({
      cursor: { session_id: sessionId, offset: resumeAt },
      close: false,
      contents: data.subarray(resumeAt, 3 * MiB),
    });
    expect(appended.result).toBeNull();
    const finished = await dbx.filesUploadSessionFinish({
      cursor: { session_id: sessionId, offset: 3 * MiB },
      commit: { path: '/repo/data/big.pack', mode: { '.tag': 'add' }, autorename: false, mute: true },
      contents: data.subarray(3 * MiB),
    });
    expect(finished.result).toMatchObject({ size: data.length, content_hash: referenceContentHash(data) });
    expect(fake.files.get('/repo/data/big.pack')?.content.equals(data)).toBe(true);

    const appendLog = fake.log.filter((e) => e.path === '/2/files/upload_session/append_v2');
    expect(appendLog.map((e) => e.status)).toEqual([0, 409, 200]);
    expect(appendLog[0]?.fault).toBe('reset-after');
  });

  it('reports an unknown or expired session as not_found', async () => {
    const unknown = routeErrorOf(
      await failure(
        dbx.filesUploadSessionAppendV2({ cursor: { session_id: 'pid_upload_session:nope', offset: 0 }, contents: Buffer.from('x') }),
      ),
    );
    expect(unknown.error).toEqual({ '.tag': 'not_found' });

    const start = await dbx.filesUploadSessionStart({ contents: Buffer.from('abc') });
    fake.faults.add({ path: '/2/files/upload_session/finish', action: { kind: 'expire-upload-session' } });
    const expired = routeErrorOf(
      await failure(
        dbx.filesUploadSessionFinish({
          cursor: { session_id: start.result.session_id, offset: 3 },
          commit: { path: '/r/f.bin', mode: { '.tag': 'add' } },
          contents: Buffer.alloc(0),
        }),
      ),
    );
    expect(expired.error_summary).toMatch(/^lookup_failed\/not_found\//);
    expect(expired.error).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'not_found' } });
  });

  it('reports a wrong finish offset as lookup_failed/incorrect_offset and refuses appends after close', async () => {
    const start = await dbx.filesUploadSessionStart({ close: true, contents: Buffer.from('abcd') });
    const id = start.result.session_id;
    const closed = routeErrorOf(
      await failure(dbx.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 4 }, contents: Buffer.from('e') })),
    );
    expect(closed.error).toEqual({ '.tag': 'closed' });
    const wrong = routeErrorOf(
      await failure(
        dbx.filesUploadSessionFinish({
          cursor: { session_id: id, offset: 2 },
          commit: { path: '/r/g.bin' },
          contents: Buffer.alloc(0),
        }),
      ),
    );
    expect(wrong.error).toEqual({ '.tag': 'lookup_failed', lookup_failed: { '.tag': 'incorrect_offset', correct_offset: 4 } });
  });

  it('assembles a concurrent session from 4 MiB-aligned pieces appended out of order', async () => {
    const data = patterned(4 * MiB + 10, 5);
    const start = await dbx.filesUploadSessionStart({ session_type: { '.tag': 'concurrent' } });
    const id = start.result.session_id;
    // The closing (last) piece lands first; the first piece still fits afterwards.
    await dbx.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 4 * MiB }, close: true, contents: data.subarray(4 * MiB) });
    const unaligned = routeErrorOf(
      await failure(dbx.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 10 }, contents: data.subarray(0, 10) })),
    );
    expect(unaligned.error).toEqual({ '.tag': 'concurrent_session_invalid_offset' });
    await dbx.filesUploadSessionAppendV2({ cursor: { session_id: id, offset: 0 }, contents: data.subarray(0, 4 * MiB) });
    const done = await dbx.filesUploadSessionFinish({
      cursor: { session_id: id, offset: data.length },
      commit: { path: '/repo/concurrent.bin' },
    });
    expect(done.result).toMatchObject({ size: data.length, content_hash: referenceContentHash(data) });
  });

  it('expires sessions after 7 days on the injected clock', async () => {
    let clock = new Date('2030-01-01T00:00:00Z');
    const timed = await startDropboxFake({ now: () => clock });
    try {
      const timedAuth = new DropboxAuth({
        clientId: CLIENT_ID,
        refreshToken: timed.tokens.issue().refresh_token,
        fetch: dropboxFakeFetch(timed.url),
      });
      const timedDbx = new Dropbox({ auth: timedAuth });
      const start = await timedDbx.filesUploadSessionStart({ contents: Buffer.from('abc') });
      clock = new Date(clock.getTime() + 7 * 24 * 3600 * 1000);
      await timedAuth.refreshAccessToken(); // the old access token expired on the fake's clock too
      const caught = routeErrorOf(
        await failure(
          timedDbx.filesUploadSessionAppendV2({ cursor: { session_id: start.result.session_id, offset: 3 }, contents: Buffer.from('d') }),
        ),
      );
      expect(caught.error).toEqual({ '.tag': 'not_found' });
    } finally {
      await timed.close();
    }
  });

  it('answers insufficient_space on finish (quota and quota-full fault) and lets the commit be retried', async () => {
    const data = patterned(2 * MiB, 9);
    const start = await dbx.filesUploadSessionStart({ contents: data });
    const id = start.result.session_id;
    const finish = (): Promise<unknown> =>
      dbx.filesUploadSessionFinish({
        cursor: { session_id: id, offset: data.length },
        commit: { path: '/repo/q.bin', mode: { '.tag': 'add' }, autorename: false, mute: true },
        contents: Buffer.alloc(0),
      });

    fake.faults.add({ path: '/2/files/upload_session/finish', action: { kind: 'quota-full' } });
    const injected = routeErrorOf(await failure(finish()));
    expect(injected.error).toEqual({ '.tag': 'path', path: { '.tag': 'insufficient_space' } });

    fake.setQuota(MiB);
    const real = routeErrorOf(await failure(finish()));
    expect(real.error_summary).toMatch(/^path\/insufficient_space\//);
    expect(fake.files.has('/repo/q.bin')).toBe(false);

    fake.setQuota(64 * MiB);
    await expect(finish()).resolves.toMatchObject({ result: { size: data.length } });
  });
});

describe('files/list_folder', () => {
  it('pages 5 files with limit 2 through list_folder/continue and then reports later changes', async () => {
    for (let i = 1; i <= 5; i++) fake.putFile(`/repo/list/f${i}.bin`, `content ${i}`);
    fake.putFile('/repo/list/sub/deep.bin', 'deep');

    const first = await dbx.filesListFolder({ path: '/Repo/List', limit: 2 });
    expect(first.result.entries).toHaveLength(2);
    expect(first.result.has_more).toBe(true);
    const names = first.result.entries.map((e) => e.name);
    let cursor = first.result.cursor;
    let hasMore = first.result.has_more;
    while (hasMore) {
      const next = await dbx.filesListFolderContinue({ cursor });
      expect(next.result.entries.length).toBeLessThanOrEqual(2);
      names.push(...next.result.entries.map((e) => e.name));
      cursor = next.result.cursor;
      hasMore = next.result.has_more;
    }
    expect(names.sort()).toEqual(['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin', 'f5.bin', 'sub']);
    expect(fake.log.filter((e) => e.path === '/2/files/list_folder/continue')).toHaveLength(2);

    await dbx.filesUpload({ path: '/repo/list/f6.bin', contents: Buffer.from('6') });
    await dbx.filesDeleteV2({ path: '/repo/list/f1.bin' });
    const changes = await dbx.filesListFolderContinue({ cursor });
    expect(changes.result.entries).toEqual([
      { '.tag': 'deleted', name: 'f1.bin', path_lower: '/repo/list/f1.bin', path_display: '/repo/list/f1.bin' },
      expect.objectContaining({ '.tag': 'file', name: 'f6.bin' }),
    ]);
  });

  it('lists recursively, tags entries, and knows the root is ""', async () => {
    fake.putFile('/a/b/c.bin', 'c');
    const all = await dbx.filesListFolder({ path: '', recursive: true });
    expect(all.result.entries.map((e) => [e['.tag'], e.path_lower])).toEqual([
      ['folder', '/a'],
      ['folder', '/a/b'],
      ['file', '/a/b/c.bin'],
    ]);
    const slash = await failure(dbx.filesListFolder({ path: '/' }));
    expect(slash.status).toBe(400);
    const missing = routeErrorOf(await failure(dbx.filesListFolder({ path: '/nope' })));
    expect(missing.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });
  });

  it('answers reset for an invalidated cursor', async () => {
    fake.putFile('/x/1', '1');
    const listed = await dbx.filesListFolder({ path: '/x' });
    fake.resetCursors();
    const caught = routeErrorOf(await failure(dbx.filesListFolderContinue({ cursor: listed.result.cursor })));
    expect(caught.error).toEqual({ '.tag': 'reset' });
  });
});

describe('files/download', () => {
  it('returns the bytes with Dropbox-API-Result, 206 for a Range and 416 past the end', async () => {
    const data = Buffer.from('0123456789abcdef');
    fake.putFile('/repo/d.bin', data);

    const full = await dbx.filesDownload({ path: '/REPO/d.bin' });
    expect(full.status).toBe(200);
    expect(full.result).toMatchObject({ name: 'd.bin', size: 16, content_hash: referenceContentHash(data) });
    expect(Buffer.from(full.result.fileBinary ?? []).equals(data)).toBe(true);

    const part = await dbx.filesDownload({ path: '/repo/d.bin' }, { extraHeaders: { Range: 'bytes=4-9' } });
    expect(part.status).toBe(206);
    expect((part.headers as Headers).get('content-range')).toBe('bytes 4-9/16');
    expect(Buffer.from(part.result.fileBinary ?? []).toString()).toBe('456789');
    expect(part.result.size).toBe(16);

    const tail = await dbx.filesDownload({ path: '/repo/d.bin' }, { extraHeaders: { Range: 'bytes=-3' } });
    expect(Buffer.from(tail.result.fileBinary ?? []).toString()).toBe('def');

    const beyond = await failure(dbx.filesDownload({ path: '/repo/d.bin' }, { extraHeaders: { Range: 'bytes=16-20' } }));
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */16');

    const folder = routeErrorOf(await failure(dbx.filesDownload({ path: '/repo' })));
    expect(folder.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_file' } });
  });

  it('round-trips non-ASCII names through the header-borne JSON', async () => {
    await dbx.filesUpload({ path: '/repo/ünïcode-名.bin', contents: Buffer.from('u') });
    const got = await dbx.filesDownload({ path: '/repo/ünïcode-名.bin' });
    expect(got.result.name).toBe('ünïcode-名.bin');
  });
});

describe('metadata, folders, delete, space usage', () => {
  it('get_metadata returns tagged file and folder metadata and path/not_found', async () => {
    fake.putFile('/repo/m.bin', 'm');
    await expect(dbx.filesGetMetadata({ path: '/repo' })).resolves.toMatchObject({
      result: { '.tag': 'folder', name: 'repo', path_lower: '/repo' },
    });
    const file = await dbx.filesGetMetadata({ path: '/repo/m.bin' });
    expect(file.result).toMatchObject({ '.tag': 'file', size: 1 });
    const byId = await dbx.filesGetMetadata({ path: (file.result as { id: string }).id });
    expect(byId.result.path_lower).toBe('/repo/m.bin');
    const missing = routeErrorOf(await failure(dbx.filesGetMetadata({ path: '/repo/none' })));
    expect(missing.error_summary).toMatch(/^path\/not_found\/\.+$/);
    expect(missing.error).toEqual({ '.tag': 'path', path: { '.tag': 'not_found' } });
  });

  it('create_folder_v2 creates folders and reports conflicts', async () => {
    const created = await dbx.filesCreateFolderV2({ path: '/Repo/Data/00', autorename: false });
    expect(created.result.metadata).toMatchObject({ name: '00', path_display: '/Repo/Data/00', path_lower: '/repo/data/00' });
    const again = routeErrorOf(await failure(dbx.filesCreateFolderV2({ path: '/repo/data/00' })));
    expect(again.error).toEqual({ '.tag': 'path', path: { '.tag': 'conflict', conflict: { '.tag': 'folder' } } });
  });

  it('delete_v2 returns the deleted metadata; deleting again is path_lookup/not_found; permanently_delete is Business-only', async () => {
    fake.putFile('/repo/gone.bin', 'bye');
    const deleted = await dbx.filesDeleteV2({ path: '/repo/gone.bin' });
    expect(deleted.result.metadata).toMatchObject({ '.tag': 'file', name: 'gone.bin' });
    expect(fake.files.has('/repo/gone.bin')).toBe(false);
    const again = routeErrorOf(await failure(dbx.filesDeleteV2({ path: '/repo/gone.bin' })));
    expect(again.error).toEqual({ '.tag': 'path_lookup', path_lookup: { '.tag': 'not_found' } });

    fake.putFile('/repo/dir/a', 'a');
    await dbx.filesDeleteV2({ path: '/repo/dir' });
    expect(fake.files.has('/repo/dir/a')).toBe(false);

    fake.putFile('/repo/p.bin', 'p');
    const permanent = await failure(dbx.filesPermanentlyDelete({ path: '/repo/p.bin' }));
    expect(permanent.status).toBe(403);
    expect(routeErrorOf(permanent).error).toEqual({ '.tag': 'invalid_account_type', invalid_account_type: { '.tag': 'endpoint' } });
  });

  it('users/get_space_usage reports used bytes and the individual allocation', async () => {
    fake.putFile('/a.bin', Buffer.alloc(1000));
    fake.putFile('/b.bin', Buffer.alloc(234));
    const usage = await dbx.usersGetSpaceUsage();
    expect(usage.result).toEqual({ used: 1234, allocation: { '.tag': 'individual', allocated: 64 * MiB } });
  });
});

describe('rate limiting', () => {
  it('injected 429 carries Retry-After and a too_many_requests RateLimitError the SDK exposes', async () => {
    fake.faults.add({ path: '/2/files/list_folder', action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const caught = await failure(dbx.filesListFolder({ path: '' }));
    expect(caught.status).toBe(429);
    expect(caught.headers.get('retry-after')).toBe('7');
    expect(routeErrorOf(caught)).toEqual({
      error_summary: expect.stringMatching(/^too_many_requests\//),
      error: { reason: { '.tag': 'too_many_requests' }, retry_after: 7 },
    });
    await expect(dbx.filesListFolder({ path: '' })).resolves.toMatchObject({ status: 200 });
  });

  it('rateLimit() models write contention with too_many_write_operations', async () => {
    fake.rateLimit({ path: '/2/files/upload', reason: 'too_many_write_operations', retryAfterSeconds: 2 });
    const caught = await failure(dbx.filesUpload({ path: '/w.bin', contents: Buffer.from('w') }));
    expect(caught.status).toBe(429);
    expect(caught.headers.get('retry-after')).toBe('2');
    expect(routeErrorOf(caught).error).toEqual({ reason: { '.tag': 'too_many_write_operations' }, retry_after: 2 });
    await expect(dbx.filesUpload({ path: '/w.bin', contents: Buffer.from('w') })).resolves.toMatchObject({ status: 200 });
  });
});

describe('authentication', () => {
  it('expired access token → 401 expired_access_token → refresh at /oauth2/token → call works again', async () => {
    await dbx.usersGetSpaceUsage(); // first call: the SDK fetches an access token with the refresh token
    fake.tokens.expire();
    const caught = await failure(dbx.usersGetSpaceUsage());
    expect(caught.status).toBe(401);
    expect(routeErrorOf(caught)).toEqual({
      error_summary: expect.stringMatching(/^expired_access_token\//),
      error: { '.tag': 'expired_access_token' },
    });
    await auth.refreshAccessToken();
    await expect(dbx.usersGetSpaceUsage()).resolves.toMatchObject({ status: 200 });
    const tokenCalls = fake.log.filter((e) => e.path === '/oauth2/token');
    expect(tokenCalls).toHaveLength(2);
    expect(tokenCalls[0]?.query['grant_type']).toBe('refresh_token');
    expect(tokenCalls[0]?.query['refresh_token']).toBe('[redacted]');
  });

  it('the expire-token fault expires the token in use', async () => {
    await dbx.usersGetSpaceUsage();
    fake.faults.add({ path: '/2/files/list_folder', action: { kind: 'expire-token' } });
    const caught = await failure(dbx.filesListFolder({ path: '' }));
    expect(caught.status).toBe(401);
    expect(routeErrorOf(caught).error).toEqual({ '.tag': 'expired_access_token' });
    await auth.refreshAccessToken();
    await expect(dbx.filesListFolder({ path: '' })).resolves.toMatchObject({ status: 200 });
  });

  it('an unknown token is invalid_access_token and a bad refresh token is invalid_grant', async () => {
    const stranger = new Dropbox({ accessToken: 'not-a-token', fetch: dropboxFakeFetch(fake.url) });
    const caught = await failure(stranger.usersGetSpaceUsage());
    expect(caught.status).toBe(401);
    expect(routeErrorOf(caught).error).toEqual({ '.tag': 'invalid_access_token' });

    const revoked = new Dropbox({ clientId: CLIENT_ID, refreshToken: 'fake-rt-unknown', fetch: dropboxFakeFetch(fake.url) });
    const refused = await failure(revoked.usersGetSpaceUsage());
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'invalid_grant' });
  });

  it('authorization code + PKCE S256: authorize redirects to the loopback URI, the token endpoint checks the verifier', async () => {
    const redirectUri = 'http://127.0.0.1:53682/callback';
    const pkce = new DropboxAuth({ clientId: CLIENT_ID, fetch: dropboxFakeFetch(fake.url) });
    const authUrl = String(await pkce.getAuthenticationUrl(redirectUri, 'st4te', 'code', 'offline', undefined, 'none', true));
    expect(authUrl).toContain('code_challenge_method=S256');

    const onFake = new URL(authUrl);
    const answer = await fetch(`${fake.url}${onFake.pathname}${onFake.search}`, { redirect: 'manual' });
    expect(answer.status).toBe(302);
    const location = new URL(answer.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
    expect(location.searchParams.get('state')).toBe('st4te');
    const code = location.searchParams.get('code') ?? '';

    // A verifier that does not hash to the challenge is refused.
    const wrongVerifier = new DropboxAuth({ clientId: CLIENT_ID, fetch: dropboxFakeFetch(fake.url) });
    wrongVerifier.setCodeVerifier('x'.repeat(64));
    const refused = await failure(wrongVerifier.getAccessTokenFromCode(redirectUri, code));
    expect(refused.body).toMatchObject({ error: 'invalid_grant' });

    // Codes are single-use, so run the flow again for the real exchange.
    const again = new URL(String(await pkce.getAuthenticationUrl(redirectUri, 's2', 'code', 'offline', undefined, 'none', true)));
    const second = await fetch(`${fake.url}${again.pathname}${again.search}`, { redirect: 'manual' });
    const secondCode = new URL(second.headers.get('location') ?? '').searchParams.get('code') ?? '';
    const exchanged = await pkce.getAccessTokenFromCode(redirectUri, secondCode);
    const tokens = exchanged.result as { access_token: string; refresh_token?: string; token_type: string; expires_in: number };
    expect(tokens).toMatchObject({ token_type: 'bearer', expires_in: 14_400 });
    expect(tokens.refresh_token).toEqual(expect.any(String));

    const linked = new Dropbox({ clientId: CLIENT_ID, refreshToken: tokens.refresh_token ?? '', fetch: dropboxFakeFetch(fake.url) });
    await expect(linked.usersGetSpaceUsage()).resolves.toMatchObject({ status: 200 });
  });

  it('checks that content routes are called on the content host', async () => {
    const { access_token } = fake.tokens.issue();
    const wrongHost = await fetch(`${fake.url}/2/files/upload`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${access_token}`,
        'content-type': 'application/octet-stream',
        'dropbox-api-arg': JSON.stringify({ path: '/h.bin' }),
        'x-fake-host': 'api.dropboxapi.com',
      },
      body: 'h',
    });
    expect(wrongHost.status).toBe(400);
    expect(await wrongHost.text()).toContain('content.dropboxapi.com');
  });
});
