/**
 * Test helpers for src/*.test.ts (not published): a Dropbox fake with a linked account, core-archive's OAuthSession on
 * its token endpoint, and a DropboxBackend pointed at the fake through the real SDK.
 */

import { createHash } from 'node:crypto';
import { dropboxFakeFetch, startDropboxFake } from '@backup-manager/cloud-fakes';
import type { DropboxFake, DropboxFakeOptions } from '@backup-manager/cloud-fakes';
import { MemoryTokenStore, OAuthSession } from '@backup-manager/core-archive';
import type { Handle, OAuthClientConfig, TokenStore } from '@backup-manager/core-archive';
import { DropboxBackend } from '../src/dropbox-backend.ts';
import { dropboxOAuthConfig as appOAuthConfig } from '../src/oauth.ts';
import type { DropboxBackendOptions } from '../src/dropbox-backend.ts';

export const MiB = 1024 * 1024;
export const ROOT = '/backup-manager/repo1';

/** Dropbox's OAuth service as `bam auth dropbox` configures it (the fake serves the token endpoint). */
export function dropboxOAuthConfig(clientId = 'fake-app-key'): OAuthClientConfig {
  return appOAuthConfig({ appKey: clientId });
}

/** The fake's fetch in the shape OAuthSession takes (it always calls with a URL string). */
export function fakeFetch(fake: DropboxFake): typeof fetch {
  const rewrite = dropboxFakeFetch(fake.url);
  return ((input: string | URL | Request, init?: RequestInit) =>
    rewrite(input instanceof Request ? input.url : String(input), init)) as typeof fetch;
}

/** A signed-in account on the fake: an OAuthSession whose store holds a fresh access token and a refresh token. */
export async function signIn(fake: DropboxFake, store: TokenStore = new MemoryTokenStore()): Promise<OAuthSession> {
  const issued = fake.tokens.issue();
  await store.write({ accessToken: issued.access_token, refreshToken: issued.refresh_token, expiresAt: Date.now() + issued.expires_in * 1000 });
  return new OAuthSession(dropboxOAuthConfig(), store, { fetch: fakeFetch(fake) });
}

export interface FakeSetup {
  fake: DropboxFake;
  session: OAuthSession;
  backend: DropboxBackend;
}

/** A fresh fake and a created (folders made) backend on it; pacing is off unless asked for. */
export async function openOnFake(
  backendOptions: Partial<DropboxBackendOptions> = {},
  fakeOptions: DropboxFakeOptions = {},
): Promise<FakeSetup> {
  const fake = await startDropboxFake(fakeOptions);
  const session = await signIn(fake);
  const backend = await DropboxBackend.create({
    root: ROOT,
    session,
    fetch: dropboxFakeFetch(fake.url),
    requestsPerSecond: Number.POSITIVE_INFINITY,
    ...backendOptions,
  });
  return { fake, session, backend };
}

/** The JSON Dropbox-API-Arg header of a logged request (content routes carry their arguments there). */
export function apiArgOf(entry: { headers: Record<string, string> }): Record<string, unknown> {
  const raw = entry.headers['dropbox-api-arg'];
  if (raw === undefined) throw new Error('the request carried no Dropbox-API-Arg header');
  return JSON.parse(raw) as Record<string, unknown>;
}

/** Pseudo-random bytes from a seed (xorshift32), and the data handle named by their SHA-256, as the repository names files. */
export function dataFile(size: number, seed: number): { h: Handle; data: Uint8Array } {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const data = new Uint8Array(words.buffer, 0, size);
  return { h: { type: 'data', name: createHash('sha256').update(data).digest('hex') }, data };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
