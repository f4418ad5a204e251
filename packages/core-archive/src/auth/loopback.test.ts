// The loopback authorization-code flow with PKCE, run end to end against the Google Drive fake's consent screen
// (/auth, already consented) and token endpoint; the test plays the browser with fetch.

import { createHash } from 'node:crypto';
import { startGdriveFake } from '@backup-manager/cloud-fakes';
import type { GdriveFake } from '@backup-manager/cloud-fakes';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { authorizeWithLoopback, pkcePair } from './loopback.ts';
import type { OAuthClientConfig } from './token-endpoint.ts';

let fake: GdriveFake;
let config: OAuthClientConfig;

beforeEach(async () => {
  fake = await startGdriveFake();
  config = {
    provider: 'google_drive',
    clientId: 'cid.apps.example',
    clientSecret: 'csecret',
    authorizationEndpoint: `${fake.url}/auth`,
    tokenEndpoint: `${fake.url}/token`,
    scopes: ['https://www.googleapis.com/auth/drive.file'],
    extraAuthorizationParams: { access_type: 'offline', prompt: 'consent' },
  };
});

afterEach(async () => {
  await fake.close();
});

/** Starts the flow and returns its promise plus the address it printed. */
async function start(options: { timeoutMs?: number; signal?: AbortSignal } = {}) {
  let printed: (url: URL) => void = () => {};
  const url = new Promise<URL>((resolve) => {
    printed = resolve;
  });
  const messages: string[] = [];
  const flow = authorizeWithLoopback(config, {
    ...options,
    print: (message) => {
      messages.push(message);
      const match = /https?:\/\/\S+/.exec(message);
      if (match !== null) printed(new URL(match[0]));
    },
  });
  flow.catch(() => undefined); // observed by each test
  return { flow, url: await url, messages };
}

async function failureOf(p: Promise<unknown>): Promise<BackupError> {
  const error = await p.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BackupError);
  return error as BackupError;
}

describe('pkcePair', () => {
  it('makes a 43-character base64url verifier and its S256 challenge, fresh each time', () => {
    const { verifier, challenge } = pkcePair();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(challenge).toBe(createHash('sha256').update(verifier).digest('base64url'));
    expect(pkcePair().verifier).not.toBe(verifier);
  });
});

describe('authorizeWithLoopback', () => {
  it('runs the whole flow: prints the address, follows the consent redirect, redeems the code with PKCE', async () => {
    const { flow, url, messages } = await start();
    expect(messages[0]).toContain('google_drive');
    expect(url.origin + url.pathname).toBe(`${fake.url}/auth`);
    const q = url.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe('cid.apps.example');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('scope')).toBe('https://www.googleapis.com/auth/drive.file');
    expect(q.get('access_type')).toBe('offline');
    expect(q.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(q.get('state')?.length).toBeGreaterThanOrEqual(32);
    expect(messages.join('\n')).not.toContain('csecret');

    // The browser: the consent screen redirects to the loopback address, which answers with a closing page.
    const consent = await fetch(url, { redirect: 'manual' });
    expect(consent.status).toBe(302);
    const back = await fetch(consent.headers.get('location') ?? '');
    expect(back.status).toBe(200);
    expect(await back.text()).toContain('You can close this tab');

    const tokens = await flow;
    expect(fake.tokens.isValid(tokens.accessToken)).toBe(true);
    expect(tokens.refreshToken).toMatch(/^fake-rt-/);
    expect(tokens.tokenType).toBe('Bearer');
    expect(tokens.scope).toBe('https://www.googleapis.com/auth/drive.file');
    expect(tokens.expiresAt).toBeGreaterThan(Date.now() + 3000_000);
    // The fake checked the code verifier against the challenge (a wrong one is invalid_grant).
    expect(fake.log.filter((e) => e.path === '/token').map((e) => e.status)).toEqual([200]);
    // The loopback server is gone.
    await expect(fetch(consent.headers.get('location') ?? '')).rejects.toThrow();
  });

  it('refuses an answer whose state does not belong to this sign-in', async () => {
    const { flow, url } = await start();
    const callback = new URL(url.searchParams.get('redirect_uri') ?? '');
    callback.searchParams.set('code', 'forged-code');
    callback.searchParams.set('state', 'not-the-state');
    const res = await fetch(callback);
    expect(res.status).toBe(400);
    const error = await failureOf(flow);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('state mismatch');
    expect(error.message).toContain('run `bam auth google_drive` again');
    expect(fake.log.filter((e) => e.path === '/token')).toHaveLength(0); // the forged code was never redeemed
  });

  it('reports a refusal in the browser (error=access_denied) as UNAUTHORIZED', async () => {
    const { flow, url } = await start();
    const callback = new URL(url.searchParams.get('redirect_uri') ?? '');
    callback.searchParams.set('error', 'access_denied');
    callback.searchParams.set('state', url.searchParams.get('state') ?? '');
    expect((await fetch(callback)).status).toBe(400);
    const error = await failureOf(flow);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('access_denied');
  });

  it('reports a code the token endpoint refuses as UNAUTHORIZED, and tells the browser', async () => {
    const { flow, url } = await start();
    const callback = new URL(url.searchParams.get('redirect_uri') ?? '');
    callback.searchParams.set('code', 'fake-code-that-was-never-issued');
    callback.searchParams.set('state', url.searchParams.get('state') ?? '');
    const res = await fetch(callback);
    expect(res.status).toBe(502);
    const error = await failureOf(flow);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toContain('invalid_grant');
    expect(error.message).not.toContain('fake-code-that-was-never-issued');
  });

  it('ignores other paths, gives up after the timeout, and stops when aborted', async () => {
    const slow = await start({ timeoutMs: 150 });
    const other = new URL('/favicon.ico', slow.url.searchParams.get('redirect_uri') ?? '');
    expect((await fetch(other)).status).toBe(404);
    const timedOut = await failureOf(slow.flow);
    expect(timedOut.code).toBe('UNAUTHORIZED');
    expect(timedOut.message).toContain('no answer from the browser');

    const controller = new AbortController();
    const aborted = await start({ signal: controller.signal });
    controller.abort();
    expect((await failureOf(aborted.flow)).code).toBe('INTERRUPTED');
  });
});
