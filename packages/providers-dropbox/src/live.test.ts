// Against the real Dropbox, only when credentials are in the environment: DROPBOX_APP_KEY, DROPBOX_REFRESH_TOKEN
// (from `bam auth dropbox`, or the app console) and, for apps that are not PKCE-only, DROPBOX_APP_SECRET. Works in a
// fresh folder /backup-manager-live-test/<random> and deletes it afterwards.
import { randomBytes } from 'node:crypto';
import { MemoryTokenStore, OAuthSession, isBackupError } from '@backup-manager/core-archive';
import type { FileInfo } from '@backup-manager/core-archive';
import { Dropbox } from 'dropbox';
import { expect, it } from 'vitest';
import { DropboxBackend } from './dropbox-backend.ts';
import { dataFile, dropboxOAuthConfig, MiB, sameBytes } from '../test/support.ts';

const appKey = process.env['DROPBOX_APP_KEY'];
const refreshToken = process.env['DROPBOX_REFRESH_TOKEN'];
const appSecret = process.env['DROPBOX_APP_SECRET'];
const missing = !appKey || !refreshToken;

it.skipIf(missing)(
  'live Dropbox round trip (skipped unless DROPBOX_APP_KEY and DROPBOX_REFRESH_TOKEN are set)',
  async () => {
    const config = { ...dropboxOAuthConfig(appKey ?? ''), ...(appSecret ? { clientSecret: appSecret } : {}) };
    // An empty access token makes the session redeem the refresh token first.
    const session = new OAuthSession(config, new MemoryTokenStore({ accessToken: '', refreshToken: refreshToken ?? '' }));
    const root = `/backup-manager-live-test/${randomBytes(6).toString('hex')}`;
    const backend = await DropboxBackend.create({ root, session, sessionChunkBytes: 4 * MiB });
    try {
      const small = dataFile(10_000, 1);
      const large = dataFile(9 * MiB + 7, 2); // upload session: start, append, append, finish
      await backend.save(small.h, small.data);
      await backend.save(large.h, large.data);
      expect(await backend.stat(large.h)).toEqual({ name: large.h.name, size: large.data.length });
      expect(sameBytes(await backend.load(large.h), large.data)).toBe(true);
      expect(sameBytes(await backend.load(large.h, 5 * MiB, 1000), large.data.subarray(5 * MiB, 5 * MiB + 1000))).toBe(true);
      await expect(backend.load(small.h, 9_990, 11)).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      const listed: FileInfo[] = [];
      for await (const info of backend.list('data')) listed.push(info);
      expect(listed.map((f) => f.name).sort()).toEqual([small.h.name, large.h.name].sort());
      const usage = await backend.usage();
      expect(usage.usedBytes).toBeGreaterThan(0);
      await backend.remove(small.h);
      await backend.remove(small.h);
      await expect(backend.stat(small.h)).rejects.toSatisfy((e: unknown) => isBackupError(e, 'NOT_FOUND'));
    } finally {
      await backend.close();
      const dbx = new Dropbox({ accessToken: await session.accessToken() });
      await dbx.filesDeleteV2({ path: root }).catch(() => undefined);
    }
  },
  120_000,
);
