// The identity-platform settings `bam auth onedrive` signs in with, and a refresh through them against the fake.
import { loopbackFetch, startOnedriveFake } from '@backup-manager/cloud-fakes';
import { MemoryTokenStore, OAuthSession } from '@backup-manager/core-archive';
import { describe, expect, it } from 'vitest';
import { ONEDRIVE_SCOPES, onedriveOAuthConfig } from './oauth.ts';

describe('onedriveOAuthConfig', () => {
  it('points at the common tenant of the Microsoft identity platform with Files.ReadWrite and offline_access', () => {
    expect(onedriveOAuthConfig({ clientId: 'app' })).toEqual({
      provider: 'onedrive',
      clientId: 'app',
      authorizationEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
      tokenEndpoint: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
      scopes: ['Files.ReadWrite', 'offline_access'],
    });
    expect(ONEDRIVE_SCOPES).toContain('offline_access');
  });

  it('takes a tenant, an authority and a secret for confidential registrations', () => {
    const config = onedriveOAuthConfig({ clientId: 'app', tenant: 'contoso.onmicrosoft.com', authorityUrl: 'https://login.microsoftonline.us/', clientSecret: 's' });
    expect(config.tokenEndpoint).toBe('https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token');
    expect(config.clientSecret).toBe('s');
  });

  it('redeems a refresh token at the token endpoint it names', async () => {
    const fake = await startOnedriveFake();
    try {
      const { refresh_token: refreshToken } = fake.tokens.issue();
      const session = new OAuthSession(onedriveOAuthConfig({ clientId: 'app', tenant: 'consumers' }), new MemoryTokenStore({ accessToken: '', refreshToken }), {
        fetch: loopbackFetch(fake.url),
      });
      expect(await session.accessToken()).toBe(fake.tokens.issued.at(-1));
      expect(fake.log.entries.map((e) => [e.path, e.headers['x-fake-host'], e.status])).toEqual([
        ['/consumers/oauth2/v2.0/token', 'login.microsoftonline.com', 200],
      ]);
    } finally {
      await fake.close();
    }
  });
});
