// Against the real Google Drive, only when credentials are in the environment (a refresh token for a Desktop OAuth
// client with the drive.file scope); otherwise skipped, saying why. Uses the folder backup-manager-live-test.

import { createHash, randomBytes } from 'node:crypto';
import { MemoryTokenStore, OAuthSession } from '@backup-manager/core-archive';
import { describe, expect, it } from 'vitest';
import { GdriveBackend } from './gdrive-backend.ts';
import { googleDriveOAuthConfig } from './oauth.ts';

const { GDRIVE_CLIENT_ID, GDRIVE_CLIENT_SECRET, GDRIVE_REFRESH_TOKEN } = process.env;
const missing = !GDRIVE_CLIENT_ID || !GDRIVE_CLIENT_SECRET || !GDRIVE_REFRESH_TOKEN;
if (missing) console.info('live Google Drive test skipped: set GDRIVE_CLIENT_ID, GDRIVE_CLIENT_SECRET and GDRIVE_REFRESH_TOKEN to run it');

describe('GdriveBackend on the real Google Drive', () => {
  it.skipIf(missing)('saves, lists, loads a range of, and removes a file', async () => {
    const config = googleDriveOAuthConfig({ clientId: GDRIVE_CLIENT_ID ?? '', clientSecret: GDRIVE_CLIENT_SECRET ?? '' });
    const session = new OAuthSession(config, new MemoryTokenStore({ accessToken: '', refreshToken: GDRIVE_REFRESH_TOKEN ?? '' }));
    const backend = await GdriveBackend.create({ folder: 'backup-manager-live-test', session });
    const data = randomBytes(6 * 1024 * 1024 + 1); // through a resumable session
    const h = { type: 'data' as const, name: createHash('sha256').update(data).digest('hex') };
    try {
      await backend.save(h, data);
      expect(await backend.stat(h)).toEqual({ name: h.name, size: data.length });
      expect(Buffer.from(await backend.load(h, 1000, 50)).equals(data.subarray(1000, 1050))).toBe(true);
      const names: string[] = [];
      for await (const f of backend.list('data')) names.push(f.name);
      expect(names).toContain(h.name);
      expect((await backend.usage()).usedBytes).toBeGreaterThan(0);
    } finally {
      await backend.remove(h);
      await backend.close();
    }
  }, 120_000);
});
