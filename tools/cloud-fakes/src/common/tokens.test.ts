// Checks the TokenAuthority: token lifetimes on an injected clock, refresh, and the auth-code + PKCE exchange.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenAuthority, s256Challenge } from './tokens.ts';

function clock(start = 1_700_000_000_000): { now: () => number; advance: (seconds: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => (t += s * 1000) };
}

describe('TokenAuthority', () => {
  it('issues tokens that expire after their lifetime and refreshes with the refresh token', () => {
    const c = clock();
    const tokens = new TokenAuthority({ accessTtlSeconds: 600, now: c.now });
    const first = tokens.issue();
    expect(first.expires_in).toBe(600);
    expect(tokens.isValid(first.access_token)).toBe(true);
    c.advance(600);
    expect(tokens.isValid(first.access_token)).toBe(false);
    const second = tokens.refresh(first.refresh_token);
    expect(second?.access_token).not.toBe(first.access_token);
    expect(tokens.isValid(second?.access_token ?? '')).toBe(true);
    expect(tokens.refresh('unknown')).toBeUndefined();
    expect(tokens.issued).toEqual([first.access_token, second?.access_token]);
    expect(tokens.isValid('never-issued')).toBe(false);
  });

  it('expires one token or all of them on demand', () => {
    const tokens = new TokenAuthority();
    const a = tokens.issue();
    const b = tokens.issue();
    tokens.expire(a.access_token);
    expect([tokens.isValid(a.access_token), tokens.isValid(b.access_token)]).toEqual([false, true]);
    tokens.expire();
    expect(tokens.isValid(b.access_token)).toBe(false);
    tokens.revokeRefreshToken(b.refresh_token);
    expect(tokens.refresh(b.refresh_token)).toBeUndefined();
  });

  it('computes the RFC 7636 S256 challenge (appendix B test vector)', () => {
    expect(s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
    expect(createHash('sha256').update('x').digest('base64url')).toBe(s256Challenge('x'));
  });

  it('exchanges an auth code once, only with the matching verifier, redirect URI and client', () => {
    const tokens = new TokenAuthority();
    const verifier = 'v'.repeat(50);
    const opts = { codeChallenge: s256Challenge(verifier), redirectUri: 'http://127.0.0.1:5000/cb', clientId: 'cli' };
    const code = tokens.createAuthCode(opts);
    const ok = tokens.exchangeCode({ code, codeVerifier: verifier, redirectUri: opts.redirectUri, clientId: 'cli' });
    expect(ok).toMatchObject({ access_token: expect.any(String), refresh_token: expect.any(String) });
    expect(tokens.exchangeCode({ code, codeVerifier: verifier, redirectUri: opts.redirectUri, clientId: 'cli' })).toEqual({ error: 'invalid_grant' });

    const attempt = (o: { codeVerifier?: string; redirectUri?: string; clientId?: string }) =>
      tokens.exchangeCode({ code: tokens.createAuthCode(opts), redirectUri: opts.redirectUri, clientId: 'cli', ...o });
    expect(attempt({ codeVerifier: 'wrong' })).toEqual({ error: 'invalid_grant' });
    expect(attempt({})).toEqual({ error: 'invalid_request' });
    expect(attempt({ codeVerifier: verifier, redirectUri: 'http://127.0.0.1:5001/cb' })).toEqual({ error: 'invalid_grant' });
    expect(attempt({ codeVerifier: verifier, clientId: 'other' })).toEqual({ error: 'invalid_client' });
  });

  it('rejects an expired auth code and supports the plain challenge method', () => {
    const c = clock();
    const tokens = new TokenAuthority({ now: c.now, authCodeTtlSeconds: 60 });
    const base = { redirectUri: 'http://localhost/cb', clientId: 'c' };
    const late = tokens.createAuthCode({ ...base, codeChallenge: 'abc', codeChallengeMethod: 'plain' });
    c.advance(61);
    expect(tokens.exchangeCode({ ...base, code: late, codeVerifier: 'abc' })).toEqual({ error: 'invalid_grant' });
    const plain = tokens.createAuthCode({ ...base, codeChallenge: 'abc', codeChallengeMethod: 'plain' });
    expect(tokens.exchangeCode({ ...base, code: plain, codeVerifier: 'abc' })).toHaveProperty('access_token');
    const noPkce = tokens.createAuthCode(base);
    expect(tokens.exchangeCode({ ...base, code: noPkce })).toHaveProperty('access_token');
  });
});
