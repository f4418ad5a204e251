// Against the real OneDrive, only when credentials are in the environment: ONEDRIVE_CLIENT_ID (the app
// registration's application id) and ONEDRIVE_REFRESH_TOKEN (from `bam auth onedrive`), and optionally
// ONEDRIVE_TENANT (default common) and ONEDRIVE_CLIENT_SECRET (confidential registrations only). Works in a fresh
// folder backup-manager-live-test/<random> and deletes it afterwards.
import { randomBytes } from 'node:crypto';
import { MemoryTokenStore, OAuthSession, isBackupError } from '@backup-manager/core-archive';
import { Client } from '@microsoft/microsoft-graph-client';
import { expect, it } from 'vitest';
import { OnedriveBackend } from './onedrive-backend.ts';
import { onedriveOAuthConfig } from './oauth.ts';
import { FRAGMENT_UNIT, MiB, collect, dataFile, sameBytes } from '../test/support.ts';

const clientId = process.env['ONEDRIVE_CLIENT_ID'];
const refreshToken = process.env['ONEDRIVE_REFRESH_TOKEN'];
const tenant = process.env['ONEDRIVE_TENANT'];
const clientSecret = process.env['ONEDRIVE_CLIENT_SECRET'];
const missing = !clientId || !refreshToken;

it.skipIf(missing)(
  'live OneDrive round trip (skipped unless ONEDRIVE_CLIENT_ID and ONEDRIVE_REFRESH_TOKEN are set)',
  async () => {
    const config = onedriveOAuthConfig({
      clientId: clientId ?? '',
      ...(tenant ? { tenant } : {}),
      ...(clientSecret ? { clientSecret } : {}),
    });
    // An empty access token makes the session redeem the refresh token first.
    const session = new OAuthSession(config, new MemoryTokenStore({ accessToken: '', refreshToken: refreshToken ?? '' }));
    const parent = 'backup-manager-live-test';
    const root = `${parent}/${randomBytes(6).toString('hex')}`;
    const backend = await OnedriveBackend.create({ root, session, fragmentBytes: 16 * FRAGMENT_UNIT });
    try {
      const small = dataFile(10_000, 1);
      const large = dataFile(12 * MiB + 7, 2); // upload session: 5 MiB, 5 MiB, 2 MiB + 7
      await backend.save(small.h, small.data);
      await backend.save(large.h, large.data);
      expect(await backend.stat(large.h)).toEqual({ name: large.h.name, size: large.data.length });
      expect(sameBytes(await backend.load(large.h), large.data)).toBe(true);
      expect(sameBytes(await backend.load(large.h, 5 * MiB, 1000), large.data.subarray(5 * MiB, 5 * MiB + 1000))).toBe(true);
      await expect(backend.load(small.h, 9_990, 11)).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      expect((await collect(backend.list('data'))).map((f) => f.name).sort()).toEqual([small.h.name, large.h.name].sort());
      const usage = await backend.usage();
      expect(usage.usedBytes).toBeGreaterThan(0);
      await backend.remove(small.h);
      await backend.remove(small.h);
      await expect(backend.stat(small.h)).rejects.toSatisfy((e: unknown) => isBackupError(e, 'NOT_FOUND'));
    } finally {
      await backend.close();
      const token = await session.accessToken();
      const graph = Client.init({ authProvider: (done) => done(null, token) });
      await graph.api(`/me/drive/root:/${root}`).delete().catch(() => undefined);
    }
  },
  180_000,
);
