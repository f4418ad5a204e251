// OAuthSession against the Google Drive fake's real token endpoint (refresh_token grant), with file and memory stores.

import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { startGdriveFake } from '@backup-manager/cloud-fakes';
import type { GdriveFake } from '@backup-manager/cloud-fakes';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { OAuthSession } from './session.ts';
import type { OAuthClientConfig } from './token-endpoint.ts';
import { FileTokenStore, MemoryTokenStore } from './token-store.ts';

let fake: GdriveFake;
let dir: string;
let config: OAuthClientConfig;

beforeEach(async () => {
  fake = await startGdriveFake();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bam-session-'));
  config = {
    provider: 'google_drive',
    clientId: 'cid.apps.example',
    clientSecret: 'client-secret-value',
    authorizationEndpoint: `${fake.url}/auth`,
    tokenEndpoint: `${fake.url}/token`,
    scopes: ['https://www.googleapis.com/auth/drive.file'],
  };
});

afterEach(async () => {
  await fake.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

const tokenCalls = () => fake.log.filter((e) => e.method === 'POST' && e.path === '/token');

/** Tokens as `bam auth` would have stored them, from the fake's authority. */
function signedIn(expiresInMs = 3600_000) {
  const issued = fake.tokens.issue();
  return { accessToken: issued.access_token, refreshToken: issued.refresh_token, expiresAt: Date.now() + expiresInMs };
}

async function rejectionOf(p: Promise<unknown>): Promise<BackupError> {
  const error = await p.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BackupError);
  return error as BackupError;
}

describe('OAuthSession', () => {
  it('hands out the stored token while it is fresh, without calling the token endpoint', async () => {
    const tokens = signedIn();
    const session = new OAuthSession(config, new MemoryTokenStore(tokens));
    expect(await session.accessToken()).toBe(tokens.accessToken);
    expect(tokenCalls()).toHaveLength(0);
  });

  it('refreshes a token that expires within the margin, and persists it atomically with mode 0600', async () => {
    const store = new FileTokenStore(path.join(dir, 'google_drive-token.json'));
    const tokens = signedIn(60_000); // inside the default 5-minute margin
    await store.write(tokens);
    const session = new OAuthSession(config, store);
    const fresh = await session.accessToken();
    expect(fresh).not.toBe(tokens.accessToken);
    expect(fake.tokens.isValid(fresh)).toBe(true);
    expect(tokenCalls()).toHaveLength(1);
    const saved = await store.read();
    expect(saved).toMatchObject({ accessToken: fresh, refreshToken: tokens.refreshToken, tokenType: 'Bearer' });
    expect(saved?.expiresAt).toBeGreaterThan(Date.now() + 3000_000);
    expect((await fsp.stat(store.path)).mode & 0o777).toBe(0o600);
    expect(await fsp.readdir(dir)).toEqual(['google_drive-token.json']);
    expect(await session.accessToken()).toBe(fresh); // now fresh: no second refresh
    expect(tokenCalls()).toHaveLength(1);
  });

  it('uses an injected clock and margin to decide when to refresh', async () => {
    let now = 1_000_000;
    const session = new OAuthSession(config, new MemoryTokenStore({ ...signedIn(), expiresAt: now + 120_000 }), {
      now: () => now,
      refreshMarginMs: 60_000,
    });
    const first = await session.accessToken();
    expect(tokenCalls()).toHaveLength(0);
    now += 61_000;
    expect(await session.accessToken()).not.toBe(first);
    expect(tokenCalls()).toHaveLength(1);
  });

  it('refreshes after a rejection and shares one refresh between concurrent callers', async () => {
    const tokens = signedIn();
    const store = new MemoryTokenStore(tokens);
    const session = new OAuthSession(config, store);
    const results = await Promise.all([1, 2, 3].map(() => session.refreshAfterRejection(tokens.accessToken)));
    expect(new Set(results).size).toBe(1);
    expect(results[0]).not.toBe(tokens.accessToken);
    expect(tokenCalls()).toHaveLength(1);
    expect((await store.read())?.accessToken).toBe(results[0]);
    // A caller that still holds the old token gets the new one without another refresh.
    expect(await session.refreshAfterRejection(tokens.accessToken)).toBe(results[0]);
    expect(tokenCalls()).toHaveLength(1);
  });

  it('two sessions sharing one token file: the second uses the token the first stored instead of refreshing', async () => {
    const file = path.join(dir, 'google_drive-token.json');
    const tokens = signedIn();
    await new FileTokenStore(file).write(tokens);
    const a = new OAuthSession(config, new FileTokenStore(file));
    const b = new OAuthSession(config, new FileTokenStore(file));
    expect(await a.accessToken()).toBe(tokens.accessToken);
    expect(await b.accessToken()).toBe(tokens.accessToken);

    const fromA = await a.refreshAfterRejection(tokens.accessToken);
    const fromB = await b.refreshAfterRejection(tokens.accessToken);
    expect(fromB).toBe(fromA);
    expect(tokenCalls()).toHaveLength(1);
    expect((await new FileTokenStore(file).read())?.accessToken).toBe(fromA);
  });

  it('two sessions refreshing the same file at the same moment refresh once and agree (no clobbering)', async () => {
    const file = path.join(dir, 'google_drive-token.json');
    const tokens = signedIn();
    await new FileTokenStore(file).write(tokens);
    const sessions = [1, 2, 3, 4].map(() => new OAuthSession(config, new FileTokenStore(file)));
    const results = await Promise.all(sessions.map((s) => s.refreshAfterRejection(tokens.accessToken)));
    expect(new Set(results).size).toBe(1);
    expect(tokenCalls()).toHaveLength(1);
    const saved = await new FileTokenStore(file).read();
    expect(saved).toMatchObject({ accessToken: results[0], refreshToken: tokens.refreshToken });
  });

  it('fails with UNAUTHORIZED and the re-auth hint when the refresh token was revoked, never showing a token', async () => {
    const tokens = signedIn();
    fake.tokens.revokeRefreshToken(tokens.refreshToken);
    const store = new FileTokenStore(path.join(dir, 'token.json'));
    await store.write(tokens);
    const session = new OAuthSession(config, store);
    const error = await rejectionOf(session.refreshAfterRejection(tokens.accessToken));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('run `bam auth google_drive` again');
    expect(error.message).toContain('invalid_grant');
    const everything = `${error.message}\n${inspect(error, { depth: 10 })}`;
    for (const secret of [tokens.accessToken, tokens.refreshToken, 'client-secret-value']) {
      expect(everything).not.toContain(secret);
    }
    expect(await store.read()).toEqual(tokens); // nothing was overwritten
  });

  it('fails with UNAUTHORIZED when nothing is stored, or no refresh token is', async () => {
    const none = await rejectionOf(new OAuthSession(config, new MemoryTokenStore()).accessToken());
    expect(none.code).toBe('UNAUTHORIZED');
    expect(none.message).toContain('bam auth google_drive');
    const noRefresh = new OAuthSession(config, new MemoryTokenStore({ accessToken: 'at-only' }));
    const error = await rejectionOf(noRefresh.refreshAfterRejection('at-only'));
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('run `bam auth google_drive` again');
  });

  it('reports a token endpoint that answers 503 as UNAVAILABLE and 429 as RATE_LIMITED with Retry-After', async () => {
    const tokens = signedIn();
    const session = new OAuthSession(config, new MemoryTokenStore(tokens));
    fake.faults.add({ method: 'POST', path: '/token', action: { kind: 'status', status: 503 } });
    expect((await rejectionOf(session.refreshAfterRejection(tokens.accessToken))).code).toBe('UNAVAILABLE');
    fake.faults.add({ method: 'POST', path: '/token', action: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
    const limited = await rejectionOf(session.refreshAfterRejection(tokens.accessToken));
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.retryAfterMs).toBe(7000);
    // The endpoint is healthy again: the next refresh works.
    expect(fake.tokens.isValid(await session.refreshAfterRejection(tokens.accessToken))).toBe(true);
  });

  it('reports an unreachable token endpoint as UNAVAILABLE', async () => {
    const tokens = signedIn();
    const unreachable = { ...config, tokenEndpoint: 'http://127.0.0.1:1/token' };
    const error = await rejectionOf(new OAuthSession(unreachable, new MemoryTokenStore(tokens)).refreshAfterRejection(tokens.accessToken));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain('http://127.0.0.1:1/token');
  });
});
